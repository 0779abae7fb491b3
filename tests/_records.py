"""Synthetic but realistic histories of Records for the sink, plotting and CLI tests.

Three tanh layers measured with 30-bin binning on n = 4096 probe rows (cap log2 n = 12 bits) and
balanced binary labels (H(Y) = 1 bit): I(X;T) rises quickly (fitting) and then falls in the deeper
layers (compression), I(T;Y) climbs to ~0.95 bit, the first layer saturates at the cap, and one
DPI violation along the chain appears late in training.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ibhooks.estimate import LayerResult, Record, make_estimate

LAYERS = ("fc1", "fc2", "fc3")
N = 4096
CAP = math.log2(N)
H_Y = 1.0
QX = "H(bin30[-1,1](T))"
QY = "I(bin30[-1,1](T); Y)"
PARAMS = {"n_bins": 30, "range": [-1.0, 1.0]}


def steps_default(count: int = 18, last: int = 5000) -> List[int]:
    return [0] + sorted({int(round(s)) for s in np.geomspace(1, last, count - 1)})


def _curves(layer_idx: int, t: float) -> tuple:
    """(I_XT, I_TY) for layer ``layer_idx`` at normalised log-time ``t`` in [0, 1]."""
    top = (12.0, 9.6, 6.4)[layer_idx]
    start = (9.5, 6.0, 3.2)[layer_idx]
    comp = (0.0, 2.2, 2.6)[layer_idx]
    ixt = start + (top - start) * (1 - math.exp(-7 * t)) - comp * max(0.0, t - 0.45) ** 1.3
    ixt = min(ixt, CAP)
    ity = 0.05 + 0.9 * (1 / (1 + math.exp(-10 * (t - 0.35 - 0.04 * layer_idx))))
    return ixt, min(ity, ixt)


def make_history(
    steps: Optional[Sequence[int]] = None,
    *,
    layers: Sequence[str] = LAYERS,
    estimators: Sequence[str] = ("binning",),
    with_ci: bool = True,
    seed: int = 0,
) -> List[Record]:
    """A list of Records, one per step, with estimates, checks, phases and warnings filled in."""
    steps = list(steps) if steps is not None else steps_default()
    rng = np.random.default_rng(seed)
    last = max(steps[-1], 1)
    out: List[Record] = []
    for step in steps:
        t = math.log10(step + 1) / math.log10(last + 1)
        per_layer: Dict[str, Dict[str, LayerResult]] = {}
        values: Dict[str, Dict[str, float]] = {}
        for li, layer in enumerate(layers):
            per_layer[layer] = {}
            for ei, est in enumerate(estimators):
                ixt, ity = _curves(li % 3, t)
                ixt = min(CAP, ixt - 0.4 * ei + float(rng.normal(0, 0.03)))
                ity = max(0.0, min(H_Y, ity - 0.05 * ei + float(rng.normal(0, 0.01))))
                values.setdefault(layer, {"I_XT": ixt, "I_TY": ity})
                cx = (ixt - 0.06, min(CAP, ixt + 0.05)) if with_ci else None
                cy = (max(0.0, ity - 0.025), min(H_Y, ity + 0.02)) if with_ci else None
                qx = QX if est == "binning" else "I(X; T+N(0,0.1)) upper bound"
                qy = QY if est == "binning" else "I(T+N(0,0.1); Y) upper bound"
                kind = "exact" if est == "binning" else "upper_bound"
                per_layer[layer][est] = LayerResult(
                    i_xt=make_estimate(
                        ixt,
                        qx,
                        kind=kind,
                        estimator=est,
                        ci=cx,
                        cap=CAP,
                        n=N,
                        dim=10 - 2 * li,
                        params=PARAMS,
                        diagnostics={"fraction_outside_range": 0.0},
                    ),
                    i_ty=make_estimate(
                        ity,
                        qy,
                        kind=kind,
                        estimator=est,
                        ci=cy,
                        n=N,
                        dim=10 - 2 * li,
                        params=PARAMS,
                        diagnostics={"H_Y": H_Y},
                    ),
                )
        phases = _phases(step, steps, layers, estimators)
        checks, warnings = _checks(step, t, layers, estimators, values)
        out.append(
            Record(
                step=step,
                mode="probe",
                n_samples=N,
                layers=per_layer,
                h_y=H_Y,
                checks=checks,
                phases=phases,
                warnings=warnings,
                seconds=0.12 + 0.01 * len(layers),
                epoch=step // 100,
            )
        )
    return out


def _checks(
    step: int, t: float, layers: Sequence[str], estimators: Sequence[str], values: Dict[str, Dict[str, float]]
) -> tuple:
    """checks and warnings in the layout of :func:`ibhooks.checks.check_record`: one I(T;Y) DPI
    violation fc2 -> fc3 late in training (exact estimates, so significant), fc1 at its cap."""
    violations = []
    summary: Dict[str, Any] = {}
    for est in estimators:
        summary[est] = {}
        for q in ("I_XT", "I_TY"):
            bad = q == "I_TY" and t > 0.8 and len(layers) >= 3 and est == estimators[0]
            summary[est][q] = {
                "pairs_checked": len(layers) - 1,
                "violated": int(bad),
                "significant": int(bad),
                "skipped": 0,
            }
            if bad:
                up, down = layers[1], layers[2]
                violations.append(
                    {
                        "chain": "main",
                        "estimator": est,
                        "quantity": q,
                        "upstream": up,
                        "downstream": down,
                        "upstream_bits": 0.93,
                        "downstream_bits": 0.942,
                        "size_bits": 0.012,
                        "uncertainty_bits": 0.0,
                        "significant": True,
                        "kind": "estimator_inconsistency",
                        "message": f"DPI violated along chain 'main' under {est!r}: "
                        f"I(T;Y) of {down!r} exceeds "
                        f"{up!r} by 0.012 bits; binning noise is not propagated through the network.",
                    }
                )
    warnings = []
    if values and values[layers[0]]["I_XT"] >= CAP - 0.05:
        warnings.append(
            {
                "layer": layers[0],
                "estimator": estimators[0],
                "quantity": "I_XT",
                "code": "at_cap",
                "severity": "info",
                "message": f"Layer {layers[0]!r}: I(X;T) is at the estimator's cap 12 bits; "
                "the true value may be higher.",
                "evidence": {"cap": CAP, "n": N},
                "remedy": "Use more probe samples.",
            }
        )
    if violations:
        warnings.append(
            {
                "layer": layers[2],
                "estimator": estimators[0],
                "quantity": "I_TY",
                "code": "dpi_violation",
                "severity": "warning",
                "message": "1 significant DPI violation(s) along chain 'main'.",
                "evidence": {"chain": "main"},
                "remedy": "Compare with another estimator.",
            }
        )
    counts: Dict[str, int] = {}
    for w in warnings:
        counts[w["code"]] = counts.get(w["code"], 0) + 1
    checks = {
        "version": 1,
        "step": step,
        "tol_bits": 1e-6,
        "z": 1.96,
        "bounds": {"checked": 5 * len(layers), "violated": 0, "bugs": 0, "significant": 0, "violations": []},
        "dpi": {
            "pairs": "adjacent",
            "chains": [{"name": "main", "layers": list(layers), "missing": []}],
            "summary": summary,
            "totals": {
                "pairs_checked": 2 * (len(layers) - 1) * len(estimators),
                "violated": len(violations),
                "significant": len(violations),
                "skipped": 0,
            },
            "violations": violations,
            "not_checked": [],
        },
        "warning_counts": counts,
    }
    return checks, warnings


def _phase(
    phase: str, status: str, start: Optional[int], end: Optional[int], peak: Optional[int]
) -> Dict[str, Any]:
    """One PHASE entry in the layout of :func:`ibhooks.phases.detect_phases`."""
    return {
        "phase": phase,
        "quantity": "I_TY" if phase == "fitting" else "I_XT",
        "direction": "increasing" if phase == "fitting" else "decreasing",
        "status": status,
        "detected": status == "detected",
        "significant": status in ("detected", "candidate"),
        "consecutive": 3 if status == "detected" else int(status == "candidate"),
        "start_step": start,
        "end_step": end,
        "peak_step": peak,
        "ongoing": end is None and start is not None,
        "slope_bits_per_decade": -0.8 if phase == "compression" else 0.3,
        "change_bits": 1.5,
        "p_value": 0.001 if status != "insufficient_data" else None,
        "p_adjusted": 0.004 if status != "insufficient_data" else None,
        "reason": None,
    }


def _phases(
    step: int, steps: Sequence[int], layers: Sequence[str], estimators: Sequence[str]
) -> Dict[str, Any]:
    """Phase decisions as detect_phases would make them for this synthetic history up to ``step``."""
    k = steps.index(step)
    out: Dict[str, Any] = {
        "version": 1,
        "step": step,
        "mode": "probe",
        "n_records": k + 1,
        "alpha": 0.05,
        "correction": "holm",
        "layers": {},
        "detected": [],
    }
    for li, layer in enumerate(layers):
        out["layers"][layer] = {}
        for est in estimators:
            first = max(2, len(steps) // 2)  # decisions need half the history
            if k < first:
                fit = _phase("fitting", "insufficient_data", None, None, None)
                comp = _phase("compression", "insufficient_data", None, None, None)
            else:
                fit = _phase("fitting", "detected", 0, steps[first - 1], steps[first - 1])
                if li % 3 == 0:
                    comp = _phase("compression", "not_detected", None, None, steps[first - 1])
                else:
                    status = "detected" if k >= first + 2 else "candidate"
                    comp = _phase("compression", status, steps[first], None, steps[first])
            out["layers"][layer][est] = {"fitting": fit, "compression": comp}
            out["detected"] += [{"layer": layer, "estimator": est, **p} for p in (fit, comp) if p["detected"]]
    return out


def make_header(layers: Sequence[str] = LAYERS, estimators: Sequence[str] = ("binning",)) -> Dict[str, Any]:
    coverage = [
        {
            "name": layer,
            "type": "Linear",
            "status": "monitored",
            "reason": "",
            "shape": [N, 10 - 2 * i],
            "dim": 10 - 2 * i,
            "reduction": "none",
            "chain": "main",
        }
        for i, layer in enumerate(layers)
    ]
    coverage.append(
        {
            "name": "dropout",
            "type": "Dropout",
            "status": "skipped",
            "reason": "identity in eval mode",
            "shape": None,
            "dim": None,
            "reduction": None,
            "chain": None,
        }
    )
    return {
        "created": "2026-11-24T12:00:00Z",
        "config": {
            "estimators": [{"name": e, "params": PARAMS} for e in estimators],
            "mode": "probe",
            "schedule": "log_spaced(18, 5000)",
            "n_probe": N,
        },
        "coverage": coverage,
        "chains": [{"name": "main", "layers": list(layers)}],
        "versions": {"ibhooks": "0.1.0", "torch": "2.13.0"},
    }


def write_log(path, records: Sequence[Record], header: Optional[Dict[str, Any]] = None) -> None:
    """Write a run log with the real JsonlSink."""
    from ibhooks.sinks.jsonl import JsonlSink

    sink = JsonlSink(path, fsync=False)
    sink.start(header if header is not None else make_header())
    for rec in records:
        sink.write(rec)
    sink.close()
