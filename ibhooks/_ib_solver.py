"""The numerical core of :mod:`ibhooks.ib_bound`: iterative information-bottleneck updates (Tishby,
Pereira & Bialek 2000) over a beta sweep, several annealed chains at once, and the upper concave hull
of the points they reach.

Every point returned is the exact (I(X;T), I(T;Y)) of an encoder p(t|x) that the iterations found, so
each is achievable; the hull of achievable points is achievable too (time-sharing), so the curve is an
inner bound of the true IB curve that the annealing pushes up to it.

Vectorised float64 numpy over chains, X, T and Y; the only Python loops run over beta steps and
iterations. numpy, not torch: the tables are small (|X| merged symbols, a few hundred at most), and
torch's reductions open an OpenMP region per call, which on a loaded 2-core machine made the 13-symbol
SZT curve take 148 s instead of 8 s (measured); numpy's elementwise kernels use no thread pool.
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np

LN2 = math.log(2.0)
_TINY = 1e-300
_LOG_TINY = math.log(_TINY)
_MAX_GAPS = 32  # mid-betas per refinement round (2 chains each)


def xlogy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a log b with 0 log 0 = 0 (natural log)."""
    pos = a > 0
    return np.where(pos, a * np.log(np.where(pos, b, 1.0)), 0.0)


def entropy_bits(p: np.ndarray, axis: int = -1) -> np.ndarray:
    """Shannon entropy in bits along ``axis``."""
    return -xlogy(p, p).sum(axis) / LN2


def mutual_information_bits(joint: np.ndarray) -> float:
    """I(A;B) in bits of a joint table (A, B) summing to 1."""
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    return max(float(xlogy(joint, joint / np.maximum(pa * pb, _TINY)).sum()) / LN2, 0.0)


def _log_normalise(z: np.ndarray) -> np.ndarray:
    """log-softmax over the last axis."""
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _joint_ty(p_xt: np.ndarray, p_y_x: np.ndarray) -> np.ndarray:
    """p(t, y) = sum_x p(x, t) p(y|x), (C, T, Y)."""
    return np.matmul(p_xt.transpose(0, 2, 1), p_y_x)


def encoder_information(log_q: np.ndarray, p_x: np.ndarray, p_y_x: np.ndarray) -> np.ndarray:
    """(C, 2): (I(X;T), I(T;Y)) in bits of each chain's encoder ``log_q`` (C, X, T)."""
    q = np.exp(log_q)
    p_xt = p_x[None, :, None] * q  # (C, X, T)
    p_t = p_xt.sum(1)  # (C, T)
    i_xt = xlogy(p_xt, q / np.maximum(p_t[:, None, :], _TINY)).sum((1, 2)) / LN2
    p_ty = _joint_ty(p_xt, p_y_x)  # (C, T, Y)
    p_y = p_ty.sum(1, keepdims=True)
    i_ty = xlogy(p_ty, p_ty / np.maximum(p_t[:, :, None] * p_y, _TINY)).sum((1, 2)) / LN2
    return np.maximum(np.stack([i_xt, i_ty], 1), 0.0)


def _iterate(
    log_q: np.ndarray, beta: np.ndarray, p_x: np.ndarray, p_y_x: np.ndarray, max_iter: int, tol: float
) -> Tuple[np.ndarray, int]:
    """IB self-consistent updates at fixed ``beta`` (one per chain) until no encoder entry moves more
    than ``tol``: p(t|x) ~ p(t) exp(beta sum_y p(y|x) log p(y|t)) (the KL up to a per-x constant)."""
    it = 0
    q = np.exp(log_q)
    for it in range(1, max_iter + 1):
        p_xt = p_x[None, :, None] * q
        log_p_t = np.log(np.maximum(p_xt.sum(1), _TINY))  # (C, T)
        log_p_y_t = np.maximum(
            np.log(np.maximum(_joint_ty(p_xt, p_y_x), _TINY)) - log_p_t[:, :, None], _LOG_TINY
        )
        cross = np.matmul(p_y_x[None], log_p_y_t.transpose(0, 2, 1))  # (C, X, T): sum_y p(y|x) log p(y|t)
        log_q = _log_normalise(log_p_t[:, None, :] + beta[:, None, None] * cross)
        new = np.exp(log_q)
        moved = float(np.abs(new - q).max())
        q = new
        if moved < tol:
            break
    return log_q, it


def _lagrangian(points: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """I(X;T) - beta I(T;Y): what the IB updates at ``beta`` minimise (lower is better)."""
    return points[:, 0] - beta * points[:, 1]


def ib_points(
    p_x: np.ndarray,
    p_y_x: np.ndarray,
    betas: np.ndarray,
    *,
    restarts: int,
    max_iter: int,
    tol: float,
    noise: float,
    seed: int,
    resolution: float,
    refine: int,
) -> Tuple[np.ndarray, int]:
    """Points (I(X;T), I(T;Y)) in bits reached over the beta sweep, and the total iteration count.

    ``restarts`` chains anneal beta upward from random encoders (perturbed at every step so clusters
    can split); one chain anneals downward from the identity encoder (clusters merge). |T| = |X|, which
    suffices for every point of the curve (Caratheodory on the Lagrangian's convex envelope). Then up to
    ``refine`` rounds insert the geometric mid-beta between neighbouring best points more than
    ``resolution`` bits apart, started from both neighbours' encoders (all gaps of a round at once):
    near a phase transition I(X;T) moves fast in beta, and a fixed grid would leave long chords.
    """
    n = p_x.size
    rng = np.random.default_rng(int(seed))
    eye = np.full((n, n), math.log(1e-8 / max(n - 1, 1)))
    np.fill_diagonal(eye, math.log1p(-1e-8))
    log_q = _log_normalise(np.concatenate([0.1 * rng.standard_normal((restarts, n, n)), eye[None]]))
    steps = betas.size
    order = np.stack([betas] * restarts + [betas[::-1]])  # (C, S): up-chains then the down-chain
    reached = np.zeros((steps, restarts + 1, 2))
    encoders = np.zeros((steps, restarts + 1, n, n))
    total = 0
    for s in range(steps):
        if s and noise > 0:  # perturb the up-chains so a cluster can split when beta crosses a transition
            log_q[:restarts] += noise * rng.standard_normal((restarts, n, n))
            log_q = _log_normalise(log_q)
        log_q, it = _iterate(log_q, order[:, s], p_x, p_y_x, max_iter, tol)
        total += it
        reached[s] = encoder_information(log_q, p_x, p_y_x)
        encoders[s] = log_q
    # the down-chain visited the betas in reverse: put its results at their beta
    reached[:, -1], encoders[:, -1] = reached[::-1, -1].copy(), encoders[::-1, -1].copy()
    points = [reached.reshape(-1, 2)]
    best = _lagrangian(reached.reshape(-1, 2), np.repeat(betas, restarts + 1)).reshape(steps, -1).argmin(1)
    idx = np.arange(steps)
    beta_b, point_b, enc_b = betas.copy(), reached[idx, best], encoders[idx, best]
    for _ in range(refine):
        dist = np.linalg.norm(point_b[1:] - point_b[:-1], axis=1)
        gaps = np.flatnonzero(dist > resolution)
        if not gaps.size:
            break
        gaps = np.sort(gaps[np.argsort(-dist[gaps], kind="stable")[:_MAX_GAPS]])  # the widest first
        g = gaps.size
        mid = np.sqrt(beta_b[gaps] * beta_b[gaps + 1])
        start = np.concatenate([enc_b[gaps] + noise * rng.standard_normal((g, n, n)), enc_b[gaps + 1]])
        log_q, it = _iterate(_log_normalise(start), np.concatenate([mid, mid]), p_x, p_y_x, max_iter, tol)
        total += it
        pts = encoder_information(log_q, p_x, p_y_x)
        points.append(pts)
        pick = (_lagrangian(pts[g:], mid) < _lagrangian(pts[:g], mid)).astype(int) * g + np.arange(g)
        order_b = np.argsort(np.concatenate([beta_b, mid]), kind="stable")
        beta_b = np.concatenate([beta_b, mid])[order_b]
        point_b = np.concatenate([point_b, pts[pick]])[order_b]
        enc_b = np.concatenate([enc_b, log_q[pick]])[order_b]
    return np.concatenate(points), total


def upper_concave_hull(points: np.ndarray) -> np.ndarray:
    """Vertices of the upper concave hull of ``points`` (m, 2), left to right (Andrew's monotone chain),
    collinear vertices dropped."""
    pts = np.unique(np.round(np.asarray(points, dtype=np.float64), 12), axis=0)
    pts = pts[np.lexsort((-pts[:, 1], pts[:, 0]))]
    hull: list = []
    for p in pts:
        if hull and p[0] == hull[-1][0]:
            continue  # same x, lower y (sorted by y descending within an x)
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) >= 0:  # hull[-1] on or below the chord
                hull.pop()
            else:
                break
        hull.append(p)
    return np.array(hull)


def thin_concave(hull: np.ndarray, tol: float) -> np.ndarray:
    """Drop vertices of a concave chain while every dropped vertex stands less than ``tol`` bits above
    the chord that replaces it (greedy, left to right). The thinned chain lies under the original one
    by less than ``tol``: still achievable, still concave."""
    x, y = hull[:, 0], hull[:, 1]
    keep, a, m = [0], 0, len(hull)
    while a < m - 1:
        j = a + 1
        while j + 1 < m:
            xs = x[a + 1 : j + 1]
            chord = y[a] + (xs - x[a]) * (y[j + 1] - y[a]) / max(x[j + 1] - x[a], 1e-300)
            if float((y[a + 1 : j + 1] - chord).max()) >= tol:
                break
            j += 1
        keep.append(j)
        a = j
    return hull[keep]
