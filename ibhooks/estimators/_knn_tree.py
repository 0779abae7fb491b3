"""KD-tree neighbour search for the kNN estimators on CPU (max-norm), and a sorted search for
one-dimensional data. The tree is the compiled kernel of :mod:`._knn_compiled` where it was built
(2-3x faster), else scipy's ``cKDTree`` with ``p=inf``.

Same quantities as the blocked brute force in :mod:`ibhooks.estimators.knn`, computed in
O(n log n) at low dimension instead of O(n^2 d):

* the distance to the k-th nearest *other* row (the query asks for k+1 rows: the row itself, at
  distance 0, is the smallest of them, so column k is the k-th other row's distance even when
  duplicates tie with it);
* strict counts ``#{j != i: dist(i, j) < r_i}`` as ``query_ball_point`` with ``nextafter(r_i, 0)``
  (it counts ``dist <= r``, the row itself included), minus the row itself; ``r_i = 0`` gives 0;
* closed counts ``#{j != i: dist(i, j) <= r_i}``.

Max-norm distances are max |x_ik - x_jk|, the same floating-point operations in scipy and torch, so
the counts and distances, hence the estimates, are identical to the brute force's (checked in
``tests/estimators/test_knn_tree.py``). The one exception is KSG algorithm 2 when several rows tie
at the k-th joint distance: which k neighbours enter ``eps_x``, ``eps_y`` is then up to the search
(``topk`` or the tree). With the estimators' default tie-breaking jitter such ties have probability ~0.

One-dimensional searches (a 1-D marginal of KSG, a 1-D layer for Ross and KL) need no tree: on
sorted values the k nearest rows are among the k on either side, and the rows within a radius form
one contiguous run whose ends ``np.searchsorted`` finds and then corrects against the same predicate
``|x_i - x_j| < r`` (:mod:`._knn_sorted`), so those counts are exact as well, in O(n log n).
Two-dimensional radius counts (a 2-D marginal of KSG, a 2-D layer for Ross) from ``RANK2D_MIN_ROWS``
rows on use the same exact runs per axis and a blocked summed-area table in rank space
(:mod:`._knn_rank2d`): 2-4x faster than ``query_ball_point`` at n = 2,000-16,000. Tree queries are
made in the tree's own leaf order (:func:`_self_query`), 1.1-1.5x faster than in row order.

With the compiled kernel (:mod:`._knn_compiled`), every k-NN query of two or more dimensions and every
radius count of two or more dimensions runs on its k-d tree instead (exact as well: its pruning never
drops a row the brute force would count); one-dimensional searches stay sorted (faster still).

scipy is the ``stats`` extra: :func:`tree_available` says whether the tree path can run (the kernel or
scipy).
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
import torch

from . import _knn_compiled as _compiled
from . import _knn_rank2d as _rank2d
from . import _knn_sorted as _sorted

try:  # scipy is an optional extra; without it the estimators use the blocked brute force
    from scipy.spatial import cKDTree
except ImportError:  # pragma: no cover - exercised by monkeypatching TREE_AVAILABLE in the tests
    cKDTree = None

#: Whether scipy's cKDTree can be imported.
TREE_AVAILABLE = cKDTree is not None


#: Two-dimensional radius counts take the rank-space block counts (:mod:`._knn_rank2d`) from this many
#: rows on; below it cKDTree is faster (measured crossover 300-500 rows, 1 thread).
RANK2D_MIN_ROWS = 400


def uses_kernel(k: int = 1) -> bool:
    """Whether searches for ``k`` neighbours run on the compiled kernel (else scipy)."""
    return _compiled.AVAILABLE and k <= _compiled.MAX_K


def tree_available(k: int = 1) -> bool:
    """Whether the tree path can search for ``k`` neighbours: the kernel, or scipy."""
    return uses_kernel(k) or TREE_AVAILABLE


def _kth(pts: np.ndarray, k: int) -> np.ndarray:
    """Max-norm distance of each row of ``pts`` (n, d >= 2) to its k-th nearest other row."""
    if uses_kernel(k):
        return np.ascontiguousarray(_compiled.nearest(pts, k)[0][:, k - 1])
    return np.ascontiguousarray(_self_query(pts, [k + 1])[0][:, 0])


def _workers() -> int:
    return max(1, torch.get_num_threads())


def _np(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to("cpu", torch.float64).numpy())


def _col(x: torch.Tensor) -> np.ndarray:
    return _np(x)[:, 0].copy()


def _self_query(pts: np.ndarray, k) -> Tuple[np.ndarray, np.ndarray]:
    """``cKDTree(pts).query(pts, k, p=inf)`` with the queries made in the tree's own leaf order (neighbouring
    queries then walk the same nodes: 1.1-1.5x faster, measured) and the answers put back in row order."""
    tree = cKDTree(pts)
    order = tree.indices
    dist, ind = tree.query(pts[order], k=k, p=np.inf, workers=_workers())
    out_d, out_i = np.empty_like(dist), np.empty_like(ind)
    out_d[order], out_i[order] = dist, ind
    return out_d, out_i


def kth_distance(x: torch.Tensor, k: int) -> torch.Tensor:
    """Max-norm distance of each row of ``x`` to its k-th nearest other row (float64)."""
    if x.shape[1] == 1:
        return torch.from_numpy(_sorted.kth_distance_1d(_col(x), k))
    return torch.from_numpy(_kth(_np(x), k))


def count_closer(x: torch.Tensor, radius: torch.Tensor, *, strict: bool) -> torch.Tensor:
    """Per row i, ``#{j != i: dist(x_i, x_j) < radius_i}`` (``strict``) or ``<= radius_i`` (int64)."""
    r = radius.detach().to("cpu", torch.float64).numpy()
    if x.shape[1] == 1:
        return torch.from_numpy(_sorted.count_1d(_col(x), r, strict))
    xn = _np(x)
    if xn.shape[1] == 2 and (_compiled.AVAILABLE or xn.shape[0] >= RANK2D_MIN_ROWS):
        return torch.from_numpy(_rank2d.box_counts(xn[:, 0].copy(), xn[:, 1].copy(), r, strict))
    if uses_kernel():
        return torch.from_numpy(_compiled.count_within(xn, r, strict) - ((r > 0) if strict else (r >= 0)))
    query_r = np.nextafter(r, 0.0) if strict else r
    counts = cKDTree(xn).query_ball_point(xn, np.maximum(query_r, 0.0), p=np.inf, return_length=True,
                                          workers=_workers())
    counts = np.asarray(counts, dtype=np.int64) - 1  # the row itself
    if strict:
        counts[r <= 0] = 0
    return torch.from_numpy(counts)


def ksg_counts(x: torch.Tensor, y: torch.Tensor, k: int, algorithm: int) -> Dict[str, torch.Tensor]:
    """KSG marginal counts ``n_x``, ``n_y`` (algorithm 1: strict within the k-th joint distance;
    algorithm 2: closed within each marginal's largest distance to the k joint neighbours)."""
    z = torch.cat([x, y], dim=1)
    if algorithm == 1:
        eps = kth_distance(z, k)
        return {"nx": count_closer(x, eps, strict=True), "ny": count_closer(y, eps, strict=True)}
    zn = _np(z)  # algorithm 2 only: algorithm 1's kth_distance converts z itself
    if uses_kernel(k):
        nb = torch.from_numpy(_compiled.nearest(zn, k, with_rows=True)[1])
        return _ksg2_counts(x, y, nb)
    _, ind = _self_query(zn, k + 1)
    ind = ind.reshape(zn.shape[0], k + 1)
    n = zn.shape[0]
    rows = np.arange(n)[:, None]
    is_self = ind == rows
    # drop the row itself; where duplicates pushed it out of the k+1, drop the last (tied) neighbour
    drop = np.where(is_self.any(1), is_self.argmax(1), k)
    keep = np.ones_like(ind, dtype=bool)
    keep[np.arange(n), drop] = False
    return _ksg2_counts(x, y, torch.from_numpy(ind[keep].reshape(n, k)))


def _ksg2_counts(x: torch.Tensor, y: torch.Tensor, nb: torch.Tensor) -> Dict[str, torch.Tensor]:
    """KSG-2's closed marginal counts within each row's largest marginal distance to its joint neighbours
    ``nb`` (n, k)."""
    xs, ys = x.to("cpu", torch.float64), y.to("cpu", torch.float64)
    ex = (xs[nb] - xs.unsqueeze(1)).abs().amax(dim=(1, 2))
    ey = (ys[nb] - ys.unsqueeze(1)).abs().amax(dim=(1, 2))
    return {"nx": count_closer(x, ex, strict=False), "ny": count_closer(y, ey, strict=False)}


def ross_counts(x: torch.Tensor, y: torch.Tensor, k_i: torch.Tensor) -> torch.Tensor:
    """Ross' ``m_i = #{j: dist(x_i, x_j) < d_i}`` (the row itself included), ``d_i`` the distance to
    the ``k_i``-th nearest other row of the same class; rows alone in their class get ``n``."""
    xn = _np(x)
    n = xn.shape[0]
    labels, k_cpu = y.to("cpu").numpy(), k_i.to("cpu").numpy()
    if xn.shape[1] == 1:  # one sort by (label, value), no loop over classes
        radius = _sorted.class_kth_distance_1d(xn[:, 0].copy(), labels, k_cpu)
    else:  # one tree per class (as scikit-learn does); a loop over classes, not samples
        radius = np.full(n, np.inf)
        order = np.argsort(labels)
        bounds = np.flatnonzero(np.diff(labels[order])) + 1
        for rows in np.split(order, bounds):
            kc = int(k_cpu[rows[0]])
            if kc >= 1:
                radius[rows] = _kth(xn[rows], kc)
    m = count_closer(x, torch.from_numpy(radius), strict=True).numpy() + 1
    m[np.isinf(radius)] = n
    return torch.from_numpy(m)
