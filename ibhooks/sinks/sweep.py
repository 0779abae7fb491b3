"""Numbers to sort a sweep by: estimator settings (hyper-parameters) and, per layer, the final and peak
I(X;T) and I(T;Y), whether fitting / compression was found (0/1) and the size of the compression in
bits. Read by the TensorBoard sink (hparams) and the W&B sink (run summary), from a
:class:`~ibhooks.sinks.drawing.FigureHistory`.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional, Union

from ..schema import QUANTITIES, PhaseStatus
from .drawing import FigureHistory

__all__ = ["estimator_settings", "layer_fields"]

Scalar = Union[int, float, str, bool]


def _scalar(v: Any) -> Optional[Scalar]:
    if isinstance(v, (bool, int, float, str)):
        return v
    if v is None:
        return None
    return json.dumps(v, default=str)[:200]


def estimator_settings(header: Optional[Mapping[str, Any]],
                       extra: Optional[Mapping[str, Any]] = None) -> Dict[str, Scalar]:
    """Flat ``{name: int | float | str | bool}``: ``extra`` (the user's own, e.g. activation and lr) first,
    then the run's mode, probe size, schedule and every estimator's settings as ``<estimator>.<param>``."""
    out: Dict[str, Scalar] = {}
    for k, v in (extra or {}).items():
        if (sv := _scalar(v)) is not None:
            out[str(k)] = sv
    cfg = (header or {}).get("config") or {}
    if not isinstance(cfg, Mapping):
        return out
    for k in ("mode", "probe_samples", "n_probe", "schedule", "max_samples", "seed", "model"):
        if (sv := _scalar(cfg.get(k))) is not None:
            out.setdefault(f"ibhooks.{k}", sv)
    ests = cfg.get("estimators") or {}
    items = ests.items() if isinstance(ests, Mapping) else (
        (e.get("name"), e) for e in ests if isinstance(e, Mapping))
    names = []
    for key, spec in items:
        names.append(str(key))
        for p, v in ((spec or {}).get("params") or {}).items():
            if (sv := _scalar(v)) is not None:
                out.setdefault(f"{key}.{p}", sv)
    if names:
        out.setdefault("ibhooks.estimators", ", ".join(names))
    return out


def layer_fields(history: FigureHistory, labels: Mapping[str, str], *, with_estimator: bool,
                 prefix: str = "final") -> Dict[str, float]:
    """``{"<prefix>/<label>/<field>": value}`` per layer (``<prefix>/<estimator>/<label>/...`` with several
    estimators): ``I_XT``, ``I_TY`` (latest), ``I_XT_peak``, ``I_TY_peak``, ``fitting_found`` and
    ``compression_found`` (1.0 detected, 0.0 otherwise) and ``compression_bits`` (the detected
    compression's fall of I(X;T), 0.0 without one)."""
    out: Dict[str, float] = {}
    for est in history.estimators:
        for layer in history.layers:
            base = f"{prefix}/{est}/{labels.get(layer, layer)}" if with_estimator else \
                f"{prefix}/{labels.get(layer, layer)}"
            for q in QUANTITIES:
                last, peak = history.last(layer, est, q), history.peak(layer, est, q)
                if last is not None:
                    out[f"{base}/{q.value}"] = last
                if peak is not None:
                    out[f"{base}/{q.value}_peak"] = peak
            if not any(k.startswith(base + "/") for k in out):
                continue
            for phase in ("fitting", "compression"):
                d = history.phases.get((layer, est, phase))
                found = d is not None and d.status is PhaseStatus.DETECTED
                out[f"{base}/{phase}_found"] = 1.0 if found else 0.0
                if phase == "compression":
                    out[f"{base}/compression_bits"] = abs(float(d.change_bits)) if (
                        found and d.change_bits is not None) else 0.0
    return out
