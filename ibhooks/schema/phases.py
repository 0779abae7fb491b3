"""Phase decisions: per layer, estimator and phase (fitting: I(T;Y) rises; compression: I(X;T) falls).

A Record stores only the decisions that *changed* at its measurement; the latest decision of every
series is the fold of those changes in step order (:func:`fold_phase_changes`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from .estimate import jsonable
from .quantities import Quantity

#: The quantity each phase reads, and the direction of its trend.
PHASE_QUANTITY: Dict[str, Quantity] = {"fitting": Quantity.I_TY, "compression": Quantity.I_XT}
PHASE_DIRECTION: Dict[str, str] = {"fitting": "increasing", "compression": "decreasing"}


class PhaseStatus(str, Enum):
    DETECTED = "detected"  # passed the test at the last `persistence` decisions
    CANDIDATE = "candidate"  # passed at the latest decision only
    NOT_DETECTED = "not_detected"
    INSUFFICIENT_DATA = "insufficient_data"

    def __str__(self) -> str:
        return self.value


SeriesKey = Tuple[str, str, str]  # (layer, estimator, phase)


@dataclass(frozen=True)
class PhaseDecision:
    """The decision about one phase of one layer under one estimator, as of measurement ``step``.

    Attributes:
        layer, estimator, phase: The series (``phase`` is ``"fitting"`` or ``"compression"``).
        step: The measurement at which this decision was made.
        status: :class:`PhaseStatus`.
        start_step, end_step: The phase's change points (``end_step`` ``None`` while ``ongoing``).
        peak_step: The peak the test segment starts (compression) or ends (fitting) at.
        ongoing: The phase runs up to the latest measurement.
        change_bits: Total change of the fitted ramp; ``uncertainty_bits`` the combined uncertainty
            of its ends (``None`` when unknown).
        p_value, p_adjusted: One-sided trend test, before and after the family adjustment.
        family_size: Series tested together at this decision.
        consecutive: Decisions in a row that passed.
        slope_bits_per_decade, slope_ci_per_decade: Theil-Sen slope per decade of ``step + 1``.
        n_points: Points in the tested segment.
        test: The test used.
        reason: Why not detected (or why only a candidate).
        caveats: Artefact-warning codes seen on this series from the phase's start on.
    """

    layer: str
    estimator: str
    phase: str
    step: int
    status: PhaseStatus
    start_step: Optional[float] = None
    end_step: Optional[float] = None
    peak_step: Optional[float] = None
    ongoing: Optional[bool] = None
    change_bits: Optional[float] = None
    uncertainty_bits: Optional[float] = None
    p_value: Optional[float] = None
    p_adjusted: Optional[float] = None
    family_size: int = 0
    consecutive: int = 0
    slope_bits_per_decade: Optional[float] = None
    slope_ci_per_decade: Optional[Tuple[float, float]] = None
    n_points: int = 0
    test: Optional[str] = None
    reason: Optional[str] = None
    caveats: Tuple[str, ...] = ()

    @property
    def key(self) -> SeriesKey:
        return (self.layer, self.estimator, self.phase)

    @property
    def quantity(self) -> Quantity:
        return PHASE_QUANTITY[self.phase]

    @property
    def detected(self) -> bool:
        return self.status is PhaseStatus.DETECTED

    @property
    def shown(self) -> bool:
        """Drawn in figures: detected or candidate."""
        return self.status in (PhaseStatus.DETECTED, PhaseStatus.CANDIDATE)

    def same_outcome(self, other: Optional["PhaseDecision"]) -> bool:
        """Whether ``other`` says the same thing (status and where the phase lies): no change to log."""
        if other is None:
            return False
        return (self.status, self.start_step, self.end_step, self.ongoing) == (
            other.status,
            other.start_step,
            other.end_step,
            other.ongoing,
        )

    def at_step(self, step: int) -> "PhaseDecision":
        return replace(self, step=int(step))

    def to_dict(self) -> Dict[str, Any]:
        return jsonable({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PhaseDecision":
        known = {f.name for f in fields(cls)}
        out = {k: v for k, v in d.items() if k in known}
        out["status"] = PhaseStatus(d.get("status", "not_detected"))
        out["step"] = int(d.get("step") or 0)
        ci = d.get("slope_ci_per_decade")
        out["slope_ci_per_decade"] = None if not ci or None in ci else (float(ci[0]), float(ci[1]))
        out["caveats"] = tuple(d.get("caveats") or ())
        out["family_size"] = int(d.get("family_size") or 0)
        out["consecutive"] = int(d.get("consecutive") or 0)
        out["n_points"] = int(d.get("n_points") or 0)
        return cls(**out)


def fold_phase_changes(
    changes: Iterable[PhaseDecision], into: Optional[Dict[SeriesKey, PhaseDecision]] = None
) -> Dict[SeriesKey, PhaseDecision]:
    """Apply phase changes in order: the latest decision of every series."""
    latest: Dict[SeriesKey, PhaseDecision] = {} if into is None else into
    for c in changes:
        latest[c.key] = c
    return latest
