"""Blocked pairwise-distance helpers shared by the KDE, noisy-channel, kNN and Rényi estimators.

Everything is O(n^2) work done in row blocks so that memory stays bounded: a block of ``b`` rows
against all ``n`` columns holds a few ``b x n`` float64 matrices at a time. The block height comes
from a byte budget, so n = 20,000 runs in the same memory as n = 2,000 (only slower).
"""
from __future__ import annotations

from typing import Iterator, Optional

import torch

#: Default byte budget for one block's temporaries (about 128 MiB).
DEFAULT_MAX_BLOCK_BYTES = 1 << 27


def block_rows(n_cols: int, *, max_bytes: int = DEFAULT_MAX_BLOCK_BYTES, copies: int = 4,
               block_size: Optional[int] = None) -> int:
    """Rows per block so that ``copies`` float64 matrices of shape (rows, n_cols) fit in ``max_bytes``."""
    if block_size is not None:
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        return int(block_size)
    if max_bytes < 1:
        raise ValueError(f"max_block_bytes must be >= 1, got {max_bytes}")
    return max(1, int(max_bytes) // (8 * copies * max(n_cols, 1)))


def blocks(n: int, rows: int) -> Iterator[slice]:
    """Consecutive row slices of height ``rows`` covering 0..n-1 (a loop over blocks, not samples)."""
    for start in range(0, n, rows):
        yield slice(start, min(start + rows, n))


def sq_dists(a: torch.Tensor, b: torch.Tensor, b_sq: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Squared Euclidean distances (len(a), len(b)) via ``|a|^2 + |b|^2 - 2 a.b`` in the inputs' dtype.

    Inputs should be centred (subtract a common mean) to limit cancellation; the result is clamped at 0.
    """
    a_sq = (a * a).sum(1, keepdim=True)
    if b_sq is None:
        b_sq = (b * b).sum(1)
    d = (a @ b.T).mul_(-2.0).add_(a_sq).add_(b_sq.unsqueeze(0))  # one (len(a), len(b)) buffer
    return d.clamp_min_(0.0)


def centred64(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float64, minus its column means (distances are unchanged, cancellation is smaller)."""
    t = t.to(torch.float64)
    return t - t.mean(0, keepdim=True)


def max_dists(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Max-norm (Chebyshev) distances (len(a), len(b))."""
    if a.shape[1] == 1:
        return (a - b.T).abs()
    return torch.cdist(a, b, p=float("inf"))


def flat_rows(t: torch.Tensor) -> torch.Tensor:
    """An activation (n, ...) as (n, D) rows (a view when possible): pairwise distances need no reduction."""
    return t.reshape(t.shape[0], -1) if isinstance(t, torch.Tensor) and t.dim() > 2 else t


def centred_gram(t: torch.Tensor, *, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES) -> torch.Tensor:
    """Gram matrix (n, n) of the column-centred rows of ``t`` (n, D), float64, over column blocks.

    Each block of columns is cast to float64 and centred on its own, so the extra memory is one
    (n, block) float64 slice beside the (n, n) result; the time is O(n^2 D).
    """
    n, dim = t.shape
    cols = max(1, int(max_block_bytes) // (8 * max(n, 1)))
    g = torch.zeros(n, n, dtype=torch.float64, device=t.device)
    for start in range(0, dim, cols):  # a loop over column blocks, not samples
        x = t[:, start:start + cols].to(torch.float64)
        x = x - x.mean(0, keepdim=True)
        g.addmm_(x, x.T)
    return g


class RowDistances:
    """Squared Euclidean distances between the rows of ``t`` (n, D), served one row block at a time.

    With D <= n they come from the centred float64 rows (memory n x D); with D > n from the n x n
    centred Gram matrix, accumulated over column blocks (:func:`centred_gram`), so a wide activation
    (tokens x hidden, C x H x W) needs no projection: memory O(n^2 + n x block), time O(n^2 D).

    Attributes:
        n, dim: Rows and columns of ``t``. via_gram: Distances come from the Gram matrix.
        mean_unit_var: Mean over the D units of each unit's variance over the rows (1/(n-1)).
    """

    def __init__(self, t: torch.Tensor, *, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES) -> None:
        self.n, self.dim = (int(s) for s in t.shape)
        self.via_gram = self.dim > self.n
        if self.via_gram:
            self._gram = centred_gram(t, max_block_bytes=max_block_bytes)
            self.sq = self._gram.diagonal().clone()
        else:
            self._points = centred64(t)
            self.sq = (self._points * self._points).sum(1)
        self.mean_unit_var = float(self.sq.sum()) / (max(self.n - 1, 1) * max(self.dim, 1))

    def rows(self, sl: slice) -> torch.Tensor:
        """Squared distances (rows in ``sl``, n), float64, clamped at 0: a fresh tensor."""
        if not self.via_gram:
            return sq_dists(self._points[sl], self._points, self.sq)
        d = self._gram[sl].mul(-2.0).add_(self.sq[sl].unsqueeze(1)).add_(self.sq.unsqueeze(0))
        return d.clamp_min_(0.0)

    def points(self) -> torch.Tensor:
        """Rows (n, r), r <= max(D, n), float64, with these pairwise distances.

        D <= n: the centred rows themselves. D > n: a Cholesky factor L of G + delta I (L L^T), with
        delta = 1e-9 x mean(diag G) (raised tenfold until the factorisation succeeds): every distance
        grows by 2 delta, about 2e-9 of a typical squared distance. Isotropic noise on these rows has
        the same law, in every distance it changes, as isotropic noise on the full rows.
        """
        if not self.via_gram:
            return self._points
        scale = max(float(self.sq.mean()), 1e-300)
        eye = torch.eye(self.n, dtype=torch.float64, device=self._gram.device)
        for power in range(9, 3, -1):
            factor, info = torch.linalg.cholesky_ex(self._gram + (scale * 10.0 ** -power) * eye)
            if int(info) == 0:
                return factor
        raise RuntimeError("the Gram matrix of this layer could not be factorised; check for huge values")
