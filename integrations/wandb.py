"""Weights & Biases sink: scalars against our own step key, the information plane as an image and as
a table + scatter chart, warnings and phases in the run summary. Reads Records only.

Keys (the same scheme as the TensorBoard sink, :func:`ibhooks.plotting.metric_items`):

* ``ib/<layer>/I_XT``, ``ib/<layer>/I_TY`` (``ib/<estimator>/<layer>/...`` with several
  estimators), ``..._lo`` / ``..._hi`` for intervals, ``ib/H_Y``, ``ib/seconds``;
* ``ib/step``: the training step of the measurement. ``define_metric("ib/*", step_metric="ib/step")``
  plots every ``ib/`` key against it, so W&B's own ``_step`` (which other loggers advance) never has
  to match ours and nothing is dropped (``log(step=...)`` is never used);
* ``ib/plane`` (image), ``ib/plane_scatter`` (a ``wandb.Table`` of every point so far, with
  ``wandb.plot.scatter``; ``ib/<estimator>/...`` with several estimators), ``ib/coverage``
  (table, logged once), and at ``close()`` ``ib/curves`` and ``ib/dpi`` images;
* run summary: ``ib/warnings`` (latest messages), ``ib/n_warnings``, ``ib/phases``,
  ``ib/dpi_violations``; run config: ``ibhooks`` (settings, chains, versions).

Usage::

    run = wandb.init(project="my-project")
    monitor = IBMonitor(model, probe=..., sinks=[WandbSink(run)])
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, List, Optional

from ibhooks._optional import available, require
from ibhooks.estimate import Record
from ibhooks.sinks.base import Sink

__all__ = ["WandbSink"]

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
        run: Your ``wandb.Run`` (or a Lightning ``WandbLogger``, whose ``.experiment`` is used); it is
            not finished by :meth:`close`. Without one, the active run (``wandb.run``) is used, else a
            new run is started with ``project``/``mode``/``dir``/``name``/``config`` and finished by
            :meth:`close`.
        project, mode, dir, name, config: Passed to ``wandb.init`` when this sink starts the run
            (``mode="offline"`` needs no network; ``WANDB_MODE``/``WANDB_DIR`` work too).
        step_key: The step metric our keys are plotted against.
        prefix: First path component of every key.
        figures: Log the plane image and scatter table (needs matplotlib for the image).
        figure_every: Draw them at every ``figure_every``-th measurement.
        dpi: Resolution of logged images.

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
        step_key: str = "ib/step",
        prefix: str = "ib",
        figures: bool = True,
        figure_every: int = 1,
        dpi: int = 100,
    ) -> None:
        wandb = require("wandb", purpose="the W&B sink")
        if not isinstance(figure_every, int) or figure_every < 1:
            raise ValueError(f"figure_every must be an integer >= 1, got {figure_every!r}")
        if (
            run is not None
            and not isinstance(run, wandb.Run)
            and isinstance(getattr(run, "experiment", None), wandb.Run)
        ):
            run = run.experiment  # Lightning WandbLogger
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
        self.step_key = step_key
        self.prefix = prefix
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
        self.records: List[Record] = []
        self._rows: Dict[str, List[List[Any]]] = {}
        self._with_estimator: Optional[bool] = None
        self._metrics_defined = False
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
        self.records.append(record)
        if self._with_estimator is None:
            self._with_estimator = plotting.multi_estimator([record], self.header)
        data: Dict[str, Any] = {self.step_key: int(record.step)}
        data.update(plotting.metric_items(record, with_estimator=self._with_estimator, prefix=self.prefix))
        for est in record.estimators:
            rows = self._rows.setdefault(est, [])
            for layer, per_est in record.layers.items():
                res = per_est.get(est)
                if res is None or res.i_xt is None or res.i_ty is None:
                    continue
                cx, cy = res.i_xt.ci or (None, None), res.i_ty.ci or (None, None)
                rows.append(
                    [
                        int(record.step),
                        record.epoch,
                        layer,
                        est,
                        res.i_xt.value,
                        res.i_ty.value,
                        cx[0],
                        cx[1],
                        cy[0],
                        cy[1],
                    ]
                )
        if not self._coverage_logged and self.header.get("coverage"):
            data[f"{self.prefix}/coverage"] = self._coverage_table()
            self._coverage_logged = True
        if self.figures and (len(self.records) - 1) % self.figure_every == 0:
            data.update(self._plane_items())
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
            if self.images and self.records and any(r.layers for r in self.records):
                self._final_figures()
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
        return f"{self.prefix}/{est}/{leaf}" if self._with_estimator else f"{self.prefix}/{leaf}"

    def _plane_items(self) -> Dict[str, Any]:
        from ibhooks import plotting

        out: Dict[str, Any] = {}
        for est, rows in self._rows.items():
            if not rows:
                continue
            table = self._wandb.Table(columns=TABLE_COLUMNS, data=[list(r) for r in rows])
            title = "Information plane" + (f" ({est})" if self._with_estimator else "")
            out[self._key(est, "plane_scatter")] = self._wandb.plot.scatter(
                table, "I_XT", "I_TY", title=title
            )
            if self.images:
                fig = plotting.plot_information_plane(self.records, estimator=est, header=self.header)
                arr = plotting.figure_to_array(fig, dpi=self.dpi)
                plotting.close_figure(fig)
                out[self._key(est, "plane")] = self._wandb.Image(arr, caption=f"step {self.records[-1].step}")
        return out

    def _final_figures(self) -> None:
        from ibhooks import plotting

        data: Dict[str, Any] = {self.step_key: int(self.records[-1].step)}
        for name, fig in plotting.make_figures(self.records, header=self.header).items():
            if not name.startswith("information_plane"):
                arr = plotting.figure_to_array(fig, dpi=self.dpi)
                data[f"{self.prefix}/{name.replace('layer_curves', 'curves')}"] = self._wandb.Image(arr)
            plotting.close_figure(fig)
        if len(data) > 1:
            self.run.log(data)

    def _summary(self, record: Record) -> None:
        from ibhooks import plotting

        msgs = [str(w.get("message", w)) if isinstance(w, dict) else str(w) for w in record.warnings or []]
        summary: Dict[str, Any] = {
            f"{self.prefix}/warnings": msgs,
            f"{self.prefix}/n_warnings": len(msgs),
            f"{self.prefix}/dpi_violations": len(plotting.dpi_violations(record)),
        }
        phases: Dict[str, str] = {}
        for layer in record.layers:
            for est in record.layers[layer]:
                spans = plotting.phase_spans([record], layer, est)
                if spans:
                    key = f"{layer} ({est})" if self._with_estimator else layer
                    phases[key] = ", ".join(
                        f"{s.phase} {s.status} from step {s.start:g}"
                        + (" (ongoing)" if s.ongoing else f" to {s.end:g}")
                        for s in spans
                    )
        if phases or record.phases:
            summary[f"{self.prefix}/phases"] = phases
        self.run.summary.update(summary)  # one summary record, not one per key


def _plain(x: Any) -> Any:
    """A table cell: lists (shapes) as text, everything else as is."""
    if isinstance(x, (list, tuple)):
        return "x".join(str(v) for v in x)
    return x
