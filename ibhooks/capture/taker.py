"""Taking a Snapshot on the training thread: the probe pass (hooks attached only around it) or the
passive reservoir's contents."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional

import torch
import torch.nn as nn

from ..pipeline.console import Console
from .budget import probe_need_bytes
from .hooks import Capture
from .probe import Probe
from .reduction import AUTO_MAX_DIM
from .reservoir import PassiveReservoir
from .snapshot import Snapshot

if TYPE_CHECKING:  # pragma: no cover
    from ..dataflow import DataFlow

PASSIVE_NOTE = "passive: activations of training batches; X and the network change within the window"


class SnapshotTaker:
    """Builds :class:`Snapshot`s from the capture: ``take(step, epoch)`` runs the probe (probe mode)
    or empties the reservoir (passive mode, filled by :class:`~ibhooks.capture.passive.PassiveWindow`)."""

    def __init__(
        self,
        model: nn.Module,
        capture: Capture,
        probe: Optional[Probe],
        reservoir: Optional[PassiveReservoir],
        console: Console,
        *,
        probe_batch_size: Optional[int],
        probe_forward: Optional[Callable[[nn.Module, Any], Any]] = None,
    ) -> None:
        self.model = model
        self.capture = capture
        self.probe = probe
        self.reservoir = reservoir
        self.console = console
        self.probe_batch_size = probe_batch_size or 256  # until auto_probe_chunk knows the shapes
        self.probe_forward = probe_forward

    @property
    def mode(self) -> str:
        return "probe" if self.probe is not None else "passive"

    def discover_shapes(self) -> None:
        """Run two probe rows once to learn every monitored layer's output shape and reduced size.

        Raises the probe's forward error (it says it was the probe) or a ``ValueError`` when no
        monitored layer produced a tensor."""
        assert self.probe is not None
        with self.capture.recording():
            try:
                with _eager():
                    self.probe.run(
                        self.model,
                        batch_size=2,
                        limit=2,
                        begin_pass=self.capture.begin_pass,
                        forward=self.probe_forward,
                    )
            finally:
                self.capture.clear()
        slots = self.capture.slots
        for name, slot in slots.items():
            if slot.shape is None and slot.error is None:
                slot.error = "never fired during a forward pass of the probe (unused module?)"
        refused = any(s.projection_refused for s in slots.values())  # check_probe_budget says why
        if all(s.dim is None for s in slots.values()) and not refused:
            errors = {n: s.error for n, s in slots.items()}
            raise ValueError(f"no monitored layer produced a tensor on the probe: {errors}")

    def take(self, step: int, epoch: Optional[int]) -> Snapshot:
        """The Snapshot of this measurement. A capture failure is recorded in it, never raised."""
        t0 = time.perf_counter()
        snap = Snapshot(step=step, mode=self.mode, epoch=epoch)
        try:
            if self.probe is not None:
                with self.capture.recording():
                    with _eager():
                        self.probe.run(
                            self.model,
                            batch_size=self.probe_batch_size,
                            begin_pass=self.capture.begin_pass,
                            forward=self.probe_forward,
                        )
                    snap.activations = self.capture.take()
                snap.labels = self.probe.y
            else:
                assert self.reservoir is not None
                res = self.reservoir
                missing, said, seen = res.labels_missing, res.missing_said, res.rows_seen
                snap.activations, snap.labels, steps = self.reservoir.take()
                snap.info.update(passive_steps=steps, note=PASSIVE_NOTE)
                if seen > snap.n_samples:
                    snap.info["passive_rows_seen"] = seen  # a uniform sample of them was kept
                if missing is not None:
                    snap.info["labels_missing"] = missing
                    if not said:
                        self.console.warn_once(("labels_missing",), f"step {step}: {missing}")
        except Exception as exc:  # noqa: BLE001 - the monitor never crashes training
            snap.errors.append(f"capture failed: {exc}")
            self.console.warn_once(("capture", type(exc).__name__), f"capture failed at step {step}: {exc}")
            self.capture.clear()
        for name, slot in self.capture.slots.items():
            if name not in snap.activations and slot.error and not slot.skipped:
                snap.layer_errors[name] = slot.error
        if not snap.activations and not snap.errors:
            why = (
                "no training forward (grad enabled, model in training mode) reached the monitored layers in "
                "the capture window (validation forwards are not captured; were the hooks added after "
                "torch.compile ran the model? create the monitor first)"
                if self.probe is None
                else "the probe forward reached no monitored layer"
            )
            snap.errors.append(f"nothing captured: {why}")
            self.console.warn_once(("empty",), f"step {step}: nothing captured: {why}")
        if snap.labels is not None and snap.activations:
            snap.labels = snap.labels.to(next(iter(snap.activations.values())).device)
        snap.seconds = time.perf_counter() - t0
        return snap

    def batch_only(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """One forward's captured outputs, without those whose first dimension is not the batch (the
        batch is the row count most layers share; e.g. a position embedding returns 1 row): they are
        no per-sample representation, get that reason, and never enter the reservoir."""
        if len(batch) < 2:
            return batch
        counts = Counter(int(t.shape[0]) for t in batch.values())
        rows = max(counts, key=lambda r: (counts[r], r))
        for name in [n for n, t in batch.items() if int(t.shape[0]) != rows]:
            slot = self.capture.slots[name]
            slot.error = (
                f"output's first dimension ({batch[name].shape[0]}) is not the batch ({rows} rows): "
                "not a per-sample representation (e.g. a position embedding); skipped"
            )
            slot.skipped = True
            self.console.warn_once(("non_batch", name), f"layer {name!r}: {slot.error}")
            del batch[name]
        return batch


def _eager() -> Any:
    """Run compiled callables eagerly inside (the probe must not compile an eval/no_grad graph).

    Only where torch.compile is in use (``torch._dynamo`` imported): importing it costs seconds."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    if set_stance is None or "torch._dynamo" not in sys.modules:
        return contextlib.nullcontext()
    return set_stance("force_eager")


def check_probe_budget(capture: Capture, rows: int, budget_mb: float, snapshots: int = 1) -> None:
    """Refuse at construction a probe whose held memory (projection matrices, ``snapshots`` snapshots of
    its activations, the join of its chunks) exceeds the budget: one error with the numbers and the fix."""
    need = probe_need_bytes(capture, rows, snapshots)
    total = need["projections"] + need["snapshots"] + need["join"]
    if total <= budget_mb * 2**20:
        return
    dims = [s.dim for s in capture.slots.values() if s.dim is not None and not s.skipped]
    refused = [n for n, s in capture.slots.items() if s.projection_refused]
    mib = lambda b: f"{b / 2**20:.1f} MiB"  # noqa: E731
    held = (f"{snapshots} snapshots (background mode: queue_size + 1) of {mib(need['snapshot'])}"
            if snapshots > 1 else f"{mib(need['snapshot'])} of activations")
    raise ValueError(
        f"the monitor would hold {mib(total)} but memory_budget_mb={budget_mb:g}: "
        f"{mib(need['projections'])} of projection matrices{f' (wide layers {refused})' if refused else ''}, "
        f"{held} ({rows} samples x "
        f"{sum(dims)} values over {len(dims)} layers, plus labels) and {mib(need['join'])} while the probe's "
        "chunks are joined. Use fewer probe samples (max_samples=), a reducing reduction ('mean' or "
        "'project:64') for the wide layers, fewer layers, or raise memory_budget_mb."
    )


def trace_probe_dataflow(
    model: nn.Module,
    probe: Probe,
    monitored: Dict[str, nn.Module],
    forward: Optional[Callable[[nn.Module, Any], Any]] = None,
) -> "DataFlow":
    """Which monitored module's output feeds which, seen on two probe rows (eval, no_grad, forked RNG)."""
    from ..dataflow import trace_chains

    rows = min(2, probe.n)

    def run() -> None:
        with _eager():
            probe.run(model, batch_size=rows, limit=rows, begin_pass=lambda n: None, forward=forward)

    return trace_chains(model, monitored, run, n_rows=rows)


def fit_whole_to_budget(taker: SnapshotTaker, rows: int, budget_mb: float, snapshots: int = 1) -> None:
    """Layers kept whole (for pairwise estimators) fall back to the usual "auto" reduction, widest first,
    until the probe's activations fit the memory budget (they then leave their DPI chain, as said in the
    coverage table); the shapes are learnt again for those layers."""
    slots = taker.capture.slots

    def need_mb() -> float:
        need = probe_need_bytes(taker.capture, rows, snapshots)
        return (need["projections"] + need["snapshots"] + need["join"]) / 2**20

    changed = False
    for slot in sorted(slots.values(), key=lambda s: -(s.dim or 0)):
        if need_mb() <= budget_mb:
            break
        if slot.reduction.whole and slot.reduction.spec == "auto" and slot.dim and slot.dim > AUTO_MAX_DIM:
            slot.reduction.whole = False
            slot.reduction.resolved = None
            slot.dim = None
            changed = True
    if changed:
        taker.discover_shapes()


#: Bytes of monitored outputs per probe chunk when ``probe_batch_size`` is left to the monitor.
PROBE_CHUNK_BYTES = {"cpu": 8 << 20, "other": 256 << 20}


def auto_probe_chunk(capture: Capture, rows: int, device: torch.device) -> int:
    """Rows per probe chunk so that a chunk's monitored outputs take about PROBE_CHUNK_BYTES (measured:
    each chunk costs a pass through Python and every hook, which dominates for a small MLP, while a
    convnet's activations fall out of cache in large chunks); 8 to 4,096 rows, at most the probe."""
    per_row = sum(4 * math.prod(s.shape[1:]) for s in capture.slots.values() if s.shape) or 1
    budget = PROBE_CHUNK_BYTES["cpu" if device.type == "cpu" else "other"]
    return int(max(1, min(rows, 4096, max(8, budget // per_row))))
