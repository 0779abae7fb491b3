"""``memory_budget_mb`` as a bound: what the monitor may hold, split between its parts, and a count of
what it holds now.

Everything the monitor keeps between calls counts: the random-projection matrices of the reductions,
the captured outputs (the probe's activations, or passive mode's training passes of the current step),
the snapshots alive at once (one when measuring on the training thread; in background mode the
``queue_size`` queued ones plus the one being taken), the passive reservoir (allocated at its row cap)
and the estimators' state tensors. Estimation temporaries and the model's own forward are not held
between calls and are not counted (``benchmarks/memory.py`` shows them in its RSS column).

Probe mode: the probe's rows are known at construction, so a configuration that cannot fit is refused
there with the numbers and the fix (:func:`check_probe_budget`). Passive mode: the split below is fixed
at construction and the reservoir's row cap is set from the layer widths at the first training forward
(with a note in every Record when the cap is below ``max_samples``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Optional

import torch

MiB = 2**20

#: Passive mode's split of the budget: projections may take a quarter; until the first training step is
#: seen its captured passes may take half (nothing else is held then); after it, one step's passes take
#: what that step took (at least an eighth, at most half), one layer's rows of a pass more while they are
#: copied into the reservoir, and the reservoirs alive at once the rest.
PROJECTION_SHARE = 0.25
FIRST_STEP_SHARE = 0.5
MIN_PASS_SHARE = 0.125


def snapshots_alive(background: bool, queue_size: int) -> int:
    """Snapshots the monitor may hold at once: 1 when measuring on the training thread; in background
    mode ``queue_size`` waiting for (or in) the worker plus the one the training thread is taking."""
    return queue_size + 1 if background else 1


@dataclass(frozen=True)
class PassiveBudget:
    """Passive mode's byte shares of ``memory_budget_mb``."""

    budget_bytes: int
    snapshots: int

    @property
    def projection_bytes(self) -> int:
        return int(self.budget_bytes * PROJECTION_SHARE)

    @property
    def first_step_bytes(self) -> int:
        return int(self.budget_bytes * FIRST_STEP_SHARE)

    def pass_bytes(self, step_bytes: int) -> int:
        """The share of one step's captured passes, from what the first training step took."""
        return min(max(step_bytes, int(self.budget_bytes * MIN_PASS_SHARE)), self.first_step_bytes)

    def reservoir_rows(self, max_rows: int, row_bytes: int, projections: int, passes: int,
                       copy: int) -> "tuple[int, Optional[str]]":
        """Rows the reservoir may hold (at most ``max_rows``) and, when fewer, the note that says why.
        ``passes``: the share of one step's passes; ``copy``: one layer's rows of a pass (copied on entry)."""
        free = self.budget_bytes - max(projections, 0) - passes - copy
        rows = max(0, free // max(1, self.snapshots * row_bytes))
        if rows >= max_rows:
            return max_rows, None
        return int(rows), (
            f"passive reservoir capped at {rows} rows (max_samples={max_rows}) to stay within "
            f"memory_budget_mb={self.budget_bytes / MiB:g}: {row_bytes} bytes per row, "
            f"{projections / MiB:.1f} MiB of projections, {(passes + copy) / MiB:.1f} MiB for one step's "
            "captured passes"
            + (f", {self.snapshots} snapshots alive in background mode" if self.snapshots > 1 else "")
            + "; raise memory_budget_mb, or monitor fewer or narrower layers"
        )


def probe_need_bytes(capture: Any, rows: int, snapshots: int) -> Dict[str, int]:
    """Bytes a probe-mode monitor holds at most: projections, ``snapshots`` snapshots of ``rows`` rows
    and, while the probe's chunks are joined, one more copy of the widest layer."""
    slots = [s for s in capture.slots.values() if s.dim is not None and not s.skipped]
    widths = [s.dim for s in slots]
    projections = sum(
        s.reduction.projection_bytes(math.prod(s.shape[1:]))
        for s in capture.slots.values() if s.shape and (not s.skipped or s.projection_refused)
    )
    snapshot = rows * (sum(widths) * 4 + 8)
    return {"projections": projections, "snapshot": snapshot, "snapshots": snapshots * snapshot,
            "join": rows * max(widths, default=0) * 4}


def tensor_bytes(objects: Iterable[Any]) -> int:
    """Bytes of the distinct tensor storages reachable through dicts, lists, tuples and tensors."""
    seen: Dict[int, int] = {}

    def visit(obj: Any, depth: int = 0) -> None:
        if depth > 6:
            return
        if isinstance(obj, torch.Tensor):
            st = obj.untyped_storage()
            seen[st.data_ptr() or id(st)] = st.nbytes()
        elif isinstance(obj, dict):
            for v in obj.values():
                visit(v, depth + 1)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                visit(v, depth + 1)

    for o in objects:
        visit(o)
    return sum(seen.values())


def held_bytes(monitor: Any) -> Dict[str, int]:
    """What a monitor references now, in bytes (distinct storages): its capture's stored outputs and
    projection matrices, its passive reservoir, its estimators' state tensors."""
    cap = monitor._capture
    res = monitor._reservoir
    parts = {
        "captured": tensor_bytes([s.chunks for s in cap.slots.values()]),
        "projections": tensor_bytes([s.reduction._proj for s in cap.slots.values()
                                     if s.reduction._proj is not None]),
        "reservoir": tensor_bytes([res._acts, res._y]) if res is not None else 0,
        "estimators": tensor_bytes([e.state_dict() for e in monitor.estimators.values()]),
    }
    pending = [getattr(monitor, "_initial", None)]
    queue = getattr(getattr(monitor, "_runner", None), "_queue", None)
    pending += list(getattr(queue, "queue", ()))  # background mode: snapshots waiting for the worker
    snapshots = [[p.activations, p.labels] for p in pending if hasattr(p, "activations")]
    parts["captured"] += tensor_bytes(snapshots)
    parts["total"] = sum(parts.values())
    return parts
