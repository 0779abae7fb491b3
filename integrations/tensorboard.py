"""TensorBoard sink: scalars with one sub-run per layer (distinct colours and a legend in every chart),
a custom-scalars layout, the information plane and log-x curves as images, warnings / phases / DPI checks
as text, and hparams at close for sweeps. Reads Records only.

Layout of a run folder (``layer_runs=True``, the default)::

    <run>/events...                      ib/H_Y, ib/seconds, images, text, hparams, final/<label>/...
    <run>/T1 fc1 (Linear, tanh, 10)/     ib/I_XT, ib/I_TY, ib/I_XT_lo, ib/I_XT_hi, ... of that layer
    <run>/T2 fc2 (Linear, tanh, 8)/      ...

TensorBoard colours by run, so ``ib/I_XT`` is one chart (Time Series and Scalars tabs) with one
coloured, labelled line per layer; the ``T<i>`` prefix keeps the layers in input -> output order. With
several estimators the tags are ``ib/<estimator>/I_XT``. ``layer_runs=False`` writes the flat keys of
:func:`ibhooks.plotting.metric_items` (``ib/<layer>/I_XT``) into the run itself instead.

* images ``ib/plane`` and ``ib/curves`` (``ib/<estimator>/...`` with several estimators) at every
  ``figure_every``-th measurement and at ``close()`` (at the last step, if not drawn there yet), and
  ``ib/dpi`` at ``close()``;
* text ``ib/config`` (settings + coverage), ``ib/warnings``, ``ib/phases``, ``ib/dpi`` (each written
  when it changes);
* custom scalars (category ``ibhooks``): one Multiline chart per quantity, I(X;T) first, and Margin
  charts (value with its interval) where intervals exist;
* hparams at ``close()``: the user's ``hparams`` and the estimator settings -> per layer the final and
  peak I(X;T) and I(T;Y), fitting / compression found (0/1) and the compression in bits
  (``final/<label>/...``, see :func:`ibhooks.sinks.sweep.layer_fields`).

A sink that opens its own writer never mixes two runs: when ``log_dir`` already holds event files (a
reused run name), this run goes to a fresh subfolder ``log_dir/run-<date>-<time>``.

Usage::

    monitor = IBMonitor(model, probe=..., sinks=[TensorBoardSink("runs/exp1", hparams={"lr": 1e-3})])
"""

from __future__ import annotations

import datetime as _dt
import re
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ibhooks._optional import available, require
from ibhooks.integrations.tensorboard_text import (
    config_markdown,
    dpi_markdown,
    phases_markdown,
    warnings_markdown,
)
from ibhooks.schema import QUANTITIES, Record
from ibhooks.sinks.base import Sink
from ibhooks.sinks.drawing import FigureHistory, draw_figures, figure_tag
from ibhooks.sinks.layer_labels import layer_labels, path_safe
from ibhooks.sinks.sweep import estimator_settings, layer_fields

__all__ = ["TensorBoardSink", "fresh_log_dir"]


def fresh_log_dir(log_dir: str) -> str:
    """``log_dir``, or a new ``log_dir/run-<date>-<time>[-k]`` when ``log_dir`` already holds event files."""
    base = Path(log_dir)
    if not base.is_dir() or not any(base.rglob("events.out.tfevents.*")):
        return str(base)
    stamp = _dt.datetime.now().strftime("run-%Y%m%d-%H%M%S")
    cand, k = base / stamp, 1
    while cand.exists():
        k += 1
        cand = base / f"{stamp}-{k}"
    return str(cand)


class TensorBoardSink(Sink):
    """Write Records to TensorBoard.

    Args:
        log_dir: Directory for a new ``SummaryWriter`` (ignored when ``writer`` is given); a fresh
            subfolder when it already holds a run (see :func:`fresh_log_dir`).
        writer: Your own ``torch.utils.tensorboard.SummaryWriter`` (or a Lightning
            ``TensorBoardLogger``, whose ``.experiment`` is used). It is flushed, not closed, by
            :meth:`close`; the layer sub-runs go in its folder.
        figures: Log the information plane and the curves as images (needs matplotlib; disabled with a
            warning when it is missing).
        figure_every: Draw the plane and the curves at every ``figure_every``-th measurement (1 = every
            one), and always at :meth:`close`.
        prefix: First path component of every tag.
        dpi: Resolution of logged figures.
        layer_runs: One sub-run per layer (coloured lines with a legend); ``False`` for flat keys.
        layer_names: Your names for layers (``{"net.3": "hidden 2"}``) in the labels.
        hparams: Your hyper-parameters (activation, lr, ...) for the hparams dashboard, written at close
            with the estimator settings.

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
        dpi: int = 150,
        layer_runs: bool = True,
        layer_names: Optional[Mapping[str, str]] = None,
        hparams: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if not isinstance(figure_every, int) or figure_every < 1:
            raise ValueError(f"figure_every must be an integer >= 1, got {figure_every!r}")
        if writer is not None and hasattr(writer, "experiment") and not hasattr(writer, "add_scalar"):
            writer = writer.experiment  # Lightning TensorBoardLogger
        if writer is None:
            tb = require("torch.utils.tensorboard", purpose="the TensorBoard sink")
            writer = tb.SummaryWriter(log_dir=fresh_log_dir(log_dir or "runs/ibhooks"))
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
        self.layer_runs = bool(layer_runs) and self.log_dir is not None
        self.layer_names = dict(layer_names or {})
        self.hparams = dict(hparams or {})
        self.header: Dict[str, Any] = {}
        self.history = FigureHistory()
        self.labels: Dict[str, str] = {}
        self._layer_writers: Dict[str, Any] = {}
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
        self._text(f"{self.prefix}/config", config_markdown(self.header), int(header.get("step") or 0),
                   force=True)

    def update_header(self, key: str, value: Any) -> None:
        self.header[key] = value
        if key in ("coverage", "config", "chains"):
            self._text(f"{self.prefix}/config", config_markdown(self.header), self._last_step())

    def write(self, record: Record) -> None:
        from ibhooks import plotting

        self.history.append(record)
        if self._with_estimator is None:
            self._with_estimator = plotting.multi_estimator([record], self.header)
        self._label(record.layers)
        if not self._layout_written and record.layers:
            self.writer.add_custom_scalars(self.layout(record))
            self._layout_written = True
        step = int(record.step)
        if self.layer_runs:
            self._layer_scalars(record, step)
        else:
            for key, value in plotting.metric_items(
                record, with_estimator=self._with_estimator, prefix=self.prefix
            ).items():
                self.writer.add_scalar(key, value, global_step=step)
        self._text(f"{self.prefix}/warnings", warnings_markdown(record), step)
        self._text(f"{self.prefix}/phases", phases_markdown(self.history.phases.values()), step)
        self._text(f"{self.prefix}/dpi", dpi_markdown(record), step)
        if self.figures and (len(self.history) - 1) % self.figure_every == 0:
            self._figures(("plane", "curves"))
        self.writer.flush()
        for w in self._layer_writers.values():
            w.flush()

    def log_text(self, tag: str, text: str, step: Optional[int] = None) -> None:
        self.writer.add_text(tag, text, global_step=step)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.figures and self.history.estimators:
                self._figures(("dpi",) if self._drawn_at == len(self.history) else ("plane", "curves", "dpi"))
            if len(self.history):
                self._write_hparams()
        finally:
            for w in self._layer_writers.values():
                w.close()
            if self._own_writer:
                self.writer.close()
            else:
                self.writer.flush()

    # -- pieces ---------------------------------------------------------------------------------

    def layout(self, record: Record) -> Dict[str, Dict[str, List[Any]]]:
        """The custom-scalars layout for the layers and estimators of ``record``, I(X;T) first:
        ``{"ibhooks": {"<quantity> per layer [bits]": ["Multiline", [tag regexes]], ...},
        "ibhooks intervals": {"<quantity> with interval": ["Margin", [value, lo, hi]], ...}}``.
        With layer sub-runs one tag covers every layer (a line per run)."""
        from ibhooks import plotting

        with_est = bool(self._with_estimator)
        lines: Dict[str, List[Any]] = {}
        margins: Dict[str, List[Any]] = {}
        for est in record.estimators:
            suffix = f" ({est})" if with_est else ""
            for quantity in QUANTITIES:
                q, label = quantity.value, quantity.label
                present = [(layer, res.get(quantity)) for layer, per_est in record.layers.items()
                           if (res := per_est.get(est)) is not None and res.get(quantity) is not None]
                if not present:
                    continue
                if self.layer_runs:
                    base = self._tag(est, q)
                    lines[f"{label} per layer{suffix} [bits]"] = ["Multiline", [f"^{re.escape(base)}$"]]
                    if any(e.ci is not None for _, e in present):
                        margins[f"{label} with interval{suffix} [bits]"] = ["Margin",
                                                                             [base, f"{base}_lo", f"{base}_hi"]]
                    continue
                tags = []
                for layer, e in present:
                    base = plotting.metric_prefix(layer, est, with_estimator=with_est, prefix=self.prefix)
                    tags.append(f"^{re.escape(base + '/' + q)}$")
                    if e.ci is not None:
                        margins[f"{self.labels.get(layer, layer)} {label}{suffix}"] = [
                            "Margin", [f"{base}/{q}", f"{base}/{q}_lo", f"{base}/{q}_hi"]]
                lines[f"{label} per layer{suffix} [bits]"] = ["Multiline", tags]
        layout = {"ibhooks": lines}
        if margins:
            layout["ibhooks intervals"] = margins
        return layout

    def _tag(self, est: str, leaf: str) -> str:
        return f"{self.prefix}/{est}/{leaf}" if self._with_estimator else f"{self.prefix}/{leaf}"

    def _label(self, layers: Mapping[str, Any]) -> None:
        """Give labels to layers not seen before (``T<i>`` continues the network order)."""
        new = [layer for layer in layers if layer not in self.labels]
        if new:
            order = list(self.labels) + new
            self.labels = layer_labels(order, self.header, self.layer_names)

    def _layer_writer(self, layer: str) -> Any:
        w = self._layer_writers.get(layer)
        if w is None:
            tb = require("torch.utils.tensorboard", purpose="the TensorBoard sink's layer runs")
            w = tb.SummaryWriter(log_dir=str(Path(self.log_dir) / path_safe(self.labels[layer])))
            self._layer_writers[layer] = w
        return w

    def _layer_scalars(self, record: Record, step: int) -> None:
        for layer, per_est in record.layers.items():
            for est, res in per_est.items():
                for q in QUANTITIES:
                    e = res.get(q)
                    if e is None or e.value is None or not _finite(e.value):
                        continue
                    w, tag = self._layer_writer(layer), self._tag(est, q.value)
                    w.add_scalar(tag, float(e.value), global_step=step)
                    if e.ci is not None:
                        w.add_scalar(f"{tag}_lo", float(e.ci[0]), global_step=step)
                        w.add_scalar(f"{tag}_hi", float(e.ci[1]), global_step=step)
        if record.h_y is not None:
            self.writer.add_scalar(f"{self.prefix}/H_Y", float(record.h_y), global_step=step)
        self.writer.add_scalar(f"{self.prefix}/seconds", float(record.seconds), global_step=step)

    def _write_hparams(self) -> None:
        """hparams (user settings + estimator settings) -> final per-layer fields, in this run."""
        try:
            from torch.utils.tensorboard.summary import hparams
        except ImportError:  # a duck-typed writer without tensorboard installed
            return
        file_writer = getattr(self.writer, "_get_file_writer", None)
        if not callable(file_writer):
            return
        metrics = layer_fields(self.history, self.labels, with_estimator=bool(self._with_estimator))
        settings = estimator_settings(self.header, self.hparams)
        if not metrics:
            return
        step = self._last_step()
        for summary in hparams(settings, metrics):
            file_writer().add_summary(summary, step)
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, global_step=step)

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


def _finite(x: float) -> bool:
    return x == x and x not in (float("inf"), float("-inf"))
