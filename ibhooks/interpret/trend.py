"""One series' trend test for a phase (:func:`analyse_series`) and the settings (:class:`PhaseConfig`).

Procedure for one series (one layer, one estimator, one quantity; points ordered by step, index
i = 0..n-1):

1. **Peak.** Smooth the values with a centred running mean of width ``w = smooth`` (h = w // 2) and
   take the first argmax ``p``. For compression, the argmax of the later half of the points is a
   second candidate peak (an early transient, e.g. the spike of the fitting phase, can be the global
   maximum while the compression starts later); both are tested and the smaller p-value, times 2
   (Bonferroni), is kept.
2. **Test segment.** The points that chose the peak are left out so that picking the peak from the
   data does not manufacture a trend: compression is tested on ``[p + h + 1, n)`` and fitting on
   ``[0, p - h - 1]``. Conditioning on ``p`` being the argmax makes the segment's end nearest the
   peak *lower* than average, which works against the tested direction (conservative); the
   false-positive rate under no-trend histories is checked by simulation in the tests. A segment
   with fewer than ``min_points`` points is insufficient data.
3. **Test.** One-sided Mann-Kendall (:func:`~.statistics.mann_kendall`).
4. **Size vs uncertainty.** A ramp (flat, linear, flat; least squares over both change points) is
   fitted to ``[p, n)`` (compression) or ``[0, p + h]`` (fitting). Its height is the phase's total
   change; it must exceed ``z * sqrt(se_start**2 + se_end**2) + min_change_bits`` (se from the
   estimates' ci, 0 for an exact estimate without one; unknown uncertainty: judged on the test and
   ``min_change_bits`` alone).

The family adjustment and persistence (steps 5 and 6) are decided across series by
:class:`~.phases.PhaseTracker`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from ..schema.estimate import jsonable
from ..schema.phases import PHASE_DIRECTION, PHASE_QUANTITY
from .statistics import fit_ramp, mann_kendall, running_mean, theil_sen


@dataclass(frozen=True)
class PhaseConfig:
    """Settings of the phase tests.

    Attributes:
        alpha: Family-wise (Holm) or false-discovery (BH) level per decision.
        min_points: Fewest points in a tested segment.
        smooth: Width (odd, >= 1) of the running mean used to locate the peak.
        persistence: Consecutive decisions a phase must pass to be ``detected``.
        correction: ``"holm"``, ``"bh"`` (Benjamini-Hochberg) or ``"none"``, across all series
            tested at one decision.
        z: Multiple of the combined standard error that the total change must exceed.
        min_change_bits: Smallest total change (bits) that counts as a phase (exact estimates have
            no uncertainty, so without a floor a real but negligible 0.01-bit drift would be a phase).
        exact_max_n: Use the exact Mann-Kendall null for tie-free segments up to this length.
        ci_level: Confidence level of the Theil-Sen slope interval.
        max_points: Points kept per series (the tracker's buffer capacity; :func:`analyse_series`
            thins longer inputs with :func:`thin_log`, evenly in log(step + 1)). Bounds each
            decision's cost.
        mode: Only records of this mode (``"probe"``/``"passive"``); ``None``: the first record's mode.
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
    max_points: int = 128
    mode: Optional[str] = None
    phases: Tuple[str, ...] = ("fitting", "compression")

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"PhaseConfig: alpha must be in (0, 1), got {self.alpha!r}")
        if int(self.min_points) < 3:
            raise ValueError(f"PhaseConfig: min_points must be >= 3, got {self.min_points!r}")
        if int(self.smooth) < 1 or int(self.smooth) % 2 == 0:
            raise ValueError(f"PhaseConfig: smooth must be an odd integer >= 1, got {self.smooth!r}")
        if int(self.persistence) < 1:
            raise ValueError(f"PhaseConfig: persistence must be >= 1, got {self.persistence!r}")
        if self.correction not in ("holm", "bh", "none"):
            raise ValueError(
                f"PhaseConfig: correction must be 'holm', 'bh' or 'none', got {self.correction!r}"
            )
        if int(self.max_points) < 2 * int(self.min_points) + int(self.smooth):
            raise ValueError(
                f"PhaseConfig: max_points must be >= 2 * min_points + smooth, got {self.max_points!r}"
            )
        if not 0.0 < self.ci_level < 1.0:
            raise ValueError(f"PhaseConfig: ci_level must be in (0, 1), got {self.ci_level!r}")
        if self.mode is not None and self.mode not in ("probe", "passive"):
            raise ValueError(f"PhaseConfig: mode must be 'probe', 'passive' or None, got {self.mode!r}")
        if isinstance(self.phases, str):
            raise ValueError(
                f"PhaseConfig: phases must be a sequence of phase names, got the string {self.phases!r}"
            )
        unknown = [p for p in self.phases if p not in PHASE_QUANTITY]
        if unknown:
            raise ValueError(f"PhaseConfig: unknown phase(s) {unknown}; known: {sorted(PHASE_QUANTITY)}")
        object.__setattr__(self, "phases", tuple(self.phases))

    def to_dict(self) -> Dict[str, Any]:
        return jsonable(asdict(self))


@dataclass(frozen=True)
class SeriesAnalysis:
    """One series tested for one phase, before the family adjustment.

    ``p_value`` is ``None`` when the series is too short (``reason`` says why); ``exceeds_uncertainty``
    is whether the fitted ramp's height beats the estimates' combined uncertainty (step 4).
    """

    phase: str
    n_points: int = 0
    n_measurements: int = 0
    thinned_from: Optional[int] = None
    test: Optional[str] = None
    statistic: Optional[Tuple[int, float, float]] = None  # (S, Var S, z)
    p_value: Optional[float] = None
    start_step: Optional[float] = None
    end_step: Optional[float] = None
    peak_step: Optional[float] = None
    ongoing: Optional[bool] = None
    change_bits: Optional[float] = None
    uncertainty_bits: Optional[float] = None
    exceeds_uncertainty: Optional[bool] = None
    slope_bits_per_step: Optional[float] = None
    slope_ci_per_step: Optional[Tuple[float, float]] = None
    slope_bits_per_decade: Optional[float] = None
    slope_ci_per_decade: Optional[Tuple[float, float]] = None
    reason: Optional[str] = None

    @property
    def tested(self) -> bool:
        return self.p_value is not None


#: Initial resolution of :func:`thin_log`: 2**6 cells per doubling of step + 1.
FIRST_LEVEL = 6


def thin_log(steps: Sequence[float], capacity: int, level: int = FIRST_LEVEL) -> np.ndarray:
    """Indices of at most ``capacity`` points evenly spread in log(step + 1), the first and last kept.

    On a grid of ``2**level`` cells per doubling of ``step + 1`` the first point of each cell is
    kept (and the last point); ``level`` drops (cells twice as wide) until they fit. ``steps`` must
    be increasing.
    """
    t = np.log2(np.maximum(np.asarray(steps, dtype=np.float64), 0.0) + 1.0)
    keep = np.arange(t.size)
    while keep.size > max(int(capacity), 2):
        cells = np.floor(t * 2.0**level)
        first = np.concatenate([[True], cells[1:] != cells[:-1]])
        first[-1] = True
        keep = np.flatnonzero(first)
        level -= 1
    return keep


def _step(x: float) -> float:
    return int(x) if float(x).is_integer() else float(x)


class SeriesTest:
    """The stages of one series' test, each computed once, on demand.

    :attr:`tested` (steps 1-3: peak, held-out segment, Mann-Kendall) is cheap; :meth:`with_ramp`
    adds step 4 (the ramp and its size against the uncertainty) and :meth:`with_slopes` the Theil-Sen
    slopes. The phase tracker fits the ramp only where the raw p-value can still pass and describes
    slopes only for phases it shows; :func:`analyse_series` runs every stage.
    """

    def __init__(
        self,
        steps: Sequence[float],
        values: Sequence[float],
        stderr: Optional[Sequence[float]],
        phase: str,
        config: PhaseConfig,
    ) -> None:
        if phase not in PHASE_QUANTITY:
            raise ValueError(f"phase must be one of {sorted(PHASE_QUANTITY)}, got {phase!r}")
        cfg = self.cfg = config
        t = np.asarray(steps, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        se = np.full(v.size, np.nan) if stderr is None else np.asarray(stderr, dtype=np.float64)
        if not (t.shape == v.shape == se.shape) or v.ndim != 1:
            raise ValueError(
                f"steps, values and stderr must be 1-D of one length, got {t.shape}, {v.shape}, {se.shape}"
            )
        thinned_from = None
        if v.size > cfg.max_points:
            keep = thin_log(t, int(cfg.max_points))
            thinned_from = int(v.size)
            t, v, se = t[keep], v[keep], se[keep]
        self.t, self.v, self.se, self.phase = t, v, se, phase
        self._ramp: Optional[SeriesAnalysis] = None
        self._slopes: Optional[SeriesAnalysis] = None
        self._ramp_idx: Optional[Tuple[int, int]] = None
        self.tested = self._test(thinned_from)

    def _test(self, thinned_from: Optional[int]) -> SeriesAnalysis:
        cfg, v, phase = self.cfg, self.v, self.phase
        n = int(v.size)
        base: Dict[str, Any] = {
            "phase": phase,
            "n_measurements": thinned_from or n,
            "thinned_from": thinned_from,
        }
        direction = PHASE_DIRECTION[phase]
        w = min(int(cfg.smooth), n if n % 2 == 1 else n - 1) if n > 0 else 1
        h = self.h = max(w, 1) // 2
        self.seg = np.arange(0)
        if n < cfg.min_points + h + 1:
            return SeriesAnalysis(
                **base, reason=f"{n} measurements; the test needs at least {cfg.min_points + h + 1}"
            )
        sm = running_mean(v, max(w, 1))
        p = int(np.argmax(sm))
        candidates = [p]
        if phase == "compression":
            late = n // 2 + int(np.argmax(sm[n // 2 :]))
            if late != p and n - (late + h + 1) >= cfg.min_points:
                candidates.append(late)

        def segment(peak: int) -> np.ndarray:
            return np.arange(peak + h + 1, n) if phase == "compression" else np.arange(0, max(peak - h, 0))

        tests = []
        for cand in candidates:
            seg = segment(cand)
            if seg.size >= cfg.min_points:
                tests.append((mann_kendall(v[seg], direction, exact_max_n=cfg.exact_max_n), cand, seg))
        if tests:
            mk, p, seg = min(tests, key=lambda x: x[0].p_value)
        else:
            mk, seg = None, segment(p)
        self.peak, self.seg = p, seg
        base["peak_step"] = _step(self.t[p])
        base["n_points"] = int(seg.size)
        if mk is None:
            where = "after" if phase == "compression" else "before"
            return SeriesAnalysis(
                **base,
                reason=(
                    f"only {seg.size} measurements {where} the peak at step "
                    f"{base['peak_step']} (need {cfg.min_points})"
                ),
            )
        base["test"] = mk.method + (
            f", best of {len(tests)} candidate peaks (Bonferroni)" if len(tests) > 1 else ""
        )
        base["statistic"] = (mk.s, mk.var_s, mk.z)
        base["p_value"] = min(1.0, mk.p_value * len(tests))
        return SeriesAnalysis(**base)

    def with_ramp(self) -> SeriesAnalysis:
        """Step 4: the ramp's change points, height, and whether it beats the uncertainty."""
        if self._ramp is not None:
            return self._ramp
        a = self.tested
        if not a.tested:
            self._ramp = a
            return a
        cfg, t, v, se, n, h = self.cfg, self.t, self.v, self.se, int(self.v.size), self.h
        direction = PHASE_DIRECTION[self.phase]
        fit_lo, fit_hi = (self.peak, n) if self.phase == "compression" else (0, min(self.peak + h + 1, n))
        ramp = fit_ramp(v[fit_lo:fit_hi], 1 if direction == "increasing" else -1)
        if ramp is None:
            self._ramp = replace(
                a,
                change_bits=0.0,
                exceeds_uncertainty=False,
                reason=f"no {direction} ramp fits the measurements",
            )
            return self._ramp
        c1, c2, _, b = ramp
        i1, i2 = fit_lo + c1, fit_lo + c2
        change = abs(b) * (c2 - c1)
        ends_se = se[[i1, i2]]
        unc: Optional[float] = None
        if np.isfinite(ends_se).all():
            unc = float(math.sqrt(float((ends_se**2).sum())))
            exceeds = bool(change > cfg.z * unc + cfg.min_change_bits)
        else:
            exceeds = bool(change > cfg.min_change_bits)
        ongoing = bool(fit_hi == n and i2 >= n - 1 - h)
        self._ramp_idx = (i1, n - 1 if ongoing else i2)
        self._ramp = replace(
            a,
            change_bits=float(change),
            uncertainty_bits=unc,
            exceeds_uncertainty=exceeds,
            ongoing=ongoing,
            start_step=_step(t[i1]),
            end_step=None if ongoing else _step(t[i2]),
        )
        return self._ramp

    def with_slopes(self, per_step: bool = True) -> SeriesAnalysis:
        """The ramp plus Theil-Sen slopes over it, per decade of step + 1 (and per step)."""
        if self._slopes is not None and (self._slopes.slope_bits_per_step is not None or not per_step):
            return self._slopes
        a = self.with_ramp()
        if self._ramp_idx is None:
            self._slopes = a
            return a
        lo, hi = self._ramp_idx
        if hi - lo + 1 < 3:
            lo, hi = int(self.seg[0]), int(self.seg[-1])
        xs, ys = self.t[lo : hi + 1], self.v[lo : hi + 1]
        s2 = theil_sen(np.log10(np.maximum(xs, 0.0) + 1.0), ys, self.cfg.ci_level)
        self._slopes = replace(a, slope_bits_per_decade=s2[0], slope_ci_per_decade=(s2[1], s2[2]))
        if per_step:
            s1 = theil_sen(xs, ys, self.cfg.ci_level)
            self._slopes = replace(self._slopes, slope_bits_per_step=s1[0], slope_ci_per_step=(s1[1], s1[2]))
        return self._slopes


def analyse_series(
    steps: Sequence[float],
    values: Sequence[float],
    stderr: Optional[Sequence[float]] = None,
    *,
    phase: str,
    config: Optional[PhaseConfig] = None,
    describe: bool = True,
) -> SeriesAnalysis:
    """Test one series for ``phase`` (``"fitting"`` or ``"compression"``), unadjusted p-value.

    Args:
        steps: Training steps of the points, increasing.
        values: The estimates in bits.
        stderr: Standard error per point (``nan`` = unknown, 0 for exact estimates); ``None``: unknown.
        phase: ``"fitting"`` (an increase up to the peak) or ``"compression"`` (a decrease after it).
        config: Settings (:class:`PhaseConfig`); more than ``max_points`` points are thinned with
            :func:`thin_log` (evenly in log(step + 1), keeping the first and the latest).
        describe: Also compute the Theil-Sen slopes.
    """
    test = SeriesTest(steps, values, stderr, phase, config if config is not None else PhaseConfig())
    return test.with_slopes() if describe else test.with_ramp()


__all__ = ["FIRST_LEVEL", "PhaseConfig", "SeriesAnalysis", "SeriesTest", "analyse_series", "thin_log"]
