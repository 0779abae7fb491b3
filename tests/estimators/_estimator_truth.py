"""Analytic / numerically exact ground truth used by the estimator tests (numpy + scipy, float64)."""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np
import torch
from scipy.special import logsumexp
from scipy.stats import norm

LN2 = math.log(2.0)


def correlated_gaussians(n: int, d: int, rho: float, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pairs (x, y), y_i = rho x_i + sqrt(1-rho^2) e_i per coordinate, float64."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    e = torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, rho * x + math.sqrt(1 - rho * rho) * e


def gaussian_mi_bits(rhos: Sequence[float]) -> float:
    """I = -1/2 sum_i log2(1 - rho_i^2) for coordinate-wise correlated Gaussians."""
    return float(sum(-0.5 * math.log2(1 - r * r) for r in rhos))


def gaussian_channel_bits(cov_eigs: Sequence[float], noise_var: float) -> float:
    """I(X; X+N) = 1/2 log2 det(I + Sigma / sigma^2) for X ~ N(0, Sigma), N ~ N(0, sigma^2 I)."""
    return float(sum(0.5 * math.log2(1 + lam / noise_var) for lam in cov_eigs))


def gaussian_entropy_bits(cov_eigs: Sequence[float]) -> float:
    d = len(cov_eigs)
    return 0.5 * (d * math.log2(2 * math.pi * math.e) + sum(math.log2(v) for v in cov_eigs))


def saxe_minimal_entropy(w: float, n_bins: int = 30) -> float:
    """H(bin(tanh(w X))) in bits, X ~ N(0,1), n_bins equal bins on [-1, 1], from the normal CDF."""
    edges = np.linspace(-1.0, 1.0, n_bins + 1)
    with np.errstate(divide="ignore"):
        x_edges = np.arctanh(edges) / w  # -inf .. inf
    p = np.diff(norm.cdf(x_edges))
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def plugin_mi_from_counts(counts: np.ndarray) -> float:
    """Plug-in I(A;B) in bits of a joint count table."""
    p = counts / counts.sum()
    pa, pb = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
    nz = p > 0
    return float((p[nz] * np.log2(p[nz] / (pa @ pb)[nz])).sum())


def mixture_mi_bits(means: np.ndarray, priors: np.ndarray, sd: float, n_mc: int, seed: int) -> Tuple[float, float]:
    """I(T;Y) for Y ~ priors, T | Y=l ~ N(means[l], sd^2 I), by Monte Carlo with the exact posterior.

    Returns (value, standard error) in bits.
    """
    rng = np.random.default_rng(seed)
    k, d = means.shape
    y = rng.choice(k, size=n_mc, p=priors)
    t = means[y] + sd * rng.standard_normal((n_mc, d))
    d2 = ((t[:, None, :] - means[None, :, :]) ** 2).sum(-1)
    logp = -d2 / (2 * sd * sd) + np.log(priors)[None, :]
    log_post = logp[np.arange(n_mc), y] - logsumexp(logp, axis=1)
    terms = (log_post - np.log(priors[y])) / LN2  # log p(y|t) - log p(y)
    return float(terms.mean()), float(terms.std() / math.sqrt(n_mc))


def two_point_channel_bits(mu: float, noise_var: float) -> float:
    """I(S; S+N) in bits, S uniform on {-mu, +mu}, N ~ N(0, noise_var): 1 - E[h2(posterior)] by quadrature."""
    from scipy.integrate import quad

    s = math.sqrt(noise_var)

    def integrand(z: float) -> float:
        # z drawn from the +mu component; posterior of +mu is sigmoid(2 mu z / s^2)
        a = 2 * mu * z / noise_var
        h2 = (np.logaddexp(0, -a) * (1 / (1 + np.exp(-a))) + np.logaddexp(0, a) * (1 / (1 + np.exp(a)))) / LN2
        return norm.pdf(z, loc=mu, scale=s) * h2

    val, _ = quad(integrand, mu - 12 * s, mu + 12 * s, limit=200)
    return 1.0 - val
