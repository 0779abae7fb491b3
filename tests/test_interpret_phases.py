"""PhaseTracker: incremental decisions equal a replay, a resumed tracker equals an uninterrupted
one, re-measured steps roll back, state stays bounded, malformed state is refused."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
import torch

from ibhooks.interpret import PhaseConfig, PhaseTracker, detect_phases, thin_log
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
from ibhooks.schema.phases import fold_phase_changes

STEPS = np.unique(np.floor(np.logspace(0, 4, 100)).astype(int))
LOGS = np.log10(STEPS + 1.0)


def _est(v, se=0.05):
    return Estimate(
        value=float(v), quantity="q", kind="estimate", estimator="kde", ci=(v - 1.96 * se, v + 1.96 * se)
    )


def history(steps=STEPS, seed=0, mode="probe", warn_from=60):
    """Two layers: fitting then compression in 'deep', flat I(X;T) in 'flat'; saturation warnings late."""
    rng = np.random.default_rng(seed)
    logs = np.log10(np.asarray(steps) + 1.0)
    ixt = np.interp(logs, [0, 2.5, 4.0], [6, 9, 7]) + 0.05 * rng.standard_normal(logs.size)
    ity = np.interp(logs, [0, 1.0, 2.0, 5.0], [0.1, 0.1, 0.9, 0.9]) + 0.05 * rng.standard_normal(logs.size)
    flat = 5.0 + 0.05 * rng.standard_normal(logs.size)
    recs = []
    for k, s in enumerate(steps):
        layers = {
            "deep": {"kde": LayerResult(_est(ixt[k]), _est(ity[k]))},
            "flat": {"kde": LayerResult(_est(flat[k]), _est(0.5 + 0.01 * rng.standard_normal()))},
        }
        warnings = (
            [IBWarning("deep", "kde", Quantity.I_XT, WarningCode.SATURATING_UNITS, Severity.WARNING, "m")]
            if k >= warn_from
            else []
        )
        recs.append(Record(step=int(s), mode=mode, n_samples=100, layers=layers, warnings=warnings))
    return recs


def feed(tracker, records):
    return [tracker.update(r) for r in records]


def test_incremental_equals_replay_and_changes_fold_to_the_latest():
    hist = history()
    tracker = PhaseTracker()
    changes = feed(tracker, hist)
    latest = tracker.latest
    assert latest == detect_phases(hist)
    comp = latest[("deep", "kde", "compression")]
    assert comp.detected and comp.caveats == ("saturating_units",) and comp.step == int(STEPS[-1])
    assert latest[("deep", "kde", "fitting")].detected
    assert not latest[("flat", "kde", "compression")].detected
    folded = fold_phase_changes(c for cs in changes for c in cs)
    assert set(folded) == set(latest)
    assert all(folded[k].same_outcome(latest[k]) for k in latest)
    # each change is stamped with the step it was made at, and is a change
    for rec, cs in zip(hist, changes):
        assert all(c.step == rec.step for c in cs)
    assert sum(map(len, changes)) < len(hist) * len(latest) / 4  # far fewer changes than decisions


def test_resumed_tracker_reaches_the_same_decisions():
    hist = history()
    straight = PhaseTracker()
    expected = feed(straight, hist)
    for cut in (30, 57, 80):
        first = PhaseTracker()
        before = feed(first, hist[:cut])
        state = first.state_dict()
        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        state = torch.load(buf, weights_only=True)
        state = json.loads(json.dumps(state))  # plain JSON too
        resumed = PhaseTracker()
        resumed.load_state_dict(state)
        after = feed(resumed, hist[cut:])
        assert before + after == expected, cut
        assert resumed.latest == straight.latest


def test_a_re_measured_step_replaces_the_later_points():
    hist = history()
    straight = PhaseTracker()
    feed(straight, hist)
    crashed = PhaseTracker()
    feed(crashed, hist[:70])
    # a resumed run without the tracker's state re-measures from record 50 on, with other values
    replay = history(seed=1)[50:70]
    feed(crashed, replay)
    reference = PhaseTracker()
    feed(reference, hist[:50] + replay)
    assert crashed.latest == reference.latest
    assert crashed.series_sizes() == reference.series_sizes()
    feed(crashed, hist[70:])
    feed(reference, hist[70:])
    assert crashed.latest == reference.latest


def test_only_one_mode_is_used():
    probe, passive = history(), history(mode="passive", seed=3)
    tracker = PhaseTracker()
    tracker.update(probe[0])
    assert tracker.mode == "probe"
    assert tracker.update(passive[1]) == []
    mixed = [r for pair in zip(probe, passive) for r in pair]
    t2 = PhaseTracker()
    feed(t2, mixed)
    assert t2.latest == detect_phases(probe)
    assert PhaseTracker(PhaseConfig(mode="passive")).update(probe[0]) == []


def test_state_stays_bounded_over_3200_updates():
    cfg = PhaseConfig(max_points=48)
    steps = np.arange(1, 3201) * 10  # a linear schedule: thinning is needed
    rng = np.random.default_rng(4)
    tracker = PhaseTracker(cfg)
    sizes = {}
    for k, s in enumerate(steps):
        v = 5.0 + 0.05 * rng.standard_normal()
        tracker.update(
            Record(
                step=int(s),
                mode="probe",
                n_samples=10,
                layers={"l": {"kde": LayerResult(_est(v), _est(0.5))}},
            )
        )
        assert max(tracker.series_sizes().values()) <= cfg.max_points
        if (k + 1) % 800 == 0:
            sizes[k + 1] = len(pickle.dumps(tracker.state_dict()))
    assert max(sizes.values()) <= 1.5 * min(sizes.values()), sizes  # no growth with the history
    assert sizes[3200] < 20_000, sizes
    d = tracker.latest[("l", "kde", "compression")]
    assert d.n_points <= cfg.max_points
    kept = tracker.state_dict()["series"][0]["steps"]
    assert kept[0] == 10 and kept[-1] == 32000  # first and latest kept
    # evenly in log(step + 1): the early, fast part is not thinned away
    assert sum(1 for s in kept if s <= 1000) >= 10


def test_thin_log_keeps_first_last_and_log_spacing():
    steps = np.arange(0, 50_000, 10)
    keep = thin_log(steps, 128)
    assert keep[0] == 0 and keep[-1] == steps.size - 1 and keep.size <= 128
    kept = steps[keep]
    assert np.array_equal(kept[:11], np.arange(0, 110, 10))  # sparse early points are all kept
    gaps = np.diff(np.log2(kept[kept > 1000] + 1.0))[:-1]  # dense later: evenly spaced in log
    assert gaps.max() <= 1.5 * np.median(gaps)
    assert np.array_equal(thin_log(STEPS, 128), np.arange(STEPS.size))  # fits: nothing dropped


def test_malformed_state_is_refused_with_a_clear_error():
    tracker = PhaseTracker()
    feed(tracker, history()[:20])
    state = tracker.state_dict()
    with pytest.raises(ValueError, match="state_dict"):
        PhaseTracker().load_state_dict({})
    with pytest.raises(ValueError, match="state_dict"):
        PhaseTracker().load_state_dict([1, 2])
    with pytest.raises(ValueError, match="same PhaseConfig"):
        PhaseTracker(PhaseConfig(alpha=0.01)).load_state_dict(state)
    bad = json.loads(json.dumps(state))
    bad["series"][0]["values"] = bad["series"][0]["values"][:-1]
    with pytest.raises(ValueError, match="malformed"):
        PhaseTracker().load_state_dict(bad)
    bad2 = json.loads(json.dumps(state))
    bad2["series"][0]["key"] = ["deep", "kde", "memorisation"]
    with pytest.raises(ValueError, match="malformed"):
        PhaseTracker().load_state_dict(bad2)
    fresh = PhaseTracker()
    with pytest.raises(ValueError):
        fresh.load_state_dict(bad)
    assert fresh.latest == {}  # a refused state changes nothing
    with pytest.raises(TypeError, match="PhaseConfig"):
        PhaseTracker({"alpha": 0.1})


def test_insufficient_data_first_and_status_changes_are_reported_once():
    hist = history()
    tracker = PhaseTracker()
    first = tracker.update(hist[0])
    assert {d.status for d in first} == {PhaseStatus.INSUFFICIENT_DATA} and len(first) == 4
    assert tracker.update(hist[1]) == []  # still insufficient: no change to log
