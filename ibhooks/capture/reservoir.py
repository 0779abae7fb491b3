"""Passive mode's bounded store of training-batch activations and their labels."""

from __future__ import annotations

from typing import Dict, List, Optional

import torch

from ..labels import as_labels


class PassiveReservoir:
    """Rows of captured training batches, paired with their labels, at most ``max_rows`` of them.

    When full, a uniform random subset is kept (the same rows for every layer), drawn from the
    monitor's own generator, so the user's random streams are untouched. ``take()`` hands the
    contents over and empties it.
    """

    def __init__(self, max_rows: int, *, seed: int = 0) -> None:
        if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 1:
            raise ValueError(f"max_rows must be a positive integer, got {max_rows!r}")
        self.max_rows = max_rows
        self._gen = torch.Generator().manual_seed(int(seed))
        self._acts: Dict[str, torch.Tensor] = {}
        self._y: Optional[torch.Tensor] = None
        self._labels_complete = True
        self.steps: List[int] = []

    @property
    def rows(self) -> int:
        return int(next(iter(self._acts.values())).shape[0]) if self._acts else 0

    def nbytes(self) -> int:
        total = sum(t.numel() * t.element_size() for t in self._acts.values())
        return total + (0 if self._y is None else self._y.numel() * self._y.element_size())

    def add(self, batch: Dict[str, torch.Tensor], y: Optional[torch.Tensor], step: int) -> None:
        """Add one forward pass's activations (equal row counts) and its labels (or ``None``)."""
        if not batch:
            return
        n = next(iter(batch.values())).shape[0]
        rows = {name: int(t.shape[0]) for name, t in batch.items()}
        if len(set(rows.values())) != 1:
            raise ValueError(f"layers captured different row counts {rows}")
        if y is not None:
            y = as_labels(y.detach() if isinstance(y, torch.Tensor) else y, what="monitor.step(y=...)")
            if y.shape[0] != n:
                raise ValueError(
                    f"monitor.step(y=...) got {y.shape[0]} labels but the monitored forward pass saw {n} samples; "
                    "pass the labels of exactly the batch that was forwarded this step"
                )
            y = y.to(next(iter(batch.values())).device)
        if self._acts and (y is None) != (self._y is None):
            self._labels_complete = False  # labels on some steps only: I(T;Y) cannot be paired
        for name, t in batch.items():
            self._acts[name] = torch.cat([self._acts[name], t]) if name in self._acts else t
        if not self._labels_complete:
            self._y = None
        elif y is not None:
            self._y = y if self._y is None else torch.cat([self._y, y])
        self.steps.append(int(step))
        self._subsample()

    def _subsample(self) -> None:
        """Keep a uniform random subset of ``max_rows`` rows (the same rows for every layer)."""
        total = self.rows
        if total > self.max_rows:
            keep = torch.randperm(total, generator=self._gen)[: self.max_rows].sort().values
            for name in self._acts:
                self._acts[name] = self._acts[name][keep.to(self._acts[name].device)]
            if self._y is not None:
                self._y = self._y[keep.to(self._y.device)]

    def contents(self) -> "tuple[Dict[str, torch.Tensor], Optional[torch.Tensor]]":
        """The activations and labels held now (not emptied)."""
        return self._acts, self._y

    def replace(self, acts: Dict[str, torch.Tensor], y: Optional[torch.Tensor]) -> None:
        """Hold ``acts``/``y`` instead (e.g. the rows of every rank), subsampled to ``max_rows``."""
        self._acts, self._y = dict(acts), y
        self._subsample()

    @property
    def labels_incomplete(self) -> bool:
        """Labels were given on some pooled steps only (so none are used)."""
        return not self._labels_complete

    def take(self) -> "tuple[Dict[str, torch.Tensor], Optional[torch.Tensor], List[int]]":
        """(activations, labels or None, steps pooled) and empty the reservoir."""
        out = (self._acts, self._y, self.steps)
        self.clear()
        return out

    def clear(self) -> None:
        self._acts, self._y, self.steps, self._labels_complete = {}, None, [], True

    def state_dict(self) -> Dict[str, object]:
        return {"generator": self._gen.get_state()}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        if "generator" in state:
            self._gen.set_state(state["generator"])  # type: ignore[arg-type]
