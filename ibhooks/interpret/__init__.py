"""Interpretation: what one measurement's figures mean (checks) and what the run's trends are (phases).

* :func:`check_record`: within-layer bounds, the DPI along chains and artefact warnings of one
  Record, as typed findings (:class:`~ibhooks.schema.Checks`, :class:`~ibhooks.schema.IBWarning`).
  Checks read the traits an Estimate carries, never estimator names; :data:`CHECKS` is the registry.
* :class:`PhaseTracker`: incremental fitting / compression decisions with bounded per-series state;
  :func:`detect_phases` replays one over a history.
* :mod:`.statistics`: Mann-Kendall, Theil-Sen, Holm / BH, with no knowledge of Records.
"""

from .artefacts import NON_SATURATING_ACTIVATIONS, SATURATING_ACTIVATIONS, normalise_activation
from .base import CheckConfig, CheckContext, Findings
from .checks import CHECKS, Check, check_record
from .dpi import dpi_note
from .phases import CAVEAT_CODES, PhaseTracker, detect_phases
from .statistics import MannKendall, adjust_pvalues, mann_kendall, theil_sen
from .trend import PhaseConfig, SeriesAnalysis, SeriesTest, analyse_series, thin_log

__all__ = [
    "CAVEAT_CODES",
    "CHECKS",
    "Check",
    "CheckConfig",
    "CheckContext",
    "Findings",
    "MannKendall",
    "NON_SATURATING_ACTIVATIONS",
    "PhaseConfig",
    "PhaseTracker",
    "SATURATING_ACTIVATIONS",
    "SeriesAnalysis",
    "SeriesTest",
    "adjust_pvalues",
    "analyse_series",
    "check_record",
    "detect_phases",
    "dpi_note",
    "mann_kendall",
    "thin_log",
    "normalise_activation",
    "theil_sen",
]
