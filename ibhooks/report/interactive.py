"""The interactive information plane: one self-contained HTML fragment (SVG drawn by the JavaScript in
``plane.js``, embedded; nothing loaded from the network). Hover a point for its layer, step, values and
intervals; click a layer to hide it; choose the estimator when there are several.

Used by the HTML report, the notebook view (:mod:`ibhooks.notebook`) and the W&B sink (``wandb.Html``).
"""
from __future__ import annotations

import itertools
import json
import math
from typing import Any, Dict, List, Mapping, Optional

from .. import plotting
from ..schema import Quantity
from ..sinks.layer_labels import layer_labels

__all__ = ["plane_data", "interactive_plane"]

_COUNTER = itertools.count()
#: Layer colours (the figures' Okabe-Ito set, without the yellow that vanishes on white).
COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]


def _num(x: Optional[float]) -> Optional[float]:
    return None if x is None or not math.isfinite(x) else round(float(x), 5)


def plane_data(run_or_records: plotting.RunLike, *, header: Optional[Mapping[str, Any]] = None,
               estimator: Optional[str] = None) -> Dict[str, Any]:
    """The plane of every estimator (or ``estimator``) as plain JSON-able data: per layer its label,
    colour and points ``[step, I_XT, I_TY, I_XT_lo, I_XT_hi, I_TY_lo, I_TY_hi]`` (None where missing)."""
    recs, hdr = plotting.as_records(run_or_records, header)
    names = plotting.estimator_names(recs)
    if estimator is not None:
        plotting.default_estimator(recs, estimator)  # a clear error for an unknown one
        names = [estimator]
    layers = plotting.layer_names(recs)
    labels = layer_labels(layers, hdr)
    out: List[Dict[str, Any]] = []
    for est in names:
        if not plotting.has_plane(recs, est):
            continue
        xcap, hy = plotting.caps(recs, est)
        entries = []
        for i, layer in enumerate(layers):
            sx = plotting.layer_series(recs, layer, est, Quantity.I_XT)
            sy = plotting.layer_series(recs, layer, est, Quantity.I_TY)
            at_y = {s: j for j, s in enumerate(sy.steps.tolist())}
            pts = [[int(s), _num(sx.value[i_]), _num(sy.value[j]), _num(sx.lo[i_]), _num(sx.hi[i_]),
                    _num(sy.lo[j]), _num(sy.hi[j])]
                   for i_, s in enumerate(sx.steps.tolist()) if (j := at_y.get(s)) is not None]
            if pts:
                entries.append({"name": layer, "label": labels[layer], "color": COLORS[i % len(COLORS)],
                                "points": pts})
        qx = plotting.quantity_label(recs, est, Quantity.I_XT)
        qy = plotting.quantity_label(recs, est, Quantity.I_TY)
        out.append({"name": est, "title": plotting.estimator_title(recs, est),
                    "xlabel": "I(X;T) [bits]" + (f" = {qx}" if qx else ""),
                    "ylabel": "I(T;Y) [bits]" + (f" = {qy}" if qy else ""),
                    "xcap": _num(xcap), "hy": _num(hy), "layers": entries})
    return {"estimators": out}


def _script() -> str:
    from .html import resource

    return resource("plane.js")


def interactive_plane(run_or_records: plotting.RunLike, *, header: Optional[Mapping[str, Any]] = None,
                      estimator: Optional[str] = None, title: Optional[str] = None) -> str:
    """A self-contained HTML fragment (``<div>`` + ``<script>``) drawing the interactive plane."""
    data = plane_data(run_or_records, header=header, estimator=estimator)
    if not data["estimators"]:
        return "<p>No layer has both I(X;T) and I(T;Y) (no labels?): no plane to draw.</p>"
    div_id = f"ibhooks-plane-{next(_COUNTER)}"
    payload = json.dumps(data, allow_nan=False).replace("<", "\\u003c")  # no tag can open or close in it
    head = f"<h4 style='margin:.3em 0'>{_escape(title)}</h4>" if title else ""
    return (f'<div class="ibhooks-plane" id="{div_id}" style="max-width:700px;font-family:sans-serif">{head}</div>\n'
            f"<script>\n{_script()}\nibhooksPlane(document.getElementById({json.dumps(div_id)}), {payload});\n"
            "</script>")


def _escape(text: str) -> str:
    import html

    return html.escape(text)
