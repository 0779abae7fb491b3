"""Weights & Biases sink: scalars against our own step key, the information plane as an image and as
a table + scatter chart, warnings and phases in the run summary. Reads Records only.

Keys (the same scheme as the TensorBoard sink, :func:`ibhooks.plotting.metric_items`):

* ``ib/<layer>/I_XT``, ``ib/<layer>/I_TY`` (``ib/<estimator>/<layer>/...`` with several
  estimators), ``..._lo`` / ``..._hi`` for intervals, ``ib/H_Y``, ``ib/seconds``;
* ``ib/step``: the training step of the measurement. ``define_metric("ib/*", step_metric="ib/step")``
  plots every ``ib/`` key against it, so W&B's own ``_step`` (which other loggers advance) never has
  to match ours and nothing is dropped (``log(step=...)`` is never used);
* from Lightning (a ``WandbLogger`` as ``run``, or :class:`~ibhooks.integrations.lightning.IBCallback`):
  the step metric is the logger's own ``trainer/global_step``, written into every row (``ib/step`` too),
  so our keys share the x axis of the trainer's metrics (``train_loss`` ...);
* ``ib/plane`` and ``ib/curves`` (images) at every ``figure_every``-th measurement and at ``close()``
  (at the last step, if not drawn there yet); ``ib/dpi`` (image) at ``close()``; ``ib/<estimator>/...``
  with several estimators; ``ib/coverage`` (table, logged once);
* at ``close()``, once: ``ib/plane_interactive`` (``wandb.Html``: the information plane with one
  trajectory per layer, colour = training step, layer / step / values / intervals on hover,
  self-contained) and ``ib/plane_table`` (a ``wandb.Table`` of every point: step, epoch, layer,
  estimator, values and intervals) - logged once, not re-logged at every measurement;
* every ``I_XT`` / ``I_TY`` key is defined with ``summary="max"`` (the peak, for sweeps);
* run summary: ``ib/final/<layer>/...`` (``ib/final/<estimator>/<layer>/...`` with several
  estimators): final and peak values, ``fitting_found`` / ``compression_found`` (0/1) and
  ``compression_bits`` (see :func:`ibhooks.sinks.sweep.layer_fields`); ``ib/warnings`` (latest
  messages), ``ib/n_warnings``, ``ib/phases`` (text), ``ib/dpi_violations`` (and how many of them are
  ``ib/dpi_significant`` / ``ib/dpi_not_assessed``); run config: ``ibhooks`` (settings, chains, versions);
* artifact ``ibhooks-<run>`` (type ``ibhooks-run``) at ``close()``: the JSONL run log (``run_log``
  argument or the header's ``"run_log"``) and the HTML report rendered from it, so the report can be
  rebuilt from W&B alone.

The sink keeps no Records: figures and the scatter table come from a
:class:`~ibhooks.sinks.drawing.FigureHistory`.

Usage::

    run = wandb.init(project="my-project")
    monitor = IBMonitor(model, probe=..., sinks=[WandbSink(run)])
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional, Sequence

from ibhooks._optional import available, require
from ibhooks.schema import Record
from ibhooks.sinks.base import Sink
from ibhooks.sinks.drawing import FigureHistory, draw_figures, figure_tag
from ibhooks.sinks.sweep import layer_fields

__all__ = ["WandbSink", "LIGHTNING_STEP"]

#: The step metric of Lightning's ``WandbLogger`` (``define_metric("*", step_metric=...)``).
LIGHTNING_STEP = "trainer/global_step"

TABLE_COLUMNS = [
    "step",
    "epoch",
    "layer",
    "estimator",
    "I_XT",
    "I_TY",
    "I_XT_lo",
    "I_XT_hi",
    "I_TY_lo",
    "I_TY_hi",
]


class WandbSink(Sink):
    """Write Records to a W&B run.

    Args:
        run: Your ``wandb.Run`` (or a Lightning ``WandbLogger``, whose ``.experiment`` is used and whose
            ``trainer/global_step`` becomes the step metric); it is not finished by :meth:`close`.
            Without one, the active run (``wandb.run``) is used, else a new run is started with
            ``project``/``mode``/``dir``/``name``/``config`` and finished by :meth:`close`.
        project, mode, dir, name, config: Passed to ``wandb.init`` when this sink starts the run
            (``mode="offline"`` needs no network; ``WANDB_MODE``/``WANDB_DIR`` work too).
        step_key: The step metric our keys are plotted against (written into every row with the
            Record's step): default ``"<prefix>/step"``, or ``"trainer/global_step"`` for a ``WandbLogger``.
        prefix: First path component of every key.
        figures: Log the plane and curve images (needs matplotlib), the interactive plane and the table.
        figure_every: Log the plane and the curves at every ``figure_every``-th measurement, and always
            at :meth:`close`.
        dpi: Resolution of logged images.
        run_log: The JSONL run log to attach as an artifact at close (default: the header's
            ``"run_log"``); the HTML report is rendered from it and attached too.
        report: Attach the HTML report with the run log.

    Raises:
        ImportError: wandb is not installed.
        TypeError: ``run`` is not a ``wandb.Run``.
    """

    name = "wandb"

    def __init__(
        self,
        run: Any = None,
        *,
        project: Optional[str] = None,
        mode: Optional[str] = None,
        dir: Optional[str] = None,
        name: Optional[str] = None,
        config: Optional[Dict[str, Any]] = None,
        step_key: Optional[str] = None,
        prefix: str = "ib",
        figures: bool = True,
        figure_every: int = 1,
        dpi: int = 150,
        run_log: Optional[str] = None,
        report: bool = True,
    ) -> None:
        wandb = require("wandb", purpose="the W&B sink")
        if not isinstance(figure_every, int) or figure_every < 1:
            raise ValueError(f"figure_every must be an integer >= 1, got {figure_every!r}")
        if (
            run is not None
            and not isinstance(run, wandb.Run)
            and isinstance(getattr(run, "experiment", None), wandb.Run)
        ):
            run = run.experiment  # Lightning WandbLogger: its metrics are on the trainer's step
            step_key = step_key or LIGHTNING_STEP
        if run is None:
            if wandb.run is not None:
                run, self._own_run = wandb.run, False
            else:
                kwargs = {
                    k: v
                    for k, v in dict(project=project, mode=mode, dir=dir, name=name, config=config).items()
                    if v is not None
                }
                run, self._own_run = wandb.init(**kwargs), True
        else:
            if not isinstance(run, wandb.Run):
                raise TypeError(f"run must be a wandb.Run (from wandb.init), got {type(run).__name__}")
            self._own_run = False
        self.run = run
        self._wandb = wandb
        self.prefix = prefix
        self.step_key = step_key or f"{prefix}/step"
        if figures and not available("matplotlib"):
            warnings.warn(
                "ibhooks: matplotlib is not installed, so the W&B sink logs no plane image; "
                "install it with: pip install 'ibhooks[plot]'",
                RuntimeWarning,
                stacklevel=2,
            )
        self.figures = figures
        self.images = figures and available("matplotlib")
        self.figure_every = figure_every
        self.dpi = dpi
        self.header: Dict[str, Any] = {}
        self.history = FigureHistory()
        self._drawn_at = 0  # measurements in the history when figures were last logged
        self._with_estimator: Optional[bool] = None
        self.run_log = run_log
        self.report = report
        self._metrics_defined = False
        self._peak_keys: set = set()
        self._coverage_logged = False
        self._closed = False

    # -- Sink API -------------------------------------------------------------------------------

    def start(self, header: Dict[str, Any]) -> None:
        self.header = dict(header)
        self._define_metrics()
        self._config()

    def update_header(self, key: str, value: Any) -> None:
        self.header[key] = value
        if key == "coverage":
            self._coverage_logged = False
        if key in ("config", "chains", "versions"):
            self._config()

    def write(self, record: Record) -> None:
        from ibhooks import plotting

        self._define_metrics()
        self.history.append(record)
        if self._with_estimator is None:
            self._with_estimator = plotting.multi_estimator([record], self.header)
        data: Dict[str, Any] = self._steps(int(record.step))
        data.update(plotting.metric_items(record, with_estimator=self._with_estimator, prefix=self.prefix))
        self._define_peaks(data)
        if not self._coverage_logged and self.header.get("coverage"):
            data[f"{self.prefix}/coverage"] = self._coverage_table()
            self._coverage_logged = True
        if self.figures and (len(self.history) - 1) % self.figure_every == 0:
            data.update(self._figure_items(("plane", "curves")))
        self.run.log(data)
        self._summary(record)

    def log_text(self, tag: str, text: str, step: Optional[int] = None) -> None:
        notes = self.run.summary.get(f"{self.prefix}/notes") or []
        self.run.summary[f"{self.prefix}/notes"] = list(notes)[-49:] + [f"[{tag}] step {step}: {text}"]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.history.estimators:
                data: Dict[str, Any] = {}
                if self.figures:
                    names = ("dpi",) if self._drawn_at == len(self.history) else ("plane", "curves", "dpi")
                    data.update(self._figure_items(names))
                    data.update(self._plane_items())
                if data:
                    self.run.log({**self._steps(int(self.history.last_step or 0)), **data})
                self.run.summary.update(layer_fields(
                    self.history, {}, with_estimator=bool(self._with_estimator), prefix=f"{self.prefix}/final"))
            self._artifact()
        except Exception as exc:  # noqa: BLE001 - e.g. the user finished the run before the monitor
            warnings.warn(
                f"ibhooks: could not log the final figures to W&B: {exc!r}", RuntimeWarning, stacklevel=2
            )
        if self._own_run:
            self.run.finish()

    # -- pieces ---------------------------------------------------------------------------------

    def _define_metrics(self) -> None:
        if self._metrics_defined:
            return
        self.run.define_metric(self.step_key)
        self.run.define_metric(f"{self.prefix}/*", step_metric=self.step_key)
        self._metrics_defined = True

    def _steps(self, step: int) -> Dict[str, Any]:
        """The step of a row: under the step metric and, if that is another key, as ``<prefix>/step``."""
        return {self.step_key: step, f"{self.prefix}/step": step}

    def _define_peaks(self, data: Dict[str, Any]) -> None:
        """``summary="max"`` for every I_XT / I_TY key not defined yet (interval ends excluded)."""
        for key in data:
            if key not in self._peak_keys and key.endswith(("/I_XT", "/I_TY")):
                self.run.define_metric(key, step_metric=self.step_key, summary="max")
                self._peak_keys.add(key)

    def _plane_items(self) -> Dict[str, Any]:
        """The interactive plane (``wandb.Html``) and the table of every plane point, once, at close."""
        from ibhooks.report.interactive import interactive_plane

        out: Dict[str, Any] = {}
        rows = [row for est in self.history.estimators for row in self.history.plane_rows(est)]
        if not rows:
            return out
        out[f"{self.prefix}/plane_table"] = self._wandb.Table(columns=TABLE_COLUMNS, data=rows)
        html = interactive_plane(self.history.records(), header=self.header, title="Information plane")
        out[f"{self.prefix}/plane_interactive"] = self._wandb.Html(
            "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>" + html + "</body></html>")
        return out

    def _artifact(self) -> None:
        """The JSONL run log and the HTML report built from it, as one artifact."""
        from pathlib import Path

        path = self.run_log or self.header.get("run_log")
        if not path or not Path(path).is_file():
            return
        path = Path(path)
        art = self._wandb.Artifact(f"ibhooks-{_artifact_name(self.run.id or path.stem)}", type="ibhooks-run",
                                   metadata={"run_name": self.header.get("run_name"), "file": path.name})
        art.add_file(str(path), name=path.name)
        if self.report:
            from ibhooks import report
            from ibhooks.runlog import load_run

            out = Path(self.run.dir) / f"{path.stem}.html"
            out.write_text(report.render_report(load_run(path)), encoding="utf-8")
            art.add_file(str(out), name=out.name)
        self.run.log_artifact(art)

    def _config(self) -> None:
        cfg = {k: self.header[k] for k in ("config", "chains", "versions", "run_name") if k in self.header}
        if cfg:
            self.run.config.update({"ibhooks": cfg}, allow_val_change=True)

    def _coverage_table(self) -> Any:
        cols = ["name", "type", "status", "reason", "shape", "dim", "reduction", "chain"]
        rows = [
            [_plain(c.get(k)) for k in cols] for c in self.header.get("coverage") or [] if isinstance(c, dict)
        ]
        return self._wandb.Table(columns=cols, data=rows)

    def _key(self, est: str, leaf: str) -> str:
        return figure_tag(leaf, est, with_estimator=bool(self._with_estimator), prefix=self.prefix)

    def _figure_items(self, names: Sequence[str]) -> Dict[str, Any]:
        """Images of ``names`` (when matplotlib is there), from the compact history."""
        from ibhooks import plotting

        self._drawn_at = len(self.history)
        out: Dict[str, Any] = {}
        if self.images:
            caption = f"step {self.history.last_step}"
            for name, est, fig in draw_figures(self.history, self.header, names):
                arr = plotting.figure_to_array(fig, dpi=self.dpi)
                plotting.close_figure(fig)
                out[self._key(est, name)] = self._wandb.Image(arr, caption=caption)
        return out

    def _summary(self, record: Record) -> None:
        dpi = record.checks.dpi_violations if record.checks is not None else ()
        summary: Dict[str, Any] = {
            f"{self.prefix}/warnings": [w.message for w in record.warnings],
            f"{self.prefix}/n_warnings": len(record.warnings),
            f"{self.prefix}/dpi_violations": len(dpi),
            f"{self.prefix}/dpi_significant": sum(1 for v in dpi if v.significant is True),
            f"{self.prefix}/dpi_not_assessed": sum(1 for v in dpi if v.significant is None),
        }
        phases: Dict[str, List[str]] = {}
        last = self.history.last_step
        for d in self.history.phases.values():
            if not d.shown or d.start_step is None:
                continue
            key = f"{d.layer} ({d.estimator})" if self._with_estimator else d.layer
            end = f" to {d.end_step:g}" if d.end_step is not None else f" (ongoing at step {last})"
            phases.setdefault(key, []).append(f"{d.phase} {d.status.value} from step {d.start_step:g}{end}")
        if phases or self.history.phases:
            summary[f"{self.prefix}/phases"] = {k: ", ".join(v) for k, v in phases.items()}
        self.run.summary.update(summary)  # one summary record, not one per key


def _artifact_name(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "run"


def _plain(x: Any) -> Any:
    """A table cell: lists (shapes) as text, everything else as is."""
    if isinstance(x, (list, tuple)):
        return "x".join(str(v) for v in x)
    return x
