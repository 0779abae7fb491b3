"""ibhooks: information-plane diagnostics for any PyTorch training.

``import ibhooks`` needs only torch and numpy; TensorBoard, W&B, Lightning and matplotlib are
imported only when their adapters are used.
"""
from __future__ import annotations

from typing import Any

from .chains import Chain
from .config import CaptureConfig, ExecutionConfig, PassiveConfig, RunLogConfig
from .monitor import IBMonitor
from .runlog import Run, load_run
from .schedule import every_n, log_spaced
from .schema import (Checks, Estimate, EstimatorTraits, IBWarning, LayerResult, PhaseDecision, PhaseStatus, Quantity,
                     Record, WarningCode)

__all__ = [
    "IBMonitor", "CaptureConfig", "PassiveConfig", "RunLogConfig", "ExecutionConfig", "Estimate",
    "EstimatorTraits", "LayerResult", "Record", "Checks", "IBWarning", "WarningCode", "PhaseDecision",
    "PhaseStatus", "Quantity", "Chain", "Run", "load_run", "every_n", "log_spaced", "mutual_information",
    "layer_information", "information_bottleneck_curve", "IBCurve",
]
__version__ = "0.2.0"


def __getattr__(name: str) -> Any:  # functional API, resolved lazily (PEP 562)
    if name in ("mutual_information", "layer_information"):
        from . import functional

        return getattr(functional, name)
    if name in ("information_bottleneck_curve", "IBCurve"):
        from . import ib_bound

        return getattr(ib_bound, name)
    raise AttributeError(f"module 'ibhooks' has no attribute {name!r}")
