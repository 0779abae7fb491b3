"""Summaries over seeds for the reproduction examples: a mean history (so every ibhooks figure can
draw it), and the table of I(X;T) at its peak and at the end with the phases flagged."""
from __future__ import annotations

import statistics
from typing import Dict, List, Optional, Sequence

from ibhooks.schema import Estimate, LayerResult, PhaseDecision, Quantity, Record
from ibhooks.schema.phases import fold_phase_changes


def _mean_estimate(ests: Sequence[Estimate]) -> Estimate:
    vals = [e.value for e in ests]
    m = statistics.fmean(vals)
    sd = statistics.pstdev(vals) if len(vals) > 1 else 0.0
    e0 = ests[0]
    return Estimate(value=m, quantity=f"{e0.quantity}, mean over {len(vals)} seeds", kind="estimate",
                    estimator=e0.estimator, ci=(m - sd, m + sd), cap=e0.cap,
                    saturated=all(e.saturated for e in ests),
                    n=e0.n, dim=e0.dim, params={**e0.params, "band": "+-1 sd over seeds"}, traits=e0.traits)


def mean_history(histories: Sequence[Sequence[Record]], estimator: str) -> List[Record]:
    """Records whose estimates are the mean over seeds at each step (ci = +-1 sd over seeds)."""
    out = []
    for recs in zip(*histories):
        step = recs[0].step
        assert all(r.step == step for r in recs), "seed histories must share their steps"
        rec = Record(step=step, mode=recs[0].mode, n_samples=recs[0].n_samples, h_y=recs[0].h_y,
                     info={"seeds": len(recs)})
        for layer in recs[0].layers:
            results = [r.layers[layer].get(estimator) for r in recs]
            if any(res is None or res.i_xt is None for res in results):
                continue
            i_ty = [res.i_ty for res in results]
            rec.layers[layer] = {estimator: LayerResult(
                i_xt=_mean_estimate([res.i_xt for res in results]),
                i_ty=_mean_estimate(i_ty) if all(i_ty) else None)}
        out.append(rec)
    return out


def _detected(decision: Optional[PhaseDecision]) -> bool:
    return decision is not None and decision.detected


def seed_table(histories: Sequence[Sequence[Record]], estimator: str, *,
               layer_labels: Optional[Dict[str, str]] = None) -> str:
    """Markdown table per layer: I(X;T) at its peak and at the end (mean +- sd over seeds), the
    I(T;Y) at the end, and in how many seeds each phase was detected at the last measurement."""
    layers = list(histories[0][-1].layers)
    # the latest decision of every series at the end of each seed's run: the fold of its phase changes
    phases = [fold_phase_changes(c for r in hist for c in r.phase_changes) for hist in histories]
    rows = ["| layer | I(X;T) peak | I(X;T) end | drop | I(T;Y) end | fitting detected "
            "| compression detected |",
            "|---|---|---|---|---|---|---|"]

    def ms(v: List[float]) -> str:
        return f"{statistics.fmean(v):.2f} ± {statistics.pstdev(v):.2f}"

    for layer in layers:
        peaks, ends, drops, tys, fit, comp = [], [], [], [], 0, 0
        for hist, latest in zip(histories, phases):
            series = [r.estimate(layer, Quantity.I_XT, estimator).value for r in hist if layer in r.layers]
            peaks.append(max(series))
            ends.append(series[-1])
            drops.append(max(series) - series[-1])
            ty = hist[-1].estimate(layer, Quantity.I_TY, estimator)
            tys.append(ty.value if ty else float("nan"))
            fit += _detected(latest.get((layer, estimator, "fitting")))
            comp += _detected(latest.get((layer, estimator, "compression")))
        label = (layer_labels or {}).get(layer, layer)
        rows.append(f"| {label} | {ms(peaks)} | {ms(ends)} | {ms(drops)} | {ms(tys)} | "
                    f"{fit}/{len(histories)} | {comp}/{len(histories)} |")
    return "\n".join(rows)
