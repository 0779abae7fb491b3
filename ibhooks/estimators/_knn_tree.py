"""KD-tree neighbour search for the kNN estimators on CPU (scipy ``cKDTree``, max-norm ``p=inf``), and
a sorted search for one-dimensional data.

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
one contiguous run, found by a vectorised binary search on the same predicate ``|x_i - x_j| < r``
(``fl(x_j - x_i)`` is monotone in ``x_j``), so those counts are exact as well. They run on any device.

scipy is the ``stats`` extra: :func:`tree_available` says whether the tree path can run.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch

try:  # scipy is an optional extra; without it the estimators use the blocked brute force
    from scipy.spatial import cKDTree
except ImportError:  # pragma: no cover - exercised by monkeypatching TREE_AVAILABLE in the tests
    cKDTree = None

#: Whether scipy's cKDTree can be imported.
TREE_AVAILABLE = cKDTree is not None


def tree_available() -> bool:
    return TREE_AVAILABLE


def _workers() -> int:
    return max(1, torch.get_num_threads())


def _np(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to("cpu", torch.float64).numpy())


def _kth_distance_1d(x: torch.Tensor, k: int) -> torch.Tensor:
    """k-th nearest other value's distance for a column ``x`` (n, 1): among the k on either side."""
    v = x[:, 0].to(torch.float64)
    n = v.shape[0]
    s, order = torch.sort(v)
    pos = torch.arange(n, device=v.device)
    offsets = torch.cat([torch.arange(-k, 0, device=v.device), torch.arange(1, k + 1, device=v.device)])
    idx = pos.unsqueeze(1) + offsets.unsqueeze(0)  # (n, 2k)
    valid = (idx >= 0) & (idx < n)
    d = (s[idx.clamp(0, n - 1)] - s.unsqueeze(1)).abs().masked_fill(~valid, float("inf"))
    out = torch.empty_like(v)
    out[order] = d.kthvalue(k, dim=1).values
    return out


def _first_true(pred, n: int, size: int, device: torch.device) -> torch.Tensor:
    """Per query, the first index in 0..n where the monotone (False...True) ``pred(idx)`` holds
    (n when it never does): a vectorised binary search, log2(n) steps over all queries at once."""
    lo = torch.zeros(size, dtype=torch.int64, device=device)
    hi = torch.full((size,), n, dtype=torch.int64, device=device)
    for _ in range(max(1, n.bit_length())):  # loop over halvings, not samples
        mid = (lo + hi) // 2
        ok = pred(mid.clamp(max=n - 1)) & (mid < n)
        hi = torch.where(ok, mid, hi)
        lo = torch.where(ok, lo, mid + 1)
    return hi


def _count_closer_1d(x: torch.Tensor, radius: torch.Tensor, strict: bool) -> torch.Tensor:
    v = x[:, 0].to(torch.float64)
    r = radius.to(v.device, torch.float64)
    n = v.shape[0]
    s = torch.sort(v).values
    if strict:  # j in [lo, hi): fl(v - s_j) < r and fl(s_j - v) < r
        lo = _first_true(lambda j: (v - s[j]) < r, n, n, v.device)
        hi = _first_true(lambda j: (s[j] - v) >= r, n, n, v.device)
    else:
        lo = _first_true(lambda j: (v - s[j]) <= r, n, n, v.device)
        hi = _first_true(lambda j: (s[j] - v) > r, n, n, v.device)
    return (hi - lo - 1).clamp_min(0)


def kth_distance(x: torch.Tensor, k: int, tree: Optional["cKDTree"] = None) -> torch.Tensor:
    """Max-norm distance of each row of ``x`` to its k-th nearest other row (float64)."""
    if x.shape[1] == 1 and tree is None:
        return _kth_distance_1d(x, k)
    xn = _np(x)
    tree = tree if tree is not None else cKDTree(xn)
    dist, _ = tree.query(xn, k=k + 1, p=np.inf, workers=_workers())
    return torch.from_numpy(np.ascontiguousarray(dist[:, k]))


def count_closer(x: torch.Tensor, radius: torch.Tensor, *, strict: bool) -> torch.Tensor:
    """Per row i, ``#{j != i: dist(x_i, x_j) < radius_i}`` (``strict``) or ``<= radius_i`` (int64)."""
    if x.shape[1] == 1:
        return _count_closer_1d(x, radius, strict)
    xn, r = _np(x), radius.detach().to("cpu", torch.float64).numpy()
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
    zn = _np(z)
    if algorithm == 1:
        eps = kth_distance(z, k, cKDTree(zn))
        return {"nx": count_closer(x, eps, strict=True), "ny": count_closer(y, eps, strict=True)}
    _, ind = cKDTree(zn).query(zn, k=k + 1, p=np.inf, workers=_workers())
    n = zn.shape[0]
    rows = np.arange(n)[:, None]
    is_self = ind == rows
    # drop the row itself; where duplicates pushed it out of the k+1, drop the last (tied) neighbour
    drop = np.where(is_self.any(1), is_self.argmax(1), k)
    keep = np.ones_like(ind, dtype=bool)
    keep[np.arange(n), drop] = False
    nb = torch.from_numpy(ind[keep].reshape(n, k))
    xs, ys = x.to("cpu", torch.float64), y.to("cpu", torch.float64)
    ex = (xs[nb] - xs.unsqueeze(1)).abs().amax(dim=(1, 2))
    ey = (ys[nb] - ys.unsqueeze(1)).abs().amax(dim=(1, 2))
    return {"nx": count_closer(x, ex, strict=False), "ny": count_closer(y, ey, strict=False)}


def ross_counts(x: torch.Tensor, y: torch.Tensor, k_i: torch.Tensor) -> torch.Tensor:
    """Ross' ``m_i = #{j: dist(x_i, x_j) < d_i}`` (the row itself included), ``d_i`` the distance to
    the ``k_i``-th nearest other row of the same class; rows alone in their class get ``n``."""
    n = x.shape[0]
    xs = x.to("cpu", torch.float64)
    y_cpu, k_cpu = y.to("cpu"), k_i.to("cpu")
    radius = torch.full((n,), float("inf"), dtype=torch.float64)
    for label in torch.unique(y_cpu).tolist():  # one tree per class (as scikit-learn); not per sample
        rows = (y_cpu == label).nonzero().flatten()
        kc = int(k_cpu[rows[0]])
        if kc < 1:
            continue
        radius[rows] = kth_distance(xs[rows], kc)
    m = count_closer(xs, radius, strict=True) + 1
    m[torch.isinf(radius)] = n
    return m
