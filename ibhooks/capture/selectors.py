"""Which tensor of a module's output to monitor (tensors, tuples, dicts, HF ``ModelOutput``s)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Union

import torch

Selector = Union[int, str, Callable[[Any], torch.Tensor]]


def select_tensor(output: Any, selector: Optional[Selector] = None) -> Optional[torch.Tensor]:
    """The tensor to monitor from a module output.

    Default: a tensor as is; the first tensor of a tuple/list; ``last_hidden_state`` or the first
    tensor value of a dict or a dataclass-like ``ModelOutput``. A selector may be an index, a key /
    attribute name, or a callable ``output -> tensor``.
    """
    if selector is not None:
        if callable(selector):
            return selector(output)
        if isinstance(selector, int):
            return output[selector]
        if isinstance(output, Mapping):
            return output[selector]
        return getattr(output, selector)
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        if isinstance(output.get("last_hidden_state"), torch.Tensor):
            return output["last_hidden_state"]
        values = list(output.values())
    elif dataclasses.is_dataclass(output):
        values = [getattr(output, f.name) for f in dataclasses.fields(output)]
    elif isinstance(output, (tuple, list)):
        values = list(output)
    else:
        return None
    return next((v for v in values if isinstance(v, torch.Tensor)), None)
