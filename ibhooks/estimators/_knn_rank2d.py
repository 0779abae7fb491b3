"""Exact two-dimensional max-norm box counts in rank space, for the kNN estimators on CPU (numpy).

A max-norm ball in two dimensions is the box ``[x_i -+ r_i] x [y_i -+ r_i]``, and ``max(|dx|, |dy|) < r``
holds exactly when both ``|dx| < r`` and ``|dy| < r`` do (the max of two floats is one of them). Along
each axis the rows inside form one contiguous run of ranks, found exactly (strict or closed) by
:func:`._knn_sorted.run_bounds`. In rank space the rows are a permutation ``p`` (x-rank -> y-rank), and
the count is the number of x-ranks ``a`` in ``[xlo, xhi)`` with ``p[a]`` in ``[ylo, yhi)``.

Blocks of ``B`` consecutive ranks on both axes make a small summed-area table of counts per
(x-block, y-block). Each query's x-run splits into whole x-blocks and at most two partial ends of
fewer than ``B`` ranks; within the whole x-blocks its y-run splits the same way. So

    count = SAT(whole x-blocks, whole y-blocks)
          + #{y-ranks in the partial y-ends whose x-rank lies in the whole x-blocks}
          + #{x-ranks in the partial x-ends whose y-rank lies in the y-run}

with no row counted twice, and each partial end checked exactly with a fixed-width gather of ``B - 1``
ranks (no Python loop over samples). Work is O(n log n) for the sorts plus O(n B + (n / B)^2)
(:func:`block_size` picks ``B``).

Where the compiled kernel was built (:mod:`._knn_compiled`), the rank boxes are counted by its Fenwick
sweep instead (O(n log n), 3-5x faster at n = 16,000); the runs, hence the exactness, are the same.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import _knn_compiled
from ._knn_sorted import run_bounds


def block_size(n: int) -> int:
    """Ranks per block: ``0.05 n^(2/3)`` within [8, 64]. The best measured on CPU (8 at n = 2,000, 32 at
    16,000): the table's cumulative sums and its gathers cost more per cell than the ends' passes, and
    more once it leaves the cache, so the block grows faster than the ``n^(1/3)`` of operation counts."""
    return int(min(64, max(8, round(0.05 * n ** (2.0 / 3.0)))))


def _axis(v: np.ndarray, r: np.ndarray, strict: bool) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ranks of ``v`` (n,) and, per row, the exact run ``[lo, hi)`` of ranks within ``r`` of it."""
    n = v.shape[0]
    order = np.argsort(v)  # any order of tied values: runs are defined by value
    s = v[order]
    lo_s, hi_s = run_bounds(s, s, r[order], strict)  # queries in sorted order: searchsorted is faster
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    lo, hi = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    lo[order], hi[order] = lo_s, hi_s
    return rank, lo, hi


def _ends(lo: np.ndarray, hi: np.ndarray, b: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                          np.ndarray]:
    """Split runs ``[lo, hi)`` of ranks into whole blocks ``[b0, b1)`` and the partial ends ``[lo, e0)`` and
    ``[s1, hi)`` (each shorter than ``b``); a run inside one block is all left end."""
    b0 = -(-lo // b)
    b1 = np.maximum(hi // b, b0)
    e0 = np.minimum(b0 * b, hi)
    s1 = np.maximum(b1 * b, e0)
    return b0, b1, e0, s1, hi


def _in_window(start: np.ndarray, stop: np.ndarray, values: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               width: int) -> np.ndarray:
    """Per row, ``#{t in [start, stop): lo <= values[t] < hi}`` (int32 arrays) for runs of at most ``width``
    ranks. The loop runs over the ``width`` offsets, each step one vectorised pass over all rows (n-long
    int32 buffers stay in cache; an (n, width) gather measured ~5x slower)."""
    rows = start.shape[0]
    acc = np.zeros(rows, dtype=np.int32)
    if width <= 0 or values.shape[0] == 0:
        return acc
    last = values.shape[0] - 1
    length = stop - start
    span = (hi - lo).view(np.uint32)  # lo <= v < hi  <=>  (v - lo) as unsigned < hi - lo (hi >= lo)
    idx, tmp, v = start.copy(), np.empty_like(start), np.empty_like(start)
    hit, live = np.empty(rows, dtype=bool), np.empty(rows, dtype=bool)
    for t in range(width):
        np.minimum(idx, last, out=tmp)
        np.take(values, tmp, out=v)
        np.subtract(v, lo, out=v)
        np.less(v.view(np.uint32), span, out=hit)
        np.greater(length, t, out=live)
        hit &= live
        acc += hit
        idx += 1
    return acc


def box_counts(x: np.ndarray, y: np.ndarray, radius: np.ndarray, strict: bool,
               block: Optional[int] = None, compiled: Optional[bool] = None) -> np.ndarray:
    """``#{j != i: max(|x_i - x_j|, |y_i - y_j|) < radius_i}`` (``strict``) or ``<= radius_i``, for columns
    ``x``, ``y`` (n,) float64 (int64; the same floating-point tests as the brute force). ``compiled``
    (default: where built) counts the rank boxes with the compiled Fenwick sweep instead of the blocks."""
    n = x.shape[0]
    xr, xlo, xhi = _axis(x, radius, strict)
    yr, ylo, yhi = _axis(y, radius, strict)
    self_inside = (radius > 0) if strict else (radius >= 0)
    if _knn_compiled.AVAILABLE and compiled is not False:  # the compiled Fenwick sweep, O(n log n)
        p64 = np.empty(n, dtype=np.int64)
        p64[xr] = yr
        return _knn_compiled.rank_box_counts(p64, xlo, xhi, ylo, yhi) - self_inside
    b = int(block) if block else block_size(n)
    p = np.empty(n, dtype=np.int32)  # x-rank -> y-rank
    p[xr] = yr
    q = np.empty(n, dtype=np.int32)  # y-rank -> x-rank
    q[yr] = xr
    nb = -(-n // b)
    # table[j, i] = #{x-block < i, y-block < j}; both cumulative sums run along rows (a cumsum down
    # the columns of a C array measured ~5x slower), hence the transposed copy between them
    cells = np.bincount((xr // b) * nb + yr // b, minlength=nb * nb).astype(np.int32).reshape(nb, nb)
    table = np.zeros((nb + 1, nb + 1), dtype=np.int32)
    table[1:, 1:] = np.ascontiguousarray(cells.cumsum(1, dtype=np.int32).T).cumsum(1, dtype=np.int32)
    bx0, bx1, xe0, xs1, _ = _ends(xlo, xhi, b)
    by0, by1, ye0, ys1, _ = _ends(ylo, yhi, b)
    # the partial ends run on int32 ranks (n < 2^31): half the memory traffic of int64
    xlo, xhi, xe0, xs1, ylo, yhi, ye0, ys1, wx0, wx1 = (a.astype(np.int32) for a in (
        xlo, xhi, xe0, xs1, ylo, yhi, ye0, ys1, bx0 * b, bx1 * b))
    count = (table[by1, bx1] - table[by1, bx0]) - (table[by0, bx1] - table[by0, bx0])
    # partial y-ends inside the whole x-blocks: their x-rank in [bx0 * b, bx1 * b)
    count += _in_window(ylo, ye0, q, wx0, wx1, b - 1)
    count += _in_window(ys1, yhi, q, wx0, wx1, b - 1)
    # partial x-ends over the whole y-run
    count += _in_window(xlo, xe0, p, ylo, yhi, b - 1)
    count += _in_window(xs1, xhi, p, ylo, yhi, b - 1)
    return count.astype(np.int64) - self_inside
