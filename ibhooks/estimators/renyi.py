"""Matrix-based Renyi alpha-entropy (Sanchez Giraldo, Rao & Principe 2015; Yu et al. 2020;
Wickstroem et al. 2019).

For a batch of n rows, K_ij = exp(-|t_i - t_j|^2 / (2 sigma^2)), A = K / tr(K) and

    S_a(A)     = 1/(1-a) * log2 sum_i lambda_i(A)^a          (eigvalsh, tiny negatives clamped to 0)
    S_a(A, B)  = S_a(A o B / tr(A o B))                      (o = Hadamard product)
    I_a(A; B)  = S_a(A) + S_a(B) - S_a(A, B)

Labels use the indicator kernel 1[y_i = y_j] (the sigma -> 0 limit of an RBF on one-hot labels), so
S_a(A_Y) is the Renyi entropy of the class frequencies. X uniform over the rows has the delta
kernel A_X = I/n, for which I_a(X;T) = S_a(A_T): ``layer_information`` reports S_a(T) as I(X;T).
Values lie in [0, log2 n_batch]. This is a Renyi functional with a kernel width, not a consistent
Shannon estimator: the values depend strongly on sigma (sigma -> 0 gives log2 n, sigma -> inf gives 0),
so the width rule is part of the quantity and is recorded in ``params`` and ``diagnostics``.

Width rules (``sigma=``): a number; ``"silverman"`` (default) sigma = gamma * n^(-1/(4+d)) *
sqrt(tr Cov(T)), a Silverman-type rule scaled by the layer's total standard deviation; ``"knn"``
sigma = gamma * mean Euclidean distance to the k-th nearest neighbour (Wickstroem et al.).

Cost O(n^2 d + n^3) per batch. Rows beyond ``batch_size`` are split into random (own seeded
generator) batches of nearly equal size and the values averaged, as the method is used in the
literature; ``ci`` = mean +- 1.96 sd/sqrt(#batches) when there are several.

Kernels (plain functions of tensors): :func:`renyi_entropy`, :func:`label_gram`, :func:`kernel_width`,
:func:`renyi_gram`, :func:`renyi_layer_information`, :func:`renyi_mutual_information`;
:class:`MatrixRenyi` holds the settings.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple, Union

import torch

from ..schema.estimate import Estimate, EstimatorTraits
from ._common import (Provenance, check_labels, check_samples, generator, require_int, require_number,
                      require_seed)
from ._pairwise import centred64, sq_dists
from .base import Estimator, LayerInformation

SigmaSpec = Union[float, str]

#: Works from a Gram matrix of the rows; S_a(T) <= log2 of the batch size.
RENYI_TRAITS = EstimatorTraits(pairwise=True, cap="log2_n")


def renyi_params(alpha: float = 1.01, sigma: SigmaSpec = "silverman", gamma: float = 1.0, k_nn: int = 10,
                 batch_size: int = 1000, seed: int = 0) -> Dict[str, Any]:
    """Validate matrix-Renyi settings (one ValueError naming the fix) and return them as recorded."""
    alpha = require_number("alpha", alpha)
    if isinstance(sigma, str):
        if sigma not in ("silverman", "knn"):
            raise ValueError(f"sigma must be a number > 0, 'silverman' or 'knn', got {sigma!r}")
    else:
        try:
            sigma = require_number("sigma", sigma)
        except ValueError:
            raise ValueError(f"sigma must be a number > 0, 'silverman' or 'knn', got {sigma!r}") from None
    return {"alpha": alpha, "sigma": sigma, "gamma": require_number("gamma", gamma),
            "k_nn": require_int("k_nn", k_nn, 1), "batch_size": require_int("batch_size", batch_size, 2),
            "seed": require_seed(seed)}


def renyi_entropy(a: torch.Tensor, alpha: float) -> float:
    """S_alpha of a PSD matrix normalised to unit trace, in bits (alpha = 1 gives von Neumann/Shannon)."""
    lam = torch.linalg.eigvalsh(a).clamp_min(0.0)
    lam = lam / lam.sum()
    if abs(alpha - 1.0) < 1e-12:
        nz = lam[lam > 0]
        return float(-(nz * torch.log2(nz)).sum())
    return float(torch.log2((lam ** alpha).sum()) / (1.0 - alpha))


def label_gram(y: torch.Tensor) -> torch.Tensor:
    """Indicator Gram 1[y_i = y_j] (float64) of integer labels."""
    return (y.unsqueeze(0) == y.unsqueeze(1)).to(torch.float64)


def kernel_width(t: torch.Tensor, *, sigma: SigmaSpec = "silverman", gamma: float = 1.0, k_nn: int = 10,
                 d2: Optional[torch.Tensor] = None) -> float:
    """Kernel width for the rows of ``t`` under a rule (a number, ``"silverman"`` or ``"knn"``);
    ``d2`` may pass the squared distances already computed."""
    if not isinstance(sigma, str):
        return float(sigma)
    n, d = t.shape
    if sigma == "silverman":
        spread = math.sqrt(float(t.to(torch.float64).var(0).sum())) if n > 1 else 0.0
        s = gamma * n ** (-1.0 / (4 + d)) * spread
    else:
        if d2 is None:
            c = centred64(t)
            d2 = sq_dists(c, c)
        k = min(k_nn, n - 1)
        s = gamma * float(d2.sqrt().sort(dim=1).values[:, k].mean())  # column 0 is the row itself
    return s if s > 0 else 1.0  # a constant layer: any width gives K = 1, S = 0


def renyi_gram(t: torch.Tensor, *, sigma: SigmaSpec = "silverman", gamma: float = 1.0,
               k_nn: int = 10) -> Tuple[torch.Tensor, float]:
    """Unit-trace Gaussian Gram matrix A (float64) of the rows of ``t`` and the width used."""
    c = centred64(t)
    d2 = sq_dists(c, c)
    s = kernel_width(t, sigma=sigma, gamma=gamma, k_nn=k_nn, d2=d2)
    k = torch.exp(d2 * (-1.0 / (2.0 * s * s)))
    return k / k.diagonal().sum(), s


def _joint(a: torch.Tensor, b: torch.Tensor, alpha: float) -> float:
    ab = a * b
    return renyi_entropy(ab / ab.diagonal().sum(), alpha)


def _batches(n: int, batch_size: int, seed: int, device: torch.device) -> List[torch.Tensor]:
    """Row indices of random batches of nearly equal size (one batch of all rows when n <= batch_size)."""
    if n <= batch_size:
        return [torch.arange(n, device=device)]
    perm = torch.randperm(n, generator=generator(seed, device), device=device)
    return list(torch.tensor_split(perm, math.ceil(n / batch_size)))


def _estimate(prov: Provenance, values: List[float], quantity: str, cap: Optional[float], n: int, d: int,
              diagnostics: Dict[str, Any]) -> Estimate:
    v = sum(values) / len(values)
    ci = None
    if len(values) > 1:
        sd = float(torch.tensor(values, dtype=torch.float64).std())
        ci = (v - 1.96 * sd / math.sqrt(len(values)), v + 1.96 * sd / math.sqrt(len(values)))
    diagnostics = dict(diagnostics, n_batches=len(values))
    return prov.estimate(v, quantity, kind="estimate", ci=ci, cap=cap, n=n, dim=d, diagnostics=diagnostics)


def _label(alpha: float, sigma: SigmaSpec) -> str:
    return f"alpha={alpha:g}, Gaussian kernel, sigma rule {sigma!r}"


def renyi_layer_information(
    t: torch.Tensor, y: Optional[torch.Tensor] = None, *, alpha: float = 1.01, sigma: SigmaSpec = "silverman",
    gamma: float = 1.0, k_nn: int = 10, batch_size: int = 1000, seed: int = 0,
    provenance: Optional[Provenance] = None,
) -> LayerInformation:
    """``(S_a(T), I_a(T;Y))`` in bits (S_a(T) = I_a(X;T) for X uniform over rows), averaged over
    random batches of at most ``batch_size`` rows; I(T;Y) is None without labels."""
    prov = provenance or Provenance("renyi", RENYI_TRAITS,
                                    renyi_params(alpha, sigma, gamma, k_nn, batch_size, seed))
    t = check_samples(t)
    n, d = t.shape
    y_codes = check_labels(y, n) if y is not None else None
    s_t, i_ty, widths = [], [], []
    batches = _batches(n, batch_size, seed, t.device)
    for idx in batches:  # a loop over batches of rows, not over samples
        a, s = renyi_gram(t[idx], sigma=sigma, gamma=gamma, k_nn=k_nn)
        widths.append(s)
        s_t.append(renyi_entropy(a, alpha))
        if y_codes is not None:
            ay = label_gram(y_codes[idx])
            ay = ay / ay.diagonal().sum()
            i_ty.append(s_t[-1] + renyi_entropy(ay, alpha) - _joint(a, ay, alpha))
    nb = min(len(idx) for idx in batches)
    diag = {"sigma_used": sum(widths) / len(widths), "batch_n": nb}
    label = _label(alpha, sigma)
    i_xt = _estimate(prov, s_t, f"S_a(T) = I_a(X;T), X uniform over rows, matrix Renyi ({label}, "
                                f"batches of {nb})", math.log2(nb), n, d, diag)
    if y_codes is None:
        return i_xt, None
    return i_xt, _estimate(prov, i_ty, f"I_a(T;Y) matrix Renyi ({label}, indicator label kernel, "
                                       f"batches of {nb})", None, n, d, diag)


def renyi_mutual_information(
    a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False, alpha: float = 1.01,
    sigma: SigmaSpec = "silverman", gamma: float = 1.0, k_nn: int = 10, batch_size: int = 1000, seed: int = 0,
    provenance: Optional[Provenance] = None,
) -> Estimate:
    """I_alpha(A;B) in bits with Gaussian Grams (the indicator Gram for class labels when ``discrete_b``)."""
    prov = provenance or Provenance("renyi", RENYI_TRAITS,
                                    renyi_params(alpha, sigma, gamma, k_nn, batch_size, seed))
    a = check_samples(a, name="a")
    n = a.shape[0]
    if discrete_b:
        b = check_labels(b, n, name="b")
    else:
        b = check_samples(b, name="b")
        if b.shape[0] != n:
            raise ValueError(f"a has {n} rows but b has {b.shape[0]}; they must be paired")
    width = {"sigma": sigma, "gamma": gamma, "k_nn": k_nn}
    vals, caps = [], []
    batches = _batches(n, batch_size, seed, a.device)
    for idx in batches:  # a loop over batches of rows, not over samples
        ga, _ = renyi_gram(a[idx], **width)
        if discrete_b:
            gb = label_gram(b[idx])
            gb = gb / gb.diagonal().sum()
        else:
            gb, _ = renyi_gram(b[idx], **width)
        sa, sb = renyi_entropy(ga, alpha), renyi_entropy(gb, alpha)
        vals.append(sa + sb - _joint(ga, gb, alpha))
        caps.append(min(sa, sb))
    nb = min(len(idx) for idx in batches)
    return _estimate(prov, vals, f"I_a(A;B) matrix Renyi ({_label(alpha, sigma)}, batches of {nb})",
                     math.log2(nb), n, a.shape[1], {"min_S_a_marginal": sum(caps) / len(caps)})


class MatrixRenyi(Estimator):
    """Matrix-based Renyi alpha-entropy and mutual information (bits); a thin wrapper of
    :func:`renyi_layer_information` and :func:`renyi_mutual_information` holding the settings.

    Args:
        alpha: Renyi order (1.01 approximates Shannon).
        sigma: Kernel width: a number, ``"silverman"`` or ``"knn"`` (see module docstring).
        gamma: Multiplier of the rule-based width.
        k_nn: Neighbour rank of the ``"knn"`` rule.
        batch_size: Most rows per eigendecomposition; more rows are split into random batches.
        seed: Seed of the batch split's own generator.
    """

    name = "renyi"
    whole_activations = True
    traits = RENYI_TRAITS

    def __init__(self, alpha: float = 1.01, sigma: SigmaSpec = "silverman", gamma: float = 1.0,
                 k_nn: int = 10, batch_size: int = 1000, seed: int = 0) -> None:
        p = renyi_params(alpha, sigma, gamma, k_nn, batch_size, seed)
        self.alpha, self.sigma, self.gamma, self.k_nn = p["alpha"], p["sigma"], p["gamma"], p["k_nn"]
        self.batch_size, self.seed = p["batch_size"], p["seed"]

    def params(self) -> Dict[str, Any]:
        return renyi_params(self.alpha, self.sigma, self.gamma, self.k_nn, self.batch_size, self.seed)

    def _settings(self) -> Dict[str, Any]:
        return dict(self.params(), provenance=self.provenance())

    def width(self, t: torch.Tensor, d2: Optional[torch.Tensor] = None) -> float:
        """Kernel width sigma for the rows of ``t`` under this estimator's rule."""
        return kernel_width(t, sigma=self.sigma, gamma=self.gamma, k_nn=self.k_nn, d2=d2)

    def gram(self, t: torch.Tensor) -> Tuple[torch.Tensor, float]:
        """Unit-trace Gaussian Gram matrix A (float64) of the rows of ``t`` and the width used."""
        return renyi_gram(t, sigma=self.sigma, gamma=self.gamma, k_nn=self.k_nn)

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        return renyi_layer_information(t, y, **self._settings())

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        """I_alpha(A;B) with Gaussian Grams (indicator Gram for labels when ``discrete_b``)."""
        return renyi_mutual_information(a, b, discrete_b=discrete_b, **self._settings())
