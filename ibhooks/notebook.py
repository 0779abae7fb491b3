"""A notebook view of a run: ``show(run_or_monitor)`` returns an object that Jupyter renders as the
interactive information plane (self-contained HTML + JavaScript + SVG, nothing from the network) and a
one-table summary of each layer's latest and peak values.

    import ibhooks
    from ibhooks.notebook import show
    show(ibhooks.load_run("runs/exp1.jsonl"))   # a run read back from its log
    show(monitor)                                # a live IBMonitor (its records so far)
"""
from __future__ import annotations

import html
from typing import Any, Mapping, Optional

__all__ = ["PlaneView", "show"]


class PlaneView:
    """What :func:`show` returns: ``_repr_html_`` gives the page fragment; ``html`` holds it too."""

    def __init__(self, html_text: str, title: str = "") -> None:
        self.html = html_text
        self.title = title

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return f"<ibhooks plane view{': ' + self.title if self.title else ''} (display it in a notebook)>"


def _records_and_header(obj: Any, header: Optional[Mapping[str, Any]]):
    """(records, header, title) of a Run, an IBMonitor, a run-log path or a list of Records."""
    from . import plotting

    if hasattr(obj, "history") and hasattr(obj, "sinks"):  # a live IBMonitor
        hdr_fn = getattr(obj, "_header", None)
        hdr = dict(hdr_fn()) if callable(hdr_fn) else {}
        hdr.update(header or {})
        return list(obj.history), hdr, str(getattr(obj, "run_name", "") or "")
    recs, hdr = plotting.as_records(obj, header)
    return recs, hdr, str(hdr.get("run_name") or getattr(obj, "path", "") or "")


def show(run_or_monitor: Any, *, estimator: Optional[str] = None,
         header: Optional[Mapping[str, Any]] = None) -> PlaneView:
    """The interactive plane and a summary table of ``run_or_monitor`` (a :class:`~ibhooks.runlog.Run`,
    an :class:`~ibhooks.IBMonitor`, a run-log path or Records) for a notebook cell.

    Raises:
        ValueError: there are no measurements yet, or ``estimator`` is not in the run.
    """
    from . import plotting
    from .report.interactive import interactive_plane
    from .schema import QUANTITIES

    recs, hdr, title = _records_and_header(run_or_monitor, header)
    if not recs:
        raise ValueError("no measurements yet: call monitor.step() / measure() first, or load a run with records")
    est = plotting.default_estimator(recs, estimator)
    rows = []
    for layer in plotting.layer_names(recs):
        cells = [html.escape(layer)]
        for q in QUANTITIES:
            s = plotting.layer_series(recs, layer, est, q)
            cells += ([f"{s.value[-1]:.3g}", f"{s.value.max():.3g}"] if len(s) else ["–", "–"])
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("layer", "I(X;T) last", "I(X;T) peak", "I(T;Y) last", "I(T;Y) peak"))
    summary = (f"<table style='border-collapse:collapse;font-size:12px'><thead><tr>{head}</tr></thead>"
               f"<tbody>{''.join(rows)}</tbody></table>")
    caption = (f"<p style='font-size:12px'><b>{html.escape(title)}</b> · {len(recs)} measurement(s), last step "
               f"{recs[-1].step} · estimator {html.escape(plotting.estimator_title(recs, est))} (bits)</p>")
    plane = interactive_plane(recs, header=hdr, estimator=estimator)
    return PlaneView(f"<div class='ibhooks-view'>{caption}{plane}{summary}</div>", title)
