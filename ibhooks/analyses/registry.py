"""Name -> Analysis class. Adding an analysis: one module in this package and one line here."""

from __future__ import annotations

import importlib
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Type, Union

from .base import Analysis

#: name -> "module:Class" (imported on first use, so ``import ibhooks`` stays light).
ANALYSES: Dict[str, str] = {
    "ib_bound": ".ib_bound:IBBoundAnalysis",  # distance of each layer to the information-bottleneck curve
    "robust": ".robust:RobustVerdicts",  # phase verdicts re-evaluated under a sweep of instrument settings
    "geometry": ".geometry:GeometryAnalysis",  # clustering statistics beside I(X;T)
    "heldout": ".heldout:HeldOutProbe",  # a second (held-out) probe measured at the same steps
    "calibration": ".calibration:CalibrationTwin",  # the estimator's error on a synthetic twin with known truth
}

AnalysisSpec = Union[str, Tuple[str, Mapping[str, Any]], Analysis]


def register_analysis(name: str, cls: Type[Analysis]) -> None:
    """Register a third-party analysis class under ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Analysis)):
        raise TypeError(f"register_analysis({name!r}, ...) needs an Analysis subclass, got {cls!r}")
    _CLASSES[name] = cls


_CLASSES: Dict[str, Type[Analysis]] = {}


def _lookup(name: str) -> Type[Analysis]:
    if name in _CLASSES:
        return _CLASSES[name]
    if name not in ANALYSES:
        known = ", ".join(sorted(set(ANALYSES) | set(_CLASSES))) or "none"
        raise ValueError(f"unknown analysis {name!r}; known analyses: {known}")
    module, _, attr = ANALYSES[name].partition(":")
    cls = getattr(importlib.import_module(module, __package__), attr)
    _CLASSES[name] = cls
    return cls


def analysis_class(name: str) -> Optional[Type[Analysis]]:
    """The class registered under ``name``, or ``None`` when no analysis has that name."""
    try:
        return _lookup(name)
    except (ValueError, ImportError, AttributeError):
        return None


def make_analysis(spec: AnalysisSpec) -> Analysis:
    """An analysis from a name, a ``(name, params)`` pair or an instance."""
    if isinstance(spec, Analysis):
        return spec
    if isinstance(spec, str):
        return _lookup(spec)()
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) \
            and isinstance(spec[1], Mapping):
        return _lookup(spec[0])(**dict(spec[1]))
    raise ValueError(
        f"analyses= takes names, (name, params) pairs or Analysis instances, got {spec!r} "
        "(e.g. analyses=['geometry'])"
    )


def build_analyses(specs: Union[AnalysisSpec, Sequence[AnalysisSpec], None]) -> List[Analysis]:
    """Analysis specs -> instances, refusing two with one name."""
    if specs is None:
        return []
    if isinstance(specs, (str, Analysis)) or (isinstance(specs, tuple) and len(specs) == 2
                                              and isinstance(specs[1], Mapping)):
        specs = [specs]
    out: List[Analysis] = []
    for spec in specs:
        analysis = make_analysis(spec)
        if any(a.name == analysis.name for a in out):
            raise ValueError(f"analysis {analysis.name!r} is given twice in analyses=; give it once")
        out.append(analysis)
    return out
