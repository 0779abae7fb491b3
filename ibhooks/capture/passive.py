"""Passive mode's capture window: which training steps are captured, and how many rows a measurement
pools (enough that one batch does not cap every layer at log2(batch) bits)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import torch

from .hooks import Capture
from .snapshot import Snapshot
from .taker import SnapshotTaker


class PassiveWindow:
    """Arms the capture for the steps before a scheduled measurement and moves each captured training
    batch into the reservoir.

    Args:
        capture: The hooks (kept attached in passive mode).
        taker: Moves a captured batch into the reservoir.
        window: Steps pooled per measurement, at least.
        min_rows: Rows to pool per measurement: once the batch size is known the window widens to
            ``ceil(min_rows / batch)`` steps.
        due: ``step -> bool``, the schedule.
        enabled: Whether this process captures at all (rank 0, or every rank when gathering).
    """

    def __init__(
        self,
        capture: Capture,
        taker: SnapshotTaker,
        *,
        window: int,
        min_rows: int,
        due: Callable[[int], bool],
        enabled: bool,
    ) -> None:
        self.capture = capture
        self.taker = taker
        self.base_window = window
        self.min_rows = min_rows
        self.due = due
        self.enabled = enabled
        self.batch_rows = 0  # the training batch size, once seen
        self._learning = False

    @property
    def window(self) -> int:
        if not self.batch_rows:
            return self.base_window
        return max(self.base_window, -(-self.min_rows // self.batch_rows))

    def arm_for(self, next_step: int) -> None:
        due = self.enabled and any(self.due(s) for s in range(next_step, next_step + self.window))
        # Until the batch size is known (it sets the window), capture one step just to learn it.
        self._learning = not due and not self.batch_rows
        if due or self._learning:
            self.capture.arm()
        else:
            self.capture.disarm()
            self.capture.clear()

    def collect(self, y: Optional[torch.Tensor], step: int) -> Dict[str, torch.Tensor]:
        """This step's captured batch into the reservoir (outside a window: only its size is learnt)."""
        if not self.capture.armed:
            return {}
        if self._learning:
            batch = self.taker.take_batch()
            self.batch_rows = int(next(iter(batch.values())).shape[0]) if batch else 0
            return {}
        batch = self.taker.collect_passive(y, step)
        if batch and not self.batch_rows:
            self.batch_rows = int(next(iter(batch.values())).shape[0])
        return batch

    def annotate(self, snapshot: Snapshot) -> None:
        """Say in the snapshot when fewer than ``min_rows`` rows were pooled, and what to change."""
        n = snapshot.n_samples
        if 0 < n < self.min_rows:
            snapshot.info["rows_note"] = (
                f"{n} rows pooled (fewer than min_rows={self.min_rows}): the window was {self.window} "
                f"step(s); estimates are capped at log2({n}) bits. Raise passive_window or max_samples, "
                "or give a probe."
            )

    def state(self) -> Dict[str, Any]:
        return {"batch_rows": self.batch_rows}
