"""Artefact warnings: evidence in an estimate that its figure may not mean what it seems to.

* ``saturating_units``: a discretised layer (``traits.discretises``) with many unit values in the
  two extreme bins, under a *saturating* activation (tanh, sigmoid, hardtanh, softsign, ...).
  Never for a non-saturating one (ReLU's exact zeros fill its lowest bin, which binning counts
  correctly); for an unknown activation only when values pile up at *both* ends (the diagnostics
  ``fraction_in_lowest_bin`` and ``fraction_in_highest_bin`` each at least half the threshold).
* ``outside_range``: a discretised layer with values clipped by a fixed bin range.
* ``at_cap``: a value at the estimator's cap (log2 n, log2 K): changes above it cannot show.
* ``too_few_samples``: a non-exact I(X;T) estimate from few samples for T's dimension (not for the
  analysis-noise estimators, KDE and the noisy channel: their quantity is defined on the probe's rows).
* ``duplicate_rows``: many coinciding rows (clustering at the bin resolution for exact estimates;
  zero nearest-neighbour distances for the others).
"""

from __future__ import annotations

import math
import re
from typing import Any, List, Mapping, Optional

from ..schema.estimate import Estimate
from ..schema.findings import IBWarning, Severity, WarningCode
from ..schema.quantities import QUANTITIES, Quantity
from .base import CheckConfig, CheckContext, Findings, usable

#: Activations whose outputs saturate (bounded above and/or below by a flat asymptote).
SATURATING_ACTIVATIONS = frozenset(
    {"tanh", "sigmoid", "logistic", "hardtanh", "softsign", "hardsigmoid", "softmax", "relu6", "erf"}
)
#: Activations that do not saturate: their extreme bins are no saturation artefact.
NON_SATURATING_ACTIVATIONS = frozenset(
    {
        "relu",
        "leakyrelu",
        "prelu",
        "rrelu",
        "elu",
        "selu",
        "celu",
        "gelu",
        "silu",
        "swish",
        "mish",
        "softplus",
        "hardswish",
        "linear",
        "identity",
        "none",
    }
)


def normalise_activation(a: Any) -> Optional[str]:
    """``"ReLU"``, ``torch.nn.ReLU``, an instance or ``"torch.tanh"`` -> ``"relu"`` / ``"tanh"``."""
    if a is None:
        return None
    if not isinstance(a, str):
        a = a.__name__ if isinstance(a, type) else type(a).__name__
    return re.sub(r"[^a-z0-9]", "", a.lower().rsplit(".", 1)[-1]) or None


def _warn(
    layer: str,
    est: str,
    e: Estimate,
    q: Quantity,
    code: WarningCode,
    severity: Severity,
    message: str,
    evidence: Mapping[str, Any],
    remedy: str,
) -> IBWarning:
    return IBWarning(
        layer=layer,
        estimator=est,
        quantity=q,
        code=code,
        severity=severity,
        message=message,
        evidence=dict(evidence),
        remedy=remedy,
    )


def _saturation(
    layer: str, est: str, e: Estimate, info: Mapping[str, Any], cfg: CheckConfig
) -> List[IBWarning]:
    diag = e.diagnostics
    frac = diag.get("fraction_in_extreme_bins")
    act = normalise_activation(info.get("activation"))
    if frac is None or frac < cfg.extreme_bins_threshold or act in NON_SATURATING_ACTIVATIONS:
        return []
    known = act in SATURATING_ACTIVATIONS
    low, high = diag.get("fraction_in_lowest_bin"), diag.get("fraction_in_highest_bin")
    both_ends = low is not None and high is not None and min(low, high) >= cfg.extreme_bins_threshold / 2
    if not (known or both_ends):
        return []
    head = f"{info.get('activation')}, " if act else "activation unknown, "
    return [
        _warn(
            layer,
            est,
            e,
            Quantity.I_XT,
            WarningCode.SATURATING_UNITS,
            Severity.WARNING,
            f"Layer {layer!r} ({head}binned with {e.params.get('n_bins')} bins over "
            f"{diag.get('range_used')}): "
            f"{frac:.0%} of its unit values fall in the two extreme bins"
            + (
                ""
                if known
                else f" ({low:.0%} lowest, {high:.0%} highest: saturating units if the activation is "
                "bounded, e.g. tanh/sigmoid)"
            )
            + ". Saturated units make binned I(X;T) fall without any loss of information (Saxe et al. 2018), "
            "so "
            "an apparent compression of this layer under binning may be an artefact.",
            {
                "fraction_in_extreme_bins": frac,
                "fraction_in_lowest_bin": low,
                "fraction_in_highest_bin": high,
                "threshold": cfg.extreme_bins_threshold,
                "n_bins": e.params.get("n_bins"),
                "range_used": diag.get("range_used"),
                "activation": info.get("activation"),
            },
            "Confirm the trend with an estimator that does not bin (e.g. KDE or kNN), or with bins equal in "
            "net "
            "input; read compression of this layer under binning with caution.",
        )
    ]


def _outside_range(
    layer: str, est: str, e: Estimate, info: Mapping[str, Any], cfg: CheckConfig
) -> List[IBWarning]:
    frac = e.diagnostics.get("fraction_outside_range")
    if frac is None or frac <= cfg.outside_range_threshold:
        return []
    act = f"{info.get('activation')} " if normalise_activation(info.get("activation")) else ""
    rng = e.diagnostics.get("range_used")
    return [
        _warn(
            layer,
            est,
            e,
            Quantity.I_XT,
            WarningCode.OUTSIDE_RANGE,
            Severity.WARNING,
            f"Layer {layer!r}: {frac:.1%} of its {act}activations lie outside the fixed bin range {rng} and "
            "are clipped into the end bins (the ReLU/[-1,1] trap, ravidziv/IDNNs#12): binned I(X;T) is "
            "underestimated "
            "and can show a fake compression.",
            {
                "fraction_outside_range": frac,
                "threshold": cfg.outside_range_threshold,
                "range_used": rng,
                "n_bins": e.params.get("n_bins"),
                "activation": info.get("activation"),
            },
            'Bin over the layer\'s own range (range="layer", or "running" where available), widen the fixed '
            "range "
            "to cover the activations, or use another estimator (KDE, kNN).",
        )
    ]


#: What raises n, by capture mode (passive mode cannot take more probe samples).
_MORE_ROWS = {
    "probe": "more probe samples (max_samples=, and a larger probe)",
    "passive": "more pooled rows: a longer passive_window (more training batches per measurement) and a "
               "larger max_samples",
}


def _at_cap(layer: str, est: str, e: Estimate, q: Quantity, mode: str = "probe") -> List[IBWarning]:
    if e.cap is None or not (e.saturated or e.value >= e.cap - 1e-9):
        return []
    if e.traits.exact and not e.traits.discretises:
        return []  # the network's own discrete layer keeps every probe row apart: the value is the truth
    by_n = e.traits.cap == "log2_n" or (
        e.traits.cap == "none" and e.n > 1 and abs(e.cap - math.log2(e.n)) < 1e-6
    )
    more = _MORE_ROWS.get(mode, _MORE_ROWS["probe"])
    remedy = (
        f"Use {more}: the cap is log2 n = {e.cap:.4g} bits for n = {e.n}."
        if by_n
        else f"Raise the estimator's cap: {more} (log2 n) or, for contrastive bounds, a larger K "
        "(cap log2 K)."
    )
    return [
        _warn(
            layer,
            est,
            e,
            q,
            WarningCode.AT_CAP,
            Severity.INFO if by_n and e.kind == "exact" else Severity.WARNING,
            f"Layer {layer!r}: {q.label} = {e.value:.4g} bits from {est!r} is at the estimator's cap "
            f"{e.cap:.4g} bits; "
            "the true value may be higher, and changes above the cap cannot show.",
            {"value": e.value, "cap": e.cap, "n": e.n, "quantity": e.quantity, "kind": e.kind},
            remedy,
        )
    ]


def _too_few_samples(layer: str, est: str, e: Estimate, cfg: CheckConfig,
                     mode: str = "probe") -> List[IBWarning]:
    if e.kind == "exact" or e.n <= 0 or e.dim <= 0 or e.n >= cfg.required_samples(e.dim):
        return []
    if e.traits.adds_noise:  # I(X; T+N) of the probe's own rows, from the exact Gaussian mixture: no
        return []            # density is estimated, so no dimension-dependent sample-size bias
    need = cfg.required_samples(e.dim)
    rule = f"n >= max({cfg.samples_per_dim:g}*d, 2**min(d, {cfg.orthant_max_dim}))"
    return [
        _warn(
            layer,
            est,
            e,
            Quantity.I_XT,
            WarningCode.TOO_FEW_SAMPLES,
            Severity.WARNING,
            f"Layer {layer!r}: {est!r} estimates from n = {e.n} samples of a {e.dim}-dimensional T; the rule "
            f"n >= max({cfg.samples_per_dim:g}*d, 2^min(d,{cfg.orthant_max_dim})) asks for {need}. "
            "kNN/KDE-type estimates are strongly biased at this sample size.",
            {"n": e.n, "dim": e.dim, "required": need, "rule": rule},
            f"Use at least {need} rows ({_MORE_ROWS.get(mode, _MORE_ROWS['probe'])}), or reduce T (a random "
            "projection or PCA to a few dimensions) before estimating.",
        )
    ]


def _duplicate_rows(layer: str, est: str, e: Estimate, cfg: CheckConfig) -> List[IBWarning]:
    frac = e.diagnostics.get("fraction_duplicate_rows")
    if frac is None or frac < cfg.duplicate_rows_threshold:
        return []
    if e.kind == "exact":
        how = "binning" if e.traits.discretises else "discretisation"
        msg = (
            f"Layer {layer!r}: {frac:.0%} of the {e.n} rows coincide with another after {how} "
            f"({e.diagnostics.get('distinct_rows')} distinct). I(X;T) here measures how the discretisation "
            "merges inputs (clustering at this resolution), not a loss of information by the deterministic "
            "network."
        )
        remedy = (
            "Compare with finer bins or a noise-based estimator before reading a drop of I(X;T) as "
            "compression."
        )
        sev = Severity.INFO
    else:
        msg = (
            f"Layer {layer!r}: {frac:.0%} of the {e.n} rows of T duplicate another; ties make "
            "nearest-neighbour "
            "distances zero and bias kNN/KDE estimates."
        )
        remedy = (
            "Add a tiny jitter, use a mixed discrete-continuous estimator, or use binning for this layer."
        )
        sev = Severity.WARNING
    return [
        _warn(
            layer,
            est,
            e,
            Quantity.I_XT,
            WarningCode.DUPLICATE_ROWS,
            sev,
            msg,
            {
                "fraction_duplicate_rows": frac,
                "distinct_rows": e.diagnostics.get("distinct_rows"),
                "n": e.n,
                "threshold": cfg.duplicate_rows_threshold,
            },
            remedy,
        )
    ]


def check_artefacts(ctx: CheckContext) -> Findings:
    """Every artefact warning of every (layer, estimator) result."""
    cfg, out = ctx.config, []
    for layer, est, res in ctx.results():
        info = ctx.layer_info.get(layer) or {}
        for q in QUANTITIES:
            e = usable(res, q)
            if e is None:
                continue
            if q is Quantity.I_XT and e.traits.discretises:
                out += _saturation(layer, est, e, info, cfg) + _outside_range(layer, est, e, info, cfg)
            out += _at_cap(layer, est, e, q, ctx.record.mode)
            if q is Quantity.I_XT:
                out += _too_few_samples(layer, est, e, cfg, ctx.record.mode)
                out += _duplicate_rows(layer, est, e, cfg)
    return Findings(warnings=tuple(out))


__all__ = ["NON_SATURATING_ACTIVATIONS", "SATURATING_ACTIVATIONS", "check_artefacts", "normalise_activation"]
