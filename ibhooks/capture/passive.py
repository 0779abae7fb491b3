"""Passive mode's capture window: which training steps are captured, how many rows a measurement pools
(enough that one batch does not cap every layer at log2(batch) bits), and the pairing of every captured
training forward with its own labels.

Pairing. The capture keeps every training forward of a step (grad enabled, model in training mode) as
its own pass, in order; validation forwards are neither kept nor counted. ``step(y=...)`` pairs them
with labels by order:

* one tensor and one training forward: its labels (a different row count is an error);
* a list or tuple with one label tensor per training forward since the last step, in order (gradient
  accumulation); each must have its forward's rows (else an error);
* one tensor for several forwards: the labels of all of them concatenated in order, when its rows are
  their sum.

Anything else cannot be proven to pair (a list of the wrong length, one micro-batch's labels for
several forwards): the activations are still pooled for I(X;T), I(T;Y) is not measured for that window,
one warning says why and the Record's ``info["labels_missing"]`` keeps the reason. Labels given on some
steps of a window only are treated the same way.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..labels import as_labels
from ..pipeline.console import Console
from .budget import PassiveBudget
from .hooks import Capture, PassInfo
from .reservoir import PassiveReservoir
from .snapshot import Snapshot
from .taker import SnapshotTaker

Labels = Union[None, torch.Tensor, Sequence[torch.Tensor]]

_HOW = ("pass monitor.step(y=[y_1, ..., y_k]) with one label tensor per training forward since the last "
        "step, in order")


def pair_labels(
    rows: Sequence[Optional[int]], y: Labels
) -> Tuple[List[Optional[torch.Tensor]], Optional[str]]:
    """Labels for each training pass (by order) and ``None``, or all ``None`` and why the pairing cannot
    be proven. ``rows``: each pass's batch rows (``None``: unknown). Bad labels raise one clear error."""
    k = len(rows)
    none: List[Optional[torch.Tensor]] = [None] * k
    if y is None or k == 0:
        return none, None
    if isinstance(y, (list, tuple)):
        if len(y) != k:
            return none, (f"step(y=[...]) got {len(y)} label tensor(s) for {k} training forward(s) since the "
                          f"last step ({list(rows)} rows); I(T;Y) is not measured for this window: {_HOW}")
        labels = [as_labels(t.detach() if isinstance(t, torch.Tensor) else t,
                            what=f"monitor.step(y=[...])[{i}]") for i, t in enumerate(y)]
        for i, (r, lab) in enumerate(zip(rows, labels)):
            if r is not None and lab.shape[0] != r:
                raise ValueError(f"monitor.step(y=[...])[{i}] has {lab.shape[0]} labels but training forward "
                                 f"{i} of this step saw {r} samples; {_HOW}")
        return list(labels), None
    if k == 1:
        return [y], None  # the row count is checked as the batch enters the reservoir
    y = as_labels(y.detach() if isinstance(y, torch.Tensor) else y, what="monitor.step(y=...)")
    if None not in rows and y.shape[0] == sum(rows):  # type: ignore[arg-type]
        return list(torch.split(y, list(rows))), None  # type: ignore[arg-type]
    return none, (f"step(y=...) got one tensor of {y.shape[0]} labels for {k} training forwards since the "
                  f"last step ({list(rows)} rows): which rows they label cannot be proven, so I(T;Y) is not "
                  f"measured for this window; {_HOW}, or all their labels concatenated in order")


class PassiveWindow:
    """Arms the capture for the steps before a scheduled measurement and moves each captured training
    pass, with its labels, into the reservoir.

    Args:
        capture: The hooks (kept attached in passive mode, tracking training passes).
        taker: Filters outputs that are no per-sample representation.
        reservoir: The bounded store of rows.
        window: Steps pooled per measurement, at least.
        min_rows: Rows to pool per measurement: once the rows per step are known the window widens to
            ``ceil(min_rows / rows_per_step)`` steps.
        due: ``step -> bool``, the schedule.
        enabled: Whether this process captures at all (rank 0, or every rank when gathering).
        budget: The byte shares of ``memory_budget_mb`` (sets the reservoir's row cap at the first
            training forward).
        console: Where warnings go.
    """

    def __init__(
        self,
        capture: Capture,
        taker: SnapshotTaker,
        reservoir: PassiveReservoir,
        *,
        window: int,
        min_rows: int,
        due: Callable[[int], bool],
        enabled: bool,
        budget: PassiveBudget,
        console: Console,
    ) -> None:
        self.capture = capture
        self.taker = taker
        self.reservoir = reservoir
        self.base_window = window
        self.min_rows = min_rows
        self.due = due
        self.enabled = enabled
        self.budget = budget
        self.console = console
        self.batch_rows = 0  # training rows per step (all micro-batches), once seen
        self.requested_rows = reservoir.max_rows
        self._learning = False
        self._planned = False
        self._dropped = 0  # passes of this window over the byte share (counted, not stored)
        capture.track_passes(taker.model, budget.first_step_bytes)
        capture.projection_limit_bytes = budget.projection_bytes

    @property
    def window(self) -> int:
        if not self.batch_rows:
            return self.base_window
        return max(self.base_window, -(-self.min_rows // self.batch_rows))

    def arm_for(self, next_step: int) -> None:
        due = self.enabled and any(self.due(s) for s in range(next_step, next_step + self.window))
        # Until the batch size is known (it sets the window), capture one step just to learn it.
        self._learning = self.enabled and not due and not self.batch_rows
        if due or self._learning:
            self.capture.arm()
        else:
            self.capture.disarm()
            self.capture.clear()

    def collect(self, y: Labels, step: int) -> int:
        """Move this step's training passes and their labels into the reservoir (outside a window: only
        the rows per step are learnt). Returns the rows moved."""
        if not self.capture.armed:
            return 0
        passes = [(info, self.taker.batch_only(acts)) for info, acts in self.capture.take_passes()]
        if passes and not self.batch_rows:
            self.batch_rows = sum(info.rows or 0 for info, _ in passes)
        if passes and not self._planned:
            self._plan(passes)
        if self._learning:
            return sum(info.rows or 0 for info, acts in passes if acts)
        if not passes:
            if y is not None:
                self.console.warn_once(("no_training_forward",), (
                    f"step {step}: monitor.step(y=...) got labels but no training forward was captured since "
                    "the last step (grad enabled and the model in training mode); were the forwards run "
                    "under no_grad or in eval mode?"))
            return 0
        labels, problem = pair_labels([info.rows for info, _ in passes], y)
        if problem is not None:
            self.console.warn_once(("pairing",), f"step {step}: {problem}")
            self.reservoir.mark_labels_missing(problem, said=True)
        moved = 0
        for (info, acts), lab in zip(passes, labels):
            self._dropped += int(info.dropped)
            if info.dropped or not acts:
                continue
            if self.reservoir.layers and set(acts) != self.reservoir.layers:
                self.console.warn_once(("passive_layers",), (
                    f"step {step}: a training forward reached layers {sorted(acts)}, the window's others "
                    f"{sorted(self.reservoir.layers)}; that forward is not pooled"))
                continue
            self.reservoir.add(acts, lab, step)
            moved += int(next(iter(acts.values())).shape[0])
        return moved

    def _plan(self, passes: List[Tuple[PassInfo, Dict[str, torch.Tensor]]]) -> None:
        """Cap the reservoir's rows to its share of the budget, now that the widths are known."""
        self._planned = True
        acts = next((a for _, a in passes if a), None)
        if acts is None:
            return
        row_bytes = sum(t[0].numel() * t.element_size() for t in acts.values()) + 8  # + the label
        chunks = [t.numel() * t.element_size() for _, a in passes for t in a.values()]
        passes_share = self.budget.pass_bytes(sum(chunks))
        self.capture.pass_limit_bytes = passes_share
        rows, note = self.budget.reservoir_rows(self.requested_rows, row_bytes, self.capture.projection_bytes,
                                                passes_share, max(chunks))
        self.reservoir.max_rows = max(rows, 1)
        self.reservoir.cap_note = note
        if note is not None:
            self.console.warn_once(("reservoir_cap",), note)

    def annotate(self, snapshot: Snapshot) -> None:
        """Say in the snapshot what limited this window: fewer than ``min_rows`` rows, passes dropped for
        memory, the reservoir's cap."""
        n = snapshot.n_samples
        if 0 < n < self.min_rows:
            snapshot.info["rows_note"] = (
                f"{n} rows pooled (fewer than min_rows={self.min_rows}): the window was {self.window} "
                f"step(s); estimates are capped at log2({n}) bits. Raise passive_window or max_samples, "
                "or give a probe."
            )
        if self._dropped:
            snapshot.info["passes_dropped"] = (
                f"{self._dropped} training forward(s) of the window were not pooled: one step's captured "
                f"outputs may take {(self.capture.pass_limit_bytes or 0) / 2**20:.1f} MiB of "
                "memory_budget_mb (raise it)")
            self._dropped = 0
        if self.reservoir.cap_note is not None:
            snapshot.info["reservoir_note"] = self.reservoir.cap_note

    def state(self) -> Dict[str, Any]:
        return {"batch_rows": self.batch_rows}
