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
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Union

import torch

from ..estimate import Estimate, make_estimate
from ._common import check_labels, check_samples
from ._pairwise import centred64, sq_dists
from .base import Estimator, LayerInformation

SigmaSpec = Union[float, str]


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


class MatrixRenyi(Estimator):
    """Matrix-based Renyi alpha-entropy and mutual information (bits).

    Args:
        alpha: Renyi order (1.01 approximates Shannon).
        sigma: Kernel width: a number, ``"silverman"`` or ``"knn"`` (see module docstring).
        gamma: Multiplier of the rule-based width.
        k_nn: Neighbour rank of the ``"knn"`` rule.
        batch_size: Most rows per eigendecomposition; more rows are split into random batches.
        seed: Seed of the batch split's own generator.
    """

    name = "renyi"

    def __init__(self, alpha: float = 1.01, sigma: SigmaSpec = "silverman", gamma: float = 1.0, k_nn: int = 10,
                 batch_size: int = 1000, seed: int = 0) -> None:
        if not (alpha > 0 and math.isfinite(alpha)):
            raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
        if isinstance(sigma, str):
            if sigma not in ("silverman", "knn"):
                raise ValueError(f"sigma must be a number > 0, 'silverman' or 'knn', got {sigma!r}")
        elif not (sigma > 0 and math.isfinite(sigma)):
            raise ValueError(f"sigma must be a number > 0, 'silverman' or 'knn', got {sigma!r}")
        if not (gamma > 0 and math.isfinite(gamma)):
            raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")
        if not isinstance(k_nn, int) or k_nn < 1:
            raise ValueError(f"k_nn must be an integer >= 1, got {k_nn!r}")
        if not isinstance(batch_size, int) or batch_size < 2:
            raise ValueError(f"batch_size must be an integer >= 2, got {batch_size!r}")
        self.alpha, self.sigma, self.gamma, self.k_nn = float(alpha), sigma, float(gamma), k_nn
        self.batch_size, self.seed = batch_size, int(seed)

    def params(self) -> Dict[str, Any]:
        return {"alpha": self.alpha, "sigma": self.sigma, "gamma": self.gamma, "k_nn": self.k_nn,
                "batch_size": self.batch_size, "seed": self.seed}

    def width(self, t: torch.Tensor, d2: Optional[torch.Tensor] = None) -> float:
        """Kernel width sigma for the rows of ``t`` under this estimator's rule."""
        if not isinstance(self.sigma, str):
            return float(self.sigma)
        n, d = t.shape
        if self.sigma == "silverman":
            spread = math.sqrt(float(t.to(torch.float64).var(0).sum())) if n > 1 else 0.0
            s = self.gamma * n ** (-1.0 / (4 + d)) * spread
        else:
            if d2 is None:
                c = centred64(t)
                d2 = sq_dists(c, c)
            k = min(self.k_nn, n - 1)
            s = self.gamma * float(d2.sqrt().sort(dim=1).values[:, k].mean())  # column 0 is the row itself
        return s if s > 0 else 1.0  # a constant layer: any width gives K = 1, S = 0

    def gram(self, t: torch.Tensor) -> tuple:
        """Unit-trace Gaussian Gram matrix A (float64) of the rows of ``t`` and the width used."""
        c = centred64(t)
        d2 = sq_dists(c, c)
        s = self.width(t, d2)
        k = torch.exp(d2 * (-1.0 / (2.0 * s * s)))
        return k / k.diagonal().sum(), s

    def _joint(self, a: torch.Tensor, b: torch.Tensor) -> float:
        ab = a * b
        return renyi_entropy(ab / ab.diagonal().sum(), self.alpha)

    def _batches(self, n: int, device: torch.device) -> List[torch.Tensor]:
        if n <= self.batch_size:
            return [torch.arange(n, device=device)]
        gen = torch.Generator(device=device)
        gen.manual_seed(self.seed)
        perm = torch.randperm(n, generator=gen, device=device)
        return list(torch.tensor_split(perm, math.ceil(n / self.batch_size)))

    def _estimate(self, values: List[float], quantity: str, cap: Optional[float], n: int, d: int,
                  diagnostics: Dict[str, Any]) -> Estimate:
        v = sum(values) / len(values)
        ci = None
        if len(values) > 1:
            sd = float(torch.tensor(values, dtype=torch.float64).std())
            ci = (v - 1.96 * sd / math.sqrt(len(values)), v + 1.96 * sd / math.sqrt(len(values)))
        diagnostics = dict(diagnostics, n_batches=len(values))
        return make_estimate(v, quantity, kind="estimate", estimator=self.name, ci=ci, cap=cap, n=n, dim=d,
                             params=self.params(), diagnostics=diagnostics)

    def _label(self) -> str:
        return f"alpha={self.alpha:g}, Gaussian kernel, sigma rule {self.sigma!r}"

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        t = check_samples(t)
        n, d = t.shape
        y_codes = check_labels(y, n) if y is not None else None
        s_t, i_ty, widths = [], [], []
        batches = self._batches(n, t.device)
        for idx in batches:  # a loop over batches of rows, not over samples
            a, s = self.gram(t[idx])
            widths.append(s)
            s_t.append(renyi_entropy(a, self.alpha))
            if y_codes is not None:
                ay = label_gram(y_codes[idx])
                ay = ay / ay.diagonal().sum()
                i_ty.append(s_t[-1] + renyi_entropy(ay, self.alpha) - self._joint(a, ay))
        nb = min(len(idx) for idx in batches)
        diag = {"sigma_used": sum(widths) / len(widths), "batch_n": nb}
        i_xt = self._estimate(s_t, f"S_a(T) = I_a(X;T), X uniform over rows, matrix Renyi ({self._label()}, "
                                   f"batches of {nb})", math.log2(nb), n, d, diag)
        if y_codes is None:
            return i_xt, None
        return i_xt, self._estimate(i_ty, f"I_a(T;Y) matrix Renyi ({self._label()}, indicator label kernel, "
                                          f"batches of {nb})", None, n, d, diag)

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        """I_alpha(A;B) with Gaussian Grams (indicator Gram for labels when ``discrete_b``)."""
        a = check_samples(a, name="a")
        n = a.shape[0]
        if discrete_b:
            b = check_labels(b, n, name="b")
        else:
            b = check_samples(b, name="b")
            if b.shape[0] != n:
                raise ValueError(f"a has {n} rows but b has {b.shape[0]}; they must be paired")
        vals, caps = [], []
        batches = self._batches(n, a.device)
        for idx in batches:
            ga, _ = self.gram(a[idx])
            if discrete_b:
                gb = label_gram(b[idx])
                gb = gb / gb.diagonal().sum()
            else:
                gb, _ = self.gram(b[idx])
            sa, sb = renyi_entropy(ga, self.alpha), renyi_entropy(gb, self.alpha)
            vals.append(sa + sb - self._joint(ga, gb))
            caps.append(min(sa, sb))
        nb = min(len(idx) for idx in batches)
        return self._estimate(vals, f"I_a(A;B) matrix Renyi ({self._label()}, batches of {nb})", math.log2(nb),
                              n, a.shape[1],
                              {"min_S_a_marginal": sum(caps) / len(caps)})
