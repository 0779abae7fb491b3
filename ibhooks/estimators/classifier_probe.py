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
from typing import Any, ClassVar, Dict, Optional, Sequence, Tuple, Union

import torch

from ..schema.estimate import Estimate, EstimatorTraits, make_estimate
from ._common import LN2, check_labels, check_samples
from ._label_only import LabelInformationEstimator
from ._probe_fit import ProbeFit, fit_probe, gram_features, stratified_folds

__all__ = ["DEFAULT_L2_GRID", "ClassifierProbe", "ProbeFit", "fit_probe", "gram_features", "stratified_folds"]

#: Default L2 grid (relative to the mean feature variance): decades 1 ... 10^-4.
DEFAULT_L2_GRID: Tuple[float, ...] = (1.0, 1e-1, 1e-2, 1e-3, 1e-4)


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

    def __init__(
        self,
        folds: int = 5,
        l2: Union[float, Sequence[float]] = DEFAULT_L2_GRID,
        hidden: int = 0,
        dual: Union[str, bool] = "auto",
        max_iter: int = 200,
        warm_start: bool = True,
        seed: int = 0,
    ) -> None:
        if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
            raise ValueError(
                f"folds must be an integer >= 2 (every row is scored out of sample), got {folds!r}"
            )
        grid = [float(l2)] if isinstance(l2, (int, float)) else [float(v) for v in l2]
        if not grid or any(not (v >= 0 and math.isfinite(v)) for v in grid):
            raise ValueError(f"l2 must be a finite number >= 0 or a non-empty sequence of them, got {l2!r}")
        if len(set(grid)) > 1 and folds < 3:
            raise ValueError(
                "an l2 grid is chosen on an inner fold, which needs folds >= 3; "
                "pass folds >= 3 or a fixed l2 (e.g. l2=1e-2)"
            )
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
        return {
            "folds": self.folds,
            "l2": list(self.l2),
            "hidden": self.hidden,
            "dual": self.dual,
            "max_iter": self.max_iter,
            "warm_start": self.warm_start,
            "seed": self.seed,
        }

    def state_dict(self) -> Dict[str, Any]:
        return {
            "layers": {
                k: {
                    "params": v["params"].detach().cpu().clone(),
                    "l2": list(v["l2"]),
                    "shape": list(v["shape"]),
                }
                for k, v in self._state.items()
            }
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._state = {
            k: {
                "params": torch.as_tensor(v["params"]).clone(),
                "l2": list(v["l2"]),
                "shape": tuple(v["shape"]),
            }
            for k, v in state.get("layers", {}).items()
        }

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
            return make_estimate(
                0.0,
                self.quantity(),
                kind="lower_bound",
                estimator=self.name,
                ci=(0.0, 0.0),
                cap=0.0,
                n=n,
                dim=d,
                params=self.params(),
                diagnostics=diag,
                traits=self.traits,
            )
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
            fit = fit_probe(
                z,
                codes,
                fold,
                folds=self.folds,
                l2=grid,
                hidden=self.hidden,
                standardise=not dual,
                feature_var=feature_var,
                max_iter=self.max_iter,
                gen=gen,
                init=init,
            )
        if key is not None:
            self._state[key] = {"params": fit.params, "l2": fit.l2, "shape": shape}
        terms = -p_hat.to(t.device)[codes].log() - fit.held_out  # per-row contributions (nats)
        value = float(terms.mean())
        se = float(terms.std()) / math.sqrt(n)
        ci = ((value - 1.96 * se) / LN2, (value + 1.96 * se) / LN2)
        diag.update(
            {
                "cross_entropy_bits": float(fit.held_out.mean()) / LN2,
                "train_cross_entropy_bits": fit.train_ce / LN2,
                "held_out_accuracy": fit.accuracy,
                "l2_per_fold": fit.l2,
                "l2_grid": list(grid),
                "path": "dual (Gram factor)" if dual else "primal",
                "features": int(z.shape[1]),
                "iterations": fit.iterations,
                "converged": fit.converged,
                "warm_started": old is not None,
                "negative": value < 0,
                "ci_method": "value +- 1.96 sd/sqrt(n) of per-row held-out terms",
            }
        )
        return make_estimate(
            value / LN2,
            self.quantity(),
            kind="lower_bound",
            estimator=self.name,
            ci=ci,
            cap=h_y / LN2,
            n=n,
            dim=d,
            params=self.params(),
            diagnostics=diag,
            traits=self.traits,
        )

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        if not discrete_b:
            raise ValueError(
                "classifier_probe needs class labels for b: pass discrete_b=True, or use "
                "'gaussian', 'gcmi' or 'ksg' for a continuous pair"
            )
        est = self.label_information(a, b)
        return make_estimate(
            est.value,
            est.quantity.replace("I(T;Y)", "I(A;B)").replace("H(Y)", "H(B)"),
            kind=est.kind,
            estimator=est.estimator,
            ci=est.ci,
            cap=est.cap,
            n=est.n,
            dim=est.dim,
            params=est.params,
            diagnostics=est.diagnostics,
            traits=est.traits,
        )
