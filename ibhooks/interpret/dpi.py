"""The data-processing inequality along chains (X -> T1 -> T2 -> ...): ``I(X;T1) >= I(X;T2) >= ...``
and the same for I(T;Y), per estimator.

It holds for the true quantities of the network, not necessarily for estimates: an estimator that
discretises each layer or adds noise to it for analysis does not propagate that through the network
(Saxe et al. 2018, App. C), so a violation says the *estimate*, not the network, is inconsistent.
The explanation in each message is chosen from the estimates' traits. A violation whose
significance is unknown (no uncertainty) is counted as ``not_assessed``.

A pair whose two estimates come from different instruments (``auto`` measures a wide layer with the
noisy channel and the narrow layer after it by binning: ``auto:noisy_channel_rel`` vs
``auto:binning``) is not compared: it is counted as skipped.

The exception is a chain of *exact values of the network's own discrete layers* (``kind="exact"``
and ``traits.exact``, with nothing discretised or added for analysis: a quantized network measured
by the ``"exact"`` estimator). With X uniform over the probe each such layer is a function of the
previous one, so the DPI holds exactly for the very quantities reported: a violation is flagged
``is_bug`` and its warning is an error, naming the two possible causes (the chain is not a chain,
or the estimator is wrong).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

from ..schema.estimate import Estimate
from ..schema.findings import ChainCheck, DpiTally, DpiViolation, IBWarning, Severity, WarningCode
from ..schema.quantities import QUANTITIES, Quantity
from .base import CheckContext, Findings, combined_se, significance, significance_text, usable


def exact_for_network(e: Estimate) -> bool:
    """``e`` is an exact value of the network's own variable: exact kind and trait, and neither
    discretised nor noised for analysis (binning is exact only for the binned variable)."""
    t = e.traits
    return e.kind == "exact" and t.exact and not (t.discretises or t.adds_noise or t.xt_is_entropy)


_BUG_NOTE = (
    "Both values are exact information of the network's own discrete layers (X uniform over the probe), "
    "and along a true chain each layer is a function of the previous one, so the DPI holds exactly: this "
    "is a BUG, not estimator noise. Either the chain is wrong (the later layer also reads something other "
    "than the earlier layer's captured output: a skip connection, a side input, or values captured before "
    "the network quantized them) or the estimator is."
)


def dpi_note(ests: Sequence[Estimate], label: str = "") -> str:
    """Why a cross-layer violation can happen for estimates like ``ests``, from their traits."""
    traits = [e.traits for e in ests]
    if ests and all(exact_for_network(e) for e in ests):
        return _BUG_NOTE
    if any(t.discretises for t in traits):
        note = (
            "Binning (discretisation) is applied to each layer for analysis only: its quantisation noise "
            "is not propagated through the network, so binned layers need not obey the DPI (Saxe et al. "
            "2018, App. C). The estimate, not the network, is inconsistent."
        )
    elif any(t.adds_noise for t in traits):
        note = (
            "The noise of this estimator is added to each layer for analysis only; it is not propagated "
            "through the network, so the estimates need not obey the DPI (Saxe et al. 2018, App. C). "
            "The estimate, not the network, is inconsistent."
        )
    elif any(t.noise_in_network for t in traits):
        note = (
            "The noise is part of the network, so the DPI holds for the true quantities; a violation is "
            f"an estimation error (bias or sampling noise) of the {label or 'estimator'} estimates."
        )
    else:
        note = (
            "The true information is non-increasing along a chain of a network; a violation is an artefact "
            f"(bias or noise) of the {label or 'estimator'} estimates, not a property of the network."
        )
    bounds = sorted({e.kind.replace("_", " ") for e in ests if e.kind in ("upper_bound", "lower_bound")})
    if bounds:
        note += (
            f" The values are {' / '.join(bounds)}s, whose tightness can differ between layers, "
            "so their ordering does not by itself contradict the DPI."
        )
    return note


def _estimators(ctx: CheckContext, layers: Sequence[str]) -> List[str]:
    names: List[str] = []
    for x in layers:
        for name in ctx.record.layers[x]:
            if name not in names:
                names.append(name)
    return names


def check_dpi(ctx: CheckContext) -> Findings:
    """Every chain pair (``config.dpi_pairs``) under every estimator and quantity."""
    cfg, rec = ctx.config, ctx.record
    chains: List[ChainCheck] = []
    counts: Dict[Tuple[str, Quantity], Dict[str, int]] = {}
    violations: List[DpiViolation] = []
    for chain in ctx.chains:
        present = [x for x in chain.layers if x in rec.layers]
        chains.append(
            ChainCheck(
                chain.name, chain.layers, chain.source, tuple(x for x in chain.layers if x not in rec.layers)
            )
        )
        for est in _estimators(ctx, present):
            for q in QUANTITIES:
                cell = counts.setdefault(
                    (est, q),
                    dict.fromkeys(("pairs_checked", "violated", "significant", "not_assessed", "skipped"), 0),
                )
                for a, b in chain.pairs(cfg.dpi_pairs):
                    ea = usable(rec.layers.get(a, {}).get(est), q)
                    eb = usable(rec.layers.get(b, {}).get(est), q)
                    if ea is None or eb is None or ea.estimator != eb.estimator:
                        # missing, or two instruments (``auto`` bins a narrow layer after a wide one
                        # measured with noise): values on different scales, no inequality to check
                        cell["skipped"] += 1
                        continue
                    cell["pairs_checked"] += 1
                    size = eb.value - ea.value
                    if size <= cfg.tol_bits:
                        continue
                    cell["violated"] += 1
                    exact = ea.kind == "exact" and eb.kind == "exact"
                    bug = exact_for_network(ea) and exact_for_network(eb)
                    unc = 0.0 if exact else combined_se(ea, eb)
                    sig = significance(size, unc, exact, cfg)
                    cell["significant"] += bool(sig)
                    cell["not_assessed"] += sig is None
                    violations.append(
                        DpiViolation(
                            chain=chain.name,
                            estimator=est,
                            quantity=q,
                            upstream=a,
                            downstream=b,
                            upstream_bits=ea.value,
                            downstream_bits=eb.value,
                            size_bits=size,
                            uncertainty_bits=unc,
                            significant=sig,
                            estimate_kinds=(ea.kind, eb.kind),
                            is_bug=bug,
                            message=(
                                f"{'BUG: ' if bug else ''}DPI violated along chain {chain.name!r} "
                                f"under {est!r}: "
                                f"{q.label} of {b!r} = "
                                f"{eb.value:.4g} bits exceeds {q.label} of the earlier layer {a!r} = "
                                f"{ea.value:.4g} bits by {size:.3g} bits; "
                                f"{significance_text(sig, unc, exact, cfg)}. {dpi_note((ea, eb), est)}"
                            ),
                        )
                    )
    on_chain = {x for c in ctx.chains for x in c.layers}
    tallies = tuple(DpiTally(est, q, **cell) for (est, q), cell in counts.items())
    return Findings(
        chains=tuple(chains),
        dpi=tallies,
        dpi_violations=tuple(violations),
        not_on_chain=tuple(x for x in rec.layers if x not in on_chain),
        warnings=tuple(_warnings(ctx, violations)),
    )


def _warnings(ctx: CheckContext, violations: Sequence[DpiViolation]) -> List[IBWarning]:
    """One warning per (chain, estimator) with significant violations, on the worst one's layer."""
    grouped: Dict[Tuple[str, str], List[DpiViolation]] = {}
    for v in violations:
        if v.significant:
            grouped.setdefault((v.chain, v.estimator), []).append(v)
    out = []
    for (chain, est), vs in grouped.items():
        worst = max(vs, key=lambda v: v.size_bits)
        ests = [
            e
            for v in vs
            for e in (usable(ctx.record.layers[x].get(est), v.quantity) for x in (v.upstream, v.downstream))
            if e is not None
        ]
        pairs = ", ".join(f"{v.quantity.label} {v.upstream}->{v.downstream} +{v.size_bits:.3g}" for v in vs)
        bug = any(v.is_bug for v in vs)
        out.append(
            IBWarning(
                layer=worst.downstream,
                estimator=est,
                quantity=worst.quantity,
                code=WarningCode.DPI_VIOLATION,
                severity=Severity.ERROR if bug else Severity.WARNING,
                message=(
                    f"{'BUG: ' if bug else ''}{len(vs)} significant DPI violation(s) along chain {chain!r} "
                    f"under {est!r} ({pairs} bits). " + dpi_note(ests, est)
                ),
                evidence={
                    "chain": chain,
                    "violations": [
                        {
                            "quantity": v.quantity.value,
                            "upstream": v.upstream,
                            "downstream": v.downstream,
                            "size_bits": v.size_bits,
                            "uncertainty_bits": v.uncertainty_bits,
                            "is_bug": v.is_bug,
                        }
                        for v in vs
                    ],
                },
                remedy=_BUG_REMEDY if bug else (
                    "Do not read the ordering of these layers in the information plane as real; compare with "
                    "an "
                    "estimator whose noise is part of the network, or with more probe samples."
                ),
            )
        )
    return out


_BUG_REMEDY = (
    "Check that each layer of the chain is computed from the previous layer's captured (quantized) output "
    "alone: declare chains=... without skips or side inputs, and capture the quantizer's output, not the "
    "module before it. If the chain is right, report the bug with this record."
)

__all__ = ["check_dpi", "dpi_note", "exact_for_network"]
