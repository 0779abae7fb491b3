"""A Gaussian-mixture twin of a layer, whose I(T;Y) is known: the kernel of the calibration analysis.

The twin of a layer T (n rows, D units) with labels Y (K classes) is the mixture

    Y ~ pi (the labels' proportions),   T | Y=k ~ N(mu_k, Sigma),
    Sigma = (1 - alpha) S_w + alpha nu I      (S_w the pooled within-class covariance, dof n - K,
                                               nu = tr(S_w) / D, alpha the Ledoit-Wolf intensity)

with mu_k the layer's class means (``means="sample"``), or those means pulled toward their weighted
centre so that their expected Mahalanobis spread matches (``means="debiased"``: the sample mean of
n_k rows of the twin itself lies D (1/n_k - 1/n) too far out on average, in Sigma^-1 units).

Nothing of size D x D is formed: Sigma = a I + V diag(s) V^T with V the eigenvectors of S_w on the
smaller side (D x D when D <= n, else through the n x n Gram matrix of the residuals), so wide layers
cost O(n^2 D) like the pairwise estimators.

Truth. With a shared covariance the posterior is a softmax of the linear discriminants
l_k(t) = t^T Sigma^-1 mu_k - mu_k^T Sigma^-1 mu_k / 2 + log pi_k. For t = mu_y + eps, eps ~ N(0, Sigma),
the vector (eps^T Sigma^-1 mu_k)_k is N(0, Q) with Q = M Sigma^-1 M^T (the Mahalanobis Gram of the
means), so

    I(T;Y) = E_t[ sum_k p(k|t) log(p(k|t) / pi_k) ]

is a Monte Carlo over K-dimensional draws only (stratified over classes; the Rao-Blackwellised term
above has a smaller variance than log p(y|t) - log pi_y). For a noise-based instrument the twin's
I(T+N(0, s2 I); Y) is the same with Sigma + s2 I. Everything is in float64 on the layer's device, from
the caller's seeded generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Tuple

import torch

LN2 = math.log(2.0)

#: Means of the twin: the layer's class means as they are, or pulled in by their expected sampling spread.
MEANS = ("sample", "debiased")

#: Floor of the shrinkage intensity when the within-class covariance is singular (D >= n - K).
MIN_SHRINKAGE = 1e-6

#: Column block (bytes of float64 per row block) for the O(n^2 D) products.
_BLOCK_BYTES = 1 << 26


@dataclass(frozen=True)
class GaussianTwin:
    """A K-class Gaussian mixture with a shared covariance ``a I + V diag(s) V^T`` (see the module).

    Attributes:
        centre: Weighted mean of the class means, (D,) float64.
        centred: Class means minus ``centre``, (K, D) float64.
        proportions: pi, (K,) float64, summing to 1.
        iso: a, the isotropic part of Sigma.
        spectrum: s, (r,) the other eigenvalues' excess over a (Sigma = a on the complement of V).
        proj: ``centred @ V``, (K, r): the means in the eigenbasis.
        means_gram: ``centred @ centred.T``, (K, K).
        factor: F with F^T F = V diag(s) V^T, (m, D) float32 (for sampling).
        shrinkage: alpha (Ledoit-Wolf or given).
        full_rank: V spans all D dimensions (no complement).
    """

    centre: torch.Tensor
    centred: torch.Tensor
    proportions: torch.Tensor
    iso: float
    spectrum: torch.Tensor
    proj: torch.Tensor
    means_gram: torch.Tensor
    factor: torch.Tensor
    shrinkage: float
    full_rank: bool

    @property
    def dim(self) -> int:
        return int(self.centred.shape[1])

    @property
    def classes(self) -> int:
        return int(self.centred.shape[0])

    @property
    def means(self) -> torch.Tensor:
        """The class means mu_k, (K, D) float64."""
        return self.centred + self.centre

    def mahalanobis_gram(self, noise_var: float = 0.0) -> torch.Tensor:
        """Q = C (Sigma + noise_var I)^-1 C^T for the centred means C, (K, K) float64."""
        a = self.iso + float(noise_var)
        q = (self.proj / (a + self.spectrum)) @ self.proj.T
        if not self.full_rank:
            if a <= 0:
                raise ValueError("the twin's covariance is singular: give it a shrinkage > 0")
            q = q + (self.means_gram - self.proj @ self.proj.T) / a
        return 0.5 * (q + q.T)

    def sample(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Rows T | Y = labels (n, D) float32, on the twin's device, from ``generator``."""
        n, dev = int(labels.shape[0]), self.centred.device
        g = torch.randn(n, self.factor.shape[0], generator=generator, device=dev, dtype=torch.float32)
        t = (self.means.to(torch.float32))[labels] + g @ self.factor
        if self.iso > 0:
            e = torch.randn(n, self.dim, generator=generator, device=dev, dtype=torch.float32)
            t.add_(e, alpha=math.sqrt(self.iso))
        return t

    def label_information(self, generator: torch.Generator, *, samples: int = 100_000,
                          noise_var: float = 0.0, chunk: int = 16_384) -> Tuple[float, float]:
        """I(T + N(0, noise_var I); Y) of the twin in bits and its Monte Carlo standard error (bits)."""
        q = self.mahalanobis_gram(noise_var)
        evals, evecs = torch.linalg.eigh(q)
        root = evecs * evals.clamp_min(0.0).sqrt()  # root @ root.T = Q
        log_pi = self.proportions.log()
        bias = -0.5 * q.diagonal() + log_pi
        per_class = torch.clamp((self.proportions * samples).ceil().long(), min=2)
        labels = torch.repeat_interleave(torch.arange(self.classes, device=q.device), per_class)
        total = torch.zeros(self.classes, dtype=torch.float64, device=q.device)
        total_sq = torch.zeros_like(total)
        for start in range(0, labels.numel(), chunk):  # a loop over chunks of draws, not samples
            y = labels[start:start + chunk]
            z = torch.randn(y.numel(), self.classes, generator=generator, device=q.device,
                            dtype=torch.float64)
            logp = torch.log_softmax(q[y] + z @ root.T + bias, dim=1)
            term = (logp.exp() * (logp - log_pi)).sum(1)
            total.index_add_(0, y, term)
            total_sq.index_add_(0, y, term * term)
        m = per_class.to(torch.float64)
        mean_k = total / m
        var_k = (total_sq / m - mean_k ** 2).clamp_min(0.0) * m / (m - 1)
        value = float((self.proportions * mean_k).sum())
        se = float(((self.proportions ** 2) * var_k / m).sum().sqrt())
        return value / LN2, se / LN2


def _gram64(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b.T in float64, accumulated over column blocks (a, b: (p, D) and (q, D))."""
    cols = max(1, _BLOCK_BYTES // (8 * max(a.shape[0] + b.shape[0], 1)))
    out = torch.zeros(a.shape[0], b.shape[0], dtype=torch.float64, device=a.device)
    for start in range(0, a.shape[1], cols):  # a loop over column blocks
        out.addmm_(a[:, start:start + cols].to(torch.float64), b[:, start:start + cols].to(torch.float64).T)
    return out


def ledoit_wolf(gram: torch.Tensor, row_sq: torch.Tensor, dim: int) -> float:
    """Ledoit-Wolf (2004) intensity toward nu I of S = R^T R / n from the residuals' n x n Gram matrix
    ``gram`` = R R^T and squared row norms (``row_sq`` = diag(gram)); computed on the n x n side."""
    n = gram.shape[0]
    s_fro2 = float((gram * gram).sum()) / (n * n)
    mu = float(row_sq.sum()) / (n * dim)
    d2 = s_fro2 - dim * mu * mu
    if d2 <= 0:
        return 0.0
    b2 = max(float((row_sq * row_sq).sum()) / (n * n) - s_fro2 / n, 0.0)
    return min(b2, d2) / d2


def fit_twin(t: torch.Tensor, codes: torch.Tensor, *, shrinkage: Optional[float] = None,
             means: str = "sample") -> GaussianTwin:
    """The Gaussian twin of a layer ``t`` (n, D) with label codes 0..K-1 (n,), on ``t``'s device.

    ``shrinkage`` is alpha in [0, 1] (``None``: Ledoit-Wolf; floored at 1e-6 when the within-class
    covariance is singular). ``means``: ``"sample"`` or ``"debiased"`` (see the module).
    """
    if means not in MEANS:
        raise ValueError(f"means must be one of {MEANS}, got {means!r}")
    if shrinkage is not None and not 0.0 <= float(shrinkage) <= 1.0:
        raise ValueError(f"shrinkage must be None (Ledoit-Wolf) or a number in [0, 1], got {shrinkage!r}")
    t = t.reshape(t.shape[0], -1)
    n, dim = (int(s) for s in t.shape)
    counts = torch.bincount(codes)
    k = int(counts.numel())
    if n <= k:
        raise ValueError(f"a twin needs more rows than classes ({n} rows, {k} classes): use more probe rows")
    x = t.to(torch.float32)
    sums = torch.zeros(k, dim, dtype=torch.float64, device=t.device).index_add_(0, codes, x.to(torch.float64))
    mu = sums / counts.to(torch.float64)[:, None]
    pi = counts.to(torch.float64) / n
    resid = x - mu.to(torch.float32)[codes]
    dof = float(n - k)
    gram = _gram64(resid, resid)  # n x n
    row_sq = gram.diagonal().clone()
    alpha = ledoit_wolf(gram, row_sq, dim) if shrinkage is None else float(shrinkage)
    nu = float(row_sq.sum()) / (dof * dim)
    centre = pi @ mu
    centred = mu - centre
    if dim <= n:
        s_w = _gram64(resid.T.contiguous(), resid.T.contiguous()) / dof  # D x D
        w, vecs = torch.linalg.eigh(0.5 * (s_w + s_w.T))
        w = w.clamp_min(0.0)
        proj = centred @ vecs
        full = True
    else:
        w, u = torch.linalg.eigh(0.5 * (gram + gram.T))
        keep = w > 1e-10 * float(w.amax().clamp_min(1e-300))
        w, u = w[keep], u[:, keep]
        proj = _gram64(centred, resid) @ u / w.sqrt()  # C V with V = R^T U diag(w^-1/2)
        w = w / dof
        full = False
    if not full or bool((w <= 0).any()):
        alpha = max(alpha, MIN_SHRINKAGE)
    twin = GaussianTwin(
        centre=centre, centred=centred, proportions=pi, iso=alpha * nu, spectrum=(1.0 - alpha) * w,
        proj=proj, means_gram=centred @ centred.T,
        factor=resid * math.sqrt((1.0 - alpha) / dof), shrinkage=alpha, full_rank=full,
    )
    return debias_means(twin, counts) if means == "debiased" else twin


def debias_means(twin: GaussianTwin, counts: torch.Tensor) -> GaussianTwin:
    """The twin with each centred mean scaled by c_k = sqrt(max(0, 1 - D (1/n_k - 1/n) / Q_kk)): the
    excess Mahalanobis spread that a sample mean of n_k rows of the twin itself would have (D in
    Sigma^-1 units) removed. Approximate: the layer's noise is not the twin's (a shrunk Sigma weights
    it differently) and a positive part remains where the spread fluctuates up (James-Stein)."""
    n = float(counts.sum())
    q = twin.mahalanobis_gram().diagonal()
    excess = twin.dim * (1.0 / counts.to(torch.float64) - 1.0 / n)
    c = (1.0 - excess / q.clamp_min(1e-300)).clamp_min(0.0).sqrt()
    return replace(twin, centred=twin.centred * c[:, None], proj=twin.proj * c[:, None],
                   means_gram=twin.means_gram * c[:, None] * c[None, :])


def from_moments(means: torch.Tensor, cov: torch.Tensor, proportions: torch.Tensor) -> GaussianTwin:
    """A twin with given class means (K, D), shared covariance (D, D) and proportions (K,) (tests,
    benchmarks: a population whose truth is wanted)."""
    means = means.to(torch.float64)
    pi = proportions.to(torch.float64) / proportions.sum()
    w, vecs = torch.linalg.eigh(0.5 * (cov + cov.T).to(torch.float64))
    w = w.clamp_min(0.0)
    centre = pi @ means
    centred = means - centre
    return GaussianTwin(
        centre=centre, centred=centred, proportions=pi, iso=0.0, spectrum=w, proj=centred @ vecs,
        means_gram=centred @ centred.T, factor=(vecs * w.sqrt()).T.to(torch.float32).contiguous(),
        shrinkage=0.0, full_rank=True,
    )
