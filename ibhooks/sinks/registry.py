"""Registry of sinks: name -> "module:Class". Third-party sinks live in ``ibhooks.integrations``
and are imported only when asked for, so ``import ibhooks`` needs only torch and numpy."""
from __future__ import annotations

import importlib
from typing import Any, Dict, Type

from .base import Sink

_REGISTRY: Dict[str, str] = {
    "jsonl": "ibhooks.sinks.jsonl:JsonlSink",
    "tensorboard": "ibhooks.integrations.tensorboard:TensorBoardSink",
    "wandb": "ibhooks.integrations.wandb:WandbSink",
}


def sink_class(name: str) -> Type[Sink]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown sink {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    module_name, cls_name = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def make_sink(spec: Any, **kwargs: Any) -> Sink:
    """A Sink instance, or a registered name constructed with ``kwargs``."""
    if isinstance(spec, Sink):
        return spec
    if isinstance(spec, str):
        return sink_class(spec)(**kwargs)
    if hasattr(spec, "write") and hasattr(spec, "close"):
        return spec  # duck-typed sink
    raise TypeError(f"cannot use {spec!r} as a sink: pass a Sink instance or one of {sorted(_REGISTRY)}")
