"""Checks treat an estimator by the traits its Estimates carry, never by its registered name."""

from __future__ import annotations

import math

import pytest
import torch

from ibhooks.estimators import registry
from ibhooks.estimators.base import Estimator
from ibhooks.interpret import check_record
from ibhooks.schema import EstimatorTraits, LayerResult, Quantity, Record, WarningCode, make_estimate

DIAG = {
    "fraction_in_extreme_bins": 0.9,
    "fraction_in_lowest_bin": 0.45,
    "fraction_in_highest_bin": 0.45,
    "fraction_outside_range": 0.2,
    "range_used": [-1.0, 1.0],
}


class _Fake(Estimator):
    """Reports log2(n) - offset, with binning-like diagnostics whatever it declares."""

    kind = "exact"

    def __init__(self, offset: float = 1.0) -> None:
        self.offset = offset

    def params(self):
        return {"offset": self.offset, "n_bins": 30}

    def layer_information(self, t, y=None, *, layer=None):
        n = t.shape[0]
        value = math.log2(n) - self.offset - float(t.mean())
        ci = None if self.kind == "exact" else (value - 0.01, value + 0.01)
        mk = dict(
            kind=self.kind,
            estimator=self.name,
            n=n,
            dim=t.shape[1],
            params=self.params(),
            traits=type(self).traits,
            ci=ci,
        )
        return (
            make_estimate(value, f"I_{self.name}(X;T)", cap=math.log2(n), diagnostics=dict(DIAG), **mk),
            make_estimate(0.5, f"I_{self.name}(T;Y)", diagnostics={"H_Y": 1.0}, **mk),
        )


class Robin(_Fake):
    name = "robin"
    traits = EstimatorTraits(discretises=True, exact=True, cap="log2_n")


class CombinedKnn(_Fake):
    name = "combined_knn"
    kind = "estimate"
    traits = EstimatorTraits(adds_noise=True, cap="log2_n")


class BinningLike(_Fake):
    name = "binning_like"  # "bin" in its name, but it declares nothing


@pytest.fixture
def registered():
    names = {"robin": Robin, "combined_knn": CombinedKnn, "binning_like": BinningLike}
    for name, cls in names.items():
        registry.register(name, cls)
    yield {name: registry.make_estimator(name) for name in names}
    for name in names:
        registry._REGISTRY.pop(name, None)


def _record(estimators) -> Record:
    y = torch.arange(64) % 2
    layers = {}
    for i, layer in enumerate(("a", "b")):
        t = torch.full((64, 3), 0.5 * (1 - i))  # b reports 0.5 bit more than a: a DPI violation
        layers[layer] = {
            name: LayerResult(*e.layer_information(t, y, layer=layer)) for name, e in estimators.items()
        }
    return Record(step=3, mode="probe", n_samples=64, layers=layers, h_y=1.0)


def test_estimators_are_treated_by_their_traits_not_their_names(registered):
    rec = _record(registered)
    assert rec.layers["a"]["robin"].i_xt.traits.discretises
    checks, warnings = check_record(
        rec, [["a", "b"]], layer_info={"a": {"activation": "tanh"}, "b": {"activation": "tanh"}}
    )

    def codes(est):
        return {w.code for w in warnings if w.estimator == est}

    artefacts = {WarningCode.SATURATING_UNITS, WarningCode.OUTSIDE_RANGE}
    assert artefacts <= codes("robin")
    assert not artefacts & codes("combined_knn")
    assert not artefacts & codes("binning_like")

    dpi = {v.estimator: v for v in checks.dpi_violations if v.quantity is Quantity.I_XT}
    assert set(dpi) == {"robin", "combined_knn", "binning_like"} and all(v.significant for v in dpi.values())
    assert "Binning (discretisation)" in dpi["robin"].message
    assert "noise of this estimator is added" in dpi["combined_knn"].message
    generic = dpi["binning_like"].message
    assert "non-increasing along a chain" in generic
    assert "Binning" not in generic and "noise of this estimator" not in generic
    # the DPI warnings carry the same wording
    wording = {w.estimator: w.message for w in warnings if w.code is WarningCode.DPI_VIOLATION}
    assert "Binning (discretisation)" in wording["robin"]
    assert "noise of this estimator is added" in wording["combined_knn"]
    assert "Binning" not in wording["binning_like"]


def test_traits_survive_the_run_log_round_trip(registered):
    rec = _record(registered)
    back = Record.from_dict(rec.to_dict())
    assert back.layers["b"]["robin"].i_xt.traits == Robin.traits
    assert back.layers["b"]["binning_like"].i_xt.traits == EstimatorTraits()
    assert check_record(back, [["a", "b"]])[0] == check_record(rec, [["a", "b"]])[0]
