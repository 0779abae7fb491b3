"""Task families of the BMI benchmark (Czyz et al. 2023, "Beyond normal") with known truth, in bits.

* ``student``: (X, Y) multivariate Student-t, nu degrees of freedom, dispersion Sigma with
  Corr(X_i, Y_i) = rho: Z ~ N(0, Sigma), W ~ chi2_nu, (X, Y) = Z / sqrt(W / nu). Marginals are t with
  the same nu, so I = I_gauss(Sigma) + g(d_x) + g(d_y) - g(d_x + d_y) with
  g(d) = ln Gamma(nu/2) - ln Gamma((nu+d)/2) + (nu+d)/2 [psi((nu+d)/2) - psi(nu/2)] (nats; the
  (nu pi)^(d/2) terms of the t entropy cancel); I_gauss = -d/2 ln(1 - rho^2).
* ``spiral``: Gaussian (X, Y) as in ``gauss``, X mapped by the spiral diffeomorphism
  x -> R(v |x|^2) x (rotation by angle v |x|^2 in the (x_1, x_2) plane, v = 0.5): I unchanged.
* ``halfcube``: Gaussian (X, Y), both mapped coordinate-wise by x -> sign(x) |x|^{3/2}: I unchanged.
* ``sparse``: X, Y in R^d (d = 25), only the first m coordinate pairs correlated (rho):
  I = -m/2 log2(1 - rho^2).
* ``highmi``: Gaussian (X, Y) in R^d with a large total I (rho close to 1).
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np
from scipy.special import digamma, gammaln

LN2 = math.log(2.0)


def gauss_pair(n: int, d: int, rho: float, rng: np.random.Generator, m: int = -1) -> Tuple[np.ndarray, np.ndarray]:
    """X ~ N(0, I_d), Y_i = rho X_i + sqrt(1 - rho^2) Z_i for the first m coordinates (all if m < 0)."""
    m = d if m < 0 else m
    x = rng.standard_normal((n, d))
    r = np.zeros(d)
    r[:m] = rho
    y = r * x + np.sqrt(1 - r * r) * rng.standard_normal((n, d))
    return x, y


def gauss_bits(rho: float, pairs: int) -> float:
    return -0.5 * pairs * math.log2(1 - rho * rho)


def _g(nu: float, d: int) -> float:
    return float(gammaln(nu / 2) - gammaln((nu + d) / 2) + (nu + d) / 2 * (digamma((nu + d) / 2) - digamma(nu / 2)))


def student_bits(d: int, rho: float, nu: float) -> float:
    nats = -0.5 * d * math.log(1 - rho * rho) + 2 * _g(nu, d) - _g(nu, 2 * d)
    return nats / LN2


def student_pair(n: int, d: int, rho: float, nu: float, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    x, y = gauss_pair(n, d, rho, rng)
    s = np.sqrt(rng.chisquare(nu, size=(n, 1)) / nu)
    return x / s, y / s


def spiral(x: np.ndarray, v: float = 0.5) -> np.ndarray:
    a = v * (x * x).sum(1)
    c, s = np.cos(a), np.sin(a)
    out = x.copy()
    out[:, 0], out[:, 1] = c * x[:, 0] - s * x[:, 1], s * x[:, 0] + c * x[:, 1]
    return out


def halfcube(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.abs(x) ** 1.5


def cca_bits(x: np.ndarray, y: np.ndarray) -> float:
    """The Gaussian/CCA peer: -1/2 log2 det(I - C) from sample covariances, C the squared canonical
    correlations (a plain numpy reference, no shrinkage)."""
    z = np.hstack([x, y])
    c = np.cov(z, rowvar=False)
    dx = x.shape[1]
    _, ld = np.linalg.slogdet(c)
    _, lx = np.linalg.slogdet(c[:dx, :dx])
    _, ly = np.linalg.slogdet(c[dx:, dx:])
    return float(0.5 * (lx + ly - ld) / LN2)
