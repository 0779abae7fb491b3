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

from .capture import Capture, PassiveReservoir, Probe, Snapshot, unwrap_model
from .capture.probe import BatchToXY
from .chains import Chain, as_chains, validate_chains
from .config import CaptureConfig, ExecutionConfig, PassiveConfig, RunLogConfig, build_configs
from .estimators.registry import EstimatorSpec
from .layers import LayerSpec, activation_of, select_layers
from .capture.taker import SnapshotTaker, check_probe_budget, trace_probe_dataflow
from .pipeline.estimation import build_estimators
from .pipeline import (BackgroundRunner, Console, Interpreter, MeasurementPipeline, SeriesHistory, SinkSet,
                       SyncRunner)
from .run_info import build_header, coverage_rows, render_coverage_table
from .schedule import Schedule, as_schedule
from .schema import Record
from .sinks.base import Sink
from .sinks.jsonl import JsonlSink
from .sinks.registry import make_sink

STATE_VERSION = 2


def _is_rank_zero() -> bool:
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class IBMonitor:
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
        capture, passive, run_log, execution: Grouped settings (:class:`~ibhooks.CaptureConfig`,
            :class:`~ibhooks.PassiveConfig`, :class:`~ibhooks.RunLogConfig`,
            :class:`~ibhooks.ExecutionConfig`). Each of their fields may instead be given as a flat
            keyword: ``reduction``, ``selectors``, ``max_samples``, ``probe_batch_size``,
            ``memory_budget_mb``, ``seed`` (capture); ``passive_window``, ``gather_passive``,
            ``passive_min_rows`` (passive);
            ``log_dir``, ``run_name``, ``resume``, ``figure_every`` (run log); ``background``,
            ``queue_size``, ``verbose`` (execution).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        layers: LayerSpec = "auto",
        probe: Any = None,
        schedule: Union[Schedule, int, None] = None,
        estimators: Union[EstimatorSpec, Sequence[EstimatorSpec]] = ("binning",),
        chains: Union[str, Sequence[Any], Mapping[str, Sequence[str]], None] = "auto",
        sinks: Sequence[Union[str, Sink]] = (),
        measure_initial: bool = True,
        batch_to_xy: Optional[BatchToXY] = None,
        probe_forward: Optional[Callable[[nn.Module, Any], Any]] = None,
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
        figure_every: Optional[int] = None,
        background: Optional[bool] = None,
        queue_size: Optional[int] = None,
        verbose: Optional[bool] = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"IBMonitor needs an nn.Module, got {type(model).__name__}")
        if type(model).__name__ == "OptimizedModule" or getattr(model, "_compiled_call_impl", None) is not None:
            warnings.warn(
                "IBMonitor was given a model that is already torch.compile'd: hooks added after it has run "
                "are either left out of the compiled graph (passive mode then captures nothing) or make it "
                "recompile. Create the monitor first, then call torch.compile(model).",
                stacklevel=2,
            )
        flat = {k: v for k, v in dict(
            reduction=reduction, selectors=selectors, max_samples=max_samples, probe_batch_size=probe_batch_size,
            memory_budget_mb=memory_budget_mb, seed=seed, passive_window=passive_window,
            gather_passive=gather_passive, passive_min_rows=passive_min_rows, log_dir=log_dir, run_name=run_name, resume=resume,
            figure_every=figure_every, background=background, queue_size=queue_size, verbose=verbose,
        ).items() if v is not None}
        cfg = build_configs({"capture": capture, "passive": passive, "run_log": run_log, "execution": execution},
                            flat)
        self.capture_config: CaptureConfig = cfg["capture"]
        self.passive_config: PassiveConfig = cfg["passive"]
        self.run_log_config: RunLogConfig = cfg["run_log"]
        self.execution_config: ExecutionConfig = cfg["execution"]
        if not isinstance(measure_initial, bool):
            raise ValueError(f"measure_initial must be True or False, got {measure_initial!r}")

        self.model = unwrap_model(model)
        self.schedule = as_schedule(schedule)
        self.estimators = build_estimators(estimators)
        self.is_writer = _is_rank_zero()
        self.console = Console(self.execution_config.verbose)
        cc = self.capture_config

        self.probe: Optional[Probe] = None
        if probe is not None:
            self.probe = Probe.from_any(probe, max_samples=cc.max_samples, batch_to_xy=batch_to_xy)
        self.mode = "probe" if self.probe is not None else "passive"

        selection = select_layers(self.model, layers)
        flow = None
        if self.probe is not None:  # chains from the observed data flow; outputs without a batch dim out
            flow = trace_probe_dataflow(self.model, self.probe, dict(selection.monitored), probe_forward)
            if flow.non_batch and len(flow.non_batch) < len(selection.monitored):
                selection = selection.drop(flow.non_batch)
            silent = flow.silent(dict(selection.monitored))
            if silent:
                self.console.warn_once(("silent",), f"selected module(s) {silent} never ran on the probe's forward "
                                       "pass: they are not measured (unused modules, or another input path?)")
        self.layer_names: List[str] = [n for n, _ in selection.monitored]
        self._modules: Dict[str, nn.Module] = dict(selection.monitored)
        self._skipped = selection.skipped
        for what, mapping in (("selectors", cc.selectors), ("reduction", cc.reduction)):
            if isinstance(mapping, Mapping):
                unknown = [k for k in mapping if k not in self._modules]
                if unknown:
                    raise ValueError(f"{what}= names layers that are not monitored: {unknown}; "
                                     f"monitored: {self.layer_names}")
        self._capture = Capture(selection.monitored, reduction=cc.reduction, selectors=cc.selectors, seed=cc.seed)
        self._reservoir = PassiveReservoir(cc.max_samples, seed=cc.seed) if self.mode == "passive" else None
        self._taker = SnapshotTaker(self.model, self._capture, self.probe, self._reservoir, self.console,
                                    probe_batch_size=cc.probe_batch_size, probe_forward=probe_forward)
        if self.probe is not None:
            self._taker.discover_shapes()
            check_probe_budget(self._capture, self.probe.n, cc.memory_budget_mb)

        if chains == "auto":
            self._chain_candidates: List[Chain] = _merge_chains(flow.chains if flow else [], selection.chains)
        elif chains is None:
            self._chain_candidates = []
        else:
            self._chain_candidates = list(validate_chains(chains, self.layer_names, min_layers=2))
        self._chains_declared = chains not in ("auto", None)

        self.step_count = 0
        self._closed = False
        rl = self.run_log_config
        self.run_name = rl.run_name or _default_run_name()
        self.log_dir = Path(rl.log_dir)
        self.log_path = self.log_dir / f"{self.run_name}.jsonl"
        self.history_series = SeriesHistory()
        self._interpreter = Interpreter(self.chains, {n: {"activation": activation_of(m)}
                                                      for n, m in self._modules.items()})
        sink_list: List[Any] = []
        if self.is_writer:
            sink_list.append(JsonlSink(self.log_path, resume=rl.resume))
            if isinstance(sinks, (str, Sink)):
                sinks = [sinks]  # one sink, not a sequence of letters
            for spec in sinks:
                if spec == "tensorboard":
                    sink_list.append(make_sink(spec, log_dir=str(self.log_dir / self.run_name),
                                               figure_every=rl.figure_every))
                elif spec == "wandb":
                    sink_list.append(make_sink(spec, figure_every=rl.figure_every))
                else:
                    sink_list.append(make_sink(spec))
        self.sinks = SinkSet(sink_list, self.console)
        from .progress import format_measurement_line

        pipeline = MeasurementPipeline(self.estimators, self.layer_names, self._interpreter, self.sinks,
                                       self.history_series, self.console, describe=format_measurement_line)
        ec = self.execution_config
        self._runner: Union[SyncRunner, BackgroundRunner] = (
            BackgroundRunner(pipeline, self.console, queue_size=ec.queue_size) if ec.background
            else SyncRunner(pipeline))
        self._coverage_sent = self.probe is not None
        self._initial: Optional[Snapshot] = None
        self._batch_rows = 0  # passive mode: the training batch size, once seen
        self._learning_batch = False
        if self.is_writer:
            self.sinks.call("start", self._header())
            self.console.say(self.coverage_table())

        if self.mode == "passive":
            # Passive hooks stay registered (a compiled model traces them once; adding them later would
            # recompile); their body does nothing on steps outside a capture window.
            self._capture.attach()
            self._arm_for(self.step_count + 1)
        elif measure_initial and not rl.resume and self.is_writer and self._due(0):
            # The initial weights exist only now: take their snapshot (the probe pass); estimating it is
            # left to the first step()/flush() (or the worker), so the constructor itself measures nothing.
            self._initial = self._taker.take(0, None)
            if self._runner.background:
                self._submit_initial()

    # ------------------------------------------------------------------------------------------
    # Coverage and configuration
    # ------------------------------------------------------------------------------------------
    @property
    def chains(self) -> List[Chain]:
        """Chains along which the DPI is checked: candidates minus layers whose reduction loses
        information (a declared chain is kept as declared)."""
        out = []
        for chain in self._chain_candidates:
            if chain.source == "declared":
                out.append(chain)
                continue
            kept = chain.restricted(n for n in chain.layers if self._capture.slots[n].reduction.lossless)
            if kept is not None:
                out.append(kept)
        return out

    @property
    def coverage(self) -> List[Dict[str, Any]]:
        """One row per module of the model: monitored or skipped and why, shapes, reduction, chain."""
        return coverage_rows(self.model, self._modules, self._skipped, self._capture, self.chains,
                             list(self.estimators))

    def coverage_table(self, all: bool = False) -> str:  # noqa: A002
        """The coverage table: one line per monitored layer (``all=True``: every module)."""
        title = (f"ibhooks: {len(self.layer_names)} layer(s) monitored in {type(self.model).__name__} "
                 f"({self.mode} mode, estimators: {', '.join(self.estimators)})")
        return render_coverage_table(self.coverage, title, all=all)

    def _config(self) -> Dict[str, Any]:
        cc, pc, rl, ec = self.capture_config, self.passive_config, self.run_log_config, self.execution_config
        return {
            "mode": self.mode,
            "layers": self.layer_names,
            "estimators": {k: {"class": type(e).__name__, "params": e.params(), "traits": e.traits.to_dict()}
                           for k, e in self.estimators.items()},
            "schedule": repr(self.schedule),
            "probe_samples": self.probe.n if self.probe is not None else None,
            "max_samples": cc.max_samples,
            "probe_batch_size": cc.probe_batch_size,
            "passive_window": pc.window,
            "memory_budget_mb": cc.memory_budget_mb,
            "seed": cc.seed,
            "background": ec.background,
            "figure_every": rl.figure_every,
            "model": type(self.model).__name__,
        }

    def _header(self) -> Dict[str, Any]:
        return build_header(run_name=self.run_name, step=self.step_count, config=self._config(),
                            coverage=self.coverage, chains=self.chains)

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

    def step(self, y: Optional[torch.Tensor] = None, *, step: Optional[int] = None,
             epoch: Optional[int] = None) -> Optional[Record]:
        """Call once per training step, after ``optimizer.step()``.

        In passive mode pass the labels of the batch just trained on as ``y``. Returns the
        :class:`Record` if a measurement was due at this step (``None`` in background mode, where the
        Record is written when the worker has processed it: ``flush()`` waits for that).
        """
        if self._closed:
            raise RuntimeError("IBMonitor.step() called after close()")
        self._submit_initial()
        self.step_count = int(step) if step is not None else self.step_count + 1
        if self.mode == "passive" and self._capture.armed:
            self._collect_passive(y)
        record = None
        if self._due(self.step_count):
            if self.passive_config.gather and self.mode == "passive":
                from .distributed import gather_reservoir

                gather_reservoir(self._reservoir, self.layer_names)  # a collective: every rank reaches it at the same step
            if self.is_writer:
                record = self.measure(epoch=epoch)
        if self.mode == "passive":
            self._arm_for(self.step_count + 1)
        return record

    @property
    def passive_window(self) -> int:
        """Steps pooled per passive measurement: ``passive_window``, widened to reach ``min_rows`` once the
        training batch size is known."""
        pc = self.passive_config
        min_rows = pc.min_rows if pc.min_rows is not None else min(self.capture_config.max_samples, 1024)
        if not self._batch_rows:
            return pc.window
        return max(pc.window, -(-min_rows // self._batch_rows))

    def _arm_for(self, next_step: int) -> None:
        window = range(next_step, next_step + self.passive_window)
        due = (self.is_writer or self.passive_config.gather) and any(self._due(s) for s in window)
        # Until the batch size is known (it sets the window), capture one step just to learn it.
        self._learning_batch = not due and not self._batch_rows
        if due or self._learning_batch:
            self._capture.arm()
        else:
            self._capture.disarm()
            self._capture.clear()

    def _collect_passive(self, y: Optional[torch.Tensor]) -> None:
        if self._learning_batch:  # outside any window: only the batch size is kept
            batch = self._capture.take()
            self._batch_rows = int(next(iter(batch.values())).shape[0]) if batch else 0
            return
        batch = self._taker.collect_passive(y, self.step_count)
        if batch and not self._batch_rows:
            self._batch_rows = int(next(iter(batch.values())).shape[0])
        if batch and not self._coverage_sent:
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
        if self.mode == "passive":
            pc = self.passive_config
            want = pc.min_rows if pc.min_rows is not None else min(self.capture_config.max_samples, 1024)
            if 0 < snapshot.n_samples < want:
                snapshot.info["rows_note"] = (
                    f"{snapshot.n_samples} rows pooled (fewer than min_rows={want}): the window was "
                    f"{self.passive_window} step(s); estimates are capped at log2({snapshot.n_samples}) bits. "
                    "Raise passive_window or max_samples, or give a probe.")
        return self._runner.submit(snapshot)

    def flush(self) -> None:
        """Process the pending step-0 snapshot and wait until every queued measurement is written."""
        if not self._closed:
            self._submit_initial()
        self._runner.flush()

    # ------------------------------------------------------------------------------------------
    # Results
    # ------------------------------------------------------------------------------------------
    @property
    def history(self) -> List[Record]:
        """Every Record of this run so far, read back from the run log (full Records live there; in
        memory the monitor keeps compact series only: :attr:`history_series`). Flushes first."""
        self.flush()
        if not self.is_writer or not self.log_path.exists():
            return []
        from .runlog import load_run

        return list(load_run(self.log_path).records)

    @property
    def last_record(self) -> Optional[Record]:
        """The latest Record processed (flushes first)."""
        self.flush()
        return self.history_series.last

    @property
    def phases(self) -> Dict[Any, Any]:
        """The latest phase decision per (layer, estimator, phase) (flushes first)."""
        self.flush()
        return self._interpreter.phases

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
            self.sinks.close()

    def __enter__(self) -> "IBMonitor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def num_hooks(self) -> int:
        """Hook handles currently registered (0 between measurements in probe mode, and after ``close()``)."""
        return self._capture.num_handles

    def state_dict(self) -> Dict[str, Any]:
        """The monitor's own state (step, phase-test state, estimator state, random streams) as plain
        containers and tensors, loadable with ``torch.load(..., weights_only=True)``. Flushes first."""
        self.flush()
        return {
            "version": STATE_VERSION,
            "step": self.step_count,
            "run_name": self.run_name,
            "interpretation": self._interpreter.state_dict(),
            "estimators": {k: e.state_dict() for k, e in self.estimators.items()},
            "reservoir": self._reservoir.state_dict() if self._reservoir is not None else {},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (to resume a run: create the monitor with ``resume=True``)."""
        if not isinstance(state, Mapping) or "step" not in state:
            raise ValueError("load_state_dict() needs a dict made by IBMonitor.state_dict()")
        if int(state.get("version", 0)) != STATE_VERSION:
            raise ValueError(f"monitor state version {state.get('version')} is not {STATE_VERSION}; it was "
                             "saved by another ibhooks version")
        self.flush()
        self.step_count = int(state["step"])
        self._interpreter.load_state_dict(state.get("interpretation") or {})
        for key, est_state in (state.get("estimators") or {}).items():
            if key in self.estimators:
                self.estimators[key].load_state_dict(est_state)
        if self._reservoir is not None and state.get("reservoir"):
            self._reservoir.load_state_dict(state["reservoir"])
        if self.mode == "passive":
            self._arm_for(self.step_count + 1)
        self.sinks.call("log_text", "resume", f"monitor state loaded at step {self.step_count}", self.step_count)

    def save_figures(self, out_dir: Union[str, Path]) -> Dict[str, Path]:
        """Draw every figure of this run so far into ``out_dir`` from its run log (needs the ``plot``
        extra). Flushes first."""
        from .plotting import save_all_figures

        return save_all_figures(self.history, out_dir, header=self._header())


def _default_run_name() -> str:
    """Unique across processes started in the same second (time, pid)."""
    return _dt.datetime.now().strftime("run-%Y%m%d-%H%M%S") + f"-{os.getpid()}"


def _merge_chains(traced: Sequence[Any], structural: Sequence[Any]) -> List[Chain]:
    """Chains seen in the data flow, plus structural ones (children of one nn.Sequential, applied in
    order: a Markov chain by construction, also where unmonitored modules sit between the layers) over
    the layers no traced chain covers."""
    out = list(as_chains(list(traced)))
    covered = {n for c in out for n in c.layers}
    for c in as_chains(list(structural)):
        rest = c.restricted(n for n in c.layers if n not in covered)
        if rest is not None:
            out.append(rest)
    return list(as_chains(out))
