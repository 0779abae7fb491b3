"""Within-layer bounds, per layer and estimator: ``0 <= I(T;Y) <= min(I(X;T), H(Y))`` and
``0 <= I(X;T), I(T;Y) <= cap``.

For estimates of kind ``"exact"`` (binning: exact for the binned variable with X uniform over the
probe rows) these hold exactly, so a violation is a **bug**; so is any value above the estimator's
own cap. Otherwise a violation is an **estimator inconsistency**, reported with its size and
whether it exceeds the estimates' uncertainty.

Not checked: ``>= 0`` for a lower bound (a loose bound may be negative: the classifier probe of an
uninformative layer), and ``I(T;Y) <= I(X;T)`` between two instruments (``auto`` pairs the classifier
probe's I(T;Y) of T with the noisy channel's I(X; T+N), which may be smaller than I(X;T)).
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

from ..schema.estimate import Estimate
from ..schema.findings import BoundViolation, IBWarning, Severity, WarningCode
from ..schema.quantities import Quantity
from ..schema.record import LayerResult
from .base import CheckConfig, CheckContext, Findings, combined_se, significance, significance_text, usable

# (bound, lhs, rhs, estimates involved, is a cap rule, text)
_Rule = Tuple[str, float, float, Tuple[Estimate, ...], bool, str]


def _rules(res: LayerResult, h_y_record: Optional[float]) -> List[_Rule]:
    ixt, ity = usable(res, Quantity.I_XT), usable(res, Quantity.I_TY)
    rules: List[_Rule] = []
    if ixt is not None:
        if ixt.kind != "lower_bound":  # a lower bound below 0 is loose, not wrong
            rules.append(("I_XT >= 0", 0.0, ixt.value, (ixt,), False, f"I(X;T) = {ixt.value:.6g} bits < 0"))
        if ixt.cap is not None:
            rules.append(
                (
                    "I_XT <= cap",
                    ixt.value,
                    ixt.cap,
                    (ixt,),
                    True,
                    f"I(X;T) = {ixt.value:.6g} bits > its cap {ixt.cap:.6g} bits",
                )
            )
    if ity is not None:
        if ity.kind != "lower_bound":  # a lower bound below 0 (an uninformative probe) is loose, not wrong
            rules.append(("I_TY >= 0", 0.0, ity.value, (ity,), False, f"I(T;Y) = {ity.value:.6g} bits < 0"))
        # only between two figures of one instrument: auto's probe reads I(T;Y) of T itself, its noisy
        # channel I(X; T+N) <= I(X;T), so the probe's value may exceed it without any inconsistency
        if ixt is not None and ixt.estimator == ity.estimator:
            rules.append(
                (
                    "I_TY <= I_XT",
                    ity.value,
                    ixt.value,
                    (ity, ixt),
                    False,
                    f"I(T;Y) = {ity.value:.6g} bits > I(X;T) = {ixt.value:.6g} bits",
                )
            )
        h_y = ity.diagnostics.get("H_Y", h_y_record)
        if h_y is not None and math.isfinite(h_y):
            rules.append(
                (
                    "I_TY <= H_Y",
                    ity.value,
                    float(h_y),
                    (ity,),
                    False,
                    f"I(T;Y) = {ity.value:.6g} bits > H(Y) = {float(h_y):.6g} bits",
                )
            )
        if ity.cap is not None:
            rules.append(
                (
                    "I_TY <= cap",
                    ity.value,
                    ity.cap,
                    (ity,),
                    True,
                    f"I(T;Y) = {ity.value:.6g} bits > its cap {ity.cap:.6g} bits",
                )
            )
    return rules


def _violation(layer: str, est: str, rule: _Rule, cfg: CheckConfig) -> Optional[BoundViolation]:
    name, lhs, rhs, ests, cap_rule, text = rule
    size = lhs - rhs
    if size <= cfg.tol_bits:
        return None
    exact = all(e.kind == "exact" for e in ests)
    unc = 0.0 if exact else combined_se(*ests)
    bug = exact or cap_rule
    sig = True if cap_rule else significance(size, unc, exact, cfg)
    if bug:
        why = (
            "an estimator never reports above its own cap"
            if cap_rule and not exact
            else "this inequality holds exactly for the estimated quantity"
        )
        msg = (
            f"BUG in estimator {est!r} at layer {layer!r}: {text} (by {size:.3g} bits); {why}, "
            "so this is a bug, not noise. Please report it with the record."
        )
    else:
        msg = (
            f"Estimator inconsistency of {est!r} at layer {layer!r}: {text} (by {size:.3g} bits); "
            f"{significance_text(sig, unc, exact, cfg)}."
        )
    return BoundViolation(
        layer=layer,
        estimator=est,
        bound=name,
        lhs_bits=lhs,
        rhs_bits=rhs,
        size_bits=size,
        uncertainty_bits=unc,
        significant=sig,
        is_bug=bug,
        message=msg,
    )


def _warning(v: BoundViolation) -> IBWarning:
    return IBWarning(
        layer=v.layer,
        estimator=v.estimator,
        quantity=v.quantity,
        code=WarningCode.BOUND_VIOLATION,
        severity=Severity.ERROR if v.is_bug else Severity.WARNING,
        message=v.message,
        evidence={
            "bound": v.bound,
            "lhs_bits": v.lhs_bits,
            "rhs_bits": v.rhs_bits,
            "size_bits": v.size_bits,
            "uncertainty_bits": v.uncertainty_bits,
            "significant": v.significant,
        },
        remedy=(
            "Report the bug with this record (estimator, params, layer shape)."
            if v.is_bug
            else "Treat this layer's estimates as unreliable at this measurement: more probe samples, or a "
            "different estimator setting."
        ),
    )


def check_bounds(ctx: CheckContext) -> Findings:
    """Every within-layer bound of every (layer, estimator) result; violations and their warnings."""
    checked, found = 0, []
    for layer, est, res in ctx.results():
        rules = _rules(res, ctx.record.h_y)
        checked += len(rules)
        found += [v for v in (_violation(layer, est, r, ctx.config) for r in rules) if v is not None]
    return Findings(
        bounds_checked=checked, bound_violations=tuple(found), warnings=tuple(_warning(v) for v in found)
    )


__all__ = ["check_bounds"]
