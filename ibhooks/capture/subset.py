"""Choosing which rows of a probe larger than ``max_samples`` are kept: a seeded random subset,
stratified by label when labels are given, never the first rows (class-sorted data would lose classes).
"""

from __future__ import annotations

from typing import Optional

import torch


def subset_rows(n: int, m: int, seed: int, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``m`` of ``n`` row indices (ascending, int64, CPU), drawn with ``seed``.

    With ``labels`` (length ``n``) each class keeps its share of the rows: ``floor(m * n_c / n)``,
    the rows left over going to the classes with the largest remainders (so every class with at least
    ``n / m`` rows is kept). Uses its own generator: the global RNG is not touched.
    """
    if not 0 < m <= n:
        raise ValueError(f"cannot take {m} of {n} rows")
    gen = torch.Generator().manual_seed(int(seed))
    if m == n:
        return torch.arange(n)
    if labels is None:
        return torch.randperm(n, generator=gen)[:m].sort().values
    classes, inverse = torch.unique(labels.detach().cpu().reshape(-1), return_inverse=True)
    counts = torch.bincount(inverse, minlength=len(classes))
    share = counts.double() * m / n
    quota = share.floor().long()
    left = m - int(quota.sum())
    if left:
        # largest remainders first; ties by class order (stable sort)
        order = torch.argsort(share - quota.double(), descending=True, stable=True)
        quota[order[:left]] += 1
    key = torch.rand(n, generator=gen)
    by_key = torch.argsort(key)
    order = by_key[torch.argsort(inverse[by_key], stable=True)]  # rows grouped by class, random within
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n) - starts[inverse[order]]
    keep = order[rank < quota[inverse[order]]]
    return keep.sort().values


__all__ = ["subset_rows"]
