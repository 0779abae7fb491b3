"""The figures ibhooks produces: :class:`Estimate` (one number with its meaning) and
:class:`Record` (one measurement of every monitored layer). Both are plain, JSON-serialisable
dataclasses; everything downstream (sinks, plots, the CLI) reads only these.

All information values are in **bits**.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, List, Optional, Tuple

#: The kinds an :class:`Estimate` can be.
KINDS = ("exact", "estimate", "lower_bound", "upper_bound")

#: Default tolerance (bits) within which a value counts as being at its cap.
SATURATION_TOL_BITS = 0.05


@dataclass(frozen=True)
class Estimate:
    """One information figure, never a bare float.

    Attributes:
        value: The figure in bits.
        quantity: What it really is, e.g. ``"H(bin30[-1,1](T))"`` or ``"I(X; T+N(0,0.1)) upper bound"``.
        kind: ``"exact"`` (exact for the stated quantity, e.g. the plug-in entropy of a binned
            variable with X uniform over the probe rows), ``"estimate"``, ``"lower_bound"`` or
            ``"upper_bound"``.
        estimator: Registry name of the estimator that produced it.
        ci: An uncertainty interval ``(low, high)`` in bits (bootstrap or MC), or ``None``.
        cap: The most this estimator can report for this input (``log2 n``, ``log2 K``, ...).
        saturated: ``True`` when ``value`` is within tolerance of ``cap``: the true value may be higher.
        n: Number of samples used.
        dim: Dimension of T after reduction.
        params: Estimator settings, for the record.
        seconds: Wall time spent computing it.
        diagnostics: Evidence about the input that checks use (fraction of values outside a fixed
            bin range, fraction in the extreme bins, number of distinct rows, ...).
    """

    value: float
    quantity: str
    kind: str = "estimate"
    estimator: str = ""
    ci: Optional[Tuple[float, float]] = None
    cap: Optional[float] = None
    saturated: bool = False
    n: int = 0
    dim: int = 0
    params: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    diagnostics: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Estimate.kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def stderr(self) -> Optional[float]:
        """Half-width of ``ci`` divided by 1.96 (a normal-approximation standard error), or None."""
        if self.ci is None:
            return 0.0 if self.kind == "exact" else None
        return (self.ci[1] - self.ci[0]) / (2 * 1.959964)

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci is not None else None
        return _jsonable(d)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Estimate":
        d = dict(d)
        if d.get("ci") is not None:
            d["ci"] = (float(d["ci"][0]), float(d["ci"][1]))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_timing(self, seconds: float) -> "Estimate":
        return replace(self, seconds=float(seconds))


def make_estimate(
    value: float,
    quantity: str,
    *,
    kind: str = "estimate",
    estimator: str = "",
    ci: Optional[Tuple[float, float]] = None,
    cap: Optional[float] = None,
    n: int = 0,
    dim: int = 0,
    params: Optional[Dict[str, Any]] = None,
    diagnostics: Optional[Dict[str, Any]] = None,
    saturation_tol: float = SATURATION_TOL_BITS,
) -> Estimate:
    """Build an :class:`Estimate`, setting ``saturated`` from ``value`` and ``cap``."""
    value = float(value)
    saturated = cap is not None and math.isfinite(value) and value >= float(cap) - saturation_tol
    return Estimate(
        value=value,
        quantity=quantity,
        kind=kind,
        estimator=estimator,
        ci=None if ci is None else (float(ci[0]), float(ci[1])),
        cap=None if cap is None else float(cap),
        saturated=bool(saturated),
        n=int(n),
        dim=int(dim),
        params=dict(params or {}),
        diagnostics=dict(diagnostics or {}),
    )


@dataclass
class LayerResult:
    """The estimates of one estimator for one layer at one measurement."""

    i_xt: Optional[Estimate] = None
    i_ty: Optional[Estimate] = None
    error: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return {
            "I_XT": self.i_xt.to_dict() if self.i_xt else None,
            "I_TY": self.i_ty.to_dict() if self.i_ty else None,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "LayerResult":
        return cls(
            i_xt=Estimate.from_dict(d["I_XT"]) if d.get("I_XT") else None,
            i_ty=Estimate.from_dict(d["I_TY"]) if d.get("I_TY") else None,
            error=d.get("error"),
        )


@dataclass
class Record:
    """One measurement: every monitored layer under every estimator, plus checks and phases.

    Attributes:
        step: Training step (number of completed ``monitor.step()`` calls, or the step the user gave).
        mode: ``"probe"`` (a fixed probe set run in eval mode) or ``"passive"`` (activations of real
            training batches; X and the network change within the capture window).
        n_samples: Rows of T used.
        layers: ``layers[layer][estimator]`` -> :class:`LayerResult`, layers in network order.
        h_y: Plug-in entropy of the labels in bits (the ceiling of I(T;Y)), or ``None`` without labels.
        errors: Estimator failures: ``{"layer", "estimator", "error"}`` dicts. Training went on.
        checks: Bound and DPI checks (filled by :mod:`ibhooks.checks`).
        phases: Per-layer phase decisions (filled by :mod:`ibhooks.phases`).
        warnings: Artefact warnings: ``{"layer", "code", "message", ...}`` dicts.
        seconds: Wall time of the whole measurement.
        epoch: Optional epoch the user passed.
        info: Free-form notes (e.g. the capture window in passive mode).
    """

    step: int
    mode: str
    n_samples: int
    layers: Dict[str, Dict[str, LayerResult]] = field(default_factory=dict)
    h_y: Optional[float] = None
    errors: List[Dict[str, Any]] = field(default_factory=list)
    checks: Dict[str, Any] = field(default_factory=dict)
    phases: Dict[str, Any] = field(default_factory=dict)
    warnings: List[Dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    epoch: Optional[int] = None
    info: Dict[str, Any] = field(default_factory=dict)

    def estimate(self, layer: str, quantity: str = "I_XT", estimator: Optional[str] = None) -> Optional[Estimate]:
        """The estimate of ``quantity`` ("I_XT" or "I_TY") for ``layer`` (first estimator if not named)."""
        per_est = self.layers.get(layer, {})
        if not per_est:
            return None
        res = per_est[estimator] if estimator is not None else next(iter(per_est.values()))
        return res.i_xt if quantity == "I_XT" else res.i_ty

    @property
    def estimators(self) -> List[str]:
        names: List[str] = []
        for per_est in self.layers.values():
            for name in per_est:
                if name not in names:
                    names.append(name)
        return names

    def to_dict(self) -> Dict[str, Any]:
        return _jsonable(
            {
                "type": "record",
                "step": self.step,
                "epoch": self.epoch,
                "mode": self.mode,
                "n_samples": self.n_samples,
                "h_y": self.h_y,
                "seconds": self.seconds,
                "layers": {
                    layer: {name: res.to_dict() for name, res in per_est.items()}
                    for layer, per_est in self.layers.items()
                },
                "errors": self.errors,
                "checks": self.checks,
                "phases": self.phases,
                "warnings": self.warnings,
                "info": self.info,
            }
        )

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Record":
        return cls(
            step=int(d["step"]),
            epoch=d.get("epoch"),
            mode=d.get("mode", "probe"),
            n_samples=int(d.get("n_samples", 0)),
            h_y=d.get("h_y"),
            seconds=float(d.get("seconds", 0.0)),
            layers={
                layer: {name: LayerResult.from_dict(res) for name, res in per_est.items()}
                for layer, per_est in d.get("layers", {}).items()
            },
            errors=list(d.get("errors", [])),
            checks=dict(d.get("checks", {})),
            phases=dict(d.get("phases", {})),
            warnings=list(d.get("warnings", [])),
            info=dict(d.get("info", {})),
        )


def _jsonable(obj: Any) -> Any:
    """Make ``obj`` JSON-safe: tuples to lists, non-finite floats to None, numpy/torch scalars to Python."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    item = getattr(obj, "item", None)
    if callable(item):
        try:
            return _jsonable(item())
        except (ValueError, RuntimeError):
            pass
    return str(obj)
