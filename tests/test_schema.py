"""The typed schema: every object round-trips through JSON, one definition of each quantity name,
traits validate, and version-1 layouts are read."""
import json
import math

import pytest

from ibhooks.schema import (BoundViolation, ChainCheck, Checks, DpiTally, DpiViolation, EstimatorTraits,
                            IBWarning, LayerResult, PhaseDecision, PhaseStatus, Quantity, Record, RecordError,
                            Severity, WarningCode, make_estimate)
from ibhooks.schema.phases import fold_phase_changes


def _roundtrip(obj):
    return type(obj).from_dict(json.loads(json.dumps(obj.to_dict(), allow_nan=False)))


def test_quantity_is_defined_once():
    assert [q.label for q in Quantity] == ["I(X;T)", "I(T;Y)"]
    assert Quantity.parse("I(T;Y)") is Quantity.I_TY and Quantity.parse("I_XT") is Quantity.I_XT
    assert Quantity.I_XT.phase == "compression" and Quantity.I_TY.phase == "fitting"
    assert f"{Quantity.I_XT}" == "I_XT"
    with pytest.raises(ValueError, match="unknown quantity"):
        Quantity.parse("I(X;Y)")


def test_estimate_with_traits_roundtrips():
    traits = EstimatorTraits(discretises=True, exact=True, cap="log2_n")
    e = make_estimate(3.5, "H(bin30[-1,1](T))", kind="exact", estimator="robin", ci=(3.4, 3.6), cap=12.0,
                      n=4096, dim=5, params={"n_bins": 30}, diagnostics={"distinct_rows": 11}, traits=traits)
    assert _roundtrip(e) == e and e.traits.discretises
    with pytest.raises(ValueError, match="cap must be one of"):
        EstimatorTraits(cap="huge")
    nan = make_estimate(math.nan, "q")
    assert math.isnan(_roundtrip(nan).value), "a non-finite value is stored as null and read back as NaN"


def test_findings_and_phases_roundtrip():
    w = IBWarning("fc1", "binning", Quantity.I_XT, WarningCode.SATURATING_UNITS, Severity.WARNING, "m", {"f": 0.3}, "r")
    b = BoundViolation("fc1", "kde", "I_TY <= I_XT", 1.2, 1.0, 0.2, 0.05, True, False, "msg")
    d = DpiViolation("c", "kde", Quantity.I_TY, "a", "b", 1.0, 1.3, 0.3, None, None, ("upper_bound",) * 2, "msg")
    checks = Checks(bounds_checked=4, bound_violations=(b,), chains=(ChainCheck("c", ("a", "b"), "data flow"),),
                    dpi=(DpiTally("kde", Quantity.I_TY, 1, 1, 0, 1, 0),), dpi_violations=(d,), not_on_chain=("x",))
    p = PhaseDecision("fc2", "binning", "compression", 40, PhaseStatus.DETECTED, start_step=10, end_step=None,
                      ongoing=True, change_bits=2.1, p_value=1e-4, slope_ci_per_decade=(-2.0, -1.0),
                      caveats=("saturating_units",))
    for obj in (w, b, d, checks, p):
        assert _roundtrip(obj) == obj, type(obj).__name__
    assert checks.dpi_total().not_assessed == 1 and checks.bugs == 0
    rec = Record(step=40, mode="probe", n_samples=4096, h_y=1.0,
                 layers={"fc1": {"binning": LayerResult(i_xt=make_estimate(1.0, "q"), error=None)}},
                 errors=[RecordError("boom", layer="fc1", estimator="x")], checks=checks, warnings=[w],
                 phase_changes=[p])
    assert _roundtrip(rec).to_dict() == rec.to_dict()


def test_fold_keeps_the_latest_decision_per_series():
    a1 = PhaseDecision("l", "e", "fitting", 5, PhaseStatus.CANDIDATE)
    a2 = PhaseDecision("l", "e", "fitting", 9, PhaseStatus.DETECTED)
    b1 = PhaseDecision("l", "e", "compression", 9, PhaseStatus.NOT_DETECTED)
    latest = fold_phase_changes([a1, b1, a2])
    assert latest == {("l", "e", "fitting"): a2, ("l", "e", "compression"): b1}
    assert a2.same_outcome(a2.at_step(12)) and not a2.same_outcome(a1)


def test_version1_record_layout_is_read():
    v1 = {
        "type": "record", "step": 7, "mode": "probe", "n_samples": 10, "h_y": 1.0,
        "layers": {"a": {"binning": {"I_XT": {"value": 2.0, "quantity": "H(bin30[-1,1](T))", "kind": "exact",
                                              "estimator": "binning", "cap": 3.3, "params": {"n_bins": 30}},
                                     "I_TY": None, "error": None}}},
        "errors": [{"layer": None, "estimator": None, "error": "checks failed: x"}],
        "checks": {"version": 1, "tol_bits": 1e-6, "z": 1.96,
                   "bounds": {"checked": 3, "violations": []},
                   "dpi": {"pairs": "adjacent", "chains": [{"name": "m", "layers": ["a", "b"], "source": "s",
                                                            "missing": []}],
                           "summary": {"kde": {"I_XT": {"pairs_checked": 1, "violated": 1, "significant": 0,
                                                        "skipped": 0}}},
                           "violations": [{"chain": "m", "estimator": "kde", "quantity": "I_XT", "upstream": "a",
                                           "downstream": "b", "upstream_bits": 1.0, "downstream_bits": 1.5,
                                           "size_bits": 0.5, "uncertainty_bits": None, "significant": None,
                                           "estimate_kinds": ["upper_bound", "upper_bound"], "message": "m"}],
                           "not_checked": ["c"]}},
        "warnings": [{"layer": "a", "estimator": "binning", "quantity": "I_XT", "code": "at_cap",
                      "severity": "info", "message": "m", "evidence": {}, "remedy": "r"}],
        "phases": {"layers": {"a": {"binning": {"fitting": {"status": "candidate", "start_step": 1}}}}},
        "info": {},
    }
    rec = Record.from_dict(v1)
    e = rec.layers["a"]["binning"].i_xt
    assert e.traits.discretises and e.traits.exact, "v1 estimates get traits from what they recorded"
    assert rec.checks.dpi_total().not_assessed == 1 and rec.checks.not_on_chain == ("c",)
    assert rec.warnings[0].code is WarningCode.AT_CAP
    assert rec.phase_changes[0].status is PhaseStatus.CANDIDATE and rec.phase_changes[0].step == 7
    assert rec.errors[0].error == "checks failed: x"
