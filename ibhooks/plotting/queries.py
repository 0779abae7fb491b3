"""Record queries: what the figures, the report, the CLI and the TensorBoard / W&B sinks read from
typed :class:`~ibhooks.schema.Record` objects.

No matplotlib here (numpy only). Layers, estimators, per-layer :class:`Series`, caps, measured-quantity
labels and the flat metric keys live in this module; checks, warnings and phases in
:mod:`ibhooks.plotting.findings`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..schema import QUANTITIES, Estimate, Quantity, Record

__all__ = [
    "QUANTITIES", "RunLike", "Series", "as_records", "caps", "default_estimator", "estimate_of",
    "estimator_names", "estimator_title", "fmt_bits", "has_plane", "layer_names", "layer_series",
    "metric_items", "metric_prefix", "multi_estimator", "quantity_label",
]

#: What the plotting functions accept: a run-log path, a :class:`~ibhooks.runlog.Run` (anything with
#: ``.records`` and ``.header``), or a sequence of Records / record dicts.
RunLike = Union[str, "os.PathLike[str]", Any, Sequence[Union[Record, Mapping[str, Any]]]]

QuantityLike = Union[Quantity, str]


def as_records(run_or_records: RunLike, header: Optional[Mapping[str, Any]] = None
               ) -> Tuple[List[Record], Dict[str, Any]]:
    """``(records sorted by step, header)`` from a run-log path, a Run, or Records / record dicts.

    The sort is stable, so a resumed run keeps its order; ``header`` updates the Run's header.
    """
    if isinstance(run_or_records, (str, os.PathLike)):
        from ..runlog import load_run

        run_or_records = load_run(run_or_records)
    if hasattr(run_or_records, "records") and hasattr(run_or_records, "header"):
        hdr = dict(run_or_records.header or {})
        hdr.update(header or {})
        recs = list(run_or_records.records)
    else:
        hdr = dict(header or {})
        recs = [r if isinstance(r, Record) else Record.from_dict(r) for r in run_or_records]
    recs.sort(key=lambda r: r.step)
    return recs, hdr


def layer_names(records: Sequence[Record]) -> List[str]:
    """Layers in network order (order of first appearance)."""
    return list(dict.fromkeys(layer for rec in records for layer in rec.layers))


def estimator_names(records: Sequence[Record]) -> List[str]:
    """Estimator keys (as in ``Record.layers[layer]``) in order of first appearance."""
    return list(dict.fromkeys(name for rec in records for per_est in rec.layers.values() for name in per_est))


def default_estimator(records: Sequence[Record], estimator: Optional[str] = None) -> str:
    """``estimator`` if the records hold it, else the first one; a clear ``ValueError`` otherwise."""
    names = estimator_names(records)
    if estimator is None:
        if not names:
            raise ValueError("the records hold no estimates to plot (no layer was measured)")
        return names[0]
    if estimator not in names:
        raise ValueError(
            f"estimator {estimator!r} is not in these records; they hold: {', '.join(names) or 'none'}"
        )
    return estimator


def estimate_of(rec: Record, layer: str, estimator: str, quantity: QuantityLike) -> Optional[Estimate]:
    """The Estimate of ``quantity`` for ``layer`` under the estimator key ``estimator``, or None."""
    res = rec.layers.get(layer, {}).get(estimator)
    return None if res is None else res.get(Quantity.parse(quantity))


def _estimates(records: Sequence[Record], estimator: str, quantity: Optional[Quantity] = None):
    for rec in records:
        for per_est in rec.layers.values():
            res = per_est.get(estimator)
            if res is None:
                continue
            for q in QUANTITIES if quantity is None else (quantity,):
                est = res.get(q)
                if est is not None:
                    yield rec, est


@dataclass
class Series:
    """One layer's history of one quantity under one estimator, arrays aligned by measurement.

    Attributes:
        steps, value: Steps and values (bits); non-finite values and failed layers are left out.
        lo, hi: The estimates' interval, NaN where an estimate had none.
        saturated: Whether each value is at its estimator's cap.
        estimates: The Estimates themselves.
    """

    steps: np.ndarray
    value: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    saturated: np.ndarray
    estimates: List[Estimate] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def has_ci(self) -> bool:
        return bool(np.isfinite(self.lo).any())

    @property
    def top(self) -> float:
        """Largest value or interval end (NaN when empty)."""
        return float(np.nanmax(np.concatenate([self.value, self.hi]))) if len(self) else math.nan

    @property
    def bottom(self) -> float:
        """Smallest value or interval end (NaN when empty)."""
        return float(np.nanmin(np.concatenate([self.value, self.lo]))) if len(self) else math.nan


def layer_series(records: Sequence[Record], layer: str, estimator: str, quantity: QuantityLike) -> Series:
    """The :class:`Series` of ``quantity`` (a :class:`Quantity`, ``"I_XT"`` or ``"I(X;T)"``) for ``layer``."""
    q = Quantity.parse(quantity)
    pairs = [(rec.step, e) for rec in records if (e := estimate_of(rec, layer, estimator, q)) is not None]
    pairs = [(s, e) for s, e in pairs if e.value is not None and math.isfinite(e.value)]
    ests = [e for _, e in pairs]
    ci = np.array([e.ci if e.ci is not None else (np.nan, np.nan) for e in ests], dtype=float).reshape(-1, 2)
    return Series(
        steps=np.array([s for s, _ in pairs], dtype=float),
        value=np.array([e.value for e in ests], dtype=float),
        lo=ci[:, 0],
        hi=ci[:, 1],
        saturated=np.array([e.saturated for e in ests], dtype=bool),
        estimates=ests,
    )


def quantity_label(records: Sequence[Record], estimator: str, quantity: QuantityLike) -> str:
    """What was actually measured for ``quantity``, from :attr:`Estimate.quantity` (e.g.
    ``"H(bin30[-1,1](T))"``); per-layer bin ranges are said once; bounds are named."""
    ests = [e for _, e in _estimates(records, estimator, Quantity.parse(quantity))]
    seen = list(dict.fromkeys(e.quantity for e in ests))
    kinds = list(dict.fromkeys(e.kind for e in ests))
    if not seen:
        return ""
    if len(seen) > 1:  # e.g. the same binning with a range per layer: say so once
        generic = list(dict.fromkeys(re.sub(r"\[[^\]]*\]", "[range per layer]", q) for q in seen))
        if len(generic) == 1:
            seen = generic
    text = seen[0] if len(seen) == 1 else (" | ".join(seen[:2]) + (" | ..." if len(seen) > 2 else ""))
    bounds = [k for k in kinds if k in ("upper_bound", "lower_bound")]
    if bounds and "bound" not in text:
        text += f" ({bounds[0].replace('_', ' ')})"
    return text


def _fmt_param(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt_param(x) for x in v) + "]"
    return str(v)


def estimator_title(records: Sequence[Record], estimator: str) -> str:
    """How figures name the estimator key ``estimator``: the name its Estimates carry (never a monitor
    key such as ``binning_1``), with the settings that tell it apart from other estimators of the
    same name in the records (e.g. ``"binning (n_bins=100)"``). A key whose Estimates name different
    instruments per layer (``estimators="auto"``) names them all: ``"auto (per layer: binning,
    classifier_probe, noisy_channel_rel)"``."""

    def first(key: str) -> Optional[Estimate]:
        return next((e for _, e in _estimates(records, key)), None)

    def base(e: Estimate, key: str) -> str:  # "binning_1" (a monitor key) -> "binning"
        return re.sub(r"_\d+$", "", e.estimator or key)

    mine = first(estimator)
    if mine is None:
        return re.sub(r"_\d+$", "", estimator)
    name = base(mine, estimator)
    chosen = sorted({base(e, estimator) for _, e in _estimates(records, estimator)})
    if len(chosen) > 1:  # a per-layer choice ("auto:binning", "auto:noisy_channel_rel", ...): name them all
        head = {c.split(":", 1)[0] for c in chosen}
        if len(head) == 1 and all(":" in c for c in chosen):
            return f"{head.pop()} (per layer: {', '.join(c.split(':', 1)[1] for c in chosen)})"
        return " / ".join(chosen)
    others = [e for k in estimator_names(records) if k != estimator and (e := first(k)) is not None
              and base(e, k) == name]
    if not others:
        return name
    differ = [k for k, v in mine.params.items()
              if v is not None and any(o.params.get(k) != v for o in others)]
    shown = ", ".join(f"{k}={_fmt_param(mine.params[k])}" for k in differ)
    return f"{name} ({shown})" if shown else name


def has_plane(records: Sequence[Record], estimator: Optional[str] = None) -> bool:
    """Whether some layer has both I(X;T) and I(T;Y) (under ``estimator``, or any) in some record."""
    return any(
        res.i_xt is not None and res.i_ty is not None
        for rec in records for per_est in rec.layers.values() for name, res in per_est.items()
        if estimator is None or name == estimator
    )


def caps(records: Sequence[Record], estimator: str) -> Tuple[Optional[float], Optional[float]]:
    """``(cap of I(X;T), H(Y))``: the largest ``Estimate.cap`` of I(X;T) under ``estimator`` (e.g.
    log2 n), and the label entropy (``Record.h_y``; without it, the I(T;Y) estimates'
    ``diagnostics["H_Y"]`` or cap). ``None`` where unknown."""
    cx = [e.cap for _, e in _estimates(records, estimator, Quantity.I_XT) if e.cap is not None]
    hy = [r.h_y for r in records if r.h_y is not None]
    if not hy:
        hy = [e.diagnostics.get("H_Y", e.cap) for _, e in _estimates(records, estimator, Quantity.I_TY)]
        hy = [h for h in hy if h is not None]
    return (max(map(float, cx)) if cx else None), (max(map(float, hy)) if hy else None)


def fmt_bits(x: float) -> str:
    """``"1 bit"``, ``"12 bits"``, ``"0.953 bits"``."""
    return f"{x:.3g} bit" if abs(x - 1) < 1e-9 else f"{x:.3g} bits"


def multi_estimator(records: Sequence[Record], header: Optional[Mapping[str, Any]] = None) -> bool:
    """Whether metric keys must name the estimator: the header's config lists several, or a record does."""
    cfg = (header or {}).get("config") or {}
    ests = cfg.get("estimators") if isinstance(cfg, Mapping) else None
    if isinstance(ests, (list, tuple, Mapping)) and len(ests) > 1:
        return True
    return any(len(rec.estimators) > 1 for rec in records)


def metric_prefix(layer: str, estimator: str, *, with_estimator: bool, prefix: str = "ib") -> str:
    """``ib/<layer>`` with one estimator, ``ib/<estimator>/<layer>`` with several."""
    return f"{prefix}/{estimator}/{layer}" if with_estimator else f"{prefix}/{layer}"


def metric_items(record: Record, *, with_estimator: bool = False, prefix: str = "ib") -> Dict[str, float]:
    """The flat scalars of one Record, the key scheme shared by the TensorBoard and W&B sinks:

    * ``ib/<layer>/I_XT`` and ``ib/<layer>/I_TY`` (bits; the :class:`Quantity` keys),
      ``ib/<estimator>/<layer>/...`` when the run uses several estimators;
    * ``.../I_XT_lo`` and ``.../I_XT_hi`` (and for I_TY) where the estimate has an interval;
    * ``ib/H_Y`` (label entropy) and ``ib/seconds`` (wall time of the measurement).
    """
    out: Dict[str, float] = {}
    for layer, per_est in record.layers.items():
        for est_name, res in per_est.items():
            base = metric_prefix(layer, est_name, with_estimator=with_estimator, prefix=prefix)
            for q in QUANTITIES:
                est = res.get(q)
                if est is None or est.value is None or not math.isfinite(est.value):
                    continue
                out[f"{base}/{q.value}"] = float(est.value)
                if est.ci is not None:
                    out[f"{base}/{q.value}_lo"] = float(est.ci[0])
                    out[f"{base}/{q.value}_hi"] = float(est.ci[1])
    if record.h_y is not None:
        out[f"{prefix}/H_Y"] = float(record.h_y)
    out[f"{prefix}/seconds"] = float(record.seconds)
    return out
