"""Checks of one Record: chains, within-layer bounds (bugs vs inconsistencies), the DPI along chains
with size and significance, and each artefact warning, as typed findings."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ibhooks.checks import (
    WARNING_CODES,
    Chain,
    CheckConfig,
    as_chains,
    check_record,
    validate_chains,
)
from ibhooks.estimators.binning import Binning
from ibhooks.schema import (
    Checks,
    DpiTally,
    Estimate,
    EstimatorTraits,
    LayerResult,
    Quantity,
    Record,
    Severity,
    WarningCode,
    make_estimate,
)

XT, TY = Quantity.I_XT, Quantity.I_TY
BINNING = EstimatorTraits(discretises=True, exact=True, cap="log2_n")
NOISY = EstimatorTraits(adds_noise=True, pairwise=True, cap="log2_n")


def est(
    v,
    *,
    se=None,
    kind="estimate",
    name="kde",
    cap=None,
    n=1000,
    dim=3,
    diagnostics=None,
    params=None,
    traits=None,
):
    ci = None if se is None else (v - 1.959964 * se, v + 1.959964 * se)
    if traits is None:
        traits = BINNING if name == "binning" else NOISY if name == "kde" else EstimatorTraits()
    return make_estimate(
        v,
        "q",
        kind=kind,
        estimator=name,
        ci=ci,
        cap=cap,
        n=n,
        dim=dim,
        diagnostics=diagnostics,
        params=params,
        traits=traits,
    )


def record(layers, h_y=1.0, step=7):
    """layers: {layer: {estimator: (I_XT Estimate, I_TY Estimate)}}."""
    return Record(
        step=step,
        mode="probe",
        n_samples=1000,
        h_y=h_y,
        layers={l: {e: LayerResult(*pair) for e, pair in per.items()} for l, per in layers.items()},
    )


def codes(warnings, layer=None):
    return [w.code for w in warnings if layer is None or w.layer == layer]


def tally(checks: Checks, estimator, quantity) -> DpiTally:
    t = checks.tally(estimator, quantity)
    assert t is not None, (estimator, quantity, checks.dpi)
    return t


def counts(t: DpiTally):
    return (t.pairs_checked, t.violated, t.significant, t.skipped)


# --------------------------------------------------------------------------------------------
# Chains
# --------------------------------------------------------------------------------------------


def test_chain_validation_and_declarations():
    c = Chain("mlp", ["a", "b", "c"])
    assert c.layers == ("a", "b", "c")
    assert c.pairs() == [("a", "b"), ("b", "c")]
    assert c.pairs("all") == [("a", "b"), ("a", "c"), ("b", "c")]
    assert Chain.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="more than once"):
        Chain("x", ("a", "b", "a"))
    with pytest.raises(ValueError, match="no layers"):
        Chain("x", ())
    with pytest.raises(ValueError, match="sequence of layer names"):
        Chain("x", "abc")
    with pytest.raises(ValueError, match="non-empty string"):
        Chain("", ("a",))
    with pytest.raises(ValueError, match=r"unknown layer\(s\) \['zz'\].*'a', 'b', 'c'"):
        c.validate(["a", "b", "c"]) or Chain("m", ("a", "zz")).validate(["a", "b", "c"])
    assert as_chains(None) == ()
    assert as_chains({"f": ["a", "b"]}) == (Chain("f", ("a", "b")),)
    assert as_chains([["a", "b"], {"name": "g", "layers": ["b", "c"]}, c])[0] == Chain("chain0", ("a", "b"))
    assert as_chains([Chain("x", ("a",)), Chain("x", ("b",)), Chain("x", ("a",))]) == (
        Chain("x", ("a",)),
        Chain("x#2", ("b",)),
    )  # duplicates dropped, clashing names made unique
    with pytest.raises(ValueError, match="list of layer-name lists"):
        as_chains(["a", "b"])
    assert validate_chains([["a", "b"]], ["a", "b"]) == (Chain("chain0", ("a", "b")),)
    with pytest.raises(ValueError, match="unknown layer"):
        validate_chains([["a", "q"]], ["a", "b"])


def test_capture_chain_objects_are_accepted():
    """Other chain types (name, layers, source) are duck-typed."""
    from dataclasses import dataclass

    @dataclass
    class OtherChain:
        name: str
        layers: tuple
        source: str = "sequential"

    rec = record(
        {
            "a": {"kde": (est(3.0, se=0.1), est(0.5, se=0.1))},
            "b": {"kde": (est(3.9, se=0.1), est(0.5, se=0.1))},
        }
    )
    checks, _ = check_record(rec, [OtherChain("net", ("a", "b"))])
    assert [c.to_dict() for c in checks.chains] == [
        {"name": "net", "layers": ["a", "b"], "source": "sequential", "missing": []}
    ]
    assert checks.dpi_total().violated == 1


def test_check_record_rejects_unknown_chain_layers_when_strict():
    rec = record({"a": {"kde": (est(3.0, se=0.1), est(0.5, se=0.1))}})
    with pytest.raises(ValueError, match="unknown layer"):
        check_record(rec, [Chain("c", ("a", "ghost"))], strict=True)
    checks, _ = check_record(rec, [Chain("c", ("a", "ghost"))])
    assert checks.chains[0].missing == ("ghost",)
    total = checks.dpi_total()
    assert total.skipped == 2 and total.pairs_checked == 0
    with pytest.raises(TypeError, match="Record.from_dict"):
        check_record(rec.to_dict(), [])


# --------------------------------------------------------------------------------------------
# DPI
# --------------------------------------------------------------------------------------------


def test_dpi_violation_reported_with_size_and_significance():
    rec = record(
        {
            "l1": {
                "kde": (est(5.0, se=0.1), est(0.80, se=0.02)),
                "binning": (est(9.0, kind="exact", name="binning"), est(0.70, kind="exact", name="binning")),
            },
            "l2": {
                "kde": (est(5.6, se=0.1), est(0.82, se=0.02)),  # I_XT +0.6 (> 1.96*0.141): significant
                "binning": (est(9.01, kind="exact", name="binning"), est(0.60, kind="exact", name="binning")),
            },
            "l3": {
                "kde": (est(5.5, se=0.1), est(0.7, se=0.02)),
                "binning": (est(8.0, kind="exact", name="binning"), est(0.55, kind="exact", name="binning")),
            },
            "side": {"kde": (est(1.0, se=0.1), est(0.1, se=0.02))},
        }
    )
    checks, warnings = check_record(rec, [Chain("body", ("l1", "l2", "l3"))])
    v = {(x.estimator, x.quantity, x.upstream): x for x in checks.dpi_violations}
    assert set(v) == {("kde", XT, "l1"), ("kde", TY, "l1"), ("binning", XT, "l1")}
    big = v[("kde", XT, "l1")]
    assert big.size_bits == pytest.approx(0.6)
    assert big.uncertainty_bits == pytest.approx(math.sqrt(2) * 0.1, rel=1e-4)
    assert big.significant is True
    assert "'l2'" in big.message and "'l1'" in big.message and "Saxe" in big.message
    assert "noise of this estimator is added" in big.message  # adds_noise: the noise wording
    small = v[("kde", TY, "l1")]  # +0.02 against a combined stderr of 0.028: not significant
    assert small.size_bits == pytest.approx(0.02) and small.significant is False
    exact = v[("binning", XT, "l1")]  # exact: any violation beyond float tolerance is real
    assert exact.size_bits == pytest.approx(0.01) and exact.significant is True
    assert exact.uncertainty_bits == 0.0 and "not propagated" in exact.message and "Binning" in exact.message
    assert counts(tally(checks, "kde", XT)) == (2, 1, 1, 0)
    assert counts(tally(checks, "kde", TY)) == (2, 1, 0, 0)
    assert tally(checks, "binning", XT).significant == 1
    total = checks.dpi_total()
    assert counts(total) == (8, 3, 2, 0) and total.not_assessed == 0
    assert checks.not_on_chain == ("side",)
    dpi_w = [w for w in warnings if w.code is WarningCode.DPI_VIOLATION]
    assert {w.estimator for w in dpi_w} == {
        "kde",
        "binning",
    }  # significant ones only, one per chain x estimator
    assert all(w.layer and w.evidence["violations"] and w.remedy for w in dpi_w)
    # "all" pairs also compares l1 with l3
    checks_all, _ = check_record(
        rec, [Chain("body", ("l1", "l2", "l3"))], config=CheckConfig(dpi_pairs="all")
    )
    assert tally(checks_all, "kde", XT).pairs_checked == 3
    assert tally(checks_all, "kde", XT).violated == 2


def test_consistent_estimates_report_no_violation():
    rec = record({f"l{i}": {"kde": (est(6.0 - i, se=0.1), est(0.9 - 0.1 * i, se=0.02))} for i in range(5)})
    checks, warnings = check_record(rec, [Chain("body", tuple(f"l{i}" for i in range(5)))])
    assert checks.dpi_violations == () and checks.dpi_total().violated == 0
    assert checks.dpi_total().pairs_checked == 8
    assert checks.bound_violations == () and checks.bounds_checked == 5 * 4  # no caps: 4 rules a layer
    assert WarningCode.DPI_VIOLATION not in codes(warnings) and WarningCode.BOUND_VIOLATION not in codes(
        warnings
    )
    assert checks.not_on_chain == ()
    json.dumps(checks.to_dict()), json.dumps([w.to_dict() for w in warnings])


def test_pairs_measured_by_two_instruments_are_not_compared():
    """``auto`` measures a wide layer with the noisy channel and the narrow layer after it by binning:
    a binned 7-bit value after a 2-bit noisy-channel value is no DPI violation, just two scales. The pair
    is skipped; pairs of the same instrument further down the chain are still checked."""
    wide = {"auto": (est(2.0, se=0.02, name="auto:noisy_channel_rel", traits=NOISY),
                     est(0.5, se=0.02, name="auto:classifier_probe"))}
    narrow = [{"auto": (est(v, se=0.02, name="auto:binning", traits=BINNING),
                        est(0.6, se=0.02, name="auto:binning", traits=BINNING))} for v in (7.0, 7.5)]
    rec = record({"w": wide, "n1": narrow[0], "n2": narrow[1]})
    checks, warnings = check_record(rec, [Chain("body", ("w", "n1", "n2"))])
    xt = tally(checks, "auto", Quantity.I_XT)
    assert (xt.pairs_checked, xt.skipped) == (1, 1)  # w -> n1 skipped, n1 -> n2 checked
    assert [(v.upstream, v.downstream) for v in checks.dpi_violations] == [("n1", "n2")]
    assert tally(checks, "auto", Quantity.I_TY).skipped == 1


def test_loose_lower_bounds_and_figures_of_two_instruments_are_no_bound_violation():
    """A negative lower bound (an uninformative classifier probe) is loose, not wrong; auto's probe
    I(T;Y) of T may exceed its noisy channel's I(X; T+N). A negative estimate still is flagged."""
    probe = lambda v: est(v, se=0.05, kind="lower_bound", name="auto:classifier_probe")  # noqa: E731
    rec = record({
        "neg": {"auto": (est(2.0, se=0.02, name="auto:noisy_channel_rel"), probe(-0.08))},
        "above": {"auto": (est(0.4, se=0.02, name="auto:noisy_channel_rel"), probe(0.9))},
        "plain": {"ksg": (est(-0.3, se=0.02, name="ksg"), est(0.5, se=0.02, name="ksg"))},
    })
    checks, warnings = check_record(rec, [])
    assert [(v.layer, v.bound) for v in checks.bound_violations] == [("plain", "I_XT >= 0"), ("plain", "I_TY <= I_XT")]
    assert WarningCode.BOUND_VIOLATION not in codes(warnings, "neg") + codes(warnings, "above")


def test_dpi_unknown_uncertainty_and_bound_kinds():
    rec = record(
        {
            "a": {
                "knn": (est(3.0, name="knn"), est(0.5, name="knn")),
                "nce": (est(4.0, kind="lower_bound", se=0.01, name="nce"), None),
            },
            "b": {
                "knn": (est(3.5, name="knn"), est(0.5, name="knn")),
                "nce": (est(4.5, kind="lower_bound", se=0.01, name="nce"), None),
            },
        }
    )
    checks, _ = check_record(rec, [["a", "b"]])
    v = {x.estimator: x for x in checks.dpi_violations}
    assert v["knn"].significant is None and v["knn"].uncertainty_bits is None
    assert "uncertainty unknown" in v["knn"].message
    assert tally(checks, "knn", XT).not_assessed == 1 and checks.dpi_total().not_assessed == 1
    assert v["nce"].estimate_kinds == ("lower_bound",) * 2
    assert "does not by itself contradict" in v["nce"].message
    assert "non-increasing along a chain" in v["nce"].message  # no traits: the generic wording
    assert tally(checks, "nce", TY).skipped == 1


# --------------------------------------------------------------------------------------------
# Within-layer bounds
# --------------------------------------------------------------------------------------------


def test_bound_violations_are_bugs_for_exact_and_inconsistencies_otherwise():
    rec = record(
        {
            "x": {
                "binning": (
                    est(2.0, kind="exact", name="binning", cap=8.0),
                    est(2.5, kind="exact", name="binning", diagnostics={"H_Y": 1.0}),
                )
            },
            "y": {
                "kde": (est(2.0, se=0.1, cap=10.0), est(2.05, se=0.1)),
                "ksg": (est(1.0, se=0.01, name="ksg"), est(-0.2, se=0.01, name="ksg")),
                "nce": (est(8.2, se=0.1, cap=8.0, name="nce"), None),
            },
        }
    )
    checks, warnings = check_record(rec, [])
    b = {(v.layer, v.estimator, v.bound): v for v in checks.bound_violations}
    assert b[("x", "binning", "I_TY <= I_XT")].is_bug
    assert b[("x", "binning", "I_TY <= I_XT")].size_bits == pytest.approx(0.5)
    assert b[("x", "binning", "I_TY <= H_Y")].is_bug
    assert "BUG" in b[("x", "binning", "I_TY <= H_Y")].message
    kde = b[("y", "kde", "I_TY <= I_XT")]
    assert not kde.is_bug and kde.significant is False  # 0.05 < 1.96*0.14
    assert b[("y", "kde", "I_TY <= H_Y")].significant is True  # 2.05 > H(Y) = 1.0 by 1.05, se 0.1
    neg = b[("y", "ksg", "I_TY >= 0")]
    assert not neg.is_bug and neg.size_bits == pytest.approx(0.2) and neg.significant
    assert b[("y", "nce", "I_XT <= cap")].is_bug  # above its own cap: always a bug
    assert checks.bugs == 3
    bw = [w for w in warnings if w.code is WarningCode.BOUND_VIOLATION]
    assert {w.severity for w in bw} == {Severity.ERROR, Severity.WARNING}
    assert all(w.layer in w.message for w in bw)


def test_bounds_hold_exactly_for_binning_property():
    """Property: for the real Binning estimator, within-layer bounds are never violated."""
    g = torch.Generator().manual_seed(1234)
    settings = [
        (2, "layer"),
        (5, (-1.0, 1.0)),
        (30, (-1.0, 1.0)),
        (30, "layer"),
        (100, "layer"),
        (10, (0.0, 10.0)),
    ]
    n_cases = 0
    for case in range(80):
        n = int(torch.randint(1, 400, (1,), generator=g))
        d = int(torch.randint(1, 12, (1,), generator=g))
        k = int(torch.randint(1, 11, (1,), generator=g))
        scale = float(10 ** torch.empty(1).uniform_(-2, 1.5, generator=g))
        kind = case % 4
        t = torch.randn(n, d, generator=g) * scale
        if kind == 1:
            t = torch.tanh(t)
        elif kind == 2:
            t = torch.relu(t)
        elif kind == 3:
            t = torch.round(t)  # many ties
        y = torch.randint(0, k, (n,), generator=g)
        layers = {}
        for i, (bins, rng) in enumerate(settings):
            ixt, ity = Binning(bins, rng).layer_information(t, y)
            layers[f"layer{i}"] = {"binning": LayerResult(ixt, ity)}
        h_y = layers["layer0"]["binning"].i_ty.diagnostics["H_Y"]
        rec = Record(step=case, mode="probe", n_samples=n, layers=layers, h_y=h_y)
        checks, warnings = check_record(rec, [Chain("all", tuple(layers))])
        assert checks.bound_violations == (), checks.bound_violations
        assert checks.bounds_checked == 5 * len(settings)
        assert WarningCode.BOUND_VIOLATION not in codes(warnings)
        json.dumps(checks.to_dict()), json.dumps([w.to_dict() for w in warnings])
        n_cases += 1
    assert n_cases == 80


# --------------------------------------------------------------------------------------------
# Artefact warnings: each fires on a constructed case and names layer, evidence, remedy
# --------------------------------------------------------------------------------------------


def _binned(t, y, bins=30, rng=(-1.0, 1.0)):
    return LayerResult(*Binning(bins, rng).layer_information(t, y))


def _only(warnings, code, layer):
    ws = [w for w in warnings if w.code is code and w.layer == layer]
    assert len(ws) == 1, (code, layer, codes(warnings))
    w = ws[0]
    assert w.code.value in WARNING_CODES
    assert repr(layer) in w.message and w.remedy and w.evidence and w.estimator
    return w


def test_saturating_units_warning():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (512,), generator=g)
    sat = torch.tanh(8 * torch.randn(512, 4, generator=g))  # mostly at +-1
    mild = torch.tanh(0.3 * torch.randn(512, 4, generator=g))
    relu = torch.relu(torch.randn(512, 4, generator=g)) * 0.1
    rec = Record(
        step=1,
        mode="probe",
        n_samples=512,
        layers={
            "sat": {"binning": _binned(sat, y)},
            "mild": {"binning": _binned(mild, y)},
            "relu": {"binning": _binned(relu, y)},
            "relu_unknown": {"binning": _binned(relu, y)},
        },
    )
    _, warnings = check_record(
        rec, [], layer_info={"sat": {"activation": "tanh"}, "relu": {"activation": "ReLU"}}
    )
    w = _only(warnings, WarningCode.SATURATING_UNITS, "sat")
    assert w.evidence["fraction_in_extreme_bins"] > 0.8 and w.evidence["activation"] == "tanh"
    assert "Saxe" in w.message and "tanh" in w.message
    assert WarningCode.SATURATING_UNITS not in codes(warnings, "mild")
    assert WarningCode.SATURATING_UNITS not in codes(
        warnings, "relu"
    )  # ReLU's zeros in the lowest bin: no artefact
    assert WarningCode.SATURATING_UNITS not in codes(
        warnings, "relu_unknown"
    )  # unknown, values at one end only


def test_saturating_units_for_an_unknown_activation_needs_both_ends():
    def binned(frac, low, high):
        diag = {"fraction_in_extreme_bins": frac, "range_used": [-1.0, 1.0]}
        if low is not None:
            diag.update(fraction_in_lowest_bin=low, fraction_in_highest_bin=high)
        return {
            "binning": LayerResult(
                est(5.0, kind="exact", name="binning", diagnostics=diag, params={"n_bins": 30}), None
            )
        }

    rec = Record(
        step=1,
        mode="probe",
        n_samples=1000,
        layers={
            "both": binned(0.6, 0.3, 0.3),
            "low_only": binned(0.6, 0.6, 0.0),
            "no_ends": binned(0.6, None, None),
            "sigmoid_low": binned(0.6, 0.6, 0.0),
            "gelu_both": binned(0.6, 0.3, 0.3),
        },
    )
    _, warnings = check_record(
        rec, [], layer_info={"sigmoid_low": {"activation": "Sigmoid"}, "gelu_both": {"activation": "GELU"}}
    )
    w = _only(warnings, WarningCode.SATURATING_UNITS, "both")
    assert "activation unknown" in w.message and w.evidence["fraction_in_lowest_bin"] == 0.3
    _only(warnings, WarningCode.SATURATING_UNITS, "sigmoid_low")  # a known saturating activation
    for layer in ("low_only", "no_ends", "gelu_both"):
        assert WarningCode.SATURATING_UNITS not in codes(warnings, layer), layer


def test_outside_range_warning():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (256,), generator=g)
    t = torch.relu(3 * torch.randn(256, 5, generator=g))
    rec = Record(
        step=1,
        mode="probe",
        n_samples=256,
        layers={"fixed": {"binning": _binned(t, y)}, "own": {"binning": _binned(t, y, rng="layer")}},
    )
    _, warnings = check_record(rec, [], layer_info={"fixed": {"activation": "relu"}})
    w = _only(warnings, WarningCode.OUTSIDE_RANGE, "fixed")
    assert w.evidence["fraction_outside_range"] > 0.2 and list(w.evidence["range_used"]) == [-1.0, 1.0]
    assert 'range="layer"' in w.remedy and "IDNNs#12" in w.message
    assert WarningCode.OUTSIDE_RANGE not in codes(warnings, "own")


def test_at_cap_warning():
    t = torch.arange(64, dtype=torch.float32).unsqueeze(1)  # 64 distinct rows -> H = log2 64 = cap
    y = torch.arange(64) % 2
    nce = est(7.99, se=0.05, cap=8.0, name="infonce", n=4096, traits=EstimatorTraits(cap="log2_k"))
    rec = Record(
        step=1,
        mode="probe",
        n_samples=64,
        layers={"l1": {"binning": _binned(t, y, bins=64, rng="layer")}, "l2": {"infonce": LayerResult(nce)}},
    )
    _, warnings = check_record(rec, [])
    w = _only(warnings, WarningCode.AT_CAP, "l1")
    assert w.evidence["value"] == pytest.approx(6.0) and w.evidence["cap"] == pytest.approx(6.0)
    assert "more probe samples" in w.remedy and "may be higher" in w.message and w.severity is Severity.INFO
    w2 = _only(warnings, WarningCode.AT_CAP, "l2")
    assert "larger K" in w2.remedy and w2.severity is Severity.WARNING


def test_too_few_samples_warning():
    rec = record(
        {
            "wide": {"ksg": (est(5.0, se=0.1, n=150, dim=20, name="ksg"), est(0.5, se=0.1, n=150, dim=20,
                                                                               name="ksg"))},
            "ok": {"ksg": (est(5.0, se=0.1, n=2000, dim=20, name="ksg"), est(0.5, se=0.1, n=2000, dim=20,
                                                                             name="ksg"))},
            "binned": {"binning": (est(5.0, kind="exact", name="binning", n=150, dim=20), None)},
            # analysis noise: I(X; T+N) of the probe's rows, nothing estimated from samples of a density
            "noisy": {"kde": (est(5.0, se=0.1, n=150, dim=20), est(0.5, se=0.1, n=150, dim=20))},
        }
    )
    _, warnings = check_record(rec, [])
    assert WarningCode.TOO_FEW_SAMPLES not in codes(warnings, "noisy")
    w = _only(warnings, WarningCode.TOO_FEW_SAMPLES, "wide")
    assert w.evidence == {"n": 150, "dim": 20, "required": 1024, "rule": "n >= max(10*d, 2**min(d, 10))"}
    assert "1024" in w.remedy
    assert WarningCode.TOO_FEW_SAMPLES not in codes(warnings, "ok")
    assert WarningCode.TOO_FEW_SAMPLES not in codes(warnings, "binned")
    assert CheckConfig().required_samples(3) == 30 and CheckConfig().required_samples(200) == 2000


def test_duplicate_rows_warning():
    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 2, (300,), generator=g)
    t = torch.randn(300, 2, generator=g)
    knn_diag = {"fraction_duplicate_rows": 0.7, "distinct_rows": 90}
    rec = Record(
        step=1,
        mode="probe",
        n_samples=300,
        layers={
            "coarse": {"binning": _binned(t, y, bins=3, rng="layer")},
            "fine": {"binning": _binned(t, y, bins=100, rng="layer")},
            "knn": {
                "ksg": LayerResult(est(3.0, se=0.1, n=300, dim=2, diagnostics=knn_diag, name="ksg"), None)
            },
        },
    )
    _, warnings = check_record(rec, [])
    w = _only(warnings, WarningCode.DUPLICATE_ROWS, "coarse")
    assert w.evidence["fraction_duplicate_rows"] > 0.9 and w.severity is Severity.INFO
    assert "clustering" in w.message and "binning" in w.message
    assert WarningCode.DUPLICATE_ROWS not in codes(warnings, "fine")
    wk = _only(warnings, WarningCode.DUPLICATE_ROWS, "knn")
    assert "jitter" in wk.remedy and wk.severity is Severity.WARNING


def test_errored_layers_are_skipped():
    rec = record({"a": {"kde": (est(3.0, se=0.1), est(0.5, se=0.1))}})
    rec.layers["b"] = {"kde": LayerResult(error="RuntimeError: boom")}
    checks, warnings = check_record(rec, [Chain("c", ("a", "b"))])
    assert checks.bounds_checked == 4  # layer a only
    assert counts(checks.dpi_total()) == (0, 0, 0, 2)
    assert warnings == []


def test_record_roundtrip_keeps_checks():
    rec = record(
        {
            "a": {"kde": (est(3.0, se=0.1), est(0.5, se=0.1))},
            "b": {"kde": (est(3.9, se=0.1), est(0.5, se=0.1))},
        }
    )
    rec.checks, rec.warnings = check_record(rec, [Chain("c", ("a", "b"))])
    assert rec.warnings  # the significant DPI violation
    back = Record.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert back.checks == rec.checks and back.warnings == rec.warnings
    assert isinstance(Estimate.from_dict(rec.layers["a"]["kde"].i_xt.to_dict()), Estimate)


def test_quantities_that_are_not_mutual_information_are_not_checked():
    """kNN reports the differential entropy h_KL(T) in the I(X;T) slot (it can be negative and below
    I(T;Y)); bounds and the DPI must not treat it as I(X;T)."""
    from ibhooks.estimators.knn import KSG

    torch.manual_seed(0)
    t = torch.randn(300, 2) * 1e-3  # tiny scale: h_KL(T) is very negative
    y = (t[:, 0] > 0).long()
    i_xt, i_ty = KSG().layer_information(t, y, layer="a")
    assert i_xt.value < 0 and i_xt.traits.xt_is_entropy
    rec = Record(
        step=1,
        mode="probe",
        n_samples=300,
        h_y=1.0,
        layers={
            "a": {"ksg": LayerResult(i_xt=i_xt, i_ty=i_ty)},
            "b": {"ksg": LayerResult(i_xt=i_xt, i_ty=i_ty)},
        },
    )
    checks, warnings = check_record(rec, [Chain("c", ("a", "b"))])
    assert not [v for v in checks.bound_violations if v.bound.startswith("I_XT") or "<= I_XT" in v.bound]
    assert tally(checks, "ksg", XT).pairs_checked == 0


def test_config_validation():
    with pytest.raises(ValueError, match="dpi_pairs"):
        CheckConfig(dpi_pairs="some")
    with pytest.raises(ValueError, match="tol_bits and z"):
        CheckConfig(z=-1)
    with pytest.raises(ValueError, match="fraction"):
        CheckConfig(extreme_bins_threshold=2.0)
