"""IBMonitor: wires capture, schedule, estimation, checks, phases and sinks together.

    monitor = IBMonitor(model, probe=(x_probe, y_probe), schedule=log_spaced(100, max_steps))
    for x, y in loader:
        ...; optimizer.step()
        monitor.step()            # returns the Record when it measured, else None
    monitor.close()
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

import torch
import torch.nn as nn

from .capture import Capture, ReductionSpec, Selector
from .estimate import LayerResult, Record
from .estimators._common import discrete_entropy
from .estimators.base import Estimator
from .estimators.registry import EstimatorSpec, make_estimator
from .layers import Chain, LayerSpec, activation_of, declared_chains, select_layers
from .probe import BatchToXY, Probe, model_device, unwrap_model
from .schedule import Schedule, as_schedule
from .sinks.base import Sink
from .sinks.jsonl import JsonlSink
from .sinks.registry import make_sink

logger = logging.getLogger("ibhooks")

STATE_VERSION = 1


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
            int N for every N steps.
        estimators: Names, ``(name, params)`` pairs or :class:`~ibhooks.estimators.Estimator` instances.
        log_dir: Folder of the JSONL run log (always written) and of file-based sinks.
        run_name: Run log name (``<log_dir>/<run_name>.jsonl``); default a timestamp.
        reduction: ``"auto"``, ``"flatten"``, ``"mean"``, ``"project:k"``, or a dict layer -> spec.
        selectors: Dict layer -> index / key / callable choosing the tensor of a tuple/dict output.
        chains: ``"auto"`` (from the model structure), ``None``, or lists of layer names (input side first).
        sinks: Extra sinks: ``"tensorboard"``, ``"wandb"`` or :class:`~ibhooks.sinks.base.Sink` instances.
        max_samples: Rows of the probe taken, and the size of the passive reservoir.
        memory_budget_mb: Ceiling for stored activations; checked at construction.
        probe_batch_size: Chunk size for running the probe.
        passive_window: In passive mode, how many training steps before a measurement are pooled.
        measure_initial: In probe mode, take a measurement at step 0 (before training) if the schedule has it.
        batch_to_xy: Splits a probe DataLoader batch into ``(x, y)``.
        probe_forward: ``(model, x) -> output`` if the model is not called as ``model(x)``.
        resume: Append to an existing run log of the same ``run_name`` (after ``load_state_dict``).
        seed: Seed of the monitor's own random streams (projections, subsampling).
        verbose: Print the coverage table and one line per measurement.
        gather_passive: Under torch.distributed, passive mode pools the reservoirs of all ranks into
            rank 0's before each measurement (an ``all_gather``: every rank must call ``step()`` at
            every step). Default: rank 0's own batches only, and no collective.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        layers: LayerSpec = "auto",
        probe: Any = None,
        schedule: Union[Schedule, int, None] = None,
        estimators: Sequence[EstimatorSpec] = ("binning",),
        log_dir: Union[str, Path] = "ibhooks_runs",
        run_name: Optional[str] = None,
        reduction: Union[ReductionSpec, Mapping[str, ReductionSpec]] = "auto",
        selectors: Optional[Mapping[str, Selector]] = None,
        chains: Union[str, Sequence[Sequence[str]], None] = "auto",
        sinks: Sequence[Union[str, Sink]] = (),
        max_samples: int = 4096,
        memory_budget_mb: float = 512.0,
        probe_batch_size: int = 1024,
        passive_window: int = 1,
        measure_initial: bool = True,
        batch_to_xy: Optional[BatchToXY] = None,
        probe_forward: Optional[Callable[[nn.Module, Any], Any]] = None,
        resume: bool = False,
        seed: int = 0,
        verbose: bool = True,
        gather_passive: bool = False,
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
        for name, value in (("max_samples", max_samples), ("probe_batch_size", probe_batch_size),
                            ("passive_window", passive_window)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(memory_budget_mb, (int, float)) and memory_budget_mb > 0):
            raise ValueError(f"memory_budget_mb must be a positive number, got {memory_budget_mb!r}")
        self.model = unwrap_model(model)
        self.schedule = as_schedule(schedule)
        if isinstance(estimators, (str, Estimator)) or (isinstance(estimators, tuple) and len(estimators) == 2
                                                        and isinstance(estimators[1], Mapping)):
            estimators = [estimators]  # a single spec
        self.estimators: Dict[str, Estimator] = {}
        for spec in estimators:
            est = make_estimator(spec)
            key = est.name if est.name not in self.estimators else f"{est.name}_{len(self.estimators)}"
            self.estimators[key] = est
        if not self.estimators:
            raise ValueError("estimators= is empty; pass at least one, e.g. estimators=['binning']")
        self.max_samples = max_samples
        self.memory_budget_mb = float(memory_budget_mb)
        self.probe_batch_size = probe_batch_size
        self.passive_window = passive_window
        self.probe_forward = probe_forward
        self.seed = seed
        self.verbose = verbose
        self.is_writer = _is_rank_zero()
        self.gather_passive = bool(gather_passive)

        self.probe: Optional[Probe] = None
        if probe is not None:
            self.probe = Probe.from_any(probe, max_samples=max_samples, batch_to_xy=batch_to_xy)
        self.mode = "probe" if self.probe is not None else "passive"

        selection = select_layers(self.model, layers)
        self.layer_names: List[str] = [n for n, _ in selection.monitored]
        self._modules: Dict[str, nn.Module] = dict(selection.monitored)
        self._skipped = selection.skipped
        if selectors:
            unknown = [k for k in selectors if k not in self._modules]
            if unknown:
                raise ValueError(f"selectors= names layers that are not monitored: {unknown}; monitored: {self.layer_names}")
        if isinstance(reduction, Mapping):
            unknown = [k for k in reduction if k not in self._modules]
            if unknown:
                raise ValueError(f"reduction= names layers that are not monitored: {unknown}")
        self._capture = Capture(selection.monitored, reduction=reduction, selectors=selectors, seed=seed)

        if self.probe is not None:
            self._discover_shapes()
        self._check_memory_budget()
        if chains == "auto":
            self._chain_candidates = selection.chains
        elif chains is None:
            self._chain_candidates = []
        else:
            self._chain_candidates = declared_chains(chains, self.layer_names)

        self.step_count = 0
        self.history: List[Record] = []
        self._warned: Set[Tuple[str, ...]] = set()
        self._reservoir: Dict[str, torch.Tensor] = {}
        self._reservoir_y: Optional[torch.Tensor] = None
        self._reservoir_steps: List[int] = []
        self._gen = torch.Generator().manual_seed(seed)
        self._closed = False
        self._coverage_sent = self.probe is not None

        self.run_name = run_name or _dt.datetime.now().strftime("run-%Y%m%d-%H%M%S")
        self.log_dir = Path(log_dir)
        self.log_path = self.log_dir / f"{self.run_name}.jsonl"
        self.sinks: List[Sink] = []
        if self.is_writer:
            self.sinks.append(JsonlSink(self.log_path, resume=resume))
            for spec in sinks:
                if isinstance(spec, str) and spec == "tensorboard":
                    self.sinks.append(make_sink(spec, log_dir=str(self.log_dir / self.run_name)))
                else:
                    self.sinks.append(make_sink(spec))
            header = self._header()
            for sink in self.sinks:
                self._safe_sink(sink, "start", header)
            if self.verbose:
                print(self.coverage_table(), file=sys.stderr)

        if self.mode == "passive":
            self._arm_for(self.step_count + 1)
        elif measure_initial and self.schedule(0) and not resume and self.is_writer:
            self.measure(step=0)

    # ------------------------------------------------------------------------------------------
    # Coverage and configuration
    # ------------------------------------------------------------------------------------------
    def _discover_shapes(self) -> None:
        """Run two probe rows once to learn every monitored layer's output shape and reduced size."""
        assert self.probe is not None
        self._capture.arm()
        try:
            with _eager():
                self.probe.run(self.model, batch_size=2, limit=2, begin_pass=self._capture.begin_pass,
                               forward=self.probe_forward)
        finally:
            self._capture.disarm()
            self._capture.clear()
        silent = [n for n in self.layer_names if self._capture.slots[n].shape is None
                  and self._capture.slots[n].error is None]
        for n in silent:
            self._capture.slots[n].error = "never fired during a forward pass of the probe (unused module?)"
        if all(self._capture.slots[n].dim is None for n in self.layer_names):
            errors = {n: self._capture.slots[n].error for n in self.layer_names}
            raise ValueError(f"no monitored layer produced a tensor on the probe: {errors}")

    def _check_memory_budget(self) -> None:
        rows = self.probe.n if self.probe is not None else self.max_samples
        dims = [s.dim for s in self._capture.slots.values() if s.dim is not None]
        if not dims:
            return  # passive mode: checked when the first batch arrives
        need_mb = rows * sum(dims) * 4 / 2**20
        if need_mb > self.memory_budget_mb:
            raise ValueError(
                f"the probe needs {need_mb:.0f} MiB of activations ({rows} samples x {sum(dims)} values over "
                f"{len(dims)} layers) but memory_budget_mb={self.memory_budget_mb:g}. Use fewer probe samples "
                "(max_samples=), a reducing reduction ('mean' or 'project:64'), fewer layers, or raise "
                "memory_budget_mb."
            )

    def _chains(self) -> List[Chain]:
        """Candidate chains minus layers whose reduction loses information (then not Markov)."""
        out = []
        for chain in self._chain_candidates:
            kept = tuple(n for n in chain.layers if self._capture.slots[n].reduction.lossless
                         or chain.source == "declared")
            if len(kept) >= 2:
                out.append(Chain(chain.name, kept, chain.source))
        return out

    @property
    def chains(self) -> List[Chain]:
        return self._chains()

    @property
    def coverage(self) -> List[Dict[str, Any]]:
        """One row per module of the model: monitored or skipped and why, shapes, reduction, chain."""
        chain_of = {n: c.name for c in self._chains() for n in c.layers}
        rows = []
        for name, module in self.model.named_modules():
            if not name:
                continue
            row: Dict[str, Any] = {"name": name, "type": type(module).__name__}
            if name in self._modules:
                slot = self._capture.slots[name]
                row.update(
                    status="monitored" if slot.error is None else "error",
                    reason=slot.error or "",
                    shape=["B", *slot.shape[1:]] if slot.shape else None,
                    dtype=slot.dtype,
                    reduction=slot.reduction.name,
                    dim=slot.dim,
                    activation=activation_of(module),
                    chain=chain_of.get(name),
                )
            else:
                row.update(status="skipped", reason=self._skipped.get(name, "not selected"))
            rows.append(row)
        return rows

    def coverage_table(self) -> str:
        lines = [f"ibhooks: {len(self.layer_names)} layer(s) monitored in {type(self.model).__name__} "
                 f"({self.mode} mode, estimators: {', '.join(self.estimators)})"]
        lines.append(f"  {'layer':<28} {'type':<18} {'status':<10} {'output':<18} {'reduction':<22} dim  chain / reason")
        for row in self.coverage:
            shape = "x".join(str(s) for s in row["shape"]) if row.get("shape") else "-"
            tail = row.get("chain") or "" if row["status"] == "monitored" else row.get("reason", "")
            lines.append(
                f"  {row['name'][:28]:<28} {row['type'][:18]:<18} {row['status']:<10} {shape[:18]:<18} "
                f"{str(row.get('reduction') or '-')[:22]:<22} {str(row.get('dim') or '-'):<4} {tail}"
            )
        return "\n".join(lines)

    def _header(self) -> Dict[str, Any]:
        return {
            "created": _dt.datetime.now().isoformat(timespec="seconds"),
            "run_name": self.run_name,
            "step": self.step_count,
            "config": {
                "mode": self.mode,
                "layers": self.layer_names,
                "estimators": {k: {"class": type(e).__name__, "params": e.params()} for k, e in self.estimators.items()},
                "schedule": repr(self.schedule),
                "probe_samples": self.probe.n if self.probe is not None else None,
                "max_samples": self.max_samples,
                "passive_window": self.passive_window,
                "memory_budget_mb": self.memory_budget_mb,
                "seed": self.seed,
                "model": type(self.model).__name__,
            },
            "coverage": self.coverage,
            "chains": [c.to_dict() for c in self._chains()],
            "versions": {
                "ibhooks": _version(),
                "torch": torch.__version__,
                "python": platform.python_version(),
                "numpy": _module_version("numpy"),
            },
        }

    # ------------------------------------------------------------------------------------------
    # The training-loop API
    # ------------------------------------------------------------------------------------------
    def step(self, y: Optional[torch.Tensor] = None, *, step: Optional[int] = None,
             epoch: Optional[int] = None) -> Optional[Record]:
        """Call once per training step, after ``optimizer.step()``.

        In passive mode pass the labels of the batch just trained on as ``y``. Returns the
        :class:`Record` if a measurement was due at this step, else ``None``.
        """
        if self._closed:
            raise RuntimeError("IBMonitor.step() called after close()")
        self.step_count = int(step) if step is not None else self.step_count + 1
        if self.mode == "passive" and self._capture.armed:
            self._collect_passive(y)
        record = None
        if self.schedule(self.step_count):
            if self.gather_passive and self.mode == "passive":
                from .distributed import gather_reservoir

                gather_reservoir(self)  # a collective: every rank reaches it at the same step
            if self.is_writer:
                record = self.measure(epoch=epoch)
        if self.mode == "passive":
            self._arm_for(self.step_count + 1)
        return record

    def _arm_for(self, next_step: int) -> None:
        window = range(next_step, next_step + self.passive_window)
        due = (self.is_writer or self.gather_passive) and any(self.schedule(s) for s in window)
        if due:
            self._capture.arm()
        else:
            self._capture.disarm()
            self._capture.clear()

    def _collect_passive(self, y: Optional[torch.Tensor]) -> None:
        """Move this step's captured batch (and its labels) into the bounded reservoir."""
        batch = self._capture.take()
        if not batch:
            return
        if not self._coverage_sent:
            self._coverage_sent = True
            for sink in self.sinks:
                self._safe_sink(sink, "update_header", "coverage", self.coverage)
                self._safe_sink(sink, "update_header", "chains", [c.to_dict() for c in self._chains()])
            need_mb = self.max_samples * sum(t.shape[1] for t in batch.values()) * 4 / 2**20
            if need_mb > self.memory_budget_mb:
                self._warn_once(("budget",), f"the passive reservoir can grow to {need_mb:.0f} MiB, above "
                                f"memory_budget_mb={self.memory_budget_mb:g}; lower max_samples or reduce layers")
        rows = {n: t.shape[0] for n, t in batch.items()}
        n = next(iter(rows.values()))
        if len(set(rows.values())) != 1:
            self._warn_once(("passive_rows",), f"layers captured different row counts {rows}; batch skipped")
            return
        if y is not None:
            if not isinstance(y, torch.Tensor):
                raise TypeError(f"monitor.step(y=...) needs a tensor of integer class labels, got {type(y).__name__}")
            y = y.detach()
            if y.dim() == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if y.dim() != 1 or y.is_floating_point():
                raise ValueError(
                    f"monitor.step(y=...) needs 1-D integer class labels; got shape {tuple(y.shape)} dtype "
                    f"{y.dtype}. Pass y.argmax(1) for one-hot labels or y.long() for integer-valued floats."
                )
            if y.shape[0] != n:
                raise ValueError(
                    f"monitor.step(y=...) got {y.shape[0]} labels but the monitored forward pass saw {n} "
                    "samples; pass the labels of exactly the batch that was forwarded this step"
                )
            y = y.to(next(iter(batch.values())).device)
        if self._reservoir and ((self._reservoir_y is None) != (y is None)):
            y = None
            self._reservoir_y = None
        for name, t in batch.items():
            self._reservoir[name] = torch.cat([self._reservoir[name], t]) if name in self._reservoir else t
        if y is not None:
            self._reservoir_y = y if self._reservoir_y is None else torch.cat([self._reservoir_y, y])
        self._reservoir_steps.append(self.step_count)
        total = next(iter(self._reservoir.values())).shape[0]
        if total > self.max_samples:  # keep a uniform random subset, same rows for every layer
            keep = torch.randperm(total, generator=self._gen)[: self.max_samples].sort().values
            for name in self._reservoir:
                self._reservoir[name] = self._reservoir[name][keep.to(self._reservoir[name].device)]
            if self._reservoir_y is not None:
                self._reservoir_y = self._reservoir_y[keep.to(self._reservoir_y.device)]

    def _snapshot(self) -> Tuple[Dict[str, torch.Tensor], Optional[torch.Tensor], Dict[str, Any]]:
        if self.mode == "probe":
            assert self.probe is not None
            self._capture.arm()
            try:
                with _eager():
                    self.probe.run(self.model, batch_size=self.probe_batch_size,
                                   begin_pass=self._capture.begin_pass, forward=self.probe_forward)
            finally:
                self._capture.disarm()
            acts = self._capture.take()
            y = self.probe.y
            info: Dict[str, Any] = {}
        else:
            acts, y = self._reservoir, self._reservoir_y
            info = {"passive_steps": list(self._reservoir_steps),
                    "note": "passive: activations of training batches; X and the network change within the window"}
            self._reservoir, self._reservoir_y, self._reservoir_steps = {}, None, []
        if y is not None and acts:
            y = y.to(next(iter(acts.values())).device)
        return acts, y, info

    def measure(self, *, step: Optional[int] = None, epoch: Optional[int] = None) -> Record:
        """Take a measurement now (whatever the schedule says) and return its Record."""
        if step is not None:
            self.step_count = int(step)
        t0 = time.perf_counter()
        record = Record(step=self.step_count, mode=self.mode, n_samples=0, epoch=epoch)
        try:
            acts, y, info = self._snapshot()
        except Exception as exc:  # noqa: BLE001 - the monitor never crashes training
            record.errors.append({"layer": None, "estimator": None, "error": f"capture failed: {exc!r}"})
            self._warn_once(("capture", type(exc).__name__), f"capture failed at step {self.step_count}: {exc!r}")
            acts, y, info = {}, None, {}
        record.info.update(info)
        record.n_samples = int(next(iter(acts.values())).shape[0]) if acts else 0
        if not acts and not record.errors:
            why = ("no training batch was forwarded through the monitored layers in the capture window "
                   "(were the hooks added after torch.compile ran the model? create the monitor first)"
                   if self.mode == "passive" else "the probe forward reached no monitored layer")
            record.errors.append({"layer": None, "estimator": None, "error": f"nothing captured: {why}"})
            self._warn_once(("empty",), f"step {self.step_count}: nothing captured: {why}")
        if y is not None:
            record.h_y = discrete_entropy(torch.unique(y, return_inverse=True)[1])
        for layer in self.layer_names:
            slot = self._capture.slots[layer]
            if layer not in acts:
                if slot.error:
                    record.errors.append({"layer": layer, "estimator": None, "error": slot.error})
                continue
            t = acts[layer]
            record.layers[layer] = {}
            for key, est in self.estimators.items():
                record.layers[layer][key] = self._run_estimator(key, est, layer, t, y, record)
        del acts
        self._interpret(record)
        record.seconds = time.perf_counter() - t0
        self.history.append(record)
        for sink in self.sinks:
            self._safe_sink(sink, "write", record)
        if self.verbose:
            from .progress import format_measurement_line

            print(format_measurement_line(record), file=sys.stderr)
        return record

    def _run_estimator(self, key: str, est: Estimator, layer: str, t: torch.Tensor,
                       y: Optional[torch.Tensor], record: Record) -> LayerResult:
        t0 = time.perf_counter()
        try:
            i_xt, i_ty = est.layer_information(t, y, layer=layer)
            for e in (i_xt, i_ty):
                if e is not None and not math.isfinite(e.value):
                    raise FloatingPointError(f"estimator returned a non-finite value ({e.value}) for {e.quantity}")
        except Exception as exc:  # noqa: BLE001 - recorded, warned once, training goes on
            msg = f"{type(exc).__name__}: {exc}"
            record.errors.append({"layer": layer, "estimator": key, "error": msg})
            self._warn_once(("estimator", key, type(exc).__name__),
                            f"estimator {key!r} failed on layer {layer!r} at step {record.step}: {msg} "
                            "(recorded in the run log; training continues)")
            return LayerResult(error=msg)
        seconds = time.perf_counter() - t0
        return LayerResult(i_xt=i_xt.with_timing(seconds), i_ty=i_ty.with_timing(seconds) if i_ty else None)

    def _interpret(self, record: Record) -> None:
        """Checks (bounds, DPI, artefacts) and phase tests; failures are recorded, never raised."""
        layer_info = {n: {"activation": activation_of(m)} for n, m in self._modules.items()}
        try:
            from .checks import check_record

            record.checks, record.warnings = check_record(
                record, self._chains(), layer_info=layer_info, strict=False  # a failed layer is listed, not fatal
            )
        except ImportError:
            pass
        except Exception as exc:  # noqa: BLE001
            record.errors.append({"layer": None, "estimator": None, "error": f"checks failed: {exc!r}"})
        try:
            from .phases import detect_phases

            record.phases = detect_phases(self.history + [record])
        except ImportError:
            pass
        except Exception as exc:  # noqa: BLE001
            record.errors.append({"layer": None, "estimator": None, "error": f"phase tests failed: {exc!r}"})

    def _safe_sink(self, sink: Any, method: str, *args: Any) -> None:
        try:
            getattr(sink, method)(*args)
        except Exception as exc:  # noqa: BLE001 - a broken logger must not stop training
            self._warn_once(("sink", type(sink).__name__, method),
                            f"sink {type(sink).__name__}.{method} failed: {exc!r}; other sinks go on")

    def _warn_once(self, key: Tuple[str, ...], message: str) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        logger.warning(message)
        warnings.warn(f"ibhooks: {message}", RuntimeWarning, stacklevel=3)

    # ------------------------------------------------------------------------------------------
    # Lifecycle, state
    # ------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Remove every hook, drop stored activations and close the sinks. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._capture.remove()
        self._reservoir, self._reservoir_y = {}, None
        for sink in self.sinks:
            self._safe_sink(sink, "close")

    def __enter__(self) -> "IBMonitor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def num_hooks(self) -> int:
        """Hook handles currently registered (0 after ``close()``)."""
        return self._capture.num_handles

    def state_dict(self) -> Dict[str, Any]:
        """The monitor's own state (step, history, estimator state) as plain containers and tensors,
        loadable with ``torch.load(..., weights_only=True)``."""
        return {
            "version": STATE_VERSION,
            "step": self.step_count,
            "run_name": self.run_name,
            "history": [r.to_dict() for r in self.history],
            "estimators": {k: e.state_dict() for k, e in self.estimators.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state.get("version", 0)) != STATE_VERSION:
            raise ValueError(f"monitor state version {state.get('version')} is not {STATE_VERSION}")
        self.step_count = int(state["step"])
        self.history = [Record.from_dict(d) for d in state["history"]]
        for key, est_state in state.get("estimators", {}).items():
            if key in self.estimators:
                self.estimators[key].load_state_dict(est_state)
        if self.mode == "passive":
            self._arm_for(self.step_count + 1)
        for sink in self.sinks:
            self._safe_sink(sink, "log_text", "resume", f"monitor state loaded at step {self.step_count}",
                            self.step_count)

    def save_figures(self, out_dir: Union[str, Path]) -> Dict[str, Path]:
        """Draw every figure of this run so far into ``out_dir`` (needs the ``plot`` extra)."""
        from .plotting import save_all_figures

        return save_all_figures(self.history, out_dir, header=self._header())


def _eager() -> Any:
    """Run compiled callables eagerly inside (the probe must not compile an eval/no_grad graph)."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    return set_stance("force_eager") if set_stance is not None else contextlib.nullcontext()


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ibhooks")
    except Exception:  # noqa: BLE001
        return "unknown"


def _module_version(name: str) -> Optional[str]:
    mod = sys.modules.get(name)
    return getattr(mod, "__version__", None)
