"""``estimators="auto"``: binning for narrow layers, scale-aware KDE + classifier probe for wide ones, the
choice fixed per layer and named in every Estimate; ``mutual_information(..., estimator="auto")``."""
import math

import pytest
import torch

import ibhooks
from _estimator_truth import correlated_gaussians, gaussian_mi_bits
from ibhooks.estimators.auto import Auto
from ibhooks.estimators.binning import BINNING_TRAITS, Binning
from ibhooks.estimators.classifier_probe import ClassifierProbe
from ibhooks.estimators.kde import KDE_TRAITS
from ibhooks.estimators.noisy_channel import NOISY_CHANNEL_TRAITS, NoisyChannel
from ibhooks.estimators.registry import available, make_estimator
from ibhooks.schema.estimate import Estimate


def clustered(n, d, k, within, seed):
    """n rows around k centres N(0, I_d) with per-unit spread ``within``; labels = the centre."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    return torch.randn(k, d, generator=g)[y] + within * torch.randn(n, d, generator=g), y


@pytest.mark.parametrize("d,choice", [(1, "binning"), (12, "binning"), (13, "noisy_channel_rel"), (64, "noisy_channel_rel")])
def test_the_choice_per_layer_width_is_named_in_each_estimate(d, choice):
    t, y = clustered(150, d, 3, 0.3, seed=d)
    i_xt, i_ty = Auto().layer_information(t, y, layer="l")
    assert i_xt.estimator == f"auto:{choice}" and i_xt.params["chosen"] == choice
    if choice == "binning":  # the same figures as the chosen estimator, with its quantity and traits
        ref = Binning(n_bins=30, range="running").layer_information(t, y, layer="l")
        assert i_ty.estimator == "auto:binning" and i_xt.traits == i_ty.traits == BINNING_TRAITS
    else:
        ref = (NoisyChannel(relative_noise=0.3, relative_to="total").layer_information(t, layer="l")[0],
               ClassifierProbe().label_information(t, y, layer="l"))
        assert i_xt.traits == NOISY_CHANNEL_TRAITS and "0.3*trvar(T)" in i_xt.quantity
        assert i_ty.estimator == "auto:classifier_probe" and i_ty.traits == ClassifierProbe.traits
        assert i_ty.kind == "lower_bound" and i_xt.params["noise_var"] == ref[0].params["noise_var"]
    for got, want in zip((i_xt, i_ty), ref):
        assert (got.value, got.quantity, got.kind, got.ci) == (want.value, want.quantity, want.kind, want.ci)
    assert Estimate.from_dict(i_xt.to_dict()).estimator == i_xt.estimator  # survives the run log


def test_a_wide_layer_is_not_stuck_at_log2_n():
    n, d = 512, 512
    tight, y = clustered(n, d, 4, 0.002, seed=1)  # four tight clusters
    spread = torch.randn(n, d, generator=torch.Generator().manual_seed(2))  # spread rows, no class structure
    auto = Auto()
    t_xt, t_ty = auto.layer_information(tight, y, layer="tight")
    s_xt, s_ty = auto.layer_information(spread, y, layer="spread")
    cap = math.log2(n)
    assert t_xt.cap == pytest.approx(cap) and not t_xt.saturated
    assert t_xt.value < math.log2(4) + 0.5  # at most about log2(#clusters): far below the 9-bit cap
    # spread rows are kept further apart than four tight clusters (at 0.3 x their total variance an
    # isotropic cloud reads about 2.4 bits whatever n: the noise is comparable to the cloud's spread)
    assert s_xt.ci[0] > t_xt.ci[1] + 0.5 and not s_xt.saturated
    # the probe reads the label from the tight clusters (H(Y) = 2 bits) and nothing from the spread rows
    assert t_ty.value > 1.9 and t_ty.value <= t_ty.cap + 1e-9 and t_ty.cap == pytest.approx(2.0)
    assert s_ty.ci[0] < 0.1 and s_ty.value < 0.2
    assert auto.choices() == {"tight": "noisy_channel_rel", "spread": "noisy_channel_rel"}


def test_the_choice_and_the_instruments_are_fixed_at_the_first_measurement_and_survive_state_dict():
    wide, y = clustered(60, 20, 3, 0.05, seed=3)
    narrow = torch.tanh(wide[:, :4])
    auto = Auto()
    auto.layer_information(wide, y, layer="w")
    auto.layer_information(narrow, y, layer="n")
    # the layer's scale grows: relative noise and running range stay as at the first measurement
    later = auto.layer_information(wide[:, :8], y, layer="w")  # even a narrower output keeps the choice
    assert later[0].params["chosen"] == "noisy_channel_rel"
    copy = Auto()
    copy.load_state_dict(auto.state_dict())
    assert copy.choices() == auto.choices() == {"w": "noisy_channel_rel", "n": "binning"}
    for layer, t in (("w", 3.0 * wide), ("n", 2.0 * narrow)):
        a, b = auto.layer_information(t, y, layer=layer), copy.layer_information(t, y, layer=layer)
        for ea, eb in zip(a, b):
            assert (ea.value, ea.quantity, ea.params, ea.estimator) == (eb.value, eb.quantity, eb.params,
                                                                         eb.estimator)
    grown = auto.layer_information(3.0 * wide, y, layer="w")[0]
    first_scale = Auto().layer_information(wide, y, layer="w")[0].params["noise_var"]
    assert grown.params["noise_var"] == pytest.approx(first_scale, rel=1e-12)


def test_other_wide_instruments_on_request():
    t, y = clustered(100, 30, 3, 0.1, seed=4)
    kde = Auto(xt="kde").layer_information(t, y, layer="l")
    assert kde[0].estimator == "auto:kde_rel" and kde[0].traits == KDE_TRAITS and kde[0].kind == "upper_bound"
    assert kde[1].estimator == "auto:classifier_probe"
    kde_ty = Auto(xt="kde", ty="kde").layer_information(t, y, layer="l")[1]
    assert kde_ty.estimator == "auto:kde_rel" and "not a bound" in kde_ty.quantity
    both = Auto(ty="kde").layer_information(t, y, layer="l")[1]
    assert both.estimator == "auto:kde_rel" and both.value == pytest.approx(kde_ty.value, abs=1e-9)


def test_mutual_information_auto_picks_an_estimator_of_the_true_mi():
    a, b = correlated_gaussians(1500, 2, 0.8, seed=5)
    e = ibhooks.mutual_information(a, b, estimator="auto")
    cands = e.params["candidates"]  # narrow continuous pair: the larger of KSG and the copula estimate
    assert set(cands) == {"ksg", "gcmi"} and e.value == max(cands.values())
    assert e.estimator == f"auto:{e.params['chosen']}" and cands[e.params["chosen"]] == e.value
    assert abs(e.value - gaussian_mi_bits([0.8, 0.8])) < 0.15
    # high MI in few dimensions (6 bits in d = 3, the BMI benchmark's case): KSG reads far below the
    # truth, the copula estimate does not
    rho = math.sqrt(1 - 2.0 ** -4)
    hi_a, hi_b = correlated_gaussians(512, 3, rho, seed=8)
    hi = ibhooks.mutual_information(hi_a, hi_b, estimator="auto")
    truth = gaussian_mi_bits([rho] * 3)
    assert hi.params["candidates"]["ksg"] < truth - 1.0 and abs(hi.value - truth) < 0.3
    wa, wb = correlated_gaussians(1500, 10, 0.6, seed=6)
    e = ibhooks.mutual_information(wa, wb, estimator="auto")
    assert e.estimator == "auto:gcmi" and abs(e.value - gaussian_mi_bits([0.6] * 10)) < 0.2
    t, y = clustered(200, 30, 4, 0.5, seed=7)
    probe = ibhooks.mutual_information(t, y, estimator="auto", discrete_b=True)
    assert probe.estimator == "auto:classifier_probe" and probe.kind == "lower_bound"
    assert ibhooks.mutual_information(t[:, :3], y, estimator="auto", discrete_b=True).estimator == "auto:ross"


def test_registered_and_bad_settings_get_one_clear_error():
    assert "auto" in available() and isinstance(make_estimator("auto"), Auto)
    for kwargs, match in (({"narrow_max_dim": -1}, "narrow_max_dim"), ({"xt": "ksg"}, "xt"),
                          ({"ty": "binning"}, "ty"), ({"relative_noise": 0.0}, "relative_noise"),
                          ({"relative_to": "row"}, "relative_to"), ({"n_bins": 1}, "n_bins")):
        with pytest.raises(ValueError, match=match):
            Auto(**kwargs)


def test_a_layer_the_network_quantizes_is_measured_exactly():
    """Integer codes or values on an 8-bit grid: auto picks the exact estimator (X uniform over the probe),
    names it, and gives the figures of ``Exact`` itself; a continuous layer of the same width does not."""
    from ibhooks.estimators.exact import Exact

    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 20, generator=g)
    quantized = torch.round(torch.tanh(x) * 127) / 127  # an 8-bit grid
    y = (x[:, 0] > 0).long()
    auto = Auto()
    i_xt, i_ty = auto.layer_information(quantized, y, layer="q")
    ref_xt, ref_ty = Exact().layer_information(quantized, y, layer="q")
    assert i_xt.estimator == "auto:exact" and i_xt.kind == "exact" and i_xt.params["chosen"] == "exact"
    assert (i_xt.value, i_ty.value, i_xt.quantity) == (ref_xt.value, ref_ty.value, ref_xt.quantity)
    i_int, _ = auto.layer_information(torch.randint(0, 4, (256, 3), generator=g), y, layer="codes")
    assert i_int.estimator == "auto:exact"
    auto.layer_information(torch.tanh(x), y, layer="c")
    assert auto.choices() == {"q": "exact", "codes": "exact", "c": "noisy_channel_rel"}
