"""Kernels of the classifier probe (see :mod:`.classifier_probe` for the quantity and its choices).

Pure functions of tensors: stratified fold assignment, the n x n Gram factor for wide layers, and the
cross-fitted fit of softmax probes (one per fold, batched) along an L2 path with inner validation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch

from ._lbfgs import Objective, autograd_objective, batched_lbfgs

#: Gradient tolerance of the fits along the L2 path (they only choose lambda; the final fit uses 1e-5).
PATH_GTOL = 1e-4

#: After the walk each fold also tries its chosen lambda times and divided by this (half a decade).
REFINE_STEP = 10.0**0.5

#: Columns of T standardised per block while accumulating the Gram matrix (bounds the temporary copy).
GRAM_COLUMN_BLOCK = 8192


def stratified_folds(codes: torch.Tensor, folds: int, gen: torch.Generator) -> torch.Tensor:
    """Fold id (n,) per row: rows shuffled by ``gen``, then dealt round-robin within each class."""
    n = codes.shape[0]
    perm = torch.randperm(n, generator=gen, device=codes.device)
    order = perm[torch.argsort(codes[perm], stable=True)]
    counts = torch.bincount(codes)
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(n, device=codes.device) - starts[codes[order]]
    offset = torch.randint(folds, (int(counts.numel()),), generator=gen, device=codes.device)
    fold = torch.empty_like(codes)
    fold[order] = (pos + offset[codes[order]]) % folds
    return fold


def gram_features(t: torch.Tensor, *, jitter: float = 1e-6) -> Tuple[torch.Tensor, float]:
    """An n x n factor Z (float32) with Z Z^T = G, the Gram matrix of the standardised centred rows of
    ``t``, and the mean feature variance tr(G) / (n * n). Accumulated over column blocks."""
    n, d = t.shape
    gram = torch.zeros(n, n, dtype=torch.float64, device=t.device)
    for start in range(0, d, GRAM_COLUMN_BLOCK):  # a loop over column blocks, not samples
        c = t[:, start : start + GRAM_COLUMN_BLOCK].float()
        var, mean = torch.var_mean(c, dim=0, keepdim=True)
        sd = var.sqrt()
        c = (c - mean) * torch.where(sd > 0, 1.0 / sd, torch.zeros_like(sd))
        gram += (c @ c.T).double()
    scale = float(gram.diagonal().mean()) or 1.0
    eye = torch.eye(n, dtype=torch.float64, device=t.device)
    for k in range(6):  # raise the jitter only if the factorisation fails
        factor, info = torch.linalg.cholesky_ex(gram + (jitter * 10**k) * scale * eye)
        if int(info) == 0:
            return factor.float(), scale / n
    raise ValueError("the Gram matrix of T could not be factorised (non-finite or degenerate activations)")


@dataclass
class ProbeFit:
    """Result of :func:`fit_probe`: per-row held-out cross-entropy (nats) and how it was obtained."""

    held_out: torch.Tensor  # (n,) -log q(y_i | t_i) from the fold that did not see row i
    train_ce: float  # mean over folds of the final training cross-entropy (nats)
    accuracy: float  # held-out accuracy
    l2: List[float]  # lambda chosen per fold
    params: torch.Tensor  # (folds, m) final weights, for warm starts
    iterations: int
    converged: bool


class _ProbeModel:
    """Softmax probe(s), one per fold, as a function of one flat parameter row per fold."""

    def __init__(
        self,
        z: torch.Tensor,
        codes: torch.Tensor,
        n_classes: int,
        fold: torch.Tensor,
        folds: int,
        hidden: int,
        standardise: bool,
        feature_var: float,
    ) -> None:
        self.z, self.codes, self.k, self.h = z, codes, n_classes, hidden
        p = z.shape[1]
        self.p, self.folds = p, folds
        self.out = hidden if hidden > 0 else n_classes
        self.train = torch.stack([fold != f for f in range(folds)]).to(z.dtype)  # (F, n)
        if standardise:  # the outer training fold's statistics, folded into the first layer
            cnt = self.train.sum(1, keepdim=True)
            self.mu = (self.train @ z) / cnt
            var = (self.train @ (z * z)) / cnt - self.mu**2
            sd = var.clamp_min(0).sqrt()
            self.inv_sd = torch.where(
                sd > 1e-12 * sd.amax(1, keepdim=True).clamp_min(1e-30), 1.0 / sd, torch.zeros_like(sd)
            )
        else:
            self.mu = z.new_zeros(folds, p)
            self.inv_sd = z.new_ones(folds, p)
        self.feature_var = feature_var
        sizes = [p * self.out, self.out] + ([hidden * n_classes, n_classes] if hidden > 0 else [])
        self.sizes = sizes
        self.m = sum(sizes)

    def init(self, gen: torch.Generator) -> torch.Tensor:
        x = self.z.new_zeros(self.folds, self.m)
        if self.h > 0:  # He initialisation from the estimator's own generator
            w1 = torch.randn(self.folds, self.p * self.h, generator=gen, device=self.z.device) * math.sqrt(
                2 / self.p
            )
            w2 = torch.randn(self.folds, self.h * self.k, generator=gen, device=self.z.device) * math.sqrt(
                1 / self.h
            )
            x[:, : self.p * self.h] = w1
            x[:, self.p * self.h + self.h : self.p * self.h + self.h + self.h * self.k] = w2
        return x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (n, F, K) of every row under every fold's probe."""
        parts = torch.split(x, self.sizes, dim=1)
        w = parts[0].view(self.folds, self.p, self.out)
        w_raw = w * self.inv_sd[:, :, None]
        b_raw = parts[1] - torch.einsum("fp,fpo->fo", self.mu * self.inv_sd, w)
        pre = (self.z @ w_raw.permute(1, 0, 2).reshape(self.p, -1)).view(-1, self.folds, self.out) + b_raw
        if self.h == 0:
            return pre
        w2 = parts[2].view(self.folds, self.h, self.k)
        return torch.einsum("nfh,fhk->nfk", torch.relu(pre), w2) + parts[3]

    def penalty(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.sizes, dim=1)
        pen = (parts[0] * parts[0]).sum(1)
        if self.h > 0:
            pen = pen + (parts[2] * parts[2]).sum(1)
        return pen

    def row_losses(self, x: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (F, n) of every row under every fold's probe (nats)."""
        lg = self.logits(x)
        picked = lg.gather(2, self.codes[:, None, None].expand(-1, self.folds, 1))[:, :, 0]
        return (torch.logsumexp(lg, dim=2) - picked).T

    def objective(self, weights: torch.Tensor, l2: torch.Tensor) -> Objective:
        """x -> (per-fold loss, gradient): mean cross-entropy under ``weights`` (F, n) plus the penalty."""
        scale = 0.5 * l2 * self.feature_var
        if self.h > 0:
            return autograd_objective(
                lambda x: (self.row_losses(x) * weights).sum(1) + scale * self.penalty(x)
            )
        return lambda x: self._linear_value_and_grad(x, weights, scale)

    def _linear_value_and_grad(
        self, x: torch.Tensor, weights: torch.Tensor, scale: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Closed-form gradient of the linear probe's objective (no autograd graph)."""
        w = x[:, : self.p * self.k].view(self.folds, self.p, self.k)
        lg = self.logits(x)  # (n, F, K)
        lse = torch.logsumexp(lg, dim=2)
        picked = lg.gather(2, self.codes[:, None, None].expand(-1, self.folds, 1))[:, :, 0]
        wt = weights.T  # (n, F)
        pen = (w * w).sum((1, 2))
        f = ((lse - picked) * wt).sum(0) + scale * pen
        r = torch.exp(lg - lse[:, :, None])
        r.scatter_add_(
            2,
            self.codes[:, None, None].expand(-1, self.folds, 1),
            -torch.ones(lg.shape[0], self.folds, 1, dtype=lg.dtype, device=lg.device),
        )
        r = r * wt[:, :, None]  # d loss / d logits
        g_raw = (self.z.T @ r.reshape(r.shape[0], -1)).view(self.p, self.folds, self.k).permute(1, 0, 2)
        g_b = r.sum(0)  # (F, K)
        g_w = g_raw * self.inv_sd[:, :, None] - (self.mu * self.inv_sd)[:, :, None] * g_b[:, None, :]
        g_w = g_w + 2.0 * scale[:, None, None] * w
        return f, torch.cat([g_w.reshape(self.folds, -1), g_b], dim=1)


def _mean_weights(mask: torch.Tensor) -> torch.Tensor:
    return mask / mask.sum(1, keepdim=True).clamp_min(1.0)


def fit_probe(
    z: torch.Tensor,
    codes: torch.Tensor,
    fold: torch.Tensor,
    *,
    folds: int,
    l2: Sequence[float],
    hidden: int = 0,
    standardise: bool = True,
    feature_var: float = 1.0,
    max_iter: int = 200,
    gen: Optional[torch.Generator] = None,
    init: Optional[torch.Tensor] = None,
) -> ProbeFit:
    """Cross-fit softmax probes of ``codes`` (n,) on features ``z`` (n, p); see the module docstring.

    ``l2`` with one value fixes lambda; several values form the grid walked from strong to weak with
    the choice made per fold on the inner validation fold ``(f + 1) % folds``.
    """
    n_classes = int(codes.max()) + 1
    model = _ProbeModel(z, codes, n_classes, fold, folds, hidden, standardise, feature_var)
    gen = gen if gen is not None else torch.Generator(device=z.device)
    x = init if init is not None and tuple(init.shape) == (folds, model.m) else model.init(gen)
    x = x.to(device=z.device, dtype=z.dtype)
    # strong to weak for the convex linear probe; weak to strong for the MLP, whose zero weights (where
    # a strong penalty leads) are a saddle that a warm start cannot leave
    iterations, grid = 0, sorted({float(v) for v in l2}, reverse=hidden == 0)
    if len(grid) > 1:
        val = torch.stack([fold == (f + 1) % folds for f in range(folds)]).to(z.dtype)
        inner = _mean_weights(model.train * (1 - val))
        val_w = _mean_weights(val)
        best = z.new_full((folds,), math.inf)
        best_x, best_l2 = x.clone(), z.new_full((folds,), grid[0])
        worse = torch.zeros(folds, dtype=torch.long, device=z.device)

        def try_l2(lam: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
            nonlocal best, best_x, best_l2, iterations
            res = batched_lbfgs(model.objective(inner, lam), start, max_iter=max_iter, gtol=PATH_GTOL)
            iterations += res.iterations
            with torch.no_grad():
                v = (model.row_losses(res.x) * val_w).sum(1)
            better = v < best
            best = torch.where(better, v, best)
            best_x = torch.where(better[:, None], res.x, best_x)
            best_l2 = torch.where(better, lam, best_l2)
            return better

        for lam in grid:  # the regularisation path: a few grid points, each a batched fit
            better = try_l2(z.new_full((folds,), lam), x if lam == grid[0] else best_x)
            worse = torch.where(better, torch.zeros_like(worse), worse + 1)
            if bool((worse >= 2).all()):
                break
        if len(grid) >= 3:  # refine each fold's choice by the geometric midpoints to its neighbours
            centre = best_l2.clone()
            for step in (REFINE_STEP, 1.0 / REFINE_STEP):
                try_l2(centre * step, best_x)
        # the inner fits saw (F-2)/(F-1) of the refit's rows: keep the total penalty strength (lambda
        # multiplies a mean loss, so it scales as 1 / rows)
        x, lam_f = best_x, best_l2 * ((folds - 2) / (folds - 1))
    else:
        lam_f = z.new_full((folds,), grid[0])
    res = batched_lbfgs(model.objective(_mean_weights(model.train), lam_f), x, max_iter=max_iter)
    with torch.no_grad():
        losses = model.row_losses(res.x)
        held = losses.gather(0, fold[None, :])[0]
        train_ce = float(((losses * _mean_weights(model.train)).sum(1)).mean())
        pred = model.logits(res.x).argmax(2).gather(1, fold[:, None])[:, 0]
        acc = float((pred == codes).to(torch.float64).mean())
    return ProbeFit(
        held_out=held.to(torch.float64),
        train_ce=train_ce,
        accuracy=acc,
        l2=[float(v) for v in lam_f],
        params=res.x.detach(),
        iterations=iterations + res.iterations,
        converged=bool(res.converged.all()),
    )
