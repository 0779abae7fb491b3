"""The typed objects that flow one way through ibhooks: capture -> estimation -> interpretation ->
Record -> sinks / plots / report / CLI.

Every object here round-trips through JSON (``to_dict`` / ``from_dict``); the run log stores them,
and everything downstream of the monitor reads these types only. All information values are in bits.
"""

from .estimate import (
    KINDS,
    SATURATION_TOL_BITS,
    Estimate,
    EstimatorTraits,
    jsonable,
    make_estimate,
)
from .findings import (
    BoundViolation,
    ChainCheck,
    Checks,
    DpiTally,
    DpiViolation,
    IBWarning,
    Severity,
    WarningCode,
)
from .phases import PHASE_DIRECTION, PHASE_QUANTITY, PhaseDecision, PhaseStatus
from .quantities import QUANTITIES, Quantity
from .record import RECORD_VERSION, LayerResult, Record, RecordError

__all__ = [
    "KINDS",
    "SATURATION_TOL_BITS",
    "Estimate",
    "EstimatorTraits",
    "jsonable",
    "make_estimate",
    "BoundViolation",
    "ChainCheck",
    "Checks",
    "DpiTally",
    "DpiViolation",
    "IBWarning",
    "Severity",
    "WarningCode",
    "PHASE_DIRECTION",
    "PHASE_QUANTITY",
    "PhaseDecision",
    "PhaseStatus",
    "QUANTITIES",
    "Quantity",
    "RECORD_VERSION",
    "LayerResult",
    "Record",
    "RecordError",
]
