"""Synthetic but realistic histories of typed (v2) Records for the sink, plotting and CLI tests.

Three tanh layers measured with 30-bin binning on n = 4096 probe rows (cap log2 n = 12 bits) and
balanced binary labels (H(Y) = 1 bit): I(X;T) rises quickly (fitting) and then falls in the deeper
layers (compression), I(T;Y) climbs to ~0.95 bit, the first layer saturates at the cap, and late in
training I(T;Y) of the last layer exceeds that of the layer before it (a DPI violation).

Checks, warnings and phase changes are not hand-written: every Record goes through the real
interpretation (:func:`ibhooks.interpret.check_record` along the chain ``main`` and one
:class:`ibhooks.interpret.PhaseTracker` over the history, with :data:`PHASES`, settings sized for
these short histories).
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ibhooks.chains import Chain
from ibhooks.interpret import PhaseConfig, PhaseTracker, check_record
from ibhooks.schema import EstimatorTraits, LayerResult, Record, jsonable, make_estimate

LAYERS = ("fc1", "fc2", "fc3")
N = 4096
CAP = math.log2(N)
H_Y = 1.0
QX = "H(bin30[-1,1](T))"
QY = "I(bin30[-1,1](T); Y)"
PARAMS = {"n_bins": 30, "range": [-1.0, 1.0]}
#: Traits of the synthetic estimators: binning (exact, discretises, capped at log2 n) and a KDE-like one.
TRAITS = {
    "binning": EstimatorTraits(discretises=True, exact=True, cap="log2_n"),
    "kde": EstimatorTraits(adds_noise=True, pairwise=True, cap="log2_n"),
}
#: Phase-test settings for histories of about 10-20 measurements (the defaults need more points).
PHASES = PhaseConfig(min_points=5, smooth=1, persistence=2)
CHAIN = "main"


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


def _layer_result(li: int, est: str, ixt: float, ity: float, with_ci: bool) -> LayerResult:
    binning = est == "binning" or est not in TRAITS
    traits = TRAITS["binning"] if binning else TRAITS[est]
    kind = "exact" if binning else "upper_bound"
    qx = QX if binning else "I(X; T+N(0,0.1)) upper bound"
    qy = QY if binning else "I(T+N(0,0.1); Y) upper bound"
    cx = (ixt - 0.06, min(CAP, ixt + 0.05)) if with_ci else None
    cy = (max(0.0, ity - 0.025), min(H_Y, ity + 0.02)) if with_ci else None
    common = dict(kind=kind, estimator=est, n=N, dim=10 - 2 * li, params=PARAMS, traits=traits)
    return LayerResult(
        i_xt=make_estimate(ixt, qx, ci=cx, cap=CAP, diagnostics={"fraction_outside_range": 0.0}, **common),
        i_ty=make_estimate(ity, qy, ci=cy, diagnostics={"H_Y": H_Y}, **common),
    )


def make_history(
    steps: Optional[Sequence[int]] = None,
    *,
    layers: Sequence[str] = LAYERS,
    estimators: Sequence[str] = ("binning",),
    with_ci: bool = True,
    seed: int = 0,
) -> List[Record]:
    """A list of v2 Records, one per step: estimates, then the real checks, warnings and phase changes."""
    steps = list(steps) if steps is not None else steps_default()
    rng = np.random.default_rng(seed)
    last = max(steps[-1], 1) if steps else 1
    chains = [Chain(CHAIN, tuple(layers))] if len(layers) >= 2 else []
    tracker = PhaseTracker(PHASES)
    out: List[Record] = []
    for step in steps:
        t = math.log10(step + 1) / math.log10(last + 1)
        per_layer: Dict[str, Dict[str, LayerResult]] = {}
        for li, layer in enumerate(layers):
            per_layer[layer] = {}
            for ei, est in enumerate(estimators):
                ixt, ity = _curves(li % 3, t)
                ixt = min(CAP, ixt - 0.4 * ei + float(rng.normal(0, 0.01)))
                ity = max(0.0, min(H_Y, ity - 0.05 * ei + float(rng.normal(0, 0.01))))
                if li == 2 and ei == 0 and t > 0.8:  # late: the last layer's I(T;Y) above the one before it
                    ity = min(H_Y, per_layer[layers[1]][est].i_ty.value + 0.012)
                per_layer[layer][est] = _layer_result(li, est, ixt, min(ity, ixt), with_ci)
        rec = Record(
            step=step,
            mode="probe",
            n_samples=N,
            layers=per_layer,
            h_y=H_Y,
            seconds=0.12 + 0.01 * len(layers),
            epoch=step // 100,
        )
        rec.checks, rec.warnings = check_record(
            rec, chains, layer_info={x: {"activation": "tanh"} for x in layers}
        )
        rec.phase_changes = tracker.update(rec)
        out.append(rec)
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
            "chain": CHAIN,
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
        "chains": [{"name": CHAIN, "layers": list(layers), "source": "declared"}],
        "versions": {"ibhooks": "0.1.0", "torch": "2.13.0"},
    }


def write_log(path, records: Sequence[Record], header: Optional[Dict[str, Any]] = None) -> None:
    """Write a version-2 run log: a header line, then one ``record.to_dict()`` line per Record."""
    head = {
        "type": "header",
        "format": "ibhooks-run",
        "version": 2,
        **(header if header is not None else make_header()),
    }
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(jsonable(head), allow_nan=False) + "\n")
        for rec in records:
            fh.write(json.dumps(rec.to_dict(), allow_nan=False) + "\n")
