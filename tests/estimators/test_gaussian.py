"""Gaussian (log-det) and Gaussian-copula MI against analytic and Monte Carlo truth.

Tolerances (nats, n = 2,000 unless stated): jointly Gaussian pairs 0.05 (d = 1), 0.15 (d = 5),
0.5 (d = 25, total ~21 nats); monotone transforms under GCMI 0.05 (d = 1), 0.15 (d = 5); class
labels with weakly separated classes 0.05 of the Monte Carlo truth.
"""

import json
import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from ibhooks.estimators.gaussian import GaussianMI, gaussian_mi, ledoit_wolf_delta, logdet_cov
from ibhooks.estimators.gcmi import GaussianCopulaMI, copula_normal_scores
from ibhooks.estimators.registry import make_estimator

LN2 = math.log(2.0)


def pairs(n, d, rho, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, rho * x + math.sqrt(1 - rho * rho) * torch.randn(n, d, generator=g, dtype=torch.float64)


def mixture(d, k, n, scale, seed=0):
    """Y uniform over k classes, T | Y ~ N(mu_y, I_d), means ~ N(0, scale^2 / d)."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((k, d)) * (scale / math.sqrt(d))
    y = rng.integers(0, k, n)
    return means, torch.tensor(means[y] + rng.standard_normal((n, d))), torch.tensor(y)


def mixture_truth_nats(means, mc=100_000, seed=1):
    """I(T;Y) in nats by Monte Carlo over the exact posterior (projected onto the span of the means)."""
    k, d = means.shape
    if d > k:
        means = means @ np.linalg.qr(means.T)[0]
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, mc)
    t = means[y] + rng.standard_normal((mc, means.shape[1]))
    logits = -((t[:, None, :] - means[None]) ** 2).sum(-1) / 2
    return float((logits[np.arange(mc), y] - logsumexp(logits, 1) + math.log(k)).mean())


@pytest.mark.parametrize("d,tol", [(1, 0.05), (5, 0.15), (25, 0.5)])
@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_gaussian_pairs_match_closed_form(d, tol, rho):
    truth = -0.5 * d * math.log(1 - rho * rho)
    a, b = pairs(2000, d, rho, seed=d)
    est = GaussianMI().mutual_information(a, b)
    assert abs(est.value * LN2 - truth) <= tol, (est.value * LN2, truth)
    assert est.kind == "estimate" and "Gaussian" in est.quantity and est.diagnostics["bias_corrected"]
    assert est.value == pytest.approx(est.diagnostics["nats"] / LN2)


def test_bias_correction_removes_the_plugin_bias():
    truth = -0.5 * 25 * math.log(1 - 0.25)
    errs = {
        bc: np.mean(
            [
                GaussianMI(bias_correct=bc).mutual_information(*pairs(1000, 25, 0.5, s)).value * LN2 - truth
                for s in range(4)
            ]
        )
        for bc in (True, False)
    }
    assert errs[False] > 0.2  # the plug-in log-det overestimates by ~ da db / 2n
    assert abs(errs[True]) < 0.08


def test_logdet_gram_side_equals_direct():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 90, generator=g, dtype=torch.float64)
    xc = x - x.mean(0)
    delta = 0.3
    mu = float((xc * xc).sum()) / (39 * 90)
    direct = torch.linalg.slogdet(
        (1 - delta) * xc.T @ xc / 39 + delta * mu * torch.eye(90, dtype=torch.float64)
    )[1]
    assert logdet_cov(xc, dof=39, delta=delta) == pytest.approx(float(direct), rel=1e-10)


def test_ledoit_wolf_matches_scikit_learn():
    sk = pytest.importorskip("sklearn.covariance")
    g = torch.Generator().manual_seed(1)
    for n, d in ((200, 30), (50, 120)):  # covariance side and Gram side
        x = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.randn(
            d, d, generator=g, dtype=torch.float64
        )
        xc = x - x.mean(0)
        assert ledoit_wolf_delta(xc) == pytest.approx(
            sk.ledoit_wolf_shrinkage(xc.numpy(), assume_centered=True), rel=1e-8
        )


def test_wide_input_is_shrunk_and_finite():
    a, b = pairs(300, 400, 0.7, seed=3)  # D = 800 > n
    est = GaussianMI().mutual_information(a, b)
    assert math.isfinite(est.value) and est.value > 0
    assert est.diagnostics["shrinkage_delta"]["ab"] > 0 and not est.diagnostics["bias_corrected"]
    with pytest.raises(ValueError, match="singular"):
        GaussianMI(shrinkage=None).mutual_information(a, b)


@pytest.mark.parametrize("d,tol", [(1, 0.05), (5, 0.15)])
def test_gcmi_is_exact_for_monotone_transforms(d, tol):
    truth = -0.5 * d * math.log(1 - 0.81)
    a, b = pairs(2000, d, 0.9, seed=10 + d)
    est = GaussianCopulaMI().mutual_information(a.exp(), b**3)
    assert abs(est.value * LN2 - truth) <= tol, (est.value * LN2, truth)
    assert est.kind == ("lower_bound" if d == 1 else "estimate") and "copula" in est.quantity
    plain = GaussianMI().mutual_information(a.exp(), b**3)  # the plain Gaussian formula is fooled
    assert abs(plain.value * LN2 - truth) > 3 * tol


def test_copula_scores_average_ties():
    x = torch.tensor([[1.0, 2.0], [1.0, 0.0], [3.0, 2.0], [0.5, 2.0]])
    s = copula_normal_scores(x)
    ranks = torch.tensor([[2.5, 3.0], [2.5, 1.0], [4.0, 3.0], [1.0, 3.0]], dtype=torch.float64)
    assert torch.allclose(s, torch.special.ndtri(ranks / 5.0))


@pytest.mark.parametrize("name", ["gaussian", "gcmi"])
@pytest.mark.parametrize("cov", ["pooled", "per_class"])
def test_labels_weakly_separated_classes_match_truth(name, cov):
    means, t, y = mixture(d=5, k=4, n=4096, scale=1.0)
    truth = mixture_truth_nats(means)  # ~0.29 nats
    est = make_estimator((name, {"class_covariance": cov})).label_information(t, y)
    assert abs(est.value * LN2 - truth) <= 0.05, (est.value * LN2, truth)
    assert "class-conditional Gaussians" in est.quantity and est.kind == "estimate"


def test_labels_well_separated_mixture_is_overestimated_and_flagged():
    means, t, y = mixture(d=100, k=10, n=4096, scale=3.0)
    truth = mixture_truth_nats(means)  # ~1.95 nats: the mixture is far from one Gaussian
    est = GaussianMI().label_information(t, y)
    assert est.value * LN2 > truth + 0.3  # h(T) of one Gaussian exceeds the mixture's entropy
    assert est.diagnostics["exceeds_H_Y"]


def test_independent_labels_give_about_zero():
    g = torch.Generator().manual_seed(5)
    t, y = torch.randn(4000, 20, generator=g), torch.randint(0, 5, (4000,), generator=g)
    for name in ("gaussian", "gcmi"):
        assert abs(make_estimator(name).label_information(t, y).value) < 0.02


def test_contract_errors_and_serialisation():
    a, b = pairs(200, 2, 0.5, seed=0)
    for est in (GaussianMI(), GaussianCopulaMI()):
        with pytest.raises(NotImplementedError, match="label_information"):
            est.layer_information(a, torch.zeros(200, dtype=torch.long))
        e = est.mutual_information(a.float(), (b[:, 0] > 0).long(), discrete_b=True)
        json.dumps(e.to_dict())
        assert e.quantity.startswith("I(A;B)") and e.estimator == est.name and e.n == 200 and e.dim == 2
        with pytest.raises(ValueError, match="NaN"):
            est.mutual_information(torch.full((10, 1), float("nan")), a[:10])
        with pytest.raises(ValueError, match="paired"):
            est.mutual_information(a, b[:-1])
    for bad in ({"shrinkage": 2.0}, {"shrinkage": "oas"}, {"class_covariance": "shared"}):
        with pytest.raises(ValueError):
            GaussianMI(**bad)
    with pytest.raises(ValueError, match="pooled"):
        GaussianMI(class_covariance="per_class").label_information(a, torch.tensor([0] * 199 + [1]))


def test_inference_mode_and_constant_columns():
    a, b = pairs(500, 3, 0.8, seed=2)
    a[:, 2] = 1.0  # a constant column carries nothing and is dropped
    with torch.inference_mode():
        e = GaussianMI().mutual_information(a, b)
    assert e.diagnostics["dims_used"] == [2, 3]
    assert gaussian_mi(a[:, :2], b).mi == pytest.approx(e.value * LN2)
