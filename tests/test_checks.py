"""Checks of one Record: chains, within-layer bounds (bugs vs inconsistencies), the DPI along chains
with size and significance, and each artefact warning."""
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
from ibhooks.estimate import Estimate, LayerResult, Record, make_estimate
from ibhooks.estimators.binning import Binning


def est(v, *, se=None, kind="estimate", name="kde", cap=None, n=1000, dim=3, diagnostics=None, params=None):
    ci = None if se is None else (v - 1.959964 * se, v + 1.959964 * se)
    return make_estimate(v, "q", kind=kind, estimator=name, ci=ci, cap=cap, n=n, dim=dim,
                         diagnostics=diagnostics, params=params)


def record(layers, h_y=1.0, step=7):
    """layers: {layer: {estimator: (I_XT Estimate, I_TY Estimate)}}."""
    return Record(step=step, mode="probe", n_samples=1000, h_y=h_y,
                  layers={l: {e: LayerResult(*pair) for e, pair in per.items()} for l, per in layers.items()})


def codes(warnings, layer=None):
    return [w["code"] for w in warnings if layer is None or w["layer"] == layer]


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
        Chain("x", ("a",)), Chain("x#2", ("b",)))  # duplicates dropped, clashing names made unique
    with pytest.raises(ValueError, match="list of layer names"):
        as_chains(["a", "b"])
    assert validate_chains([["a", "b"]], ["a", "b"]) == (Chain("chain0", ("a", "b")),)
    with pytest.raises(ValueError, match="unknown layer"):
        validate_chains([["a", "q"]], ["a", "b"])


def test_capture_chain_objects_are_accepted():
    """The monitor passes its own chain type (name, layers, source): duck-typed."""
    from dataclasses import dataclass

    @dataclass
    class OtherChain:
        name: str
        layers: tuple
        source: str = "sequential"

    rec = record({"a": {"kde": (est(3.0, se=0.1), est(0.5, se=0.1))},
                  "b": {"kde": (est(3.9, se=0.1), est(0.5, se=0.1))}})
    checks, _ = check_record(rec, [OtherChain("net", ("a", "b"))])
    assert checks["dpi"]["chains"] == [{"name": "net", "layers": ["a", "b"], "source": "sequential", "missing": []}]
    assert checks["dpi"]["totals"]["violated"] == 1


def test_check_record_rejects_unknown_chain_layers_unless_not_strict():
    rec = record({"a": {"kde": (est(3.0, se=0.1), est(0.5, se=0.1))}})
    with pytest.raises(ValueError, match="unknown layer"):
        check_record(rec, [Chain("c", ("a", "ghost"))])
    checks, _ = check_record(rec, [Chain("c", ("a", "ghost"))], strict=False)
    assert checks["dpi"]["chains"][0]["missing"] == ["ghost"]
    assert checks["dpi"]["totals"]["skipped"] == 2 and checks["dpi"]["totals"]["pairs_checked"] == 0


# --------------------------------------------------------------------------------------------
# DPI
# --------------------------------------------------------------------------------------------


def test_dpi_violation_reported_with_size_and_significance():
    rec = record({
        "l1": {"kde": (est(5.0, se=0.1), est(0.80, se=0.02)),
               "binning": (est(9.0, kind="exact", name="binning"), est(0.70, kind="exact", name="binning"))},
        "l2": {"kde": (est(5.6, se=0.1), est(0.82, se=0.02)),    # I_XT +0.6 (> 1.96*0.141): significant
               "binning": (est(9.01, kind="exact", name="binning"), est(0.60, kind="exact", name="binning"))},
        "l3": {"kde": (est(5.5, se=0.1), est(0.7, se=0.02)),
               "binning": (est(8.0, kind="exact", name="binning"), est(0.55, kind="exact", name="binning"))},
        "side": {"kde": (est(1.0, se=0.1), est(0.1, se=0.02))},
    })
    checks, warnings = check_record(rec, [Chain("body", ("l1", "l2", "l3"))])
    dpi = checks["dpi"]
    v = {(x["estimator"], x["quantity"], x["upstream"]): x for x in dpi["violations"]}
    assert set(v) == {("kde", "I_XT", "l1"), ("kde", "I_TY", "l1"), ("binning", "I_XT", "l1")}
    big = v[("kde", "I_XT", "l1")]
    assert big["size_bits"] == pytest.approx(0.6)
    assert big["uncertainty_bits"] == pytest.approx(math.sqrt(2) * 0.1, rel=1e-4)
    assert big["significant"] is True and big["kind"] == "estimator_inconsistency"
    assert "'l2'" in big["message"] and "'l1'" in big["message"] and "Saxe" in big["message"]
    small = v[("kde", "I_TY", "l1")]  # +0.02 against a combined stderr of 0.028: not significant
    assert small["size_bits"] == pytest.approx(0.02) and small["significant"] is False
    exact = v[("binning", "I_XT", "l1")]  # exact: any violation beyond float tolerance is real
    assert exact["size_bits"] == pytest.approx(0.01) and exact["significant"] is True
    assert exact["uncertainty_bits"] == 0.0 and "not propagated" in exact["message"]
    assert dpi["summary"]["kde"]["I_XT"] == {"pairs_checked": 2, "violated": 1, "significant": 1, "skipped": 0}
    assert dpi["summary"]["kde"]["I_TY"] == {"pairs_checked": 2, "violated": 1, "significant": 0, "skipped": 0}
    assert dpi["summary"]["binning"]["I_XT"]["significant"] == 1
    assert dpi["totals"] == {"pairs_checked": 8, "violated": 3, "significant": 2, "skipped": 0}
    assert dpi["not_checked"] == ["side"]
    dpi_w = [w for w in warnings if w["code"] == "dpi_violation"]
    assert {w["estimator"] for w in dpi_w} == {"kde", "binning"}  # significant ones only, one per chain x estimator
    assert all(w["layer"] and w["evidence"]["violations"] and w["remedy"] for w in dpi_w)
    # "all" pairs also compares l1 with l3
    checks_all, _ = check_record(rec, [Chain("body", ("l1", "l2", "l3"))], config=CheckConfig(dpi_pairs="all"))
    assert checks_all["dpi"]["summary"]["kde"]["I_XT"]["pairs_checked"] == 3
    assert checks_all["dpi"]["summary"]["kde"]["I_XT"]["violated"] == 2


def test_consistent_estimates_report_no_violation():
    rec = record({f"l{i}": {"kde": (est(6.0 - i, se=0.1), est(0.9 - 0.1 * i, se=0.02))} for i in range(5)})
    checks, warnings = check_record(rec, [Chain("body", tuple(f"l{i}" for i in range(5)))])
    assert checks["dpi"]["violations"] == [] and checks["dpi"]["totals"]["violated"] == 0
    assert checks["dpi"]["totals"]["pairs_checked"] == 8
    assert checks["bounds"]["violated"] == 0 and checks["bounds"]["checked"] == 5 * 4  # no caps: 4 rules a layer
    assert "dpi_violation" not in codes(warnings) and "bound_violation" not in codes(warnings)
    assert checks["dpi"]["not_checked"] == []
    json.dumps(checks), json.dumps(warnings)


def test_dpi_unknown_uncertainty_and_bound_kinds():
    rec = record({
        "a": {"knn": (est(3.0), est(0.5)), "nce": (est(4.0, kind="lower_bound", se=0.01), None)},
        "b": {"knn": (est(3.5), est(0.5)), "nce": (est(4.5, kind="lower_bound", se=0.01), None)},
    })
    checks, _ = check_record(rec, [["a", "b"]])
    v = {x["estimator"]: x for x in checks["dpi"]["violations"]}
    assert v["knn"]["significant"] is None and v["knn"]["uncertainty_bits"] is None
    assert "uncertainty unknown" in v["knn"]["message"]
    assert v["nce"]["kind"] == "estimator_inconsistency" and v["nce"]["estimate_kinds"] == ["lower_bound"] * 2
    assert "does not by itself contradict" in v["nce"]["message"]
    assert checks["dpi"]["summary"]["nce"]["I_TY"]["skipped"] == 1


# --------------------------------------------------------------------------------------------
# Within-layer bounds
# --------------------------------------------------------------------------------------------


def test_bound_violations_are_bugs_for_exact_and_inconsistencies_otherwise():
    rec = record({
        "x": {"binning": (est(2.0, kind="exact", name="binning", cap=8.0),
                          est(2.5, kind="exact", name="binning", diagnostics={"H_Y": 1.0}))},
        "y": {"kde": (est(2.0, se=0.1, cap=10.0), est(2.05, se=0.1)),
              "ksg": (est(1.0, se=0.01), est(-0.2, se=0.01)),
              "nce": (est(8.2, se=0.1, cap=8.0), None)},
    })
    checks, warnings = check_record(rec, [])
    b = {(v["layer"], v["estimator"], v["bound"]): v for v in checks["bounds"]["violations"]}
    assert b[("x", "binning", "I_TY <= I_XT")]["kind"] == "bug"
    assert b[("x", "binning", "I_TY <= I_XT")]["size_bits"] == pytest.approx(0.5)
    assert b[("x", "binning", "I_TY <= H_Y")]["kind"] == "bug"
    assert "BUG" in b[("x", "binning", "I_TY <= H_Y")]["message"]
    kde = b[("y", "kde", "I_TY <= I_XT")]
    assert kde["kind"] == "estimator_inconsistency" and kde["significant"] is False  # 0.05 < 1.96*0.14
    assert b[("y", "kde", "I_TY <= H_Y")]["significant"] is True  # 2.05 > H(Y) = 1.0 by 1.05, se 0.1
    neg = b[("y", "ksg", "I_TY >= 0")]
    assert neg["kind"] == "estimator_inconsistency" and neg["size_bits"] == pytest.approx(0.2) and neg["significant"]
    assert b[("y", "nce", "I_XT <= cap")]["kind"] == "bug"  # above its own cap: always a bug
    assert checks["bounds"]["bugs"] == 3
    bw = [w for w in warnings if w["code"] == "bound_violation"]
    assert {w["severity"] for w in bw} == {"error", "warning"}
    assert all(w["layer"] in w["message"] for w in bw)


def test_bounds_hold_exactly_for_binning_property():
    """Property: for the real Binning estimator, within-layer bounds are never violated."""
    g = torch.Generator().manual_seed(1234)
    settings = [(2, "layer"), (5, (-1.0, 1.0)), (30, (-1.0, 1.0)), (30, "layer"), (100, "layer"), (10, (0.0, 10.0))]
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
        assert checks["bounds"]["violated"] == 0, checks["bounds"]["violations"]
        assert checks["bounds"]["checked"] == 5 * len(settings)
        assert all(v["kind"] == "estimator_inconsistency" for v in checks["dpi"]["violations"])
        assert "bound_violation" not in codes(warnings)
        json.dumps(checks), json.dumps(warnings)
        n_cases += 1
    assert n_cases == 80


# --------------------------------------------------------------------------------------------
# Artefact warnings: each fires on a constructed case and names layer, evidence, remedy
# --------------------------------------------------------------------------------------------


def _binned(t, y, bins=30, rng=(-1.0, 1.0)):
    return LayerResult(*Binning(bins, rng).layer_information(t, y))


def _only(warnings, code, layer):
    ws = [w for w in warnings if w["code"] == code and w["layer"] == layer]
    assert len(ws) == 1, (code, layer, codes(warnings))
    w = ws[0]
    assert w["code"] in WARNING_CODES
    assert repr(layer) in w["message"] and w["remedy"] and w["evidence"] and w["estimator"]
    return w


def test_saturating_units_warning():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (512,), generator=g)
    sat = torch.tanh(8 * torch.randn(512, 4, generator=g))  # mostly at +-1
    mild = torch.tanh(0.3 * torch.randn(512, 4, generator=g))
    rec = Record(step=1, mode="probe", n_samples=512,
                 layers={"sat": {"binning": _binned(sat, y)}, "mild": {"binning": _binned(mild, y)},
                         "relu": {"binning": _binned(torch.relu(torch.randn(512, 4, generator=g)) * 0.1, y)}})
    _, warnings = check_record(rec, [], layer_info={"sat": {"activation": "tanh"}, "relu": {"activation": "ReLU"}})
    w = _only(warnings, "saturating_units", "sat")
    assert w["evidence"]["fraction_in_extreme_bins"] > 0.8 and w["evidence"]["activation"] == "tanh"
    assert "Saxe" in w["message"] and "tanh" in w["message"]
    assert "saturating_units" not in codes(warnings, "mild")
    assert "saturating_units" not in codes(warnings, "relu")  # ReLU's zeros in the lowest bin are no artefact


def test_outside_range_warning():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 2, (256,), generator=g)
    t = torch.relu(3 * torch.randn(256, 5, generator=g))
    rec = Record(step=1, mode="probe", n_samples=256,
                 layers={"fixed": {"binning": _binned(t, y)}, "own": {"binning": _binned(t, y, rng="layer")}})
    _, warnings = check_record(rec, [], layer_info={"fixed": {"activation": "relu"}})
    w = _only(warnings, "outside_range", "fixed")
    assert w["evidence"]["fraction_outside_range"] > 0.2 and w["evidence"]["range_used"] == [-1.0, 1.0]
    assert 'range="layer"' in w["remedy"] and "IDNNs#12" in w["message"]
    assert "outside_range" not in codes(warnings, "own")


def test_at_cap_warning():
    t = torch.arange(64, dtype=torch.float32).unsqueeze(1)  # 64 distinct rows -> H = log2 64 = cap
    y = (torch.arange(64) % 2)
    nce = est(7.99, se=0.05, cap=8.0, name="infonce", n=4096)
    rec = Record(step=1, mode="probe", n_samples=64,
                 layers={"l1": {"binning": _binned(t, y, bins=64, rng="layer")}, "l2": {"infonce": (LayerResult(nce))}})
    _, warnings = check_record(rec, [])
    w = _only(warnings, "at_cap", "l1")
    assert w["evidence"]["value"] == pytest.approx(6.0) and w["evidence"]["cap"] == pytest.approx(6.0)
    assert "more probe samples" in w["remedy"] and "may be higher" in w["message"]
    w2 = _only(warnings, "at_cap", "l2")
    assert "larger K" in w2["remedy"] and w2["severity"] == "warning"


def test_too_few_samples_warning():
    rec = record({"wide": {"kde": (est(5.0, se=0.1, n=150, dim=20), est(0.5, se=0.1, n=150, dim=20))},
                  "ok": {"kde": (est(5.0, se=0.1, n=2000, dim=20), est(0.5, se=0.1, n=2000, dim=20))},
                  "binned": {"binning": (est(5.0, kind="exact", name="binning", n=150, dim=20), None)}})
    _, warnings = check_record(rec, [])
    w = _only(warnings, "too_few_samples", "wide")
    assert w["evidence"] == {"n": 150, "dim": 20, "required": 1024,
                             "rule": "n >= max(10*d, 2**min(d, 10))"}
    assert "1024" in w["remedy"]
    assert "too_few_samples" not in codes(warnings, "ok") and "too_few_samples" not in codes(warnings, "binned")
    assert CheckConfig().required_samples(3) == 30 and CheckConfig().required_samples(200) == 2000


def test_duplicate_rows_warning():
    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 2, (300,), generator=g)
    t = torch.randn(300, 2, generator=g)
    knn_diag = {"fraction_duplicate_rows": 0.7, "distinct_rows": 90}
    rec = Record(step=1, mode="probe", n_samples=300,
                 layers={"coarse": {"binning": _binned(t, y, bins=3, rng="layer")},
                         "fine": {"binning": _binned(t, y, bins=100, rng="layer")},
                         "knn": {"ksg": LayerResult(est(3.0, se=0.1, n=300, dim=2, diagnostics=knn_diag), None)}})
    _, warnings = check_record(rec, [])
    w = _only(warnings, "duplicate_rows", "coarse")
    assert w["evidence"]["fraction_duplicate_rows"] > 0.9 and w["severity"] == "info"
    assert "clustering" in w["message"]
    assert "duplicate_rows" not in codes(warnings, "fine")
    wk = _only(warnings, "duplicate_rows", "knn")
    assert "jitter" in wk["remedy"] and wk["severity"] == "warning"


def test_errored_layers_are_skipped():
    rec = record({"a": {"kde": (est(3.0, se=0.1), est(0.5, se=0.1))}})
    rec.layers["b"] = {"kde": LayerResult(error="RuntimeError: boom")}
    checks, warnings = check_record(rec, [Chain("c", ("a", "b"))])
    assert checks["bounds"]["checked"] == 4  # layer a only
    assert checks["dpi"]["totals"] == {"pairs_checked": 0, "violated": 0, "significant": 0, "skipped": 2}
    assert warnings == []


def test_record_roundtrip_keeps_checks():
    rec = record({"a": {"kde": (est(3.0, se=0.1), est(0.5, se=0.1))},
                  "b": {"kde": (est(3.9, se=0.1), est(0.5, se=0.1))}})
    rec.checks, rec.warnings = check_record(rec, [Chain("c", ("a", "b"))])
    back = Record.from_dict(json.loads(json.dumps(rec.to_dict())))
    assert back.checks == rec.checks and back.warnings == rec.warnings
    assert isinstance(Estimate.from_dict(rec.layers["a"]["kde"].i_xt.to_dict()), Estimate)


def test_quantities_that_are_not_mutual_information_are_not_checked():
    """kNN reports the differential entropy h_KL(T) in the I(X;T) slot (it can be negative and below
    I(T;Y)); bounds and the DPI must not treat it as I(X;T)."""
    import torch

    from ibhooks.estimators.knn import KSG

    torch.manual_seed(0)
    t = torch.randn(300, 2) * 1e-3  # tiny scale: h_KL(T) is very negative
    y = (t[:, 0] > 0).long()
    i_xt, i_ty = KSG().layer_information(t, y, layer="a")
    assert i_xt.value < 0 and i_xt.diagnostics.get("not_mutual_information")
    rec = Record(step=1, mode="probe", n_samples=300, h_y=1.0,
                 layers={"a": {"ksg": LayerResult(i_xt=i_xt, i_ty=i_ty)},
                         "b": {"ksg": LayerResult(i_xt=i_xt, i_ty=i_ty)}})
    checks, warnings = check_record(rec, [Chain("c", ("a", "b"))])
    assert not [v for v in checks["bounds"]["violations"] if v["bound"].startswith("I_XT") or "<= I_XT" in v["bound"]]
    assert checks["dpi"]["summary"]["ksg"]["I_XT"]["pairs_checked"] == 0
