"""Passive mode's bounded store of training-batch activations and their labels."""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch

from ..labels import as_labels


class PassiveReservoir:
    """A uniform random sample of at most ``max_rows`` rows of the training forwards of a window, each
    row with its own label, the same rows for every layer.

    Rows are kept by reservoir sampling (Algorithm R, vectorised per added batch): every row offered in
    the window is kept with the same probability ``max_rows / rows_seen``. Buffers of ``max_rows`` rows
    are allocated at the first add, so the reservoir never holds more than ``max_rows`` rows, also while
    a batch is added. Random draws come from the monitor's own generator (the user's streams are
    untouched). ``take()`` hands the contents over and empties it.
    """

    def __init__(self, max_rows: int, *, seed: int = 0) -> None:
        if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 1:
            raise ValueError(f"max_rows must be a positive integer, got {max_rows!r}")
        self.max_rows = max_rows
        #: why ``max_rows`` is lower than asked (e.g. the memory budget), said in the Record
        self.cap_note: Optional[str] = None
        self._gen = torch.Generator().manual_seed(int(seed))
        self._acts: Dict[str, torch.Tensor] = {}
        self._y: Optional[torch.Tensor] = None
        self._filled = 0
        self.rows_seen = 0
        self.labels_missing: Optional[str] = None
        self.missing_said = False
        self._labelled: Optional[bool] = None
        self.steps: List[int] = []

    @property
    def rows(self) -> int:
        return self._filled

    @property
    def layers(self) -> "set[str]":
        """The layers of the rows held (empty when empty)."""
        return set(self._acts)

    def nbytes(self) -> int:
        """Bytes held (the allocated buffers)."""
        total = sum(t.numel() * t.element_size() for t in self._acts.values())
        return total + (0 if self._y is None else self._y.numel() * self._y.element_size())

    def add(self, batch: Dict[str, torch.Tensor], y: Optional[torch.Tensor], step: int) -> None:
        """Add one forward pass's activations (equal row counts) and its labels (or ``None``)."""
        if not batch:
            return
        rows = {name: int(t.shape[0]) for name, t in batch.items()}
        if len(set(rows.values())) != 1:
            raise ValueError(f"layers captured different row counts {rows}")
        n = next(iter(rows.values()))
        device = next(iter(batch.values())).device
        if y is not None:
            y = as_labels(y.detach() if isinstance(y, torch.Tensor) else y, what="monitor.step(y=...)")
            if y.shape[0] != n:
                raise ValueError(
                    f"monitor.step(y=...) got {y.shape[0]} labels but the monitored forward pass saw {n} "
                    "samples; pass the labels of exactly the batch that was forwarded this step"
                )
            y = y.to(device)
        if self._labelled is not None and self._labelled != (y is not None):
            self.mark_labels_missing(
                "monitor.step(y=...) got labels on some steps of the window only; I(T;Y) is not measured "
                "for this window (pass y at every step, or at none)")
        self._labelled = y is not None if self._labelled is None else self._labelled
        if not self._acts:
            self._allocate(batch, with_labels=y is not None and self.labels_missing is None)
        if set(batch) != set(self._acts):
            raise ValueError(f"layers captured different row counts: {sorted(batch)} vs {sorted(self._acts)}")
        dst, src = self._positions(n)
        for name, t in batch.items():
            self._acts[name][dst] = t[src.to(t.device)]
        if self._y is not None and y is not None:
            self._y[dst] = y[src.to(y.device)]
        self.steps.append(int(step))

    def _allocate(self, batch: Dict[str, torch.Tensor], with_labels: bool) -> None:
        for name, t in batch.items():
            self._acts[name] = torch.empty((self.max_rows, *t.shape[1:]), dtype=t.dtype, device=t.device)
        device = next(iter(batch.values())).device
        self._y = torch.empty(self.max_rows, dtype=torch.long, device=device) if with_labels else None

    def _positions(self, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Algorithm R for ``n`` new rows at once: (buffer slots, rows of the batch) to write. Row ``g`` of
        the stream (0-based) fills a free slot, or replaces slot ``j ~ U{0..g}`` if ``j < max_rows``; of
        several rows drawing one slot the last wins, exactly as one row at a time would."""
        free = min(n, self.max_rows - self._filled)
        direct = torch.arange(free)
        slots, rows = [self._filled + direct], [direct]
        rest = torch.arange(free, n)
        if rest.numel():
            g = (self.rows_seen + rest).double()
            u = torch.rand(rest.numel(), generator=self._gen, dtype=torch.float64)
            j = torch.floor(u * (g + 1)).long()
            hit = j < self.max_rows
            j, src = j[hit], rest[hit]
            if j.numel():
                last = torch.full((self.max_rows,), -1, dtype=torch.long).scatter_reduce(
                    0, j, src, reduce="amax")
                keep = last >= 0
                slots.append(torch.nonzero(keep).flatten())
                rows.append(last[keep])
        self._filled += free
        self.rows_seen += n
        dst, src = torch.cat(slots), torch.cat(rows)
        device = next(iter(self._acts.values())).device
        return dst.to(device), src

    def mark_labels_missing(self, reason: str, *, said: bool = False) -> None:
        """I(T;Y) cannot be measured for this window (the first reason is kept); the labels are dropped.
        ``said``: the caller has already warned about it."""
        if self.labels_missing is None:
            self.labels_missing, self.missing_said = reason, said
        self._y = None

    def contents(self) -> "tuple[Dict[str, torch.Tensor], Optional[torch.Tensor]]":
        """The activations and labels held now (not emptied)."""
        f = self._filled
        acts = {name: t[:f] for name, t in self._acts.items()}
        return acts, (None if self._y is None else self._y[:f])

    def replace(self, acts: Dict[str, torch.Tensor], y: Optional[torch.Tensor]) -> None:
        """Hold ``acts``/``y`` instead (e.g. the rows of every rank): a uniform subset of ``max_rows``."""
        rows = int(next(iter(acts.values())).shape[0]) if acts else 0
        keep = torch.arange(rows)
        if rows > self.max_rows:
            keep = torch.randperm(rows, generator=self._gen)[: self.max_rows].sort().values
        self._acts = {name: t[keep.to(t.device)] for name, t in acts.items()}
        self._y = None if y is None else y[keep.to(y.device)]
        self._filled = min(rows, self.max_rows)
        self.rows_seen = max(self.rows_seen, rows)

    @property
    def labels_incomplete(self) -> bool:
        """Labels cannot be paired with every pooled row (so none are used): see ``labels_missing``."""
        return self.labels_missing is not None

    def take(self) -> "tuple[Dict[str, torch.Tensor], Optional[torch.Tensor], List[int]]":
        """(activations, labels or None, steps pooled) and empty the reservoir."""
        acts, y = self.contents()
        out = (acts, y, self.steps)
        self.clear()
        return out

    def clear(self) -> None:
        self._acts, self._y, self.steps = {}, None, []
        self._filled = self.rows_seen = 0
        self.labels_missing, self._labelled = None, None

    def state_dict(self) -> Dict[str, object]:
        return {"generator": self._gen.get_state()}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        if "generator" in state:
            self._gen.set_state(state["generator"])  # type: ignore[arg-type]
