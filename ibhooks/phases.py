"""Fitting and compression phases, decided by statistical trend tests over the history of Records.

* **fitting**: I(T;Y) rising, up to its peak.
* **compression**: I(X;T) falling after its peak.

Decisions are a pure function of the history (no state is kept between calls), so a resumed run
re-derives identical decisions from the same Records.

Procedure for one series (one layer, one estimator, one quantity; points ordered by step, index
i = 0..n-1 is the measurement order; a series longer than ``max_points`` is first thinned to that
many evenly spaced measurements, keeping the first and the latest):

1. **Peak.** Smooth the values with a centred running mean of width ``w = smooth`` (h = w // 2) and
   take the first argmax ``p``. For compression, the argmax of the later half of the measurements is
   a second candidate peak (an early transient, e.g. the spike of the fitting phase, can be the
   global maximum while the compression starts later); both are tested and the smaller p-value,
   times 2 (Bonferroni), is kept.
2. **Test segment.** The points that chose the peak are left out so that picking the peak from the
   data does not manufacture a trend: compression is tested on ``[p + h + 1, n)`` and fitting on
   ``[0, p - h - 1]``. Conditioning on ``p`` being the argmax then makes the segment's end nearest
   the peak *lower* than average, which works against the tested direction (conservative); the
   false-positive rate under no-trend histories is checked by simulation in ``tests/test_phases.py``.
   A segment with fewer than ``min_points`` points is ``insufficient_data``.
3. **Test.** One-sided Mann-Kendall: exact null distribution (Mahonian numbers) when the segment
   has no ties and at most ``exact_max_n`` points, otherwise the normal approximation with tie
   correction and continuity correction.
4. **Family.** p-values of all series tested at this decision (layers x estimators x phases) are
   adjusted together (Holm by default, or Benjamini-Hochberg).
5. **Size vs uncertainty.** A ramp (flat, linear, flat; least squares over both change points) is
   fitted to ``[p, n)`` (compression) or ``[0, p + h]`` (fitting). Its height is the phase's total
   change; it must exceed ``z * sqrt(se_start**2 + se_end**2) + min_change_bits``, the combined
   uncertainty of the estimates at the ramp's two ends (se = ``Estimate.stderr``: from the ci, 0 for
   an exact estimate without one; an estimate without a ci has unknown uncertainty and is judged
   on the test alone).
6. **Persistence.** A phase is ``detected`` only when steps 3-5 pass at each of the last
   ``persistence`` decisions (the history ending at each of the last ``persistence`` records);
   passing at the latest decision only is a ``candidate``. This stops flapping.

The phase's start / end steps are the ramp's change points (``end_step`` is ``None`` while the
phase is ongoing, i.e. the ramp ends at the latest point); the slope is Theil-Sen over the ramp with
Sen's confidence interval, per step and per decade of ``step + 1``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .estimate import Record, _jsonable

#: The phases this module decides, and the quantity each one reads.
PHASE_QUANTITY: Dict[str, str] = {"fitting": "I_TY", "compression": "I_XT"}
#: The direction of the trend that each phase is.
PHASE_DIRECTION: Dict[str, str] = {"fitting": "increasing", "compression": "decreasing"}

_STD_NORMAL = NormalDist()


@dataclass(frozen=True)
class PhaseConfig:
    """Settings of :func:`detect_phases`.

    Attributes:
        alpha: Family-wise (Holm) or false-discovery (BH) level per decision.
        min_points: Fewest points in a tested segment.
        smooth: Width (odd, >= 1) of the running mean used to locate the peak.
        persistence: Consecutive decisions (latest records) a phase must pass to be ``detected``.
        correction: ``"holm"``, ``"bh"`` (Benjamini-Hochberg) or ``"none"``, across all series
            tested at one decision.
        z: Multiple of the combined standard error that the total change must exceed.
        min_change_bits: Smallest total change (bits) that counts as a phase (default: the
            project's saturation tolerance; exact estimates have no uncertainty, so without a floor
            a real but negligible 0.01-bit drift would be a phase).
        exact_max_n: Use the exact Mann-Kendall null for tie-free segments up to this length.
        ci_level: Confidence level of the Theil-Sen slope interval.
        max_points: Longer series are thinned to this many evenly spaced measurements (always
            keeping the first and the latest), which bounds the O(n^2) tests' time and memory.
        mode: Only records of this mode (``"probe"``/``"passive"``); ``None``: the latest record's mode.
        phases: Which phases to decide.
    """

    alpha: float = 0.05
    min_points: int = 8
    smooth: int = 5
    persistence: int = 3
    correction: str = "holm"
    z: float = 1.96
    min_change_bits: float = 0.05
    exact_max_n: int = 60
    ci_level: float = 0.95
    max_points: int = 400
    mode: Optional[str] = None
    phases: Tuple[str, ...] = ("fitting", "compression")

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")
        if int(self.min_points) < 3:
            raise ValueError(f"min_points must be >= 3, got {self.min_points!r}")
        if int(self.smooth) < 1 or int(self.smooth) % 2 == 0:
            raise ValueError(f"smooth must be an odd integer >= 1, got {self.smooth!r}")
        if int(self.persistence) < 1:
            raise ValueError(f"persistence must be >= 1, got {self.persistence!r}")
        if self.correction not in ("holm", "bh", "none"):
            raise ValueError(f"correction must be 'holm', 'bh' or 'none', got {self.correction!r}")
        if int(self.max_points) < 2 * int(self.min_points) + int(self.smooth):
            raise ValueError(f"max_points must be >= 2 * min_points + smooth, got {self.max_points!r}")
        if not 0.0 < self.ci_level < 1.0:
            raise ValueError(f"ci_level must be in (0, 1), got {self.ci_level!r}")
        unknown = [p for p in self.phases if p not in PHASE_QUANTITY]
        if unknown:
            raise ValueError(f"unknown phase(s) {unknown}; known: {sorted(PHASE_QUANTITY)}")
        object.__setattr__(self, "phases", tuple(self.phases))

    def to_dict(self) -> Dict[str, Any]:
        return _jsonable(asdict(self))


# --------------------------------------------------------------------------------------------
# Statistics: Mann-Kendall, Theil-Sen, multiple-testing adjustment
# --------------------------------------------------------------------------------------------


def _norm_sf(z: float) -> float:
    """Upper tail P(Z >= z) of the standard normal (accurate in the tails, via erfc)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _tie_term(v: np.ndarray) -> float:
    """Sum over groups of tied values of t (t - 1) (2t + 5)."""
    _, counts = np.unique(v, return_counts=True)
    t = counts[counts > 1].astype(np.float64)
    return float((t * (t - 1) * (2 * t + 5)).sum())


@functools.lru_cache(maxsize=256)
def _mahonian_cdf(n: int) -> np.ndarray:
    """P(inversions <= k) for a uniformly random permutation of n items, k = 0..n(n-1)/2."""
    dist = np.ones(1)
    for m in range(2, n + 1):
        # convolve with the uniform distribution on {0, ..., m-1}
        c = np.concatenate([[0.0], np.cumsum(dist)])
        new = np.empty(dist.size + m - 1)
        idx = np.arange(new.size)
        new[:] = c[np.minimum(idx + 1, dist.size)] - c[np.maximum(idx - m + 1, 0)]
        dist = new / m
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
    the exact permutation distribution of S; otherwise from the normal approximation with the tie
    correction Var(S) = [n(n-1)(2n+5) - sum_t t(t-1)(2t+5)] / 18 and a continuity correction.

    Args:
        y: The values, in time order.
        alternative: ``"increasing"``, ``"decreasing"`` or ``"two-sided"``.
        exact_max_n: Largest tie-free n for the exact distribution.
    """
    if alternative not in ("increasing", "decreasing", "two-sided"):
        raise ValueError(
            f"alternative must be 'increasing', 'decreasing' or 'two-sided', got {alternative!r}"
        )
    v = np.asarray(y, dtype=np.float64)
    n = int(v.size)
    if n < 2:
        return MannKendall(0, 0.0, 0.0, 1.0, n, alternative, "none (n < 2)")
    iu, ju = np.triu_indices(n, k=1)
    s = int(np.sign(v[ju] - v[iu]).sum())
    ties = _tie_term(v)
    var_s = (n * (n - 1) * (2 * n + 5) - ties) / 18.0
    if var_s <= 0:  # every value equal: no evidence of any trend
        return MannKendall(s, 0.0, 0.0, 1.0, n, alternative, "none (all values tied)")
    z = (s - math.copysign(1.0, s)) / math.sqrt(var_s) if s != 0 else 0.0
    if ties == 0 and n <= exact_max_n:
        cdf = _mahonian_cdf(n)
        n_pairs = n * (n - 1) // 2
        # S = n_pairs - 2 * inversions, so S >= s  <=>  inversions <= (n_pairs - s) / 2
        def p_ge(sv: int) -> float:  # P(S >= sv)
            k = (n_pairs - sv) // 2
            return float(cdf[min(k, cdf.size - 1)]) if k >= 0 else 0.0

        p_inc = p_ge(s)
        p_dec = p_ge(-s)  # symmetric: P(S <= s) = P(S >= -s)
        method = "mann-kendall (exact)"
    else:
        p_inc = _norm_sf(z)
        p_dec = _norm_sf(-z)
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

    Returns ``(slope, low, high)``; ``nan`` for all three when no two points differ in x.
    The interval uses the tie-corrected variance of Kendall's S, as ``scipy.stats.theilslopes``.
    """
    xv = np.asarray(x, dtype=np.float64)
    yv = np.asarray(y, dtype=np.float64)
    order = np.argsort(xv, kind="stable")
    xv, yv = xv[order], yv[order]
    iu, ju = np.triu_indices(xv.size, k=1)
    dx = xv[ju] - xv[iu]
    keep = dx > 0
    if not keep.any():
        return math.nan, math.nan, math.nan
    slopes = np.sort((yv[ju] - yv[iu])[keep] / dx[keep])
    slope = float(np.median(slopes))
    n = xv.size
    sigsq = (n * (n - 1) * (2 * n + 5) - _tie_term(xv) - _tie_term(yv)) / 18.0
    zc = _STD_NORMAL.inv_cdf((1.0 + ci_level) / 2.0)
    sigma = math.sqrt(max(sigsq, 0.0))
    nt = slopes.size
    hi_i = min(int(round((nt + zc * sigma) / 2.0)), nt - 1)
    lo_i = max(int(round((nt - zc * sigma) / 2.0)) - 1, 0)
    return slope, float(slopes[lo_i]), float(slopes[hi_i])


def adjust_pvalues(p: Sequence[float], method: str = "holm") -> List[float]:
    """Holm (step-down, family-wise error) or Benjamini-Hochberg (step-up, FDR) adjusted p-values."""
    pv = np.asarray(p, dtype=np.float64)
    m = pv.size
    if m == 0 or method == "none":
        return [float(v) for v in pv]
    order = np.argsort(pv, kind="stable")
    ps = pv[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ps))
    elif method == "bh":
        adj = np.minimum.accumulate((m / np.arange(m, 0, -1) * ps[::-1]))[::-1]
        adj = np.minimum(adj, 1.0)
    else:
        raise ValueError(f"method must be 'holm', 'bh' or 'none', got {method!r}")
    out = np.empty(m)
    out[order] = adj
    return [float(v) for v in out]


# --------------------------------------------------------------------------------------------
# One series
# --------------------------------------------------------------------------------------------


def _running_mean(v: np.ndarray, w: int) -> np.ndarray:
    if w <= 1 or v.size == 0:
        return v.copy()
    k = np.ones(w)
    return np.convolve(v, k, mode="same") / np.convolve(np.ones(v.size), k, mode="same")


def _fit_ramp(v: np.ndarray, sign: int) -> Optional[Tuple[int, int, float, float]]:
    """Least-squares ramp y = a + b * clip(i, c1, c2) over index i, with sign(b) == ``sign``.

    Returns ``(c1, c2, a, b)`` (c1 < c2, indices into ``v``) or ``None`` when no ramp of that sign fits.
    """
    n = v.size
    if n < 2:
        return None
    i = np.arange(n, dtype=np.float64)
    cy = np.concatenate([[0.0], np.cumsum(v)])            # cy[k] = sum v[:k]
    cx = np.concatenate([[0.0], np.cumsum(i)])
    cxx = np.concatenate([[0.0], np.cumsum(i * i)])
    cxy = np.concatenate([[0.0], np.cumsum(i * v)])
    c1, c2 = np.triu_indices(n, k=1)
    x1, x2 = c1.astype(np.float64), c2.astype(np.float64)
    n_lo, n_hi = c1 + 1, n - c2                           # points clipped to x1 / x2
    mid_x = cx[c2] - cx[c1 + 1]
    mid_xx = cxx[c2] - cxx[c1 + 1]
    mid_xy = cxy[c2] - cxy[c1 + 1]
    s_r = n_lo * x1 + mid_x + n_hi * x2
    s_rr = n_lo * x1 * x1 + mid_xx + n_hi * x2 * x2
    s_ry = x1 * cy[c1 + 1] + mid_xy + x2 * (cy[n] - cy[c2])
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


def analyse_series(
    steps: Sequence[float],
    values: Sequence[float],
    stderr: Optional[Sequence[float]] = None,
    *,
    phase: str,
    config: PhaseConfig = PhaseConfig(),
    describe: bool = True,
) -> Dict[str, Any]:
    """Test one series for ``phase`` ("fitting" or "compression") with unadjusted p-value.

    Args:
        steps: Training steps of the points, increasing.
        values: The estimates in bits.
        stderr: Standard errors per point (``nan`` = unknown, 0 for exact estimates); ``None``: unknown.
        phase: ``"fitting"`` (tests an increase up to the peak) or ``"compression"`` (a decrease after it).
        config: Settings.
        describe: Also compute the Theil-Sen slope (skipped for the earlier decisions of the
            persistence rule, which only need the test).

    Returns:
        A JSON-serialisable dict, see :func:`detect_phases` (without the family-level fields).
    """
    if phase not in PHASE_QUANTITY:
        raise ValueError(f"phase must be one of {sorted(PHASE_QUANTITY)}, got {phase!r}")
    t = np.asarray(steps, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    se = np.full(v.size, np.nan) if stderr is None else np.asarray(stderr, dtype=np.float64)
    thinned_from = None
    if v.size > config.max_points:
        keep = np.unique(np.round(np.linspace(0, v.size - 1, int(config.max_points))).astype(np.int64))
        thinned_from = int(v.size)
        t, v, se = t[keep], v[keep], se[keep]
    n = int(v.size)
    direction = PHASE_DIRECTION[phase]
    out: Dict[str, Any] = {
        "phase": phase,
        "quantity": PHASE_QUANTITY[phase],
        "direction": direction,
        "n_measurements": thinned_from or n,
        "thinned_from": thinned_from,
        "n_points": 0,
        "test": None,
        "statistic": None,
        "p_value": None,
        "start_step": None,
        "end_step": None,
        "peak_step": None,
        "ongoing": None,
        "change_bits": None,
        "uncertainty_bits": None,
        "exceeds_uncertainty": None,
        "slope_bits_per_step": None,
        "slope_ci_per_step": None,
        "slope_bits_per_decade": None,
        "slope_ci_per_decade": None,
        "reason": None,
    }
    w = min(int(config.smooth), n if n % 2 == 1 else n - 1) if n > 0 else 1
    h = max(w, 1) // 2
    if n < config.min_points + h + 1:
        out["reason"] = f"{n} measurements; the test needs at least {config.min_points + h + 1}"
        return out
    sm = _running_mean(v, max(w, 1))
    p = int(np.argmax(sm))
    candidates = [p]
    if phase == "compression":
        # An early transient (the fitting spike) can be the global peak while the compression that
        # matters starts later: also test after the peak of the later half of the measurements.
        late = n // 2 + int(np.argmax(sm[n // 2:]))
        if late != p and n - (late + h + 1) >= config.min_points:
            candidates.append(late)
    tests = []
    for cand in candidates:
        seg = np.arange(cand + h + 1, n) if phase == "compression" else np.arange(0, max(cand - h, 0))
        if seg.size >= config.min_points:
            tests.append((mann_kendall(v[seg], direction, exact_max_n=config.exact_max_n).p_value, cand, seg))
    if tests:
        _, p, seg = min(tests, key=lambda x: x[0])
    else:
        seg = np.arange(p + h + 1, n) if phase == "compression" else np.arange(0, max(p - h, 0))
    if phase == "compression":
        fit_lo, fit_hi = p, n  # ramp fitted on [p, n)
    else:
        fit_lo, fit_hi = 0, min(p + h + 1, n)
    out["peak_step"] = int(t[p]) if float(t[p]).is_integer() else float(t[p])
    out["n_points"] = int(seg.size)
    if seg.size < config.min_points:
        where = "after" if phase == "compression" else "before"
        out["reason"] = (
            f"only {seg.size} measurements {where} the peak at step {out['peak_step']} "
            f"(need {config.min_points})"
        )
        return out
    mk = mann_kendall(v[seg], direction, exact_max_n=config.exact_max_n)
    out["test"] = mk.method + (f", best of {len(tests)} candidate peaks (Bonferroni)" if len(tests) > 1 else "")
    out["statistic"] = {"S": mk.s, "var_S": mk.var_s, "z": mk.z}
    out["p_value"] = min(1.0, mk.p_value * len(tests))
    sign = 1 if direction == "increasing" else -1
    ramp = _fit_ramp(v[fit_lo:fit_hi], sign)
    if ramp is None:
        out["reason"] = f"no {direction} ramp fits the measurements"
        out["change_bits"] = 0.0
        out["exceeds_uncertainty"] = False
        return out
    c1, c2, _, b = ramp
    i1, i2 = fit_lo + c1, fit_lo + c2
    change = abs(b) * (c2 - c1)
    out["change_bits"] = float(change)
    ends_se = se[[i1, i2]]
    if np.isfinite(ends_se).all():
        unc = float(math.sqrt(float((ends_se ** 2).sum())))
        out["uncertainty_bits"] = unc
        out["exceeds_uncertainty"] = bool(change > config.z * unc + config.min_change_bits)
    else:
        out["exceeds_uncertainty"] = bool(change > config.min_change_bits)
    ongoing = bool(fit_hi == n and i2 >= n - 1 - h)
    out["ongoing"] = ongoing
    out["start_step"] = _step(t[i1])
    out["end_step"] = None if ongoing else _step(t[i2])
    if describe:
        lo, hi = i1, (n - 1 if ongoing else i2)
        if hi - lo + 1 < 3:
            lo, hi = int(seg[0]), int(seg[-1])
        xs = t[lo : hi + 1]
        ys = v[lo : hi + 1]
        s1 = theil_sen(xs, ys, config.ci_level)
        s2 = theil_sen(np.log10(np.maximum(xs, 0.0) + 1.0), ys, config.ci_level)
        out["slope_bits_per_step"] = s1[0]
        out["slope_ci_per_step"] = [s1[1], s1[2]]
        out["slope_bits_per_decade"] = s2[0]
        out["slope_ci_per_decade"] = [s2[1], s2[2]]
    return out


def _step(x: float) -> Any:
    return int(x) if float(x).is_integer() else float(x)


# --------------------------------------------------------------------------------------------
# Histories of Records
# --------------------------------------------------------------------------------------------

_SeriesKey = Tuple[str, str, str]  # (layer, estimator, phase)


def _prepare(history: Sequence[Record], mode: Optional[str]) -> Tuple[List[Record], Optional[str]]:
    """Records of one mode, sorted by step; a step measured twice keeps its last Record."""
    recs = list(history)
    if not recs:
        return [], mode
    if mode is None:
        mode = max(recs, key=lambda r: r.step).mode if recs else None
    by_step: Dict[int, Record] = {}
    for r in recs:
        if r.mode == mode:
            by_step[r.step] = r
    return [by_step[s] for s in sorted(by_step)], mode


def _series(records: List[Record], phases: Sequence[str]) -> Dict[_SeriesKey, Tuple[np.ndarray, ...]]:
    """(layer, estimator, phase) -> (record index, step, value, stderr) arrays, finite values only."""
    acc: Dict[_SeriesKey, List[Tuple[int, float, float, float]]] = {}
    for k, rec in enumerate(records):
        for layer, per_est in rec.layers.items():
            for est, res in per_est.items():
                for phase in phases:
                    e = res.i_ty if PHASE_QUANTITY[phase] == "I_TY" else res.i_xt
                    if e is None or e.value is None or not math.isfinite(e.value):
                        continue
                    s = e.stderr
                    acc.setdefault((layer, est, phase), []).append(
                        (k, float(rec.step), float(e.value), math.nan if s is None else float(s))
                    )
    return {key: tuple(np.asarray(col, dtype=np.float64) for col in zip(*rows)) for key, rows in acc.items()}


def _layer_order(records: List[Record]) -> List[str]:
    order: List[str] = []
    for rec in reversed(records):  # the latest record's network order first
        for layer in rec.layers:
            if layer not in order:
                order.append(layer)
    return order


#: Warning codes (from :func:`ibhooks.checks.check_record`) that can fake or hide a phase.
CAVEAT_CODES = ("saturating_units", "outside_range", "duplicate_rows", "at_cap", "too_few_samples",
                "bound_violation")


def _caveats(records: List[Record], layer: str, est: str, quantity: str, start: Any) -> List[str]:
    """Codes of artefact warnings on this layer/estimator/quantity in the records from ``start`` on."""
    found: List[str] = []
    for rec in records:
        if start is not None and rec.step < start:
            continue
        for w in rec.warnings or []:
            if not isinstance(w, dict) or w.get("layer") != layer or w.get("estimator") not in (None, est):
                continue
            code = w.get("code")
            if code in CAVEAT_CODES and w.get("quantity") in (None, quantity) and code not in found:
                found.append(code)
    return found


def _decide(
    series: Dict[_SeriesKey, Tuple[np.ndarray, ...]], upto: int, cfg: PhaseConfig, describe: bool
) -> Dict[_SeriesKey, Dict[str, Any]]:
    """Analyse every series on records [0, upto) and adjust the p-values across the family."""
    res: Dict[_SeriesKey, Dict[str, Any]] = {}
    for key, (rec_idx, steps, values, se) in series.items():
        m = int(np.searchsorted(rec_idx, upto, side="left"))
        res[key] = analyse_series(steps[:m], values[:m], se[:m], phase=key[2], config=cfg, describe=describe)
    tested = [k for k, r in res.items() if r["p_value"] is not None]
    adj = adjust_pvalues([res[k]["p_value"] for k in tested], cfg.correction)
    for k, pa in zip(tested, adj):
        r = res[k]
        r["p_adjusted"] = pa
        r["significant"] = bool(pa <= cfg.alpha and r["exceeds_uncertainty"])
    for r in res.values():
        r.setdefault("p_adjusted", None)
        r.setdefault("significant", False)
    res_family = len(tested)
    for r in res.values():
        r["family_size"] = res_family
    return res


def detect_phases(
    history: Sequence[Record], config: Optional[PhaseConfig] = None, **overrides: Any
) -> Dict[str, Any]:
    """Decide fitting / compression per layer and estimator from a history of Records.

    Stateless: the answer depends only on ``history`` (order-free; sorted by step, a repeated step
    keeps its last Record, only Records of one mode are used), so a resumed run gives identical
    decisions. See the module docstring for the procedure.

    Args:
        history: Records so far, including the latest one.
        config: A :class:`PhaseConfig`; keyword ``overrides`` (e.g. ``alpha=0.01``) replace its fields.

    Returns:
        JSON-serialisable dict::

            {"version": 1, "step": int | None, "mode": str | None, "n_records": int,
             "alpha": float, "correction": str, "family_size": int, "config": {...},
             "layers": {layer: {estimator: {"fitting": PHASE, "compression": PHASE}}},
             "detected": [PHASE + {"layer", "estimator"} for each detected phase]}

        where PHASE is ``{"phase", "quantity", "direction", "status", "detected", "significant",
        "consecutive", "start_step", "end_step", "peak_step", "ongoing", "slope_bits_per_step",
        "slope_ci_per_step", "slope_bits_per_decade", "slope_ci_per_decade", "change_bits",
        "uncertainty_bits", "exceeds_uncertainty", "p_value", "p_adjusted", "family_size", "test",
        "statistic", "n_points", "n_measurements", "thinned_from", "reason", "caveats"}``;
        ``caveats`` lists the artefact-warning codes (``record.warnings``, from
        :func:`ibhooks.checks.check_record`) seen on that layer/estimator/quantity from the phase's
        start on (the whole history when there is no start; e.g. ``"saturating_units"``: a binned
        compression may be an artefact).
        ``status`` is ``"detected"``
        (passed at the last ``persistence`` decisions), ``"candidate"`` (passed at the latest only),
        ``"not_detected"`` or ``"insufficient_data"``.
    """
    cfg = config if config is not None else PhaseConfig()
    if overrides:
        cfg = PhaseConfig(**{**asdict(cfg), **overrides})
    records, mode = _prepare(history, cfg.mode)
    series = _series(records, cfg.phases)
    n_rec = len(records)
    latest = _decide(series, n_rec, cfg, describe=True) if n_rec else {}
    consecutive = {k: int(r["significant"]) for k, r in latest.items()}
    alive = {k for k, c in consecutive.items() if c}
    for back in range(1, cfg.persistence):
        if not alive or n_rec - back <= 0:
            break
        earlier = _decide(series, n_rec - back, cfg, describe=False)
        for k in list(alive):
            if earlier[k]["significant"]:
                consecutive[k] += 1
            else:
                alive.discard(k)
    layers: Dict[str, Dict[str, Dict[str, Any]]] = {}
    detected: List[Dict[str, Any]] = []
    family = sum(1 for r in latest.values() if r["p_value"] is not None)
    order = _layer_order(records)
    for key in sorted(latest, key=lambda k: (order.index(k[0]) if k[0] in order else len(order), k[1], k[2])):
        layer, est, phase = key
        r = latest[key]
        r["consecutive"] = consecutive[key]
        if r["p_value"] is None:
            r["status"] = "insufficient_data"
        elif consecutive[key] >= cfg.persistence:
            r["status"] = "detected"
        elif r["significant"]:
            r["status"] = "candidate"
            r["reason"] = (
                f"significant at the latest {consecutive[key]} decision(s); "
                f"needs {cfg.persistence} in a row"
            )
        else:
            r["status"] = "not_detected"
            if r["reason"] is None:
                if r["p_adjusted"] is not None and r["p_adjusted"] > cfg.alpha:
                    r["reason"] = f"adjusted p = {r['p_adjusted']:.3g} > alpha = {cfg.alpha:g}"
                elif r["exceeds_uncertainty"] is False:
                    unc = r["uncertainty_bits"]
                    r["reason"] = (
                        f"change {r['change_bits']:.3g} bits does not exceed "
                        + (f"{cfg.z:g} x the combined uncertainty {unc:.3g} bits + "
                           if unc is not None else "")
                        + f"min_change_bits = {cfg.min_change_bits:g}"
                    )
        r["detected"] = r["status"] == "detected"
        r["caveats"] = _caveats(records, layer, est, PHASE_QUANTITY[phase], r["start_step"])
        layers.setdefault(layer, {}).setdefault(est, {})[phase] = r
        if r["detected"]:
            detected.append({"layer": layer, "estimator": est, **r})
    return _jsonable(
        {
            "version": 1,
            "step": records[-1].step if records else None,
            "mode": mode,
            "n_records": n_rec,
            "alpha": cfg.alpha,
            "correction": cfg.correction,
            "family_size": family,
            "config": cfg.to_dict(),
            "layers": layers,
            "detected": detected,
        }
    )
