"""``analyses=["ib_bound"]``: each layer's vertical distance to the information-bottleneck curve.

At bind the curve of the probe's joint p(x, y) is computed once (X uniform over the probe rows; Y the
probe labels, a stochastic rule ``p_y_given_x`` or the labels under ``label_noise``). Every record then
gets ``record.analyses["ib_bound"]``::

    {"curve": {...} (first record after bind only; later ones carry "curve_step"),
     "deterministic": bool, "source": "...",
     "gaps": {layer: {estimator: bits}},            # at(I(X;T)) - I(T;Y); negative = above the bound
     "i_ty_rule": {layer: {estimator: bits}},       # stochastic rule only (see below)
     "skipped": {estimator: reason}}

With the probe labels as Y the gap uses each estimate's own I(T;Y). With a stochastic rule the
estimates' I(T;Y) were measured against the probe labels, not the rule, so they are not points under
the curve's p(x, y). For estimators that partition the probe rows (those with a ``bin_indices`` method,
e.g. binning) the analysis computes I(T;Y) under the rule exactly from that partition,
I(bin(T); Y) = H(Y) - sum_c p(c) H(p(y|c)), and the gap uses it; other estimators are skipped with
the reason.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from ..ib_bound import IBCurve, information_bottleneck_curve, joint_from_conditional, label_noise
from .base import Analysis, AnalysisContext

if TYPE_CHECKING:  # pragma: no cover
    from ..capture.snapshot import Snapshot
    from ..schema import Record

Conditional = Union[torch.Tensor, np.ndarray, Callable[[Any], Any]]


def _describe(p_y_given_x: Optional[Conditional], eps: Optional[float]) -> str:
    base = (
        "probe labels (Y = f(X))"
        if p_y_given_x is None
        else f"p(y|x) from {getattr(p_y_given_x, '__name__', type(p_y_given_x).__name__)}"
        if callable(p_y_given_x)
        else "p(y|x) given per probe row"
    )
    return base + (f", label noise {eps:g}" if eps else "")


def rule_information(codes: torch.Tensor, conditional: torch.Tensor) -> float:
    """I(T;Y) in bits of a partition of the rows (``codes`` (n,), cell ids) under a per-row p(y|x)
    (n, K), X uniform over rows: H(mean p(y|x)) - sum_c p(c) H(mean of p(y|x) over c)."""
    cells = torch.unique(codes.reshape(-1).cpu(), return_inverse=True)[1]
    n, k = conditional.shape
    m = int(cells.max()) + 1
    mass = torch.zeros(m, k, dtype=torch.float64).index_add_(0, cells, conditional) / n  # p(c, y)
    p_c = mass.sum(1, keepdim=True)
    h_y = float(-torch.special.xlogy(mass.sum(0), mass.sum(0)).sum())
    h_y_c = float(-torch.special.xlogy(mass, mass / p_c.clamp_min(1e-300)).sum())
    return max((h_y - h_y_c) / math.log(2.0), 0.0)


class IBBoundAnalysis(Analysis):
    """Distance of each layer to the information-bottleneck curve of the probe (see the module).

    Args:
        p_y_given_x: A stochastic rule for Y: a (n_probe, K) tensor (rows in probe order, each summing
            to 1) or a callable ``probe_x -> (n_probe, K)``. Default: the probe labels (trivial bound).
        label_noise: Symmetric label noise ``eps`` applied to the labels (or to ``p_y_given_x``).
        betas: The beta sweep of :func:`~ibhooks.ib_bound.information_bottleneck_curve`.
    """

    name = "ib_bound"

    def __init__(
        self,
        p_y_given_x: Optional[Conditional] = None,
        label_noise: Optional[float] = None,
        betas: Optional[Sequence[float]] = None,
    ) -> None:
        if label_noise is not None and not 0.0 <= float(label_noise) <= 1.0:
            raise ValueError(f"ib_bound: label_noise must be a probability in [0, 1], got {label_noise}")
        self.p_y_given_x = p_y_given_x
        self.label_noise = None if label_noise is None else float(label_noise)
        self.betas = None if betas is None else [float(b) for b in betas]
        self.curve: Optional[IBCurve] = None
        self.curve_step: Optional[int] = None
        self._conditional: Optional[torch.Tensor] = None
        self._labels_are_rule = True


    @classmethod
    def figure_view(cls, result: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        """The curve (logged once, in the first record) and I(T;Y) under the stochastic rule."""
        kept = {k: result[k] for k in ("curve", "i_ty_rule") if isinstance(result.get(k), Mapping)}
        return kept or None
    def params(self) -> Dict[str, Any]:
        rule = self.p_y_given_x
        return {
            "p_y_given_x": None if rule is None else _describe(rule, None),
            "label_noise": self.label_noise,
            "betas": self.betas,
        }

    def bind(self, context: AnalysisContext) -> None:
        super().bind(context)
        probe = context.probe
        if probe is None:
            raise ValueError(
                "analysis 'ib_bound' needs a fixed probe (X uniform over its rows): passive mode "
                "has none; pass probe=(x, y) to IBMonitor"
            )
        if probe.y is None and self.p_y_given_x is None:
            raise ValueError(
                "analysis 'ib_bound' needs labels: pass probe=(x, y), or "
                "('ib_bound', {'p_y_given_x': ...}) with a rule for Y"
            )
        cond = self._probe_conditional(probe)
        if self.label_noise:
            cond = label_noise(cond, self.label_noise)
        self._conditional = cond
        onehot = bool((cond.max(1).values >= 1.0 - 1e-12).all())
        self._labels_are_rule = (
            probe.y is not None and onehot and bool((cond.argmax(1) == probe.y.reshape(-1).cpu()).all())
        )
        self.curve = information_bottleneck_curve(
            joint_from_conditional(cond),
            betas=self.betas,
            seed=context.seed,
            source=_describe(self.p_y_given_x, self.label_noise),
        )

    def _probe_conditional(self, probe: Any) -> torch.Tensor:
        rule = self.p_y_given_x
        if rule is None:
            y = probe.y.reshape(-1).cpu().long()
            return torch.nn.functional.one_hot(y, int(y.max()) + 1).to(torch.float64)
        cond = rule(probe.x) if callable(rule) else rule
        cond = torch.as_tensor(
            cond.detach().cpu() if isinstance(cond, torch.Tensor) else np.asarray(cond), dtype=torch.float64
        )
        if cond.dim() != 2 or cond.shape[0] != probe.n:
            raise ValueError(
                f"ib_bound: p_y_given_x must give one row per probe row, shape ({probe.n}, K); got "
                f"{tuple(cond.shape)}. A probe subset (max_samples) reorders rows: "
                "pass a callable x -> p(y|x)"
            )
        if bool(((cond.sum(1) - 1).abs() > 1e-6).any()) or bool((cond < 0).any()):
            raise ValueError(
                "ib_bound: every row of p_y_given_x must be a distribution over classes (>= 0, sum 1)"
            )
        return cond

    def analyse(self, snapshot: "Snapshot", record: "Record") -> Optional[Dict[str, Any]]:
        curve = self.curve
        if curve is None:
            return None
        out: Dict[str, Any] = {"deterministic": curve.deterministic, "source": curve.source}
        if self.curve_step is None:
            out["curve"] = curve.to_dict()
            self.curve_step = int(record.step)
        else:
            out["curve_step"] = self.curve_step
        gaps: Dict[str, Dict[str, float]] = {}
        rule_ity: Dict[str, Dict[str, float]] = {}
        skipped: Dict[str, str] = {}
        for layer, per_est in record.layers.items():
            for key, res in per_est.items():
                if res.i_xt is None:
                    continue
                if self._labels_are_rule:
                    if res.i_ty is not None:
                        gaps.setdefault(layer, {})[key] = (
                            round(curve.gap(res.i_xt.value, res.i_ty.value), 9) + 0.0
                        )
                    continue
                i_ty = self._rule_i_ty(key, layer, snapshot, skipped)
                if i_ty is not None:
                    rule_ity.setdefault(layer, {})[key] = round(i_ty, 9)
                    gaps.setdefault(layer, {})[key] = round(curve.gap(res.i_xt.value, i_ty), 9) + 0.0
        out["gaps"] = gaps
        if not self._labels_are_rule:
            out["i_ty_rule"] = rule_ity
        if skipped:
            out["skipped"] = skipped
        return out

    def _rule_i_ty(
        self, key: str, layer: str, snapshot: "Snapshot", skipped: Dict[str, str]
    ) -> Optional[float]:
        est = self.context.estimators.get(key)
        partition = getattr(est, "bin_indices", None)
        t = snapshot.activations.get(layer)
        if not callable(partition):
            skipped[key] = (
                "its I(T;Y) is measured against the probe labels, not the stochastic rule, and it "
                "does not partition the rows (no bin_indices) to measure it under the rule"
            )
            return None
        if t is None or self._conditional is None or t.shape[0] != self._conditional.shape[0]:
            skipped[key] = "the layer's rows do not match the probe's rows"
            return None
        idx = partition(t, layer, update=False)[0]
        codes = torch.unique(idx.reshape(idx.shape[0], -1), dim=0, return_inverse=True)[1]
        return rule_information(codes, self._conditional)

    def state_dict(self) -> Dict[str, Any]:
        return {"curve_step": self.curve_step}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        step = state.get("curve_step")
        self.curve_step = None if step is None else int(step)
