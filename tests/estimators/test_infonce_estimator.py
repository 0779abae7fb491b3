"""InfoNCE: the log2 K cap and saturation flag, a moderate-MI case, the lower-bound property against the
exact noisy channel, RNG isolation, no_grad/inference_mode callers and warm starts."""
import math

import pytest
import torch

from _estimator_truth import correlated_gaussians, gaussian_mi_bits
from ibhooks.estimators.infonce import InfoNCE
from ibhooks.estimators.noisy_channel import NoisyChannel


def test_true_mi_above_log_k_saturates():
    x, y = correlated_gaussians(1000, 10, 0.99, seed=0)  # 28 bits of MI, cap log2 16 = 4 bits
    e = InfoNCE(batch_size=16, steps=150).mutual_information(x, y)
    assert e.cap == 4.0 and e.value <= 4.0 + 1e-9
    assert e.saturated and e.kind == "lower_bound"  # measured 3.92 (tol 0.1 bit)
    assert gaussian_mi_bits([0.99] * 10) > e.cap + 20


def test_moderate_mi_roughly_right():
    x, y = correlated_gaussians(3000, 1, 0.8, seed=1)
    truth = gaussian_mi_bits([0.8])  # 0.737 bits
    e = InfoNCE(batch_size=128, steps=200).mutual_information(x, y)
    # A lower bound in expectation: allow the held-out noise above (3 se), 0.2 bit of slack below.
    assert truth - 0.2 < e.value < truth + 3 * (e.ci[1] - e.ci[0]) / 3.92, (e.value, truth)
    assert not e.saturated and e.cap == 7.0


def test_layer_information_is_a_lower_bound_on_the_noisy_channel():
    g = torch.Generator().manual_seed(2)
    t = torch.randn(1500, 1, generator=g)
    y = (t[:, 0] + 0.5 * torch.randn(1500, generator=g) > 0).long()
    nc_xt, nc_ty = NoisyChannel(mc_samples=15_000).layer_information(t, y)  # exact I(X; T+N(0,0.1)) ~1.73 bits
    est = InfoNCE(batch_size=128, steps=150)
    with torch.inference_mode():  # the monitor may hand over inference tensors under no_grad
        t_inf, y_inf = t.clone(), y.clone()
    state = torch.random.get_rng_state()
    with torch.no_grad():
        i_xt, i_ty = est.layer_information(t_inf, y_inf, layer="fc1")
    assert torch.equal(state, torch.random.get_rng_state())
    assert "N(0,0.1I)" in i_xt.quantity and i_xt.kind == "lower_bound"
    assert i_xt.value < nc_xt.value + 3 * i_xt.stderr and i_xt.value > nc_xt.value - 0.8
    assert i_ty.value < i_ty.diagnostics["H_Y"] + 3 * i_ty.stderr and i_ty.value > 0.3
    # warm start: critic tensors are kept per layer and round-trip through state_dict
    sd = est.state_dict()
    assert set(sd["critics"]) == {"fc1|xt", "fc1|ty"}
    assert all(isinstance(p, torch.Tensor) for p in sd["critics"]["fc1|xt"]["g"])
    again = InfoNCE(batch_size=128, steps=0)
    again.load_state_dict(sd)
    warm = again.layer_information(t, y, layer="fc1")[0].value
    cold = InfoNCE(batch_size=128, steps=0).layer_information(t, y, layer="fc1")[0].value
    assert warm > cold + 0.3  # a loaded critic evaluates well without any training step


def test_deterministic_and_bad_input():
    x, y = correlated_gaussians(300, 2, 0.5, seed=3)
    a = InfoNCE(steps=20, seed=4).mutual_information(x, y).value
    assert a == InfoNCE(steps=20, seed=4).mutual_information(x, y).value
    with pytest.raises(ValueError, match="NaN"):
        InfoNCE().mutual_information(torch.tensor([[0.0], [float("nan")], [1.0], [2.0]]), torch.randn(4, 1))
    with pytest.raises(ValueError, match="at least 4"):
        InfoNCE().mutual_information(torch.randn(3, 1), torch.randn(3, 1))
    with pytest.raises(ValueError):
        InfoNCE(batch_size=1)
    assert math.isfinite(InfoNCE(steps=5).mutual_information(x.float(), y.float()).value)


def test_overconfident_critic_is_rescaled_out_of_sample():
    """Held-out scores of a critic that learned noise, scaled up 50x: unscaled, the bound is far below 0;
    the cross-fitted scale shrinks it to about 0 (the constant critic) without choosing on its own rows."""
    from ibhooks.estimators.infonce import _cross_fitted_terms, _nce_terms
    g = torch.Generator().manual_seed(0)
    scores = 50 * torch.randn(3, 64, 64, generator=g)
    raw = torch.cat([_nce_terms(s) for s in scores]).mean()
    terms, scales = _cross_fitted_terms(scores)
    assert raw < -20 and abs(float(terms.mean())) < 0.05 and max(scales) < 0.05
    informative = scores.clone() / 50
    informative += 4 * torch.eye(64)  # a critic that does see the pairs keeps a scale near 1 and a high bound
    terms, scales = _cross_fitted_terms(informative)
    assert float(terms.mean()) > 1.5 and min(scales) > 0.5


def test_negative_only_with_an_interval_containing_zero():
    from ibhooks.estimators._common import Provenance
    from ibhooks.estimators.infonce import INFONCE_TRAITS, _estimate
    prov = Provenance("infonce", INFONCE_TRAITS)
    fit = {"terms": torch.full((100,), -0.5, dtype=torch.float64) + 0.01 * torch.randn(100, dtype=torch.float64),
           "k": 32, "n_train": 300, "n_eval_pairs": 100, "critic_scale": (1.0, 1.0)}
    e = _estimate(prov, fit, "I(A;B)", 400, 3, {}, 0.1)
    assert e.value == 0.0 and e.ci == (0.0, 0.0) and e.diagnostics["critic_rejected"]
    assert e.diagnostics["held_out_value"] < -0.5
    # independent data in 30 dimensions with few rows: whatever the critic learns, no significant negative
    x, y = correlated_gaussians(400, 30, 0.0, seed=7)
    e = InfoNCE(batch_size=64, steps=60).mutual_information(x, y)
    assert e.value >= 0 or e.ci[0] <= 0 <= e.ci[1], (e.value, e.ci)
    assert e.value < 0.3
