"""TensorBoard sink: scalars, a custom-scalars layout, the information plane as an image, and
warnings / phases / DPI checks as text. Reads Records only.

Key scheme (shared with the W&B sink, see :func:`ibhooks.plotting.metric_items`):

* ``ib/<layer>/I_XT`` and ``ib/<layer>/I_TY`` in bits; with several estimators in the run,
  ``ib/<estimator>/<layer>/I_XT`` (decided once, from the header's config or the first Record);
* ``<key>_lo`` / ``<key>_hi``: the interval bounds where estimates carry a ``ci``;
* ``ib/H_Y`` and ``ib/seconds``;
* images ``ib/plane`` and ``ib/curves`` (``ib/<estimator>/...`` with several estimators) at every
  ``figure_every``-th measurement and at ``close()`` (at the last step, if not drawn there yet), and
  ``ib/dpi`` at ``close()``;
* text ``ib/config`` (settings + coverage), ``ib/warnings``, ``ib/phases`` (the latest decision of
  every series: the records' ``phase_changes`` folded), ``ib/dpi`` (each written when it changes);
* a custom-scalars layout (category ``ibhooks``): one Multiline chart per quantity across layers,
  and Margin charts (value with its interval) per layer where intervals exist.

The sink keeps no Records: figures are drawn from a :class:`~ibhooks.sinks.drawing.FigureHistory`.

Usage::

    from torch.utils.tensorboard import SummaryWriter
    writer = SummaryWriter("runs/exp1")
    monitor = IBMonitor(model, probe=..., sinks=[TensorBoardSink(writer=writer)])
"""

from __future__ import annotations

import json
import re
import warnings
from typing import Any, Dict, Iterable, List, Optional, Sequence

from ibhooks._optional import available, require
from ibhooks.schema import QUANTITIES, PhaseDecision, Record
from ibhooks.sinks.base import Sink
from ibhooks.sinks.drawing import FigureHistory, draw_figures, figure_tag

__all__ = ["TensorBoardSink"]


class TensorBoardSink(Sink):
    """Write Records to TensorBoard.

    Args:
        log_dir: Directory for a new ``SummaryWriter`` (ignored when ``writer`` is given).
        writer: Your own ``torch.utils.tensorboard.SummaryWriter`` (or a Lightning
            ``TensorBoardLogger``, whose ``.experiment`` is used). It is flushed, not closed, by
            :meth:`close`.
        figures: Log the information plane as an image (needs matplotlib; disabled with a warning
            when it is missing).
        figure_every: Draw the plane and the curves at every ``figure_every``-th measurement (1 = every
            one), and always at :meth:`close`.
        prefix: First path component of every tag.
        dpi: Resolution of logged figures.

    Raises:
        ImportError: ``tensorboard`` is not installed and no writer was given.
    """

    name = "tensorboard"

    def __init__(
        self,
        log_dir: Optional[str] = None,
        *,
        writer: Any = None,
        figures: bool = True,
        figure_every: int = 1,
        prefix: str = "ib",
        dpi: int = 100,
    ) -> None:
        if not isinstance(figure_every, int) or figure_every < 1:
            raise ValueError(f"figure_every must be an integer >= 1, got {figure_every!r}")
        if writer is not None and hasattr(writer, "experiment") and not hasattr(writer, "add_scalar"):
            writer = writer.experiment  # Lightning TensorBoardLogger
        if writer is None:
            tb = require("torch.utils.tensorboard", purpose="the TensorBoard sink")
            writer = tb.SummaryWriter(log_dir=log_dir)
            self._own_writer = True
        else:
            if not hasattr(writer, "add_scalar"):
                raise TypeError(
                    f"writer must be a torch.utils.tensorboard.SummaryWriter, got {type(writer).__name__}"
                )
            self._own_writer = False
        self.writer = writer
        if figures and not available("matplotlib"):
            warnings.warn(
                "ibhooks: matplotlib is not installed, so the TensorBoard sink logs no figures; "
                "install it with: pip install 'ibhooks[plot]'",
                RuntimeWarning,
                stacklevel=2,
            )
            figures = False
        self.figures = figures
        self.figure_every = figure_every
        self.prefix = prefix
        self.dpi = dpi
        self.header: Dict[str, Any] = {}
        self.history = FigureHistory()
        self._drawn_at = 0  # measurements in the history when figures were last drawn
        self._with_estimator: Optional[bool] = None
        self._layout_written = False
        self._last_text: Dict[str, str] = {}
        self._closed = False

    @property
    def log_dir(self) -> Optional[str]:
        get = getattr(self.writer, "get_logdir", None)
        return get() if callable(get) else getattr(self.writer, "log_dir", None)

    # -- Sink API -------------------------------------------------------------------------------

    def start(self, header: Dict[str, Any]) -> None:
        self.header = dict(header)
        self._text(
            f"{self.prefix}/config", _config_markdown(self.header), int(header.get("step") or 0), force=True
        )

    def update_header(self, key: str, value: Any) -> None:
        self.header[key] = value
        if key in ("coverage", "config", "chains"):
            self._text(f"{self.prefix}/config", _config_markdown(self.header), self._last_step())

    def write(self, record: Record) -> None:
        from ibhooks import plotting

        self.history.append(record)
        if self._with_estimator is None:
            self._with_estimator = plotting.multi_estimator([record], self.header)
        if not self._layout_written and record.layers:
            self.writer.add_custom_scalars(self.layout(record))
            self._layout_written = True
        step = int(record.step)
        for key, value in plotting.metric_items(
            record, with_estimator=self._with_estimator, prefix=self.prefix
        ).items():
            self.writer.add_scalar(key, value, global_step=step)
        self._text(f"{self.prefix}/warnings", _warnings_markdown(record), step)
        self._text(f"{self.prefix}/phases", _phases_markdown(self.history.phases.values()), step)
        self._text(f"{self.prefix}/dpi", _dpi_markdown(record), step)
        if self.figures and (len(self.history) - 1) % self.figure_every == 0:
            self._figures(("plane", "curves"))
        self.writer.flush()

    def log_text(self, tag: str, text: str, step: Optional[int] = None) -> None:
        self.writer.add_text(tag, text, global_step=step)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.figures and self.history.estimators:
                self._figures(("dpi",) if self._drawn_at == len(self.history) else ("plane", "curves", "dpi"))
        finally:
            if self._own_writer:
                self.writer.close()
            else:
                self.writer.flush()

    # -- pieces ---------------------------------------------------------------------------------

    def layout(self, record: Record) -> Dict[str, Dict[str, List[Any]]]:
        """The custom-scalars layout for the layers and estimators of ``record``:
        ``{"ibhooks": {"<quantity> per layer": ["Multiline", [tags]], ...},
        "ibhooks intervals": {"<layer> <quantity>": ["Margin", [value, lo, hi]], ...}}``."""
        from ibhooks import plotting

        with_est = bool(self._with_estimator)
        lines: Dict[str, List[Any]] = {}
        margins: Dict[str, List[Any]] = {}
        estimators = record.estimators
        for est in estimators:
            for quantity in QUANTITIES:
                q, label = quantity.value, quantity.label
                tags = []
                for layer, per_est in record.layers.items():
                    res = per_est.get(est)
                    e = None if res is None else res.get(quantity)
                    if e is None:
                        continue
                    base = plotting.metric_prefix(layer, est, with_estimator=with_est, prefix=self.prefix)
                    tags.append(f"^{re.escape(base + '/' + q)}$")
                    if e.ci is not None:
                        title = f"{layer} {label}" + (f" ({est})" if with_est else "")
                        margins[title] = ["Margin", [f"{base}/{q}", f"{base}/{q}_lo", f"{base}/{q}_hi"]]
                if tags:
                    title = f"{label} per layer" + (f" ({est})" if with_est else "") + " [bits]"
                    lines[title] = ["Multiline", tags]
        layout = {"ibhooks": lines}
        if margins:
            layout["ibhooks intervals"] = margins
        return layout

    def _figures(self, names: Sequence[str]) -> None:
        """Draw ``names`` from the compact history and log them at the latest step."""
        from ibhooks import plotting

        step = int(self.history.last_step or 0)
        self._drawn_at = len(self.history)
        for name, est, fig in draw_figures(self.history, self.header, names):
            fig.set_dpi(self.dpi)
            tag = figure_tag(name, est, with_estimator=bool(self._with_estimator), prefix=self.prefix)
            self.writer.add_figure(tag, fig, global_step=step, close=False)
            plotting.close_figure(fig)

    def _text(self, tag: str, body: str, step: int, *, force: bool = False) -> None:
        """Write ``body`` under ``tag`` when it differs from the last one written (or ``force``);
        when a non-empty text becomes empty, say so once."""
        prev = self._last_text.get(tag)
        if not force and prev == body:
            return
        self._last_text[tag] = body
        if not body:
            if prev:
                self.writer.add_text(tag, f"_step {step}: nothing to report any more_", global_step=step)
            return
        self.writer.add_text(tag, f"**step {step}**\n\n{body}", global_step=step)

    def _last_step(self) -> int:
        last = self.history.last_step
        return int(last) if last is not None else int(self.header.get("step") or 0)


# -- Markdown renderings (TensorBoard's text plugin renders Markdown) -------------------------------


def _md_cell(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _config_markdown(header: Dict[str, Any]) -> str:
    parts = ["### ibhooks run"]
    cfg = header.get("config")
    if cfg:
        parts.append("**Settings**\n\n```\n" + json.dumps(cfg, indent=2, default=str)[:6000] + "\n```")
    cov = header.get("coverage") or []
    if cov:
        rows = [
            [
                c.get("name"),
                c.get("type"),
                c.get("status"),
                c.get("dim"),
                c.get("reduction"),
                c.get("chain") or c.get("reason"),
            ]
            for c in cov
        ]
        n_mon = sum(1 for c in cov if c.get("status") == "monitored")
        parts.append(
            f"**Coverage**: {n_mon} of {len(cov)} modules monitored\n\n"
            + _md_table(["module", "type", "status", "dim", "reduction", "chain / reason"], rows)
        )
    chains = header.get("chains") or []
    if chains:
        lines = []
        for c in chains:
            if isinstance(c, dict):
                lines.append(f"- {c.get('name')}: " + " → ".join(map(str, c.get("layers", []))))
            else:
                lines.append("- " + " → ".join(map(str, c)))
        parts.append("**Chains** (the DPI is checked along these)\n\n" + "\n".join(lines))
    return "\n\n".join(parts)


def _warnings_markdown(record: Record) -> str:
    rows = [[w.severity.value, w.code.value, w.layer, w.estimator, w.message] for w in record.warnings]
    errs = [[e.layer, e.estimator, e.stage, e.error] for e in record.errors]
    parts = []
    if rows:
        parts.append(
            f"**{len(rows)} warning(s)**\n\n"
            + _md_table(["severity", "code", "layer", "estimator", "message"], rows)
        )
    if errs:
        parts.append(
            f"**{len(errs)} error(s)**\n\n" + _md_table(["layer", "estimator", "stage", "error"], errs)
        )
    return "\n\n".join(parts)


def _phases_markdown(decisions: Iterable[PhaseDecision]) -> str:
    """The detected and candidate phases among the latest decisions of every series."""
    rows = [
        [
            d.layer,
            d.estimator,
            d.phase,
            d.status.value,
            d.start_step,
            "ongoing" if d.end_step is None else d.end_step,
            d.slope_bits_per_decade,
            d.p_adjusted,
        ]
        for d in decisions
        if d.shown
    ]
    if not rows:
        return ""
    return (
        "**Phases** (detected = passed the last decisions in a row; candidate = the latest only)\n\n"
        + _md_table(
            ["layer", "estimator", "phase", "status", "start step", "end step", "bits/decade",
             "p (adjusted)"],
            rows,
        )
    )


def _significance(v: Any) -> str:
    return {True: "yes", False: "no", None: "not assessed"}[v.significant]


def _dpi_markdown(record: Record) -> str:
    checks = record.checks
    if checks is None:
        return ""
    rows = [
        [
            v.chain,
            v.estimator,
            v.quantity.label,
            f"{v.upstream} → {v.downstream}",
            v.size_bits,
            _significance(v),
        ]
        for v in checks.dpi_violations
    ]
    bounds = [
        [v.layer, v.estimator, v.bound, v.size_bits, "bug" if v.is_bug else "estimator inconsistency"]
        for v in checks.bound_violations
    ]
    parts = []
    if rows:
        parts.append(
            "**DPI violations**\n\n"
            + _md_table(["chain", "estimator", "quantity", "layers", "excess (bits)", "significant"], rows)
        )
    if bounds:
        parts.append(
            "**Within-layer bound violations**\n\n"
            + _md_table(["layer", "estimator", "bound", "excess (bits)", "kind"], bounds)
        )
    return "\n\n".join(parts)
