"""Scale-aware noise for KDE and the noisy channel (sigma^2 = beta x mean per-unit variance, fixed per
layer at its first measurement) and pairwise distances of wide activations through the Gram matrix."""
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from _estimator_truth import gaussian_channel_bits
from ibhooks.estimators._pairwise import RowDistances, centred_gram
from ibhooks.estimators.kde import KDE
from ibhooks.estimators.noisy_channel import NoisyChannel, noisy_channel_log_ratios
from ibhooks.schema.estimate import Estimate

BETA = 0.1


def gaussian_rows(n, cov, seed):
    """n rows of N(0, cov), float64."""
    g = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(torch.as_tensor(cov, dtype=torch.float64))
    return torch.randn(n, chol.shape[0], generator=g, dtype=torch.float64) @ chol.T


def kde_upper_reference(t: np.ndarray, s2: float) -> float:
    d = cdist(t, t, "sqeuclidean")
    return (math.log(len(t)) - logsumexp(-d / (2 * s2), axis=1).mean()) / math.log(2)


CORR3 = np.array([[1.0, 0.6, 0.0], [0.6, 1.0, 0.3], [0.0, 0.3, 0.5]])


@pytest.mark.parametrize("cov,beta", [(np.diag([0.5, 2.0]), 0.1), (CORR3, 0.5)], ids=["diag2", "corr3"])
def test_noisy_channel_with_relative_noise_meets_the_gaussian_channel_closed_form(cov, beta):
    # X ~ N(0, S) over n rows: I(X; X + N(0, s2 I)) -> 1/2 log2 det(I + S/s2), s2 = beta x mean unit variance.
    t = gaussian_rows(2000, cov, seed=1)
    e = NoisyChannel(relative_noise=beta, mc_samples=16_000).layer_information(t, layer="l")[0]
    s2 = e.params["noise_var"]
    unit_var = float(t.var(0).mean())  # the sample's mean per-unit variance (unbiased), what beta multiplies
    assert s2 == pytest.approx(beta * unit_var, rel=1e-12) and e.params["relative_noise"] == beta
    truth = gaussian_channel_bits(np.linalg.eigvalsh(cov), s2)
    # tolerance: MC error (~0.013) + the gap between 2000 sampled rows and the Gaussian: measured -0.03 to
    # -0.04 bits here (diag2 at 0.1, corr3 at 0.5), -0.08 for corr3 at beta = 0.1 (4.7 bits)
    assert abs(e.value - truth) < 0.06, (e.value, truth)
    assert e.quantity.startswith(f"I(X; T+N(0,{beta:g}*var(T)))")
    assert e.traits.adds_noise and e.cap == pytest.approx(math.log2(2000))


def test_kde_relative_matches_a_scipy_reference_at_the_recorded_sigma():
    t = gaussian_rows(300, np.diag([0.2, 1.0, 3.0]), seed=2)
    e = KDE(relative_noise=BETA).layer_information(t)[0]
    assert e.value == pytest.approx(kde_upper_reference(t.numpy(), e.params["noise_var"]), abs=1e-9)
    assert e.params["noise_var"] == pytest.approx(BETA * float(t.var(0).mean()), rel=1e-12)
    assert "0.1*var(T)" in e.quantity and e.kind == "upper_bound"


@pytest.mark.parametrize("make", [lambda **noise: KDE(**noise),
                                  lambda **noise: NoisyChannel(mc_samples=4000, seed=3, **noise)],
                         ids=["kde", "noisy_channel"])
@pytest.mark.parametrize("d", [3, 300], ids=["narrow_rows", "wide_gram"])
def test_relative_noise_makes_the_reading_scale_free(make, d):
    g = torch.Generator().manual_seed(4)
    y = torch.arange(120) % 3
    f64 = {"generator": g, "dtype": torch.float64}  # 10 * t exactly ten times t
    t = torch.randn(3, d, **f64)[y] + 0.4 / math.sqrt(d) * torch.randn(120, d, **f64)  # clusters near sigma
    a = make(relative_noise=BETA).layer_information(t, y, layer="l")
    b = make(relative_noise=BETA).layer_information(10.0 * t, y, layer="l")
    for ea, eb in zip(a, b):
        assert ea.value == pytest.approx(eb.value, abs=1e-9)
        assert eb.params["noise_var"] == pytest.approx(100.0 * ea.params["noise_var"], rel=1e-9)
    assert 1.0 < a[0].value < math.log2(120) - 1.0  # an informative reading, not 0 or the cap
    absolute = make(noise_var=a[0].params["noise_var"])  # the same sigma^2, held absolute
    assert absolute.layer_information(t)[0].value == pytest.approx(a[0].value, abs=1e-9)
    assert absolute.layer_information(10.0 * t)[0].value > a[0].value + 0.5  # not scale-free


@pytest.mark.parametrize("cls", [KDE, NoisyChannel])
def test_sigma_is_fixed_per_layer_at_its_first_measurement_and_survives_state_dict(cls):
    g = torch.Generator().manual_seed(5)
    t = torch.randn(200, 2, generator=g, dtype=torch.float64)
    est = cls(relative_noise=BETA)
    first = est.layer_information(t, layer="a")[0]
    grown = est.layer_information(3.0 * t, layer="a")[0]  # the layer's scale grows during training
    assert grown.params["noise_var"] == first.params["noise_var"]  # the instrument does not drift
    assert grown.value > first.value + 1.0  # ... so the same geometry at 3x the scale reads more
    other = est.layer_information(3.0 * t, layer="b")[0]  # another layer fixes its own scale
    assert other.params["noise_var"] == pytest.approx(9.0 * first.params["noise_var"], rel=1e-9)
    assert other.value == pytest.approx(first.value, abs=1e-9)
    fresh = cls(relative_noise=BETA)
    fresh.load_state_dict(est.state_dict())
    again = fresh.layer_information(3.0 * t, layer="a")[0]
    assert (again.value, again.params) == (grown.value, grown.params)
    assert Estimate.from_dict(again.to_dict()).params["noise_var"] == again.params["noise_var"]
    # no layer name (a general pair): the scale comes from the call itself
    assert est.layer_information(3.0 * t)[0].value == pytest.approx(first.value, abs=1e-9)


def test_a_constant_first_measurement_does_not_fix_the_scale():
    est = KDE(relative_noise=BETA)
    assert est.layer_information(torch.zeros(50, 3), layer="a")[0].value == pytest.approx(0.0, abs=1e-12)
    t = torch.randn(50, 3, generator=torch.Generator().manual_seed(6))
    assert est.layer_information(t, layer="a")[0].params["noise_var"] == pytest.approx(
        BETA * float(t.double().var(0).mean()), rel=1e-9)


def test_gram_path_distances_equal_the_direct_ones_and_blocking_is_invisible():
    g = torch.Generator().manual_seed(7)
    t = torch.randn(40, 1000, generator=g) * torch.linspace(0.1, 3.0, 1000) + 5.0  # off-centre, uneven units
    ref = cdist(t.double().numpy(), t.double().numpy(), "sqeuclidean")
    wide = RowDistances(t)
    assert wide.via_gram
    small_blocks = RowDistances(t, max_block_bytes=40 * 8 * 7)  # 7 columns per block
    for dist in (wide, small_blocks):
        got = torch.cat([dist.rows(slice(0, 17)), dist.rows(slice(17, 40))]).numpy()
        assert np.abs(got - ref).max() < 1e-9 * ref.max()
        assert dist.mean_unit_var == pytest.approx(float(t.double().var(0).mean()), rel=1e-12)
    pts = wide.points()
    assert np.abs(cdist(pts.numpy(), pts.numpy(), "sqeuclidean") - ref).max() < 1e-6 * ref.max()
    assert torch.allclose(centred_gram(t, max_block_bytes=40 * 8 * 3), centred_gram(t), rtol=1e-12, atol=1e-9)
    # KDE on the wide layer equals the float64 scipy formulas
    e = KDE(noise_var=50.0).layer_information(t)[0]
    assert e.value == pytest.approx(kde_upper_reference(t.double().numpy(), 50.0), abs=1e-9)
    assert e.dim == 1000


def test_noisy_channel_on_the_gram_factor_has_the_law_of_draws_in_full_dimension():
    g = torch.Generator().manual_seed(8)
    y = torch.arange(60) % 3
    t = (torch.randn(3, 400, generator=g, dtype=torch.float64)[y] * 0.3
         + 0.2 * torch.randn(60, 400, generator=g, dtype=torch.float64))
    s2 = 8.0  # a quarter of the within-cluster squared distance (2 x 400 x 0.04): neither 0 nor the cap
    full = noisy_channel_log_ratios(t, y, noise_var=s2, samples_per_row=400, seed=1)  # draws in 400 dims
    e = NoisyChannel(noise_var=s2, samples_per_row=400, seed=2).layer_information(t, y)
    assert e[0].diagnostics["draws_on"].startswith("n x n Gram factor")
    for key, est in zip(("x", "y"), e):
        ref = float(full[key].mean()) / math.log(2)
        ref_se = float(full[key].std()) / math.sqrt(full[key].numel()) / math.log(2)
        se = math.hypot(est.diagnostics["mc_stderr"], ref_se)
        assert 0.3 < est.value < math.log2(60) - 0.3
        assert abs(est.value - ref) < 4 * se + 1e-3, (key, est.value, ref, se)


def test_activations_are_taken_whole():
    g = torch.Generator().manual_seed(9)
    t = torch.randn(30, 4, 5, 6, generator=g)
    for est in (KDE(relative_noise=BETA), NoisyChannel(relative_noise=BETA, mc_samples=600)):
        a, b = est.layer_information(t)[0], est.layer_information(t.reshape(30, -1))[0]
        assert a.value == b.value and a.dim == 120


BAD = [({"relative_noise": 0.0}, "relative_noise"), ({"relative_noise": -1.0}, "relative_noise"),
       ({"relative_noise": float("nan")}, "relative_noise"), ({"relative_noise": True}, "relative_noise"),
       ({"relative_noise": 0.1, "noise_var": 0.1}, "not both"),
       ({"relative_noise": 0.1, "relative_to": "x"}, "relative_to")]


@pytest.mark.parametrize("cls", [KDE, NoisyChannel])
@pytest.mark.parametrize("kwargs,match", BAD, ids=[m + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_noise_settings_get_one_clear_error_at_construction(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_absolute_settings_are_recorded_as_before():
    assert KDE().params() == {"noise_var": 0.1, "bound": "upper", "block_size": None,
                              "max_block_bytes": 1 << 27}
    assert "relative_noise" not in NoisyChannel().params() and NoisyChannel().state_dict() == {}
    t = torch.randn(20, 5, generator=torch.Generator().manual_seed(10))
    e = KDE(relative_noise=0.2, relative_to="total").layer_information(t)[0]
    assert "0.2*trvar(T)" in e.quantity and e.params["relative_to"] == "total"
    assert e.params["noise_scale"] == pytest.approx(5 * float(t.double().var(0).mean()), rel=1e-9)
    assert e.params["noise_var"] == pytest.approx(0.2 * e.params["noise_scale"], rel=1e-12)
