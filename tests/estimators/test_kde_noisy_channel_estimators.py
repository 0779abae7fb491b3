"""KDE pairwise bounds and the Monte-Carlo noisy channel: analytic anchors, a scipy float64 reference,
blocking invariance, and the bracket lower <= I(X; T+N) <= upper."""
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.special import logsumexp

from _estimator_truth import gaussian_channel_bits, two_point_channel_bits
from ibhooks.estimators.kde import KDE
from ibhooks.estimators.noisy_channel import NoisyChannel


def kde_reference(t: np.ndarray, y: np.ndarray, s2: float):
    """The Saxe/Kolchinsky-Tracey formulas with scipy in float64 (nats -> bits)."""
    d = cdist(t, t, "sqeuclidean")
    n = len(t)
    up = (math.log(n) - logsumexp(-d / (2 * s2), axis=1).mean()) / math.log(2)
    low = (math.log(n) - logsumexp(-d / (8 * s2), axis=1).mean()) / math.log(2)
    same = y[:, None] == y[None, :]
    lse_y = logsumexp(np.where(same, -d / (2 * s2), -np.inf), axis=1)
    p = np.bincount(y) / n
    h_y = -(p * np.log2(p)).sum()
    ty = h_y + (lse_y - logsumexp(-d / (2 * s2), axis=1)).mean() / math.log(2)
    return low, up, ty


def layer(n, d, scale, seed):
    g = torch.Generator().manual_seed(seed)
    t = scale * torch.tanh(torch.randn(n, d, generator=g))
    return t, (t[:, 0] + 0.3 * torch.randn(n, generator=g) > 0).long() + (t[:, -1] > 0.5).long()


def test_kde_matches_scipy_float64_reference_and_blocking_is_invisible():
    t, y = layer(300, 4, 1.0, 0)
    low, up, ty = kde_reference(t.double().numpy(), y.numpy(), 0.1)
    for kw in ({}, {"block_size": 7}, {"max_block_bytes": 4096}):
        i_xt, i_ty = KDE(**kw).layer_information(t, y)
        assert abs(i_xt.value - up) < 1e-9 and abs(i_xt.diagnostics["lower_bound"] - low) < 1e-9
        assert abs(i_ty.value - ty) < 1e-9
    assert KDE(bound="lower").layer_information(t)[0].value == pytest.approx(low, abs=1e-9)


@pytest.mark.parametrize("seed,scale,d", [(1, 0.3, 2), (2, 1.0, 2), (3, 3.0, 1), (4, 1.0, 6)])
def test_bounds_ordered_capped_and_bracket_the_noisy_channel(seed, scale, d):
    t, _ = layer(400, d, scale, seed)
    t[:50] = t[50:100]  # duplicate rows too
    lo, up = KDE().bounds(t)
    assert 0 <= lo <= up <= math.log2(400) + 1e-12
    nc = NoisyChannel(mc_samples=40_000).layer_information(t)[0]
    se = nc.diagnostics["mc_stderr"]
    assert lo - 4 * se <= nc.value <= up + 4 * se, (lo, nc.value, up, se)


def test_kde_analytic_anchors():
    n = 512
    far = 100.0 * torch.arange(n, dtype=torch.float64).unsqueeze(1)  # all distances >> sigma
    i_xt, _ = KDE().layer_information(far)
    assert abs(i_xt.value - math.log2(n)) < 1e-9 and i_xt.saturated and i_xt.kind == "upper_bound"
    assert abs(i_xt.diagnostics["lower_bound"] - math.log2(n)) < 1e-9
    const, y = torch.zeros(n, 3), torch.arange(n) % 2
    i_xt, i_ty = KDE().layer_information(const, y)
    assert abs(i_xt.value) < 1e-12 and abs(i_ty.value) < 1e-12
    # Saturated 2-unit softmax (A3): corners (1,0)/(0,1), |diff|^2 = 2: I_up = -log2(1/2 + e^-10/2)
    corners = torch.nn.functional.one_hot(y, 2).float()
    i_xt, i_ty = KDE().layer_information(corners, y)
    assert abs(i_xt.value - (-math.log2(0.5 + 0.5 * math.exp(-10)))) < 1e-9
    # a far copy of Y: the I(T;Y) difference of bounds equals H(Y) = 1 bit
    assert abs(KDE().layer_information(corners * 50, y)[1].value - 1.0) < 1e-9
    assert "not a bound" in i_ty.quantity and i_ty.kind == "estimate"


def test_noisy_channel_gaussian_channel_closed_form():
    # X ~ N(0, diag(0.5, 2)) over n rows; I(X; X+N(0,0.1 I)) -> 1/2 log2 det(I + Sigma/sigma^2).
    g = torch.Generator().manual_seed(7)
    t = torch.randn(2000, 2, generator=g) * torch.tensor([math.sqrt(0.5), math.sqrt(2.0)])
    e = NoisyChannel(mc_samples=16_000).layer_information(t)[0]
    truth = gaussian_channel_bits([0.5, 2.0], 0.1)
    # tolerance: MC error (~0.01) + the gap between 2000 sampled rows and the Gaussian (~0.03)
    assert abs(e.value - truth) < 0.06, (e.value, truth)
    assert e.ci[0] < e.value < e.ci[1] and e.cap == math.log2(2000)


def test_noisy_channel_two_point_channel_by_quadrature_and_labels():
    mu, s2 = 0.4, 0.1
    y = torch.arange(200) % 2
    t = (2.0 * y - 1.0).double().unsqueeze(1) * mu
    i_xt, i_ty = NoisyChannel(noise_var=s2, mc_samples=40_000).layer_information(t, y)
    truth = two_point_channel_bits(mu, s2)  # here I(X;T+N) = I(T+N;Y): T is a copy of Y
    for e in (i_xt, i_ty):
        assert abs(e.value - truth) < 4 * e.diagnostics["mc_stderr"] + 1e-3, (e.value, truth)
    assert i_ty.value <= i_ty.diagnostics["H_Y"] + 1e-12


def test_noisy_channel_anchors_determinism_and_rng():
    n = 256
    far = 100.0 * torch.arange(n, dtype=torch.float64).unsqueeze(1)
    assert abs(NoisyChannel().layer_information(far)[0].value - math.log2(n)) < 1e-9
    assert abs(NoisyChannel().layer_information(torch.zeros(n, 2))[0].value) < 1e-12
    t, y = layer(100, 3, 1.0, 9)
    state = torch.random.get_rng_state()
    a = NoisyChannel(seed=3, mc_samples=2000).layer_information(t, y)
    assert torch.equal(state, torch.random.get_rng_state())
    b = NoisyChannel(seed=3, mc_samples=2000, block_size=11).layer_information(t, y)  # other blocking
    assert a[0].value == pytest.approx(b[0].value, abs=1e-12) and a[1].value == pytest.approx(b[1].value, abs=1e-12)
    small = NoisyChannel(mc_samples=200).layer_information(t)[0].diagnostics["mc_stderr"]
    big = NoisyChannel(mc_samples=20_000).layer_information(t)[0].diagnostics["mc_stderr"]
    assert big < small / 3  # se ~ 1/sqrt(draws): expect a factor ~10


def test_bad_input_rejected():
    for est in (KDE(), NoisyChannel()):
        with pytest.raises(ValueError, match="NaN"):
            est.layer_information(torch.tensor([[0.0], [float("inf")], [1.0]]))
        with pytest.raises(ValueError, match="at least"):
            est.layer_information(torch.zeros(1, 2))
        with pytest.raises(NotImplementedError):
            est.mutual_information(torch.randn(10, 1), torch.randn(10, 1))
    with pytest.raises(ValueError):
        KDE(noise_var=0.0)
    with pytest.raises(ValueError):
        KDE(bound="middle")
