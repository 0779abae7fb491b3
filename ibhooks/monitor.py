"""IBMonitor: the facade a user sees. It builds the stages and moves data one way through them:

capture (hooks, probe runner | passive reservoir) -> Snapshot -> estimation -> interpretation
-> Record -> run log and sinks        (after the snapshot: on the training thread or a worker)

monitor = IBMonitor(model, probe=(x_probe, y_probe), schedule=log_spaced(100, max_steps))
for x, y in loader:
    ...; optimizer.step()
    monitor.step()            # returns the Record when it measured, else None
monitor.close()
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn

from .analyses import AnalysisContext, build_analyses, describe_analyses, run_on_snapshot
from .analyses.registry import AnalysisSpec
from .capture import Capture, PassiveReservoir, Probe, Snapshot, model_device, unwrap_model
from .capture.probe import BatchToXY
from .chains import Chain
from .fingerprint import check_resume, fingerprint
from .monitor_results import MonitorResults
from .monitor_state import STATE_VERSION  # noqa: F401
from .config import FLAT_KEYWORDS, CaptureConfig, ExecutionConfig, PassiveConfig, RunLogConfig, build_configs
from .estimators.registry import EstimatorSpec
from .layers import LayerSpec, activation_of
from .capture.budget import PassiveBudget, snapshots_alive
from .capture.passive import Labels, PassiveWindow
from .assembly import build_sinks, lossless_chains, resolve_chains, resolve_layers
from .capture.taker import SnapshotTaker, auto_probe_chunk, check_probe_budget, fit_whole_to_budget
from .pipeline.estimation import build_estimators
from .pipeline import (
    BackgroundRunner,
    Console,
    Interpreter,
    MeasurementPipeline,
    SeriesHistory,
    SinkSet,
    SyncRunner,
)
from .run_info import build_header, coverage_rows, render_coverage_table, run_config
from .schedule import Schedule, as_schedule
from .schema import Record
from .sinks.base import Sink


def _is_rank_zero() -> bool:
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class IBMonitor(MonitorResults):
    """Per-layer information-plane measurements of an existing model, with no effect on training.

    Args:
        model: Any ``nn.Module`` (DDP / DataParallel / ``torch.compile`` wrappers are unwrapped).
        layers: ``"auto"``, or names, glob patterns and module types (see :mod:`ibhooks.layers`).
        probe: ``(x, y)`` tensors, an ``x`` tensor, or a DataLoader (its first ``max_samples`` rows are
            taken once). With a probe, measurements run the probe in eval mode (probe mode); without
            one, hooks copy activations of the real training batches (passive mode) and the labels come
            from ``step(y=...)``.
        schedule: A callable ``step -> bool`` (:func:`~ibhooks.every_n`, :func:`~ibhooks.log_spaced`) or an
            int N for every N steps. A schedule that raises is warned about once and counts as "not due".
        estimators: Names, ``(name, params)`` pairs or :class:`~ibhooks.estimators.Estimator` instances.
        chains: ``"auto"`` (from the model structure), ``None``, or chain declarations (lists of layer
            names, input side first; a dict name -> list; :class:`~ibhooks.Chain` objects).
        sinks: Extra sinks: ``"tensorboard"``, ``"wandb"`` or :class:`~ibhooks.sinks.base.Sink` instances.
        measure_initial: In probe mode, take the step-0 snapshot (the initial weights) at construction if
            the schedule has step 0; it is processed like any other measurement.
        batch_to_xy: Splits a probe DataLoader batch into ``(x, y)``.
        probe_forward: ``(model, x) -> output`` if the model is not called as ``model(x)``.
        analyses: Extra per-measurement analyses (names, ``(name, params)`` or instances; see
            :mod:`ibhooks.analyses`), stored in ``record.analyses``.
        capture, passive, run_log, execution: Grouped settings (:class:`~ibhooks.CaptureConfig`,
            :class:`~ibhooks.PassiveConfig`, :class:`~ibhooks.RunLogConfig`,
            :class:`~ibhooks.ExecutionConfig`). Each of their fields may instead be given as a flat
            keyword: ``reduction``, ``selectors``, ``max_samples``, ``probe_batch_size``,
            ``memory_budget_mb``, ``seed`` (capture); ``passive_window``, ``gather_passive``,
            ``passive_min_rows`` (passive);
            ``log_dir``, ``run_name``, ``resume``, ``overwrite``, ``figure_every`` (run log); ``background``,
            ``queue_size``, ``verbose`` (execution).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        layers: LayerSpec = "auto",
        probe: Any = None,
        schedule: Union[Schedule, int, None] = None,
        estimators: Union[EstimatorSpec, Sequence[EstimatorSpec]] = ("auto",),
        chains: Union[str, Sequence[Any], Mapping[str, Sequence[str]], None] = "auto",
        sinks: Sequence[Union[str, Sink]] = (),
        measure_initial: bool = True,
        batch_to_xy: Optional[BatchToXY] = None,
        probe_forward: Optional[Callable[[nn.Module, Any], Any]] = None,
        analyses: Sequence[AnalysisSpec] = (),
        capture: Optional[CaptureConfig] = None,
        passive: Optional[PassiveConfig] = None,
        run_log: Optional[RunLogConfig] = None,
        execution: Optional[ExecutionConfig] = None,
        reduction: Any = None,
        selectors: Optional[Mapping[str, Any]] = None,
        max_samples: Optional[int] = None,
        probe_batch_size: Optional[int] = None,
        memory_budget_mb: Optional[float] = None,
        seed: Optional[int] = None,
        passive_window: Optional[int] = None,
        gather_passive: Optional[bool] = None,
        passive_min_rows: Optional[int] = None,
        log_dir: Union[str, Path, None] = None,
        run_name: Optional[str] = None,
        resume: Optional[bool] = None,
        overwrite: Optional[bool] = None,
        figure_every: Optional[int] = None,
        background: Optional[bool] = None,
        queue_size: Optional[int] = None,
        verbose: Optional[bool] = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"IBMonitor needs an nn.Module, got {type(model).__name__}")
        compiled = getattr(model, "_compiled_call_impl", None) is not None
        if type(model).__name__ == "OptimizedModule" or compiled:
            warnings.warn(
                "IBMonitor was given a model that is already torch.compile'd: hooks added after it has run "
                "are either left out of the compiled graph (passive mode then captures nothing) or make it "
                "recompile. Create the monitor first, then call torch.compile(model).",
                stacklevel=2,
            )
        given = locals()  # the flat keywords a caller actually passed (None: not given)
        flat = {k: given[k] for k in FLAT_KEYWORDS if given.get(k) is not None}
        groups = {"capture": capture, "passive": passive, "run_log": run_log, "execution": execution}
        cfg = build_configs(groups, flat)
        self.capture_config: CaptureConfig = cfg["capture"]
        self.passive_config: PassiveConfig = cfg["passive"]
        self.run_log_config: RunLogConfig = cfg["run_log"]
        self.execution_config: ExecutionConfig = cfg["execution"]
        if not isinstance(measure_initial, bool):
            raise ValueError(f"measure_initial must be True or False, got {measure_initial!r}")

        self.model = unwrap_model(model)
        self.schedule = as_schedule(schedule)
        self.estimators = build_estimators(estimators)
        self._analyses = build_analyses(analyses)
        self.is_writer = _is_rank_zero()
        self.console = Console(self.execution_config.verbose)
        cc = self.capture_config

        self.probe: Optional[Probe] = None
        if probe is not None:
            self.probe = Probe.from_any(probe, max_samples=cc.max_samples, batch_to_xy=batch_to_xy,
                                        seed=cc.seed)
            for estimator in self.estimators.values():  # e.g. kNN's k >= n, refused now, not at each step
                estimator.check_sample_size(self.probe.n)
        self.mode = "probe" if self.probe is not None else "passive"

        selection, flow = resolve_layers(self.model, layers, self.probe, cc, self.console, probe_forward)
        self.layer_names: List[str] = [n for n, _ in selection.monitored]
        self._modules: Dict[str, nn.Module] = dict(selection.monitored)
        self._skipped = selection.skipped
        # estimators that work from pairwise distances take wide layers whole: no pooling, on the chain
        whole = all(e.whole_activations for e in self.estimators.values())
        self._capture = Capture(selection.monitored, reduction=cc.reduction, selectors=cc.selectors,
                                seed=cc.seed, whole=whole)
        self._reservoir = PassiveReservoir(cc.max_samples, seed=cc.seed) if self.mode == "passive" else None
        self._taker = SnapshotTaker(self.model, self._capture, self.probe, self._reservoir, self.console,
                                    probe_batch_size=cc.probe_batch_size, probe_forward=probe_forward)
        alive = snapshots_alive(self.execution_config.background, self.execution_config.queue_size)
        if self.probe is not None:
            self._capture.projection_limit_bytes = int(cc.memory_budget_mb * 2**20)
            self._taker.discover_shapes()
            fit_whole_to_budget(self._taker, self.probe.n, cc.memory_budget_mb, alive)
            check_probe_budget(self._capture, self.probe.n, cc.memory_budget_mb, alive)
            if cc.probe_batch_size is None:
                self._taker.probe_batch_size = auto_probe_chunk(self._capture, self.probe.n,
                                                                model_device(self.model))

        self._chain_candidates = resolve_chains(chains, flow, selection)

        self.step_count = 0
        self._closed = False
        rl = self.run_log_config
        self.run_name = rl.run_name or _default_run_name()
        self.log_dir = Path(rl.log_dir)
        self.log_path = self.log_dir / f"{self.run_name}.jsonl"
        self.history_series = SeriesHistory()
        activations = {n: {"activation": activation_of(m)} for n, m in self._modules.items()}
        self._interpreter = Interpreter(self.chains, activations)
        context = AnalysisContext(self.model, list(self.layer_names), dict(self._modules), self.estimators,
                                  self.probe, self._taker, self._capture, self.chains, self.console,
                                  seed=cc.seed, layer_info=activations)
        for analysis in self._analyses:
            analysis.bind(context)
        sink_list: List[Any] = []
        if self.is_writer:
            if rl.resume:  # never a mixed series: the log must come from this configuration
                check_resume(self.log_path, fingerprint(self._config()), self._config())
            sink_list = build_sinks(sinks, self.log_path, self.log_dir / self.run_name, rl)
        self.sinks = SinkSet(sink_list, self.console)
        from .progress import MeasurementLines

        pipeline = MeasurementPipeline(self.estimators, self.layer_names, self._interpreter, self.sinks,
                                       self.history_series, self.console, describe=MeasurementLines(),
                                       analyses=self._analyses)
        ec = self.execution_config
        self._runner: Union[SyncRunner, BackgroundRunner] = (
            BackgroundRunner(pipeline, self.console, queue_size=ec.queue_size) if ec.background
            else SyncRunner(pipeline))
        self._coverage_sent = self.probe is not None
        self._initial: Optional[Snapshot] = None
        self._passive: Optional[PassiveWindow] = None
        if self.is_writer:
            self.sinks.call("start", self._header())
            self.console.say(self.coverage_table())

        if self.mode == "passive":
            # Passive hooks stay registered (a compiled model traces them once; adding them later would
            # recompile); their body does nothing on steps outside a capture window.
            pc = self.passive_config
            min_rows = pc.min_rows if pc.min_rows is not None else min(cc.max_samples, 1024)
            assert self._reservoir is not None
            self._passive = PassiveWindow(self._capture, self._taker, self._reservoir, window=pc.window,
                                          min_rows=min_rows, due=self._due,
                                          enabled=self.is_writer or pc.gather,
                                          budget=PassiveBudget(int(cc.memory_budget_mb * 2**20), alive),
                                          console=self.console)
            self._capture.attach(compile_safe=True)
            self._passive.arm_for(self.step_count + 1)
        elif measure_initial and not rl.resume and self.is_writer and self._due(0):
            # The initial weights exist only now: take their snapshot (the probe pass); estimating it is
            # left to the first step()/flush() (or the worker), so the constructor itself measures nothing.
            self._initial = self._taker.take(0, None)
            run_on_snapshot(self._analyses, self._initial, self.console)
            if self._runner.background:
                self._submit_initial()

    # ------------------------------------------------------------------------------------------
    # Coverage and configuration
    # ------------------------------------------------------------------------------------------
    @property
    def chains(self) -> List[Chain]:
        """Chains along which the DPI is checked: candidates minus layers whose reduction loses
        information (a declared chain is kept as declared)."""
        return lossless_chains(self._chain_candidates, self._capture)

    @property
    def coverage(self) -> List[Dict[str, Any]]:
        """One row per module of the model: monitored or skipped and why, shapes, reduction, chain."""
        return coverage_rows(self.model, self._modules, self._skipped, self._capture, self.chains,
                             self.estimators)

    def coverage_table(self, all: bool = False) -> str:  # noqa: A002
        """The coverage table: one line per monitored layer (``all=True``: every module)."""
        title = (f"ibhooks: {len(self.layer_names)} layer(s) monitored in {type(self.model).__name__} "
                 f"({self.mode} mode, estimators: {', '.join(self.estimators)})")
        return render_coverage_table(self.coverage, title, all=all)

    def _config(self) -> Dict[str, Any]:
        config = run_config(self.model, self.mode, self.layer_names, self.estimators, self.schedule,
                            self.probe, self.capture_config, self.passive_config, self.run_log_config,
                            self.execution_config)
        config["probe_chunk_rows"] = self._taker.probe_batch_size if self.probe is not None else None
        if self._analyses:
            config["analyses"] = describe_analyses(self._analyses)
        return config

    def _header(self) -> Dict[str, Any]:
        header = build_header(run_name=self.run_name, run_log=self.log_path, step=self.step_count,
                              config=self._config(), coverage=self.coverage, chains=self.chains)
        header["fingerprint"] = fingerprint(header["config"])
        return header

    # ------------------------------------------------------------------------------------------
    # The training-loop API
    # ------------------------------------------------------------------------------------------
    def _submit_initial(self) -> None:
        initial, self._initial = self._initial, None
        if initial is not None:
            self._runner.submit(initial)

    def _due(self, step: int) -> bool:
        try:
            return bool(self.schedule(step))
        except Exception as exc:  # noqa: BLE001 - a user's schedule must not stop training
            self.console.warn_once(("schedule", type(exc).__name__),
                                   f"the schedule raised {exc!r} at step {step}; that step is not measured "
                                   "(fix the schedule callable: step -> bool)")
            return False

    def step(
        self, y: Labels = None, *, step: Optional[int] = None, epoch: Optional[int] = None
    ) -> Optional[Record]:
        """Call once per training step, after ``optimizer.step()``.

        In passive mode pass the labels of what was trained on since the last step as ``y``: the batch's
        labels, or with gradient accumulation a list with one label tensor per training forward, in order
        (see :mod:`ibhooks.capture.passive`; forwards in eval mode or under ``no_grad`` are not captured).
        Returns the :class:`Record` if a measurement was due at this step (``None`` in background mode,
        where the Record is written when the worker has processed it: ``flush()`` waits for that).
        """
        if self._closed:
            raise RuntimeError("IBMonitor.step() called after close()")
        self._submit_initial()
        self.step_count = int(step) if step is not None else self.step_count + 1
        if self._passive is not None:
            self._collect_passive(y)
        record = None
        if self._due(self.step_count):
            if self.passive_config.gather and self.mode == "passive":
                from .distributed import gather_reservoir

                gather_reservoir(self._reservoir, self.layer_names)  # a collective: every rank, same step
            if self.is_writer:
                record = self.measure(epoch=epoch)
        if self._passive is not None:
            self._passive.arm_for(self.step_count + 1)
        return record

    @property
    def passive_window(self) -> int:
        """Steps pooled per passive measurement (``passive_window``, widened to reach ``min_rows`` once
        the training batch size is known)."""
        return self._passive.window if self._passive is not None else self.passive_config.window

    def _collect_passive(self, y: Labels) -> None:
        rows = self._passive.collect(y, self.step_count)
        if rows and not self._coverage_sent:
            self._coverage_sent = True
            self.sinks.call("update_header", "coverage", self.coverage)
            self.sinks.call("update_header", "chains", [c.to_dict() for c in self.chains])

    def measure(self, *, step: Optional[int] = None, epoch: Optional[int] = None) -> Optional[Record]:
        """Take a measurement now (whatever the schedule says). Returns its Record (``None`` in
        background mode)."""
        self._submit_initial()
        if step is not None:
            self.step_count = int(step)
        snapshot: Snapshot = self._taker.take(self.step_count, epoch)
        if self._passive is not None:
            self._passive.annotate(snapshot)
        run_on_snapshot(self._analyses, snapshot, self.console)
        return self._runner.submit(snapshot)

    def flush(self) -> None:
        """Process the pending step-0 snapshot and wait until every queued measurement is written."""
        if not self._closed:
            self._submit_initial()
        self._runner.flush()

    # ------------------------------------------------------------------------------------------
    # Lifecycle, state
    # ------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Process what is queued, remove every hook, drop stored activations and projection matrices,
        and close the sinks. Idempotent."""
        if self._closed:
            return
        try:
            self._submit_initial()
        finally:
            self._closed = True
        try:
            self._runner.close()
        finally:
            self._capture.release()
            if self._reservoir is not None:
                self._reservoir.clear()
            for analysis in self._analyses:
                analysis.close()
            self.sinks.close()

    def __enter__(self) -> "IBMonitor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def num_hooks(self) -> int:
        """Hook handles currently registered (0 between measurements in probe mode, and after ``close()``)."""
        return self._capture.num_handles



def _default_run_name() -> str:
    """Unique across processes and monitors started in the same second (time, pid, a random suffix)."""
    return _dt.datetime.now().strftime("run-%Y%m%d-%H%M%S") + f"-{os.getpid()}-{os.urandom(2).hex()}"
