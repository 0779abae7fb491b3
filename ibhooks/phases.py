"""Compatibility module: phase detection now lives in :mod:`ibhooks.interpret` (an incremental
:class:`PhaseTracker` with bounded per-series state; :func:`detect_phases` replays one)."""

from __future__ import annotations

from .interpret import (
    CAVEAT_CODES,
    MannKendall,
    PhaseConfig,
    PhaseTracker,
    SeriesAnalysis,
    adjust_pvalues,
    analyse_series,
    detect_phases,
    mann_kendall,
    theil_sen,
)
from .schema.phases import PHASE_DIRECTION, PHASE_QUANTITY, PhaseDecision, PhaseStatus, fold_phase_changes

__all__ = [
    "CAVEAT_CODES",
    "MannKendall",
    "PHASE_DIRECTION",
    "PHASE_QUANTITY",
    "PhaseConfig",
    "PhaseDecision",
    "PhaseStatus",
    "PhaseTracker",
    "SeriesAnalysis",
    "adjust_pvalues",
    "analyse_series",
    "detect_phases",
    "fold_phase_changes",
    "mann_kendall",
    "theil_sen",
]
