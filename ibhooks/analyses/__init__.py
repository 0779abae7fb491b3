"""Extra per-measurement analyses (see :mod:`.base`): ``IBMonitor(..., analyses=["geometry"])``."""

from .base import Analysis, AnalysisContext, describe_analyses
from .registry import ANALYSES, build_analyses, make_analysis, register_analysis
from .runner import run_analyses, run_on_snapshot

__all__ = [
    "ANALYSES",
    "Analysis",
    "AnalysisContext",
    "build_analyses",
    "describe_analyses",
    "make_analysis",
    "register_analysis",
    "run_analyses",
    "run_on_snapshot",
]
