"""Capture: from a user's model to a :class:`Snapshot` (hooks, selectors, reductions, the probe
runner and the passive reservoir)."""

from .hooks import Capture, LayerSlot
from .probe import BatchToXY, Probe, ProbeForwardError, isolated, model_device, unwrap_model
from .reduction import AUTO_MAX_DIM, AUTO_PROJECT_DIM, Reduction, ReductionSpec, parse_reduction
from .reservoir import PassiveReservoir
from .selectors import Selector, select_tensor
from .snapshot import Snapshot

__all__ = [
    "Capture",
    "LayerSlot",
    "BatchToXY",
    "Probe",
    "ProbeForwardError",
    "isolated",
    "model_device",
    "unwrap_model",
    "AUTO_MAX_DIM",
    "AUTO_PROJECT_DIM",
    "Reduction",
    "ReductionSpec",
    "parse_reduction",
    "PassiveReservoir",
    "Selector",
    "select_tensor",
    "Snapshot",
]
