"""Classifier-probe lower bound on I(T;Y) against Monte Carlo truth.

Class-conditional Gaussians with a shared (identity) covariance have a softmax-linear posterior, so a
linear probe can reach the truth as n grows; the truth is I(T;Y) = H(Y) + E log p(Y|T) by Monte Carlo
over the exact posterior (10^5 draws, projected onto the span of the class means, which is exact for
an isotropic covariance). Tolerances (nats): 10 classes in 100 dims at n = 4,096 within 0.15 of the
truth and not above it beyond 2 standard errors; 2 classes in 1-D at n = 2,000 within 0.05;
independent labels within 0.02 of 0, interval containing 0.
"""

import json
import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from ibhooks.estimators.classifier_probe import ClassifierProbe, fit_probe, gram_features, stratified_folds
from ibhooks.estimators.registry import make_estimator

LN2 = math.log(2.0)


def mixture(d, k, n, scale, seed=0):
    """Y uniform over k classes, T | Y ~ N(mu_y, I_d), means ~ N(0, scale^2 / d) (the issue's family)."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((k, d)) * (scale / math.sqrt(d))
    y = rng.integers(0, k, n)
    t = torch.tensor(means[y] + rng.standard_normal((n, d)), dtype=torch.float32)
    return means, t, torch.tensor(y)


def mixture_truth_nats(means, mc=100_000, seed=1):
    """(I(T;Y), standard error) in nats by Monte Carlo over the exact posterior."""
    k, d = means.shape
    if d > k:  # the posterior depends only on the projection onto the span of the means
        means = means @ np.linalg.qr(means.T)[0]
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, mc)
    t = means[y] + rng.standard_normal((mc, means.shape[1]))
    logits = -((t[:, None, :] - means[None]) ** 2).sum(-1) / 2
    terms = logits[np.arange(mc), y] - logsumexp(logits, 1) + math.log(k)
    return float(terms.mean()), float(terms.std() / math.sqrt(mc))


def nats(est):
    return est.value * LN2, (est.ci[1] - est.ci[0]) / 2 / 1.96 * LN2


def test_ten_classes_in_100_dims_is_a_tight_lower_bound():
    means, t, y = mixture(d=100, k=10, n=4096, scale=3.0)
    truth, truth_se = mixture_truth_nats(means)  # ~1.95 nats
    est = ClassifierProbe().label_information(t, y, layer="fc")
    value, se = nats(est)
    assert abs(value - truth) <= 0.15, (value, truth)
    assert value <= truth + 2 * se + 3 * truth_se  # a lower bound, up to noise
    assert est.kind == "lower_bound" and est.quantity == "I(T;Y) >= H(Y) - CE[linear probe, 5-fold]"
    assert est.cap == pytest.approx(math.log2(10), abs=0.01) and est.value <= est.cap
    assert est.diagnostics["path"] == "primal" and est.diagnostics["converged"]
    assert est.traits.cap == "h_y"
    json.dumps(est.to_dict())


def test_two_classes_in_one_dimension():
    g = torch.Generator().manual_seed(5)
    y = torch.randint(0, 2, (2000,), generator=g)
    t = (2.0 * y - 1.0)[:, None] + torch.randn(2000, 1, generator=g)
    z = np.random.default_rng(1).standard_normal(200_000) + 1.0  # posterior of the true class: sigmoid(2 t)
    post = 1 / (1 + np.exp(-2 * z))
    truth = math.log(2) + float(np.mean(post * np.log(post) + (1 - post) * np.log(1 - post)))  # ~0.336
    value, se = nats(ClassifierProbe().label_information(t, y))
    assert abs(value - truth) <= 0.05 and value <= truth + 2 * se + 0.01, (value, truth)


def test_independent_labels_give_zero_with_an_interval_containing_it():
    g = torch.Generator().manual_seed(5)
    t, y = torch.randn(1000, 20, generator=g), torch.randint(0, 4, (1000,), generator=g)
    est = ClassifierProbe().label_information(t, y)
    assert abs(est.value * LN2) < 0.02
    assert est.ci[0] <= 0.0 <= est.ci[1]
    assert est.diagnostics["negative"] == (est.value < 0)  # reported, never clipped


def test_gram_factor_path_is_the_same_linear_probe():
    """Representer theorem: an L2 linear probe on T equals one on an n x n factor of T T^T."""
    g = torch.Generator().manual_seed(2)
    n, d = 120, 300
    y = torch.randint(0, 3, (n,), generator=g)
    t = torch.randn(n, d, generator=g) + torch.randn(3, d, generator=g)[y] * 0.3
    t = (t - t.mean(0)) / t.std(0)
    folds = stratified_folds(y, 4, torch.Generator().manual_seed(0))
    z, var = gram_features(t)
    primal = fit_probe(t, y, folds, folds=4, l2=[1e-2], standardise=False, max_iter=500)
    dual = fit_probe(z, y, folds, folds=4, l2=[1e-2 / var], standardise=False, feature_var=var, max_iter=500)
    # equal up to the optimiser's tolerance (gradient 1e-5 at lambda 1e-2: ~1e-3 in the weights)
    assert (primal.held_out - dual.held_out).abs().max() < 1e-2
    assert abs(float(primal.held_out.mean() - dual.held_out.mean())) < 1e-3
    est = ClassifierProbe(folds=4).label_information(t, y)  # d > n: the dual path by default
    assert est.diagnostics["path"] == "dual (Gram factor)" and est.diagnostics["features"] == n


def test_warm_start_state_and_round_trip():
    _, t, y = mixture(d=20, k=4, n=1000, scale=2.0)
    est = ClassifierProbe()
    first = est.label_information(t, y, layer="a")
    second = est.label_information(t, y, layer="a")
    assert not first.diagnostics["warm_started"] and second.diagnostics["warm_started"]
    assert second.diagnostics["iterations"] < first.diagnostics["iterations"]
    assert abs(second.value - first.value) < 0.01
    fresh = make_estimator("classifier_probe")
    fresh.load_state_dict(est.state_dict())
    assert fresh.label_information(t, y, layer="a").diagnostics["warm_started"]
    assert not fresh.label_information(t, y, layer="b").diagnostics["warm_started"]


def test_hundred_classes():
    means, t, y = mixture(d=32, k=100, n=3000, scale=6.0)
    truth, _ = mixture_truth_nats(means, mc=20_000)
    est = ClassifierProbe(folds=3).label_information(t, y)
    value, se = nats(est)
    assert est.diagnostics["n_classes"] == 100 and value <= truth + 2 * se + 0.05
    assert value > 0.5 * truth, (value, truth)  # informative, not at 0


def test_mlp_probe_finds_what_a_linear_probe_cannot():
    g = torch.Generator().manual_seed(4)
    t = torch.randn(600, 2, generator=g)
    y = (t.norm(dim=1) > 1.1774).long()  # radial label, H(Y) ~ 1 bit, a deterministic function of T
    linear = ClassifierProbe(l2=1e-3).label_information(t, y)
    mlp = ClassifierProbe(hidden=8, l2=1e-3, max_iter=60).label_information(t, y)
    assert abs(linear.value) < 0.05  # bits
    assert mlp.value > 0.6 and "MLP(hidden=8)" in mlp.quantity


def test_rng_inference_mode_and_errors():
    _, t, y = mixture(d=5, k=3, n=300, scale=2.0)
    est = ClassifierProbe(l2=1e-2)
    state = torch.random.get_rng_state()
    with torch.inference_mode():
        a = est.label_information(t, y)
    assert torch.equal(state, torch.random.get_rng_state())
    assert a.value == ClassifierProbe(l2=1e-2).label_information(t, y).value  # seeded: same folds, same value
    assert est.mutual_information(t, y, discrete_b=True).quantity.startswith("I(A;B) >= H(B)")
    with pytest.raises(ValueError, match="discrete_b=True"):
        est.mutual_information(t, t)
    with pytest.raises(NotImplementedError, match="label_information"):
        est.layer_information(t, y)
    with pytest.raises(ValueError, match="fewer folds"):
        ClassifierProbe(folds=5).label_information(t[:4], y[:4])
    with pytest.raises(ValueError, match="NaN"):
        est.label_information(torch.full((10, 2), float("nan")), y[:10])
    for bad in (
        {"folds": 1},
        {"folds": 2},
        {"l2": -1.0},
        {"l2": []},
        {"hidden": -1},
        {"dual": "yes"},
        {"max_iter": 0},
    ):
        with pytest.raises(ValueError):
            ClassifierProbe(**bad)
    ClassifierProbe(folds=2, l2=1e-2)  # two folds are fine with a fixed l2
    one = est.label_information(t, torch.zeros(300, dtype=torch.long))
    assert one.value == 0.0 and one.ci == (0.0, 0.0)


@pytest.mark.slow
def test_wide_layer_runs():
    """d = 20,000, n = 1,024 (the dual path); timed once for the report, not asserted."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (1024,), generator=g)
    t = torch.randn(1024, 20_000, generator=g) + torch.randn(10, 20_000, generator=g)[y] * 0.1
    est = ClassifierProbe().label_information(t, y)
    assert est.diagnostics["path"] == "dual (Gram factor)" and math.isfinite(est.value) and est.value > 0
