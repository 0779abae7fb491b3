"""Classifier-probe lower bound on I(T;Y) (Barber & Agakov 2003; Xu et al. ICLR 2020 "usable information").

For any conditional model q(y|t), I(T;Y) = H(Y) - H(Y|T) >= H(Y) - E[-log q(Y|T)]. Here q is a softmax
classifier on T (linear by default, optionally one hidden ReLU layer), fit with an L2 penalty and
cross-fitted over k stratified folds so every row is scored by a probe that never saw its label:

    I_probe = Hhat(Y) - (1/n) sum_i -log q_{-fold(i)}(y_i | t_i)      (nats, reported in bits)

Hhat(Y) is the plug-in entropy of the same rows. Written as a mean of per-row terms
r_i = -log phat(y_i) + log q(y_i|t_i), the interval is mean +- 1.96 sd(r)/sqrt(n) (the spread of the
held-out losses; not the gap to the truth). The value is never clipped: a negative value (an overfit
or uninformative probe at small n) is reported with ``diagnostics["negative"]``. It never exceeds
Hhat(Y), the cap (trait ``cap="h_y"``).

Details that define the quantity:

* Features: T is standardised with the outer training fold's column means and deviations (folded into
  the weights, so no per-fold copy of T is made). The penalty is (lambda * v / 2) ||W||^2 on the
  standardised weights, v = the mean per-feature variance the model sees (1 when d <= n).
* Wide layers (d > n, or ``dual=True``): an L2-penalised linear model's weights lie in the span of the
  rows (representer theorem), so fitting on any n x n factor Z with Z Z^T = G (G the Gram matrix of
  the standardised, centred rows) is exactly equivalent to fitting on T. Z is the Cholesky factor of
  G (plus a 1e-6 relative jitter, which adds per-row features no other row can use). G is accumulated
  over column blocks, so the cost is O(n^2 d) once, then the fit is in n dimensions. Here the columns
  are standardised with all rows' statistics (label-free; within sampling noise of a fold's). The
  same holds for the MLP's first layer when only it and the output layer are penalised.
* L2 strength: a fixed ``l2`` or, by default, the decades 10^0 ... 10^-4, walked with warm starts
  (strong to weak for the linear probe, weak to strong for the MLP); each outer fold picks its lambda
  on an inner validation fold (the next fold, so the held-out rows never choose lambda), then refits
  on its whole training part. The walk stops when the validation loss has not improved for two grid
  points in every fold; then each fold tries half a decade either side of its choice. The refit on
  (F-1)/(F-2) times the inner rows uses lambda x (F-2)/(F-1) (lambda multiplies a mean loss, so the
  same prior strength scales as 1/rows). Path fits stop at a gradient of 1e-4, the final fit at 1e-5.
* Optimiser: full-batch L-BFGS, all folds in one batched run (:mod:`._lbfgs`), on the tensor's device.
* Warm start: per ``layer`` name the final weights and chosen lambdas are kept and start the next
  measurement (when shapes match); the grid walk is then limited to one decade around the previous
  choice. The problem is convex for the linear probe, so the start changes only the speed.
* Random choices (folds, MLP initialisation) come from a ``torch.Generator`` seeded by ``seed``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import torch

from ..schema.estimate import Estimate, EstimatorTraits, make_estimate
from ._common import LN2, check_labels, check_samples
from ._label_only import LabelInformationEstimator
from ._lbfgs import Objective, autograd_objective, batched_lbfgs

#: Default L2 grid (relative to the mean feature variance): decades 1 ... 10^-4.
DEFAULT_L2_GRID: Tuple[float, ...] = (1.0, 1e-1, 1e-2, 1e-3, 1e-4)

#: Gradient tolerance of the fits along the L2 path (they only choose lambda; the final fit uses 1e-5).
PATH_GTOL = 1e-4

#: After the walk each fold also tries its chosen lambda times and divided by this (half a decade).
REFINE_STEP = 10.0 ** 0.5

#: Columns of T standardised per block while accumulating the Gram matrix (bounds the temporary copy).
GRAM_COLUMN_BLOCK = 8192


# ----------------------------------------------------------------------------------------- kernels


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
        c = t[:, start:start + GRAM_COLUMN_BLOCK].float()
        var, mean = torch.var_mean(c, dim=0, keepdim=True)
        sd = var.sqrt()
        c = (c - mean) * torch.where(sd > 0, 1.0 / sd, torch.zeros_like(sd))
        gram += (c @ c.T).double()
    scale = float(gram.diagonal().mean()) or 1.0
    eye = torch.eye(n, dtype=torch.float64, device=t.device)
    for k in range(6):  # raise the jitter only if the factorisation fails
        factor, info = torch.linalg.cholesky_ex(gram + (jitter * 10 ** k) * scale * eye)
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

    def __init__(self, z: torch.Tensor, codes: torch.Tensor, n_classes: int, fold: torch.Tensor, folds: int,
                 hidden: int, standardise: bool, feature_var: float) -> None:
        self.z, self.codes, self.k, self.h = z, codes, n_classes, hidden
        n, p = z.shape
        self.p, self.folds = p, folds
        self.out = hidden if hidden > 0 else n_classes
        self.train = torch.stack([fold != f for f in range(folds)]).to(z.dtype)  # (F, n)
        if standardise:  # the outer training fold's statistics, folded into the first layer
            cnt = self.train.sum(1, keepdim=True)
            self.mu = (self.train @ z) / cnt
            var = (self.train @ (z * z)) / cnt - self.mu ** 2
            sd = var.clamp_min(0).sqrt()
            self.inv_sd = torch.where(sd > 1e-12 * sd.amax(1, keepdim=True).clamp_min(1e-30), 1.0 / sd,
                                      torch.zeros_like(sd))
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
            w1 = torch.randn(self.folds, self.p * self.h, generator=gen, device=self.z.device) * math.sqrt(2 / self.p)
            w2 = torch.randn(self.folds, self.h * self.k, generator=gen, device=self.z.device) * math.sqrt(1 / self.h)
            x[:, : self.p * self.h] = w1
            x[:, self.p * self.h + self.h: self.p * self.h + self.h + self.h * self.k] = w2
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
            return autograd_objective(lambda x: (self.row_losses(x) * weights).sum(1) + scale * self.penalty(x))
        return lambda x: self._linear_value_and_grad(x, weights, scale)

    def _linear_value_and_grad(self, x: torch.Tensor, weights: torch.Tensor,
                               scale: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Closed-form gradient of the linear probe's objective (no autograd graph)."""
        w = x[:, : self.p * self.k].view(self.folds, self.p, self.k)
        lg = self.logits(x)  # (n, F, K)
        lse = torch.logsumexp(lg, dim=2)
        picked = lg.gather(2, self.codes[:, None, None].expand(-1, self.folds, 1))[:, :, 0]
        wt = weights.T  # (n, F)
        pen = (w * w).sum((1, 2))
        f = ((lse - picked) * wt).sum(0) + scale * pen
        r = torch.exp(lg - lse[:, :, None])
        r.scatter_add_(2, self.codes[:, None, None].expand(-1, self.folds, 1),
                       -torch.ones(lg.shape[0], self.folds, 1, dtype=lg.dtype, device=lg.device))
        r = r * wt[:, :, None]  # d loss / d logits
        g_raw = (self.z.T @ r.reshape(r.shape[0], -1)).view(self.p, self.folds, self.k).permute(1, 0, 2)
        g_b = r.sum(0)  # (F, K)
        g_w = g_raw * self.inv_sd[:, :, None] - (self.mu * self.inv_sd)[:, :, None] * g_b[:, None, :]
        g_w = g_w + 2.0 * scale[:, None, None] * w
        return f, torch.cat([g_w.reshape(self.folds, -1), g_b], dim=1)


def _mean_weights(mask: torch.Tensor) -> torch.Tensor:
    return mask / mask.sum(1, keepdim=True).clamp_min(1.0)


def fit_probe(z: torch.Tensor, codes: torch.Tensor, fold: torch.Tensor, *, folds: int, l2: Sequence[float],
              hidden: int = 0, standardise: bool = True, feature_var: float = 1.0, max_iter: int = 200,
              gen: Optional[torch.Generator] = None, init: Optional[torch.Tensor] = None) -> ProbeFit:
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
    return ProbeFit(held_out=held.to(torch.float64), train_ce=train_ce, accuracy=acc,
                    l2=[float(v) for v in lam_f], params=res.x.detach(),
                    iterations=iterations + res.iterations, converged=bool(res.converged.all()))


# ----------------------------------------------------------------------------------------- estimator


class ClassifierProbe(LabelInformationEstimator):
    """Lower bound on I(T;Y): H(Y) minus the cross-fitted held-out cross-entropy of a softmax probe.

    Args:
        folds: Cross-fitting folds (>= 2; >= 3 when ``l2`` is a grid, which needs an inner fold).
        l2: A fixed L2 strength (>= 0), or a sequence forming the grid chosen on inner validation.
        hidden: 0 for a linear probe; > 0 for one hidden ReLU layer of that width.
        dual: Fit on an n x n Gram factor instead of T: ``"auto"`` (when d > n), True or False.
        max_iter: L-BFGS iterations per fit.
        warm_start: Start each layer's fit from its previous measurement's weights.
        seed: Seed of the estimator's own generator (folds, MLP initialisation).
    """

    name = "classifier_probe"
    traits: ClassVar[EstimatorTraits] = EstimatorTraits(cap="h_y")

    def __init__(self, folds: int = 5, l2: Union[float, Sequence[float]] = DEFAULT_L2_GRID, hidden: int = 0,
                 dual: Union[str, bool] = "auto", max_iter: int = 200, warm_start: bool = True, seed: int = 0) -> None:
        if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
            raise ValueError(f"folds must be an integer >= 2 (every row is scored out of sample), got {folds!r}")
        grid = [float(l2)] if isinstance(l2, (int, float)) else [float(v) for v in l2]
        if not grid or any(not (v >= 0 and math.isfinite(v)) for v in grid):
            raise ValueError(f"l2 must be a finite number >= 0 or a non-empty sequence of them, got {l2!r}")
        if len(set(grid)) > 1 and folds < 3:
            raise ValueError("an l2 grid is chosen on an inner fold, which needs folds >= 3; "
                             "pass folds >= 3 or a fixed l2 (e.g. l2=1e-2)")
        if not isinstance(hidden, int) or hidden < 0:
            raise ValueError(f"hidden must be an integer >= 0 (0 = linear probe), got {hidden!r}")
        if dual not in ("auto", True, False):
            raise ValueError(f"dual must be 'auto', True or False, got {dual!r}")
        if not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
        self.folds, self.l2, self.hidden, self.dual = folds, tuple(grid), hidden, dual
        self.max_iter, self.warm_start, self.seed = max_iter, bool(warm_start), int(seed)
        self._state: Dict[str, Dict[str, Any]] = {}

    def params(self) -> Dict[str, Any]:
        return {"folds": self.folds, "l2": list(self.l2), "hidden": self.hidden, "dual": self.dual,
                "max_iter": self.max_iter, "warm_start": self.warm_start, "seed": self.seed}

    def state_dict(self) -> Dict[str, Any]:
        return {"layers": {k: {"params": v["params"].detach().cpu().clone(), "l2": list(v["l2"]),
                               "shape": list(v["shape"])} for k, v in self._state.items()}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._state = {k: {"params": torch.as_tensor(v["params"]).clone(), "l2": list(v["l2"]),
                           "shape": tuple(v["shape"])} for k, v in state.get("layers", {}).items()}

    def _model_name(self) -> str:
        return "linear" if self.hidden == 0 else f"MLP(hidden={self.hidden})"

    def quantity(self) -> str:
        return f"I(T;Y) >= H(Y) - CE[{self._model_name()} probe, {self.folds}-fold]"

    def label_information(self, t: torch.Tensor, y: torch.Tensor, *, layer: Optional[str] = None) -> Estimate:
        t = check_samples(t)
        n, d = t.shape
        codes = check_labels(y, n)
        if self.folds > n:
            raise ValueError(f"folds={self.folds} > {n} rows: use fewer folds or more probe rows")
        counts = torch.bincount(codes).to(torch.float64)
        p_hat = counts / n
        h_y = float(-(p_hat * p_hat.log()).sum())
        diag: Dict[str, Any] = {"H_Y_bits": h_y / LN2, "n_classes": int(counts.numel())}
        if counts.numel() == 1:  # one class: H(Y) = 0 and every probe is exact
            return make_estimate(0.0, self.quantity(), kind="lower_bound", estimator=self.name, ci=(0.0, 0.0),
                                 cap=0.0, n=n, dim=d, params=self.params(), diagnostics=diag, traits=self.traits)
        dual = d > n if self.dual == "auto" else bool(self.dual)
        gen = torch.Generator(device=t.device)
        gen.manual_seed(self.seed)
        fold = stratified_folds(codes, self.folds, gen)
        with torch.inference_mode(False):
            codes, fold = codes.clone(), fold.clone()  # normal tensors: autograd saves them
            if dual:
                z, feature_var = gram_features(t)
            else:
                z = t.detach().float().clone()
                z = z - z.mean(0, keepdim=True)
                feature_var = 1.0
            shape = (n, z.shape[1], int(counts.numel()), bool(dual), self.hidden)
            key = None if layer is None else str(layer)
            old = self._state.get(key) if (key is not None and self.warm_start) else None
            grid = self.l2
            if old is not None and tuple(old["shape"]) == shape:
                init = old["params"]
                if len(grid) > 1:  # the walk starts within a decade of the previous choice
                    centre = sorted(old["l2"])[len(old["l2"]) // 2]
                    near = tuple(v for v in grid if centre / 10.0 - 1e-15 <= v <= centre * 10.0 + 1e-15)
                    grid = near if len(near) > 1 else grid
            else:
                init, old = None, None
            fit = fit_probe(z, codes, fold, folds=self.folds, l2=grid, hidden=self.hidden, standardise=not dual,
                            feature_var=feature_var, max_iter=self.max_iter, gen=gen, init=init)
        if key is not None:
            self._state[key] = {"params": fit.params, "l2": fit.l2, "shape": shape}
        terms = -p_hat.to(t.device)[codes].log() - fit.held_out  # per-row contributions (nats)
        value = float(terms.mean())
        se = float(terms.std()) / math.sqrt(n)
        ci = ((value - 1.96 * se) / LN2, (value + 1.96 * se) / LN2)
        diag.update({
            "cross_entropy_bits": float(fit.held_out.mean()) / LN2, "train_cross_entropy_bits": fit.train_ce / LN2,
            "held_out_accuracy": fit.accuracy, "l2_per_fold": fit.l2, "l2_grid": list(grid),
            "path": "dual (Gram factor)" if dual else "primal", "features": int(z.shape[1]),
            "iterations": fit.iterations, "converged": fit.converged, "warm_started": old is not None,
            "negative": value < 0, "ci_method": "value +- 1.96 sd/sqrt(n) of per-row held-out terms",
        })
        return make_estimate(value / LN2, self.quantity(), kind="lower_bound", estimator=self.name, ci=ci,
                             cap=h_y / LN2, n=n, dim=d, params=self.params(), diagnostics=diag, traits=self.traits)

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        if not discrete_b:
            raise ValueError("classifier_probe needs class labels for b: pass discrete_b=True, or use "
                             "'gaussian', 'gcmi' or 'ksg' for a continuous pair")
        est = self.label_information(a, b)
        return make_estimate(est.value, est.quantity.replace("I(T;Y)", "I(A;B)").replace("H(Y)", "H(B)"),
                             kind=est.kind, estimator=est.estimator, ci=est.ci, cap=est.cap, n=est.n, dim=est.dim,
                             params=est.params, diagnostics=est.diagnostics, traits=est.traits)
