"""Registry of estimators: name -> class. Adding an estimator = one file + one line here."""
from __future__ import annotations

import importlib
from typing import Any, Dict, Mapping, Sequence, Tuple, Type, Union

from .base import Estimator

# name -> "module:Class", imported on first use so that `import ibhooks` stays light.
_REGISTRY: Dict[str, str] = {
    "binning": "ibhooks.estimators.binning:Binning",
    "binning_adaptive": "ibhooks.estimators.binning:AdaptiveBinning",
    "kde": "ibhooks.estimators.kde:KDE",
    "noisy_channel": "ibhooks.estimators.noisy_channel:NoisyChannel",
    "ksg": "ibhooks.estimators.knn:KSG",
    "ross": "ibhooks.estimators.knn:Ross",
    "renyi": "ibhooks.estimators.renyi:MatrixRenyi",
    "infonce": "ibhooks.estimators.infonce:InfoNCE",
    "classifier_probe": "ibhooks.estimators.classifier_probe:ClassifierProbe",
    "gaussian": "ibhooks.estimators.gaussian:GaussianMI",
    "gcmi": "ibhooks.estimators.gcmi:GaussianCopulaMI",
    "auto": "ibhooks.estimators.auto:Auto",
    "exact": "ibhooks.estimators.exact:Exact",
}

EstimatorSpec = Union[str, Estimator, Tuple[str, Mapping[str, Any]]]


def available() -> Sequence[str]:
    """Names of all registered estimators."""
    return tuple(_REGISTRY)


def register(name: str, target: Union[str, Type[Estimator]]) -> None:
    """Register an estimator class (or a ``"module:Class"`` path) under ``name``."""
    if isinstance(target, type):
        target = f"{target.__module__}:{target.__qualname__}"
    _REGISTRY[name] = target


def estimator_class(name: str) -> Type[Estimator]:
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown estimator {name!r}; available: {', '.join(sorted(_REGISTRY))}. "
            "Pass one of these names, an Estimator instance, or (name, params)."
        )
    module_name, cls_name = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def make_estimator(spec: EstimatorSpec) -> Estimator:
    """Turn a name, ``(name, params)`` pair or instance into an :class:`Estimator`."""
    if isinstance(spec, Estimator):
        return spec
    if isinstance(spec, str):
        return estimator_class(spec)()
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str) and isinstance(spec[1], Mapping):
        return estimator_class(spec[0])(**dict(spec[1]))
    raise TypeError(
        f"cannot make an estimator from {spec!r}: pass a registered name (e.g. 'binning'), "
        "an Estimator instance, or a (name, params_dict) tuple"
    )
