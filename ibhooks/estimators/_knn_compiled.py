"""numpy face of the optional compiled kNN kernel (``ibhooks/estimators/knn_kernel/``, C) on CPU.

The kernel gives the same max-norm distances and counts as the blocked brute force (its pruning is
exact; see the C files' headers), 2-3x faster than scipy's cKDTree for k-NN queries and 2-3x faster
than the rank-space counts for 2-D radius counts (benchmarks/RESULTS.md). It is built by ``setup.py``
when a C compiler is present at install time; :data:`AVAILABLE` says whether it was, and the callers
in :mod:`._knn_tree` fall back to scipy otherwise.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

try:
    from . import _knn_kernel as _kernel
except ImportError:  # not built (no compiler at install time): callers use scipy's cKDTree
    _kernel = None

#: Whether the compiled kernel was built and imports.
AVAILABLE = _kernel is not None

#: The kernel keeps each query's k best in a fixed array: larger k goes to scipy.
MAX_K = 64


def _points(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def nearest(x: np.ndarray, k: int, with_rows: bool = False) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Per row of ``x`` (n, d), the max-norm distances to its ``k`` nearest other rows, ascending (n, k),
    and with ``with_rows`` their row numbers (n, k) int64 (a tie at the k-th distance keeps either row)."""
    pts = _points(x)
    n, d = pts.shape
    dist = np.empty((n, k), dtype=np.float64)
    rows = np.empty((n, k), dtype=np.int64) if with_rows else None
    _kernel.nearest(pts, n, d, int(k), dist, rows)
    return dist, rows


def count_within(x: np.ndarray, radius: np.ndarray, strict: bool) -> np.ndarray:
    """Per row i of ``x`` (n, d), ``#{j: dist(x_i, x_j) < radius_i}`` (``strict``) or ``<= radius_i``, the row
    itself included (int64)."""
    pts = _points(x)
    n, d = pts.shape
    out = np.empty(n, dtype=np.int64)
    _kernel.count_within(pts, n, d, np.ascontiguousarray(radius, dtype=np.float64), bool(strict), out)
    return out


def rank_box_counts(p: np.ndarray, xlo: np.ndarray, xhi: np.ndarray, ylo: np.ndarray, yhi: np.ndarray
                    ) -> np.ndarray:
    """For a permutation ``p`` of the x-ranks to y-ranks and per query the runs ``[xlo, xhi)`` and
    ``[ylo, yhi)`` of ranks, ``#{a in [xlo, xhi): ylo <= p[a] < yhi}`` (int64; a Fenwick-tree sweep,
    O(n log n))."""
    args = [np.ascontiguousarray(a, dtype=np.int64) for a in (p, xlo, xhi, ylo, yhi)]
    out = np.empty(args[0].shape[0], dtype=np.int64)
    _kernel.rank_box_counts(*args, out)
    return out


def run_bounds(s: np.ndarray, v: np.ndarray, r: np.ndarray, strict: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Per query ``v_i``, the run ``[lo_i, hi_i)`` of the ascending values ``s`` with ``|v_i - s_j| < r_i``
    (``strict``) or ``<= r_i``: a binary search on that floating-point test itself, so the ends are exact."""
    s, v, r = (np.ascontiguousarray(a, dtype=np.float64) for a in (s, v, r))
    lo, hi = np.empty(v.shape[0], dtype=np.int64), np.empty(v.shape[0], dtype=np.int64)
    _kernel.run_bounds(s, v, r, bool(strict), lo, hi)
    return lo, hi


def class_kth_1d(s: np.ndarray, labels: np.ndarray, k_i: np.ndarray) -> np.ndarray:
    """Rows sorted by (label, value): per row, the distance to its ``k_i``-th nearest other row of the same
    label (``inf`` where ``k_i < 1``); O(k) per row by merging the two sides."""
    s = np.ascontiguousarray(s, dtype=np.float64)
    out = np.empty(s.shape[0], dtype=np.float64)
    labels, k_i = (np.ascontiguousarray(a, dtype=np.int64) for a in (labels, k_i))
    _kernel.class_kth_1d(s, labels, k_i, out)
    return out
