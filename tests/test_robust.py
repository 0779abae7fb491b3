"""Verdicts that survive the instrument (ibhooks.analyses.robust): robust where every setting finds a
phase, contested where one does not, the default sweeps, reuse of the run's own estimates, state round
trip, and a tiny monitor run whose run log and report carry the verdicts."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn as nn

from ibhooks import IBMonitor, load_run
from ibhooks.analyses import AnalysisContext, build_analyses
from ibhooks.analyses.robust import PhaseVerdict, Robustness, RobustVerdicts, latest_verdicts
from ibhooks.capture.snapshot import Snapshot
from ibhooks.estimators.base import Estimator
from ibhooks.estimators.registry import make_estimator
from ibhooks.pipeline.console import Console
from ibhooks.schema import LayerResult, PhaseStatus, Record, make_estimate

N_STEPS = 40


class ReadOut(Estimator):
    """A toy instrument: I(X;T) = gain x column 0 of T (or its running maximum: never falls, so never
    compresses), I(T;Y) = column 1. Exact, no uncertainty, so the tests are about the sweep logic."""

    name = "readout"

    def __init__(self, gain: float = 1.0, monotone: bool = False) -> None:
        self.gain, self.monotone = float(gain), bool(monotone)
        self.peak = -math.inf  # state (for the round trip)

    def params(self):
        return {"gain": self.gain, "monotone": self.monotone}

    def layer_information(self, t, y=None, *, layer=None):
        x = float(t[:, 0].mean()) * self.gain
        self.peak = max(self.peak, x)
        value = self.peak if self.monotone else x
        return (make_estimate(value, "I(X;T)", kind="exact", estimator=self.name),
                make_estimate(float(t[:, 1].mean()), "I(T;Y)", kind="exact", estimator=self.name))

    def state_dict(self):
        return {"peak": self.peak}

    def load_state_dict(self, state):
        self.peak = float(state["peak"])


def _curve(step: int):
    """I(X;T): up to 6 bits by step 8, then down to 3 bits (compression); I(T;Y): 0 -> 1 by step 16."""
    i_xt = 3.0 + 3.0 * step / 8 if step <= 8 else 6.0 - 3.0 * (step - 8) / (N_STEPS - 8)
    i_ty = min(step / 16, 1.0)
    return i_xt, i_ty


def _snapshot(step: int, layers=("a", "b")) -> Snapshot:
    i_xt, i_ty = _curve(step)
    t = torch.tensor([[i_xt, i_ty]] * 4)
    return Snapshot(step=step, mode="probe", activations={k: t.clone() for k in layers},
                    labels=torch.tensor([0, 1, 0, 1]))


def _record(step: int, layers=("a", "b"), run=None) -> Record:
    """A record whose layers are estimated by the run's estimators ``run`` (key -> estimator)."""
    snap = _snapshot(step, layers)
    per = {k: {key: LayerResult(*est.layer_information(snap.activations[k]))
               for key, est in (run or {}).items()} for k in layers}
    return Record(step=step, mode="probe", n_samples=4, layers=per)


def _bind(analysis: RobustVerdicts, run=None) -> RobustVerdicts:
    analysis.bind(AnalysisContext(nn.Identity(), ["a", "b"], {}, dict(run or {}), None, None, None, [],
                                  Console(False)))
    return analysis


def _drive(analysis: RobustVerdicts, steps, run=None):
    out = None
    for step in steps:
        out = analysis.analyse(_snapshot(step), _record(step, run=run))
    return out


def test_compression_found_under_every_setting_is_robust():
    analysis = _bind(RobustVerdicts(settings={"g1": ReadOut(1.0), "g0.5": ReadOut(0.5), "g2": ReadOut(2.0)}))
    out = _drive(analysis, range(N_STEPS))
    json.dumps(out)  # JSON-able
    comp = out["layers"]["a"]["compression"]
    assert comp["verdict"] == "robust" and comp["robust"] and not comp["contested"]
    assert comp["found_by"] == ["g1", "g0.5", "g2"] and comp["not_found_by"] == []
    # every setting places the phase's start after the peak at step 8
    assert all(8 <= v["start_step"] <= 12 for v in comp["settings"].values())
    assert out["layers"]["a"]["fitting"]["verdict"] == "robust"
    assert out["layers"]["b"]["values"]["g2"]["I_XT"] == pytest.approx(2 * _curve(N_STEPS - 1)[0])


def test_one_setting_that_disagrees_makes_it_contested():
    analysis = _bind(RobustVerdicts(settings={"g1": ReadOut(1.0), "flat": ReadOut(1.0, monotone=True),
                                              "g2": ReadOut(2.0)}))
    out = _drive(analysis, range(N_STEPS))
    comp = out["layers"]["b"]["compression"]
    assert comp["verdict"] == "contested" and comp["contested"] and not comp["robust"]
    assert comp["found_by"] == ["g1", "g2"] and comp["not_found_by"] == ["flat"]
    assert comp["settings"]["flat"]["status"] == "not_detected"
    # fitting reads I(T;Y), the same under all three: robust
    assert out["layers"]["b"]["fitting"]["verdict"] == "robust"
    typed = PhaseVerdict.from_dict("b", "compression", comp)
    assert typed.verdict is Robustness.CONTESTED and typed.not_found_by == ["flat"]


def test_early_verdicts_are_undecided_and_absence_is_its_own_verdict():
    analysis = _bind(RobustVerdicts(settings={"m1": ReadOut(1.0, monotone=True),
                                              "m2": ReadOut(2.0, monotone=True)}))
    assert _drive(analysis, range(4))["layers"]["a"]["compression"]["verdict"] == "undecided"
    out = _drive(analysis, range(4, N_STEPS))
    assert out["layers"]["a"]["compression"]["verdict"] == "absent"


def test_setting_equal_to_the_run_estimator_is_read_from_the_record():
    run_est = ReadOut(1.0)
    analysis = _bind(RobustVerdicts(settings=[ReadOut(2.0), run_est]), run={"mine": run_est})
    assert [s.reuse for s in analysis.settings] == [None, "mine"]
    snap = _snapshot(3)
    rec = Record(step=3, mode="probe", n_samples=4, layers={"a": {"mine": LayerResult(
        make_estimate(7.25, "I(X;T)", kind="exact"), make_estimate(0.5, "I(T;Y)", kind="exact"))}})
    out = analysis.analyse(snap, rec)
    label = analysis.settings[1].label
    assert out["layers"]["a"]["values"][label] == {"I_XT": 7.25, "I_TY": 0.5}  # the record's, not recomputed
    # the reused setting's state is the run's own, so only the other one is saved
    assert set(analysis.state_dict()["estimators"]) == {"readout(gain=2, monotone=False)"}


def test_state_round_trip_reaches_the_same_verdicts():
    def make():
        return _bind(RobustVerdicts(settings={"g1": ReadOut(1.0), "flat": ReadOut(1.0, monotone=True)}))

    whole = make()
    expected = _drive(whole, range(N_STEPS))
    first = make()
    _drive(first, range(20))
    state = json.loads(json.dumps(first.state_dict()))  # plain data
    second = make()
    second.load_state_dict(state)
    assert second.settings[1].estimator.peak == first.settings[1].estimator.peak
    assert _drive(second, range(20, N_STEPS)) == expected
    other = _bind(RobustVerdicts(settings={"g1": ReadOut(1.0), "g3": ReadOut(3.0)}))
    with pytest.raises(ValueError, match="same sweep"):
        other.load_state_dict(state)


def _context(estimators):
    return AnalysisContext(nn.Identity(), [], {}, estimators, None, None, None, [], Console(False))


def test_default_sweeps_around_the_run_estimator():
    a = RobustVerdicts()
    a.bind(_context({"binning": make_estimator(("binning", {"n_bins": 30, "range": (-1.0, 1.0)}))}))
    assert [s.label for s in a.settings] == [f"binning(n_bins={b})" for b in (10, 30, 100)]
    assert [s.reuse for s in a.settings] == [None, "binning", None]
    assert a.settings[0].estimator.params()["range"] == [-1.0, 1.0]  # everything but n_bins kept
    b = RobustVerdicts()
    b.bind(_context({"binning": make_estimator(("binning", {"n_bins": 50}))}))
    assert [s.estimator.n_bins for s in b.settings] == [10, 30, 50, 100]  # the run's own is added
    c = RobustVerdicts()
    c.bind(_context({"ksg": make_estimator("ksg"), "kde": make_estimator(("kde", {"noise_var": 0.1}))}))
    assert [s.label for s in c.settings] == [f"kde(noise_var={v})" for v in (0.05, 0.1, 0.2)]
    d = RobustVerdicts()
    d.bind(_context({"noisy_channel": make_estimator(("noisy_channel", {"relative_noise": 0.1}))}))
    assert [s.estimator.relative_noise for s in d.settings] == pytest.approx([0.05, 0.1, 0.2])
    e = RobustVerdicts()  # the default estimator: both of auto's knobs in step, coarse to fine
    e.bind(_context({"auto": make_estimator("auto")}))
    assert [s.estimator.n_bins for s in e.settings] == [10, 30, 100]
    assert [s.estimator.relative_noise for s in e.settings] == pytest.approx([0.6, 0.3, 0.15])
    assert [s.reuse for s in e.settings] == [None, "auto", None]
    assert all(s.estimator.xt == "noisy_channel" and s.estimator.ty == "classifier_probe" for s in e.settings)


def test_bad_input_gets_one_clear_error():
    with pytest.raises(ValueError, match="has a default sweep"):
        RobustVerdicts().bind(_context({"ksg": make_estimator("ksg")}))
    with pytest.raises(ValueError, match="not one of the run's estimators"):
        RobustVerdicts(estimator="kde").bind(_context({"binning": make_estimator("binning")}))
    with pytest.raises(ValueError, match="at least two"):
        RobustVerdicts(settings=[("binning", {"n_bins": 10})])
    with pytest.raises(ValueError, match="same instrument"):
        RobustVerdicts(settings=[("binning", {"n_bins": 10}), ("binning", {"n_bins": 10, "range": "layer"})])
    with pytest.raises(ValueError, match="bins must be"):
        RobustVerdicts(bins=(10, 1))
    with pytest.raises(ValueError, match="settings= must be"):
        RobustVerdicts(settings="binning")
    assert build_analyses([("robust", {"bins": [5, 20]})])[0].bins == (5, 20)


def test_kde_settings_share_distances_and_match_a_direct_call():
    g = torch.Generator().manual_seed(0)
    t, y = torch.randn(64, 5, generator=g), torch.randint(0, 2, (64,), generator=g)
    a = RobustVerdicts(settings=[("kde", {"noise_var": 0.05}), ("kde", {"noise_var": 0.2})])
    a.bind(_context({}))
    out = a.analyse(Snapshot(0, "probe", {"a": t}, y),
                    Record(step=0, mode="probe", n_samples=64, layers={"a": {}}))
    for s in a.settings:
        direct = make_estimator(("kde", {"noise_var": s.estimator.noise_var})).layer_information(t, y)
        got = out["layers"]["a"]["values"][s.label]
        assert got["I_XT"] == pytest.approx(direct[0].value, rel=1e-12)
        assert got["I_TY"] == pytest.approx(direct[1].value, rel=1e-12)


def test_monitor_run_writes_robust_verdicts_to_the_run_log_and_report(tmp_path):
    from ibhooks.report.html import render_report

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    g = torch.Generator().manual_seed(1)
    probe = (torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g))
    mon = IBMonitor(model, probe=probe, schedule=1, log_dir=tmp_path, run_name="r", verbose=False,
                    estimators=[("binning", {"n_bins": 30})], analyses=["robust"])
    for _ in range(3):
        mon.step()
    mon.close()
    run = load_run(tmp_path / "r.jsonl")
    assert all("robust" in r.analyses for r in run.records) and not any(r.errors for r in run.records)
    step, settings, verdicts = latest_verdicts(run.records)
    assert step == 3 and settings == ["binning(n_bins=10)", "binning(n_bins=30)", "binning(n_bins=100)"]
    assert {(v.layer, v.phase) for v in verdicts} == {(k, p) for k in mon.layer_names
                                                      for p in ("fitting", "compression")}
    assert all(v.verdict is Robustness.UNDECIDED for v in verdicts)  # 4 points: too few to decide
    assert all(dict(v.settings)["binning(n_bins=30)"].status is PhaseStatus.INSUFFICIENT_DATA
               for v in verdicts)
    rec = run.records[-1]
    assert rec.analyses["robust"]["layers"]["0"]["values"]["binning(n_bins=30)"]["I_XT"] == pytest.approx(
        rec.layers["0"]["binning"].i_xt.value)
    page = render_report(run, figures=False, animation=False)
    assert "Robustness of verdicts" in page and "binning(n_bins=100)" in page
