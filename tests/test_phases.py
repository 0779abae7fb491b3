"""Phase detection: the statistics (Mann-Kendall, Theil-Sen, Holm/BH), false positives under
no-trend histories, detection and start steps on simulated fitting / compression, persistence,
order-free replays, as typed PhaseDecisions."""

from __future__ import annotations

import itertools
import json
import math
import random

import numpy as np
import pytest

from ibhooks.phases import (
    PhaseConfig,
    PhaseTracker,
    adjust_pvalues,
    analyse_series,
    detect_phases,
    mann_kendall,
    theil_sen,
)
from ibhooks.schema import (
    Estimate,
    IBWarning,
    LayerResult,
    PhaseStatus,
    Quantity,
    Record,
    Severity,
    WarningCode,
)

ALPHA = 0.05
STEPS = np.unique(np.floor(np.logspace(0, 4, 100)).astype(int))  # log-spaced, as SZT/Saxe measure
LOGS = np.log10(STEPS + 1.0)


def _margin(alpha: float, n: int) -> float:
    """Nominal level plus three binomial standard errors."""
    return alpha + 3.0 * math.sqrt(alpha * (1 - alpha) / n)


def _est(v: float, se, kind: str = "estimate", name: str = "kde") -> Estimate:
    ci = None if se is None else (v - 1.959964 * se, v + 1.959964 * se)
    return Estimate(value=float(v), quantity="q", kind=kind, estimator=name, ci=ci)


def make_history(steps, series, *, se=None, kind="estimate", mode="probe"):
    """series: {layer: {estimator: (ixt_values, ity_values)}} -> list of Records."""
    recs = []
    for k, s in enumerate(steps):
        layers = {
            layer: {
                est: LayerResult(_est(ixt[k], se, kind, est), _est(ity[k], se, kind, est))
                for est, (ixt, ity) in per.items()
            }
            for layer, per in series.items()
        }
        recs.append(Record(step=int(s), mode=mode, n_samples=100, layers=layers))
    return recs


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def test_mann_kendall_exact_matches_enumeration():
    rng = np.random.default_rng(0)
    n = 6
    perms = np.array(list(itertools.permutations(range(n))))
    iu, ju = np.triu_indices(n, 1)
    all_s = np.sign(perms[:, ju] - perms[:, iu]).sum(1)
    for _ in range(5):
        y = rng.standard_normal(n)
        mk = mann_kendall(y, "increasing")
        assert mk.method == "mann-kendall (exact)"
        assert mk.p_value == pytest.approx(np.mean(all_s >= mk.s), abs=1e-12)
        assert mann_kendall(y, "decreasing").p_value == pytest.approx(np.mean(all_s <= mk.s), abs=1e-12)


def test_mann_kendall_normal_with_ties():
    y = [1, 2, 2, 3, 3, 3, 4, 5, 5, 6, 7, 7]
    mk = mann_kendall(y, "increasing")
    n = len(y)
    ties = 3 * (2 * 1 * 9) + 3 * 2 * 11  # three pairs of 2 and one triple
    assert mk.var_s == pytest.approx((n * (n - 1) * (2 * n + 5) - ties) / 18)
    assert mk.method.startswith("mann-kendall (normal")
    assert mk.p_value == pytest.approx(0.5 * math.erfc(((mk.s - 1) / math.sqrt(mk.var_s)) / math.sqrt(2)))
    assert mann_kendall([3.0] * 10, "decreasing").p_value == 1.0  # all tied: no trend
    assert mann_kendall([1.0, 2.0], "two-sided").p_value == 1.0


def test_mann_kendall_agrees_with_scipy_kendalltau_exact():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for n in (8, 15, 30):
        y = rng.standard_normal(n) + 0.05 * np.arange(n)
        ref = stats.kendalltau(np.arange(n), y, method="exact", alternative="greater").pvalue
        assert mann_kendall(y, "increasing").p_value == pytest.approx(ref, rel=1e-6)


def test_theil_sen_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    x = np.sort(rng.uniform(0, 10, 40))
    y = 0.3 * x + rng.standard_normal(40)
    slope, lo, hi = theil_sen(x, y, 0.95)
    ref = stats.theilslopes(y, x, 0.95)
    assert (slope, lo, hi) == pytest.approx((ref.slope, ref.low_slope, ref.high_slope))
    assert lo <= 0.3 <= hi


def test_adjust_pvalues_holm_and_bh():
    p = [0.01, 0.04, 0.03, 0.005]
    assert adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust_pvalues(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_pvalues(p, "none") == p
    assert adjust_pvalues([], "holm") == []


def test_config_validation():
    with pytest.raises(ValueError, match="smooth"):
        PhaseConfig(smooth=4)
    with pytest.raises(ValueError, match="correction"):
        PhaseConfig(correction="bonferroni")
    with pytest.raises(ValueError, match="unknown phase"):
        PhaseConfig(phases=("memorisation",))
    with pytest.raises(ValueError, match="mode"):
        PhaseConfig(mode="train")
    with pytest.raises(ValueError, match="max_points"):
        PhaseConfig(max_points=10)


# --------------------------------------------------------------------------------------------
# False positives under no-trend histories
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["compression", "fitting"])
@pytest.mark.parametrize("noise", ["gauss_se_known", "gauss_se_unknown", "tied_exact", "heavy_tailed"])
def test_series_null_false_positive_rate(phase, noise):
    """One series, raw (unadjusted) test at alpha: the peak-selected segment must not inflate it."""
    rng = np.random.default_rng(hash((phase, noise)) % 2**32)
    cfg = PhaseConfig()
    reps, hits = 1000, 0
    for r in range(reps):
        n = (12, 25, 50, 100)[r % 4]
        steps = np.unique(np.floor(np.logspace(0, 4, n)))
        m = steps.size
        se = None
        if noise == "gauss_se_known":
            v = 3.0 + 0.1 * rng.standard_normal(m)
            se = np.full(m, 0.1)
        elif noise == "gauss_se_unknown":
            v = 3.0 + 0.1 * rng.standard_normal(m)
        elif noise == "tied_exact":  # an exact estimator's values: few distinct levels, se = 0
            v = 8.0 + 0.05 * rng.integers(0, 4, m)
            se = np.zeros(m)
        else:
            v = 3.0 + 0.1 * rng.standard_t(2, m)
        res = analyse_series(steps, v, se, phase=phase, config=cfg, describe=False)
        hits += bool(res.p_value is not None and res.p_value <= ALPHA and res.exceeds_uncertainty)
    rate = hits / reps
    assert rate <= _margin(ALPHA, reps), f"{phase}/{noise}: false positive rate {rate:.3f}"


@pytest.mark.parametrize("with_ci", [True, False])
def test_detect_phases_null_familywise_rate(with_ci):
    """Whole pipeline (two layers x two phases, Holm, persistence): P(any phase detected) <= alpha."""
    rng = np.random.default_rng(7 + with_ci)
    reps, hits = 1000, 0
    steps = STEPS[::2]  # 50 measurements
    for _ in range(reps):
        series = {
            f"l{i}": {
                "kde": (
                    5.0 + 0.1 * rng.standard_normal(steps.size),
                    0.5 + 0.1 * rng.standard_normal(steps.size),
                )
            }
            for i in range(2)
        }
        out = detect_phases(make_history(steps, series, se=0.1 if with_ci else None))
        hits += any(d.detected for d in out.values())
    rate = hits / reps
    assert rate <= _margin(ALPHA, reps), f"family-wise false positive rate {rate:.3f}"


# --------------------------------------------------------------------------------------------
# Detection and start steps on simulated phases
# --------------------------------------------------------------------------------------------


def _piecewise(logs, knots, levels):
    return np.interp(logs, knots, levels)


def test_fitting_and_compression_found_with_start_steps():
    """I(T;Y): flat, rise from step ~30 to ~300, flat. I(X;T): rise to a peak at step ~300, then fall."""
    rng = np.random.default_rng(11)
    fit_start, fit_end, peak = math.log10(31), math.log10(301), math.log10(301)
    reps, ok_fit, ok_comp = 60, 0, 0
    for _ in range(reps):
        ity = _piecewise(LOGS, [0, fit_start, fit_end, 5], [0.1, 0.1, 0.9, 0.9]) + 0.04 * rng.standard_normal(
            LOGS.size
        )
        ixt = _piecewise(LOGS, [0, peak, 4.0], [6.0, 9.0, 6.5]) + 0.04 * rng.standard_normal(LOGS.size)
        out = detect_phases(make_history(STEPS, {"h3": {"kde": (ixt, ity)}}, se=0.04))
        f = out[("h3", "kde", "fitting")]
        c = out[("h3", "kde", "compression")]
        if (
            f.detected
            and abs(math.log10(f.start_step + 1) - fit_start) <= 0.25
            and f.end_step is not None
            and abs(math.log10(f.end_step + 1) - fit_end) <= 0.25
        ):
            ok_fit += 1
        if (
            c.detected
            and c.ongoing
            and abs(math.log10(c.start_step + 1) - peak) <= 0.25
            and c.slope_bits_per_decade < 0
        ):
            ok_comp += 1
    assert ok_fit >= 0.95 * reps, f"fitting found with its start/end in {ok_fit}/{reps}"
    assert ok_comp >= 0.95 * reps, f"compression found at its peak in {ok_comp}/{reps}"


def test_compression_after_a_plateau_starts_where_the_fall_starts():
    rng = np.random.default_rng(12)
    onset = 3.0  # plateau from step ~100 to step ~1000, then the fall
    hits = fit_false = 0
    for _ in range(40):
        ixt = _piecewise(LOGS, [0, 2.0, onset, 4.0], [7.0, 9.0, 9.0, 7.0]) + 0.05 * rng.standard_normal(
            LOGS.size
        )
        ity = np.full(LOGS.size, 0.9) + 0.05 * rng.standard_normal(LOGS.size)
        out = detect_phases(make_history(STEPS, {"h": {"kde": (ixt, ity)}}, se=0.05))
        c = out[("h", "kde", "compression")]
        hits += c.detected and abs(math.log10(c.start_step + 1) - onset) <= 0.25
        fit_false += out[("h", "kde", "fitting")].detected  # I(T;Y) is flat here
    assert hits >= 38
    assert fit_false <= 4


def test_slope_and_change_are_reported_in_bits():
    ixt = _piecewise(LOGS, [0, 2.0, 4.0], [6.0, 9.0, 7.0])  # noise-free, exact kind
    ity = _piecewise(LOGS, [0, 1.0, 2.0, 5.0], [0.2, 0.2, 0.8, 0.8])
    out = detect_phases(make_history(STEPS, {"h": {"binning": (ixt, ity)}}, kind="exact"))
    c = out[("h", "binning", "compression")]
    f = out[("h", "binning", "fitting")]
    assert c.detected and f.detected
    assert c.slope_bits_per_decade == pytest.approx(-1.0, rel=0.05)
    lo, hi = c.slope_ci_per_decade
    assert lo <= c.slope_bits_per_decade <= hi
    assert c.change_bits == pytest.approx(2.0, rel=0.1)
    assert c.uncertainty_bits == 0.0 and c.change_bits > PhaseConfig().min_change_bits
    assert f.slope_bits_per_decade == pytest.approx(0.6, rel=0.1)
    assert f.end_step is not None and abs(math.log10(f.end_step + 1) - 2.0) < 0.1
    assert c.test.startswith("mann-kendall") and 0 <= c.p_value <= c.p_adjusted <= 1
    assert c.quantity is Quantity.I_XT and f.quantity is Quantity.I_TY
    assert c.step == int(STEPS[-1]) and c.n_points >= PhaseConfig().min_points
    # the full series analysis also reports the per-step slope
    a = analyse_series(STEPS, ixt, np.zeros(STEPS.size), phase="compression")
    assert (
        a.slope_bits_per_step < 0
        and a.slope_ci_per_step[0] <= a.slope_bits_per_step <= a.slope_ci_per_step[1]
    )


def test_change_within_uncertainty_is_not_a_phase():
    """A clean trend smaller than the estimates' stderr does not count."""
    rng = np.random.default_rng(3)
    ixt = 5.0 - 0.02 * LOGS + 0.005 * rng.standard_normal(LOGS.size)
    ity = np.full(LOGS.size, 0.5)
    out = detect_phases(make_history(STEPS, {"h": {"kde": (ixt, ity)}}, se=0.5))
    c = out[("h", "kde", "compression")]
    assert c.p_value < 1e-6 and c.status is PhaseStatus.NOT_DETECTED
    assert "uncertainty" in c.reason and c.change_bits < 1.96 * c.uncertainty_bits


# --------------------------------------------------------------------------------------------
# Persistence, family, statelessness, bookkeeping
# --------------------------------------------------------------------------------------------


def test_persistence_guards_against_flapping():
    cfg = PhaseConfig()
    h = cfg.smooth // 2
    peak = 20
    n = peak + h + 1 + cfg.min_points  # the latest decision is the first with enough post-peak points
    ixt = np.concatenate([np.linspace(5, 9, peak + 1), np.linspace(8.8, 7.0, n - peak - 1)])
    ity = np.full(n, 0.5)
    hist = make_history(STEPS[:n], {"h": {"binning": (ixt, ity)}}, kind="exact")
    c = detect_phases(hist)[("h", "binning", "compression")]
    assert c.status is PhaseStatus.CANDIDATE and c.consecutive == 1 and not c.detected and c.shown
    more = make_history(
        STEPS[: n + 2], {"h": {"binning": (np.append(ixt, [6.9, 6.8]), np.full(n + 2, 0.5))}}, kind="exact"
    )
    c2 = detect_phases(more)[("h", "binning", "compression")]
    assert c2.status is PhaseStatus.DETECTED and c2.consecutive == 3
    c1 = detect_phases(hist, persistence=1)[("h", "binning", "compression")]
    assert c1.status is PhaseStatus.DETECTED


def test_pvalues_adjusted_across_layers_and_phases():
    rng = np.random.default_rng(5)
    series = {
        f"l{i}": {
            "kde": (
                5 + 0.1 * rng.standard_normal(60) - 0.01 * i * np.arange(60),
                0.5 + 0.1 * rng.standard_normal(60),
            )
        }
        for i in range(3)
    }
    out = detect_phases(make_history(STEPS[:60], series, se=0.1), correction="holm")
    cells = [out[(l, "kde", ph)] for l in series for ph in ("fitting", "compression")]
    tested = [c for c in cells if c.p_value is not None]
    assert len(tested) >= 4 and all(c.family_size == len(tested) for c in cells)
    assert [c.p_adjusted for c in tested] == pytest.approx(
        adjust_pvalues([c.p_value for c in tested], "holm")
    )
    bh = detect_phases(make_history(STEPS[:60], series, se=0.1), correction="bh")
    bh_tested = [bh[c.key] for c in tested]
    assert [c.p_adjusted for c in bh_tested] == pytest.approx(
        adjust_pvalues([c.p_value for c in tested], "bh")
    )


def test_order_free_and_json_roundtrip():
    rng = np.random.default_rng(8)
    ixt = _piecewise(LOGS, [0, 2.5, 4.0], [6, 9, 7]) + 0.05 * rng.standard_normal(LOGS.size)
    ity = _piecewise(LOGS, [0, 2.0, 5.0], [0.1, 0.9, 0.9]) + 0.05 * rng.standard_normal(LOGS.size)
    hist = make_history(STEPS, {"a": {"kde": (ixt, ity)}, "b": {"kde": (ixt - 1, ity - 0.05)}}, se=0.05)
    ref = detect_phases(hist)
    shuffled = hist[:]
    random.Random(0).shuffle(shuffled)
    assert detect_phases(shuffled) == ref
    reloaded = [Record.from_dict(json.loads(json.dumps(r.to_dict()))) for r in hist]
    assert detect_phases(reloaded) == ref
    json.dumps([d.to_dict() for d in ref.values()])
    assert [k[0] for k in ref][::2] == ["a", "b"]
    # a re-measured step keeps its last Record; records of the other mode are ignored
    dup = hist + [Record(step=int(STEPS[-1]), mode="probe", n_samples=1, layers=hist[-1].layers)]
    passive = make_history(STEPS[:30], {"a": {"kde": (ixt[:30] * 0, ity[:30] * 0)}}, se=0.05, mode="passive")
    assert detect_phases(dup + passive) == ref


def test_insufficient_data_and_empty_history():
    assert detect_phases([]) == {}
    hist = make_history(STEPS[:6], {"h": {"kde": (np.arange(6.0), np.arange(6.0))}}, se=0.1)
    f = detect_phases(hist)[("h", "kde", "fitting")]
    assert f.status is PhaseStatus.INSUFFICIENT_DATA and "measurements" in f.reason
    # missing estimates (e.g. an estimator error) are skipped, not fatal
    hist2 = make_history(STEPS[:20], {"h": {"kde": (np.arange(20.0), np.arange(20.0))}}, se=0.1)
    hist2[5].layers["h"]["kde"] = LayerResult(error="boom")
    tracker = PhaseTracker()
    for rec in hist2:
        tracker.update(rec)
    assert tracker.series_sizes()[("h", "kde", "fitting")] == 19
    assert tracker.latest == detect_phases(hist2)


def test_long_histories_are_thinned_and_stay_fast():
    import time

    rng = np.random.default_rng(9)
    steps = np.arange(0, 50_000, 10)  # every_n(10) over 50k steps: 5000 measurements
    logs = np.log10(steps + 1.0)
    ixt = _piecewise(logs, [0, 3.0, 4.7], [6, 9, 7]) + 0.05 * rng.standard_normal(steps.size)
    ity = _piecewise(logs, [0, 2.0, 3.0, 5], [0.1, 0.1, 0.9, 0.9]) + 0.05 * rng.standard_normal(steps.size)
    hist = make_history(steps, {"h": {"kde": (ixt, ity)}}, se=0.05)
    t0 = time.perf_counter()
    out = detect_phases(hist)
    assert time.perf_counter() - t0 < 10.0
    c = out[("h", "kde", "compression")]
    assert c.detected and c.n_points <= PhaseConfig().max_points
    assert abs(math.log10(c.start_step + 1) - 3.0) < 0.3
    assert out[("h", "kde", "fitting")].detected
    a = analyse_series(steps, ixt, np.full(steps.size, 0.05), phase="compression")  # one-shot: evenly thinned
    assert a.thinned_from == steps.size and a.n_measurements == steps.size


def test_phase_carries_artefact_caveats_from_record_warnings():
    ixt = _piecewise(LOGS, [0, 2.0, 4.0], [6.0, 9.0, 7.0])
    ity = np.full(LOGS.size, 0.5)
    hist = make_history(STEPS, {"h": {"binning": (ixt, ity)}}, kind="exact")

    def warn(layer, code, quantity=Quantity.I_XT, estimator="binning"):
        return IBWarning(layer, estimator, quantity, code, Severity.WARNING, "m")

    for rec in hist[-10:]:
        rec.warnings = [
            warn("h", WarningCode.SATURATING_UNITS),
            warn("other", WarningCode.OUTSIDE_RANGE),
            warn("h", WarningCode.AT_CAP, Quantity.I_TY),
            warn("h", WarningCode.DPI_VIOLATION),
        ]
    hist[0].warnings = [warn("h", WarningCode.DUPLICATE_ROWS)]  # before the compression started
    c = detect_phases(hist)[("h", "binning", "compression")]
    assert c.detected and c.caveats == ("saturating_units",)
    f = detect_phases(hist)[("h", "binning", "fitting")]
    assert f.caveats == ("at_cap",)  # the I(T;Y) warning, on the phase reading I(T;Y)


def test_the_pair_index_cache_is_bounded_in_bytes():
    """The Mann-Kendall / Theil-Sen pair indices are cached per series length; the cache stays under its
    byte ceiling whatever lengths come (an entry count alone let it hold ~480 MiB at 1,024 points), and a
    cached entry is the same as a fresh one."""
    from ibhooks.interpret import statistics

    for n in range(2, 257):  # up to 256 points, one entry fits the ceiling (a larger one is kept alone)
        statistics._pairs(n)
        assert statistics.pairs_cache_bytes() <= statistics.PAIRS_CACHE_BYTES
    want = np.triu_indices(256, k=1)
    assert all(np.array_equal(a, b) for a, b in zip(statistics._pairs(256), want))
    assert not statistics._pairs(10)[0].flags.writeable
