"""Pure statistics for the phase tests: Mann-Kendall (exact and normal), Theil-Sen with Sen's interval,
Holm / Benjamini-Hochberg adjustment, a running mean and a least-squares ramp fit.

No knowledge of Records or estimators: numbers in, numbers out. Every function is vectorised over
the pairs of a series (O(n^2) memory for n points; the phase tracker bounds n).
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from statistics import NormalDist
from typing import List, Optional, Sequence, Tuple

import numpy as np

_STD_NORMAL = NormalDist()
ALTERNATIVES = ("increasing", "decreasing", "two-sided")


def norm_sf(z: float) -> float:
    """Upper tail P(Z >= z) of the standard normal (accurate in the tails, via erfc)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


#: Byte ceiling of the pair-index cache (an entry count would let it grow with n^3: n = 128 points per
#: series hold 4 MiB in 64 entries, n = 1,024 would hold ~480 MiB).
PAIRS_CACHE_BYTES = 512 * 1024
_pairs_cache: "OrderedDict[int, Tuple[np.ndarray, np.ndarray]]" = OrderedDict()
_pairs_lock = threading.Lock()


def _pairs(n: int) -> Tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(n, 1)``, read-only, in an LRU cache of at most PAIRS_CACHE_BYTES (an entry larger
    than that is kept alone): the same n recurs at every decision of a series."""
    with _pairs_lock:
        hit = _pairs_cache.get(n)
        if hit is not None:
            _pairs_cache.move_to_end(n)
            return hit
    iu, ju = np.triu_indices(n, k=1)
    iu.setflags(write=False)
    ju.setflags(write=False)
    with _pairs_lock:
        _pairs_cache[n] = (iu, ju)
        while len(_pairs_cache) > 1 and pairs_cache_bytes() > PAIRS_CACHE_BYTES:
            _pairs_cache.popitem(last=False)
    return iu, ju


def pairs_cache_bytes() -> int:
    """Bytes held by the pair-index cache."""
    return sum(a.nbytes + b.nbytes for a, b in list(_pairs_cache.values()))


def tie_term(v: np.ndarray) -> float:
    """Sum over groups of tied values of t (t - 1) (2t + 5)."""
    s = np.sort(np.asarray(v, dtype=np.float64).ravel())
    if s.size < 2:
        return 0.0
    same = s[1:] == s[:-1]
    if not same.any():
        return 0.0
    edges = np.flatnonzero(np.diff(np.concatenate([[False], same, [False]]).astype(np.int8)))
    t = (edges[1::2] - edges[::2] + 1).astype(np.float64)  # lengths of the runs of equal values
    return float((t * (t - 1) * (2 * t + 5)).sum())


@functools.lru_cache(maxsize=256)
def mahonian_cdf(n: int) -> np.ndarray:
    """P(inversions <= k) for a uniformly random permutation of n items, k = 0..n(n-1)/2."""
    dist = np.ones(1)
    for m in range(2, n + 1):
        # convolve with the uniform distribution on {0, ..., m-1}
        c = np.concatenate([[0.0], np.cumsum(dist)])
        idx = np.arange(dist.size + m - 1)
        dist = (c[np.minimum(idx + 1, dist.size)] - c[np.maximum(idx - m + 1, 0)]) / m
    cdf = np.cumsum(dist)
    cdf.setflags(write=False)
    return cdf


@dataclass(frozen=True)
class MannKendall:
    """Result of :func:`mann_kendall`. ``p_value`` is for the requested ``alternative``."""

    s: int
    var_s: float
    z: float
    p_value: float
    n: int
    alternative: str
    method: str


def mann_kendall(y: Sequence[float], alternative: str = "two-sided", *, exact_max_n: int = 60) -> MannKendall:
    """Mann-Kendall trend test of ``y`` in its given order.

    S = sum_{i<j} sign(y_j - y_i). Without ties and for n <= ``exact_max_n`` the p-value comes from
    the exact permutation distribution of S (Mahonian numbers); otherwise from the normal
    approximation with the tie correction Var(S) = [n(n-1)(2n+5) - sum_t t(t-1)(2t+5)] / 18 and a
    continuity correction.

    Args:
        y: The values, in time order.
        alternative: ``"increasing"``, ``"decreasing"`` or ``"two-sided"``.
        exact_max_n: Largest tie-free n for the exact distribution.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(
            f"alternative must be 'increasing', 'decreasing' or 'two-sided', got {alternative!r}"
        )
    v = np.asarray(y, dtype=np.float64)
    n = int(v.size)
    if n < 2:
        return MannKendall(0, 0.0, 0.0, 1.0, n, alternative, "none (n < 2)")
    iu, ju = _pairs(n)
    s = int(np.sign(v[ju] - v[iu]).sum())
    ties = tie_term(v)
    var_s = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    if var_s <= 0:  # every value equal: no evidence of any trend
        return MannKendall(s, 0.0, 0.0, 1.0, n, alternative, "none (all values tied)")
    z = (s - math.copysign(1.0, s)) / math.sqrt(var_s) if s != 0 else 0.0
    if ties == 0 and n <= exact_max_n:
        cdf = mahonian_cdf(n)
        n_pairs = n * (n - 1) // 2

        def p_ge(sv: int) -> float:  # P(S >= sv); S = n_pairs - 2 * inversions
            k = (n_pairs - sv) // 2
            return float(cdf[min(k, cdf.size - 1)]) if k >= 0 else 0.0

        p_inc, p_dec = p_ge(s), p_ge(-s)  # symmetric: P(S <= s) = P(S >= -s)
        method = "mann-kendall (exact)"
    else:
        p_inc, p_dec = norm_sf(z), norm_sf(-z)
        method = "mann-kendall (normal, tie-corrected)"
    if alternative == "increasing":
        p = p_inc
    elif alternative == "decreasing":
        p = p_dec
    else:
        p = min(1.0, 2.0 * min(p_inc, p_dec))
    return MannKendall(s, float(var_s), float(z), float(min(max(p, 0.0), 1.0)), n, alternative, method)


def theil_sen(x: Sequence[float], y: Sequence[float], ci_level: float = 0.95) -> Tuple[float, float, float]:
    """Theil-Sen slope of y on x with Sen's (1968) distribution-free confidence interval.

    Returns ``(slope, low, high)``; ``nan`` for all three when no two points differ in x. The
    interval uses the tie-corrected variance of Kendall's S, as ``scipy.stats.theilslopes``.
    """
    xv = np.asarray(x, dtype=np.float64)
    yv = np.asarray(y, dtype=np.float64)
    order = np.argsort(xv, kind="stable")
    xv, yv = xv[order], yv[order]
    iu, ju = _pairs(int(xv.size))
    dx = xv[ju] - xv[iu]
    keep = dx > 0
    if not keep.any():
        return math.nan, math.nan, math.nan
    slopes = np.sort((yv[ju] - yv[iu])[keep] / dx[keep])
    slope = float(np.median(slopes))
    n = xv.size
    sigsq = (n * (n - 1) * (2 * n + 5) - tie_term(xv) - tie_term(yv)) / 18.0
    zc = _STD_NORMAL.inv_cdf((1.0 + ci_level) / 2.0)
    sigma = math.sqrt(max(sigsq, 0.0))
    nt = slopes.size
    hi_i = min(int(round((nt + zc * sigma) / 2.0)), nt - 1)
    lo_i = max(int(round((nt - zc * sigma) / 2.0)) - 1, 0)
    return slope, float(slopes[lo_i]), float(slopes[hi_i])


def adjust_pvalues(p: Sequence[float], method: str = "holm") -> List[float]:
    """Holm (step-down, family-wise error) or Benjamini-Hochberg (step-up, FDR) adjusted p-values;
    ``"none"`` returns them as given."""
    if method not in ("holm", "bh", "none"):
        raise ValueError(f"method must be 'holm', 'bh' or 'none', got {method!r}")
    pv = np.asarray(p, dtype=np.float64)
    m = pv.size
    if m == 0 or method == "none":
        return [float(v) for v in pv]
    order = np.argsort(pv, kind="stable")
    ps = pv[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ps))
    else:
        adj = np.minimum(np.minimum.accumulate(m / np.arange(m, 0, -1) * ps[::-1])[::-1], 1.0)
    out = np.empty(m)
    out[order] = adj
    return [float(v) for v in out]


def running_mean(v: np.ndarray, w: int) -> np.ndarray:
    """Centred running mean of width ``w`` (shorter windows at the ends)."""
    if w <= 1 or v.size == 0:
        return np.array(v, dtype=np.float64, copy=True)
    k = np.ones(w)
    return np.convolve(v, k, mode="same") / np.convolve(np.ones(v.size), k, mode="same")


def fit_ramp(v: np.ndarray, sign: int) -> Optional[Tuple[int, int, float, float]]:
    """Least-squares ramp y = a + b * clip(i, c1, c2) over index i, with sign(b) == ``sign``.

    All (c1 < c2) are scored at once from cumulative sums. Returns ``(c1, c2, a, b)`` (indices into
    ``v``) or ``None`` when no ramp of that sign fits.
    """
    v = np.asarray(v, dtype=np.float64)
    n = v.size
    if n < 2:
        return None
    i = np.arange(n, dtype=np.float64)
    cy = np.concatenate([[0.0], np.cumsum(v)])  # cy[k] = sum v[:k]
    cx = np.concatenate([[0.0], np.cumsum(i)])
    cxx = np.concatenate([[0.0], np.cumsum(i * i)])
    cxy = np.concatenate([[0.0], np.cumsum(i * v)])
    c1, c2 = _pairs(n)
    x1, x2 = c1.astype(np.float64), c2.astype(np.float64)
    n_lo, n_hi = c1 + 1, n - c2  # points clipped to x1 / x2
    s_r = n_lo * x1 + (cx[c2] - cx[c1 + 1]) + n_hi * x2
    s_rr = n_lo * x1 * x1 + (cxx[c2] - cxx[c1 + 1]) + n_hi * x2 * x2
    s_ry = x1 * cy[c1 + 1] + (cxy[c2] - cxy[c1 + 1]) + x2 * (cy[n] - cy[c2])
    s_y = cy[n]
    var_r = s_rr - s_r * s_r / n
    cov_ry = s_ry - s_r * s_y / n
    with np.errstate(invalid="ignore", divide="ignore"):
        b = cov_ry / var_r
        gain = np.where(np.sign(b) == sign, cov_ry * cov_ry / var_r, -np.inf)  # SSE = Syy - gain
    if not np.isfinite(gain).any() or gain.max() <= 0:
        return None
    k = int(np.argmax(gain))
    a = (s_y - b[k] * s_r[k]) / n
    return int(c1[k]), int(c2[k]), float(a), float(b[k])


__all__ = [
    "ALTERNATIVES",
    "MannKendall",
    "adjust_pvalues",
    "fit_ramp",
    "mahonian_cdf",
    "mann_kendall",
    "norm_sf",
    "running_mean",
    "theil_sen",
    "tie_term",
]
