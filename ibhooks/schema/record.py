"""One measurement of every monitored layer: :class:`Record` (run-log format version 2).

``Record.from_dict`` also reads the version-1 layout (checks, warnings and phases as free dicts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from .estimate import Estimate, jsonable
from .findings import Checks, IBWarning
from .phases import PhaseDecision
from .quantities import Quantity

#: Version of the Record / run-log layout written by this ibhooks.
RECORD_VERSION = 2


@dataclass
class LayerResult:
    """The estimates of one estimator for one layer at one measurement."""

    i_xt: Optional[Estimate] = None
    i_ty: Optional[Estimate] = None
    error: Optional[str] = None

    def get(self, quantity: Quantity) -> Optional[Estimate]:
        return self.i_xt if Quantity.parse(quantity) is Quantity.I_XT else self.i_ty

    def to_dict(self) -> Dict[str, Any]:
        return {
            "I_XT": self.i_xt.to_dict() if self.i_xt else None,
            "I_TY": self.i_ty.to_dict() if self.i_ty else None,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LayerResult":
        return cls(
            i_xt=Estimate.from_dict(d["I_XT"]) if d.get("I_XT") else None,
            i_ty=Estimate.from_dict(d["I_TY"]) if d.get("I_TY") else None,
            error=d.get("error"),
        )


@dataclass(frozen=True)
class RecordError:
    """A failure during a measurement (capture, an estimator, a check); training went on."""

    error: str
    layer: Optional[str] = None
    estimator: Optional[str] = None
    stage: str = "estimate"  # "capture", "estimate", "analyse", "interpret"

    def to_dict(self) -> Dict[str, Any]:
        return {"layer": self.layer, "estimator": self.estimator, "stage": self.stage, "error": self.error}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RecordError":
        return cls(
            error=str(d.get("error", "")),
            layer=d.get("layer"),
            estimator=d.get("estimator"),
            stage=str(d.get("stage") or "estimate"),
        )

    # read like the version-1 dicts where callers index them
    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)


@dataclass
class Record:
    """One measurement: every monitored layer under every estimator, plus checks and phase changes.

    Attributes:
        step: Training step (completed ``monitor.step()`` calls, or the step the user gave).
        mode: ``"probe"`` (a fixed probe set run in eval mode) or ``"passive"`` (activations of real
            training batches; X and the network change within the capture window).
        n_samples: Rows of T used.
        layers: ``layers[layer][estimator]`` -> :class:`LayerResult`, layers in network order.
        h_y: Plug-in entropy of the labels in bits (the ceiling of I(T;Y)), or ``None`` without labels.
        errors: Failures (:class:`RecordError`). Training went on.
        checks: Bound and DPI checks (:class:`~ibhooks.schema.Checks`), ``None`` if not run.
        warnings: Artefact warnings (:class:`~ibhooks.schema.IBWarning`).
        phase_changes: Phase decisions that changed at this measurement
            (:class:`~ibhooks.schema.PhaseDecision`); the latest of each series is the fold over the run.
        seconds: Wall time of the whole measurement (capture to sinks).
        epoch: Optional epoch the user passed.
        info: Notes: the passive capture window, time the training thread waited for a full queue
            (``"queue_wait_seconds"``), the snapshot time, ...
        analyses: Analysis name -> its JSON-able result (:mod:`ibhooks.analyses`), e.g.
            ``record.analyses["geometry"]``.
    """

    step: int
    mode: str
    n_samples: int
    layers: Dict[str, Dict[str, LayerResult]] = field(default_factory=dict)
    h_y: Optional[float] = None
    errors: List[RecordError] = field(default_factory=list)
    checks: Optional[Checks] = None
    warnings: List[IBWarning] = field(default_factory=list)
    phase_changes: List[PhaseDecision] = field(default_factory=list)
    seconds: float = 0.0
    epoch: Optional[int] = None
    info: Dict[str, Any] = field(default_factory=dict)
    analyses: Dict[str, Any] = field(default_factory=dict)

    def estimate(
        self, layer: str, quantity: Any = Quantity.I_XT, estimator: Optional[str] = None
    ) -> Optional[Estimate]:
        """The estimate of ``quantity`` for ``layer`` (first estimator if not named)."""
        per_est = self.layers.get(layer, {})
        if not per_est:
            return None
        res = per_est.get(estimator) if estimator is not None else next(iter(per_est.values()))
        return None if res is None else res.get(Quantity.parse(quantity))

    @property
    def estimators(self) -> List[str]:
        names: List[str] = []
        for per_est in self.layers.values():
            for name in per_est:
                if name not in names:
                    names.append(name)
        return names

    def to_dict(self) -> Dict[str, Any]:
        # the estimates are JSON-safe already (Estimate.to_dict): only the rest goes through jsonable
        out = jsonable({"type": "record", "step": self.step, "epoch": self.epoch, "mode": self.mode,
                        "n_samples": self.n_samples, "h_y": self.h_y, "seconds": self.seconds})
        out["layers"] = {
            str(layer): {str(name): res.to_dict() for name, res in per_est.items()}
            for layer, per_est in self.layers.items()
        }
        out.update(jsonable({
            "errors": [e.to_dict() for e in self.errors],
            "checks": self.checks.to_dict() if self.checks is not None else None,
            "warnings": [w.to_dict() for w in self.warnings],
            "phase_changes": [p.to_dict() for p in self.phase_changes],
            "info": self.info,
            **({"analyses": self.analyses} if self.analyses else {}),
        }))
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Record":
        checks = d.get("checks")
        if "phase_changes" in d:
            changes = [PhaseDecision.from_dict(p) for p in d.get("phase_changes") or ()]
        else:
            changes = _phases_v1(d.get("phases") or {}, int(d["step"]))
        return cls(
            step=int(d["step"]),
            epoch=d.get("epoch"),
            mode=str(d.get("mode", "probe")),
            n_samples=int(d.get("n_samples") or 0),
            h_y=None if d.get("h_y") is None else float(d["h_y"]),
            seconds=float(d.get("seconds") or 0.0),
            layers={
                str(layer): {str(name): LayerResult.from_dict(res) for name, res in (per_est or {}).items()}
                for layer, per_est in (d.get("layers") or {}).items()
            },
            errors=[RecordError.from_dict(e) for e in d.get("errors") or ()],
            checks=Checks.from_dict(checks) if checks else None,
            warnings=[IBWarning.from_dict(w) for w in d.get("warnings") or ()],
            phase_changes=changes,
            info=dict(d.get("info") or {}),
            analyses=dict(d.get("analyses") or {}) if isinstance(d.get("analyses"), Mapping) else {},
        )


def _phases_v1(phases: Mapping[str, Any], step: int) -> List[PhaseDecision]:
    """Every decision of a version-1 record (which stored them all) as this record's changes."""
    out: List[PhaseDecision] = []
    for layer, per_est in (phases.get("layers") or {}).items():
        for est, per_phase in (per_est or {}).items():
            for phase, dec in (per_phase or {}).items():
                if isinstance(dec, Mapping) and "status" in dec:
                    out.append(
                        PhaseDecision.from_dict(
                            {**dec, "layer": layer, "estimator": est, "phase": phase, "step": step}
                        )
                    )
    return out


def finite(x: Optional[float]) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)
