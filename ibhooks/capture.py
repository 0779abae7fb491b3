"""Forward hooks that copy layer outputs, reduced to (n, d) float32 on the model's device.

Hooks are registered once and stay registered. Their body is compile-disabled, returns ``None``
and does nothing unless a capture is armed; an armed hook detaches the output, selects the tensor
(tuple / dict / ModelOutput outputs), reduces it, copies it to float32 and stores it in a fixed
slot: a module that fires twice in one pass (activation checkpointing) is kept once.
"""
from __future__ import annotations

import dataclasses
import math
import weakref
import zlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn as nn

Selector = Union[int, str, Callable[[Any], torch.Tensor]]
ReductionSpec = Union[str, Tuple[str, int]]

AUTO_MAX_DIM = 1024
AUTO_PROJECT_DIM = 256


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


class Reduction:
    """Maps a layer output (batch, ...) to (batch, d): flatten, mean-pool, or random projection.

    ``"auto"``: flatten if the output has at most 1024 values per sample; otherwise mean-pool over
    space (channels-first, >= 4-D) or tokens (3-D, batch-first), then project to 256 dims if still larger.
    The name of the reduction goes into every figure's ``quantity``.
    """

    def __init__(self, spec: ReductionSpec = "auto", *, seed: int = 0, layer: str = "") -> None:
        if isinstance(spec, str) and spec.startswith("project:"):
            spec = ("project", int(spec.split(":", 1)[1]))
        if isinstance(spec, tuple):
            if len(spec) != 2 or spec[0] != "project" or not isinstance(spec[1], int) or spec[1] < 1:
                raise ValueError(f"a projection reduction is ('project', k) with k >= 1, got {spec!r}")
        elif spec not in ("auto", "flatten", "mean"):
            raise ValueError(f"reduction must be 'auto', 'flatten', 'mean', 'project:k' or ('project', k); got {spec!r}")
        self.spec = spec
        self._seed = (int(seed) * 1_000_003 + zlib.crc32(layer.encode())) % (2**63)
        self._proj: Optional[torch.Tensor] = None
        self.resolved: Optional[List[str]] = None  # the steps actually applied, decided on first use

    @staticmethod
    def _pool(x: torch.Tensor) -> torch.Tensor:
        if x.dim() >= 4:
            return x.flatten(2).mean(dim=2)  # (B, C, *spatial) -> (B, C)
        if x.dim() == 3:
            return x.mean(dim=1)  # (B, L, D) -> (B, D)
        return x

    def _plan(self, x: torch.Tensor) -> List[str]:
        per_sample = x[0].numel() if x.shape[0] else 0
        if self.spec == "flatten":
            return ["flatten"]
        if self.spec == "mean":
            return ["mean", "flatten"]
        if isinstance(self.spec, tuple):
            return ["flatten", f"project{self.spec[1]}"]
        if per_sample <= AUTO_MAX_DIM or x.dim() <= 2:
            steps = ["flatten"]
            if per_sample > AUTO_MAX_DIM:
                steps.append(f"project{AUTO_PROJECT_DIM}")
            return steps
        pooled = int(self._pool(x[:1]).numel())
        steps = ["mean", "flatten"]
        if pooled > AUTO_MAX_DIM:
            steps.append(f"project{AUTO_PROJECT_DIM}")
        return steps

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.resolved is None:
            self.resolved = self._plan(x)
        out = x
        for step in self.resolved:
            if step == "mean":
                out = self._pool(out)
            elif step == "flatten":
                out = out.reshape(out.shape[0], -1)
            else:
                k = int(step[len("project"):])
                if self._proj is None or self._proj.shape[0] != out.shape[1]:
                    gen = torch.Generator().manual_seed(self._seed)  # own stream: user RNG untouched
                    proj = torch.randn(out.shape[1], k, generator=gen) / math.sqrt(k)
                    self._proj = proj.to(out.device)
                out = out @ self._proj.to(out.device)
        return out

    @property
    def name(self) -> str:
        """How the variable was changed, e.g. ``"flatten"`` or ``"mean>flatten>project256"``."""
        if self.resolved is None:
            return str(self.spec if not isinstance(self.spec, tuple) else f"project:{self.spec[1]}")
        return ">".join(self.resolved)

    @property
    def lossless(self) -> bool:
        """Whether T is the layer output itself (only reshaped): required for a DPI chain."""
        return self.resolved is not None and self.resolved == ["flatten"]


@dataclasses.dataclass
class LayerSlot:
    """Per-layer capture state: reduction, last seen output shape, stored chunks of this pass set."""

    name: str
    reduction: Reduction
    selector: Optional[Selector] = None
    shape: Optional[Tuple[int, ...]] = None
    dtype: Optional[str] = None
    dim: Optional[int] = None
    error: Optional[str] = None
    chunks: List[torch.Tensor] = dataclasses.field(default_factory=list)
    fired_in_pass: bool = False


class Capture:
    """Owns the hooks and the slots. ``arm()`` / ``disarm()`` switch storing on and off;
    ``begin_pass()`` marks a new forward pass (each slot keeps its first firing per pass)."""

    def __init__(
        self,
        modules: List[Tuple[str, nn.Module]],
        *,
        reduction: Union[ReductionSpec, Mapping[str, ReductionSpec]] = "auto",
        selectors: Optional[Mapping[str, Selector]] = None,
        seed: int = 0,
    ) -> None:
        selectors = dict(selectors or {})
        self.slots: Dict[str, LayerSlot] = {}
        for name, _ in modules:
            spec = reduction.get(name, "auto") if isinstance(reduction, Mapping) else reduction
            self.slots[name] = LayerSlot(name, Reduction(spec, seed=seed, layer=name), selectors.get(name))
        self.armed = False
        self._handles: List[Any] = []
        ref = weakref.ref(self)  # hooks hold no strong reference: no cycle pins activations
        for name, module in modules:
            self._handles.append(module.register_forward_hook(_make_hook(ref, name)))

    # -- control -------------------------------------------------------------------------------
    def arm(self) -> None:
        self.armed = True
        self.begin_pass()

    def disarm(self) -> None:
        self.armed = False

    def begin_pass(self) -> None:
        for slot in self.slots.values():
            slot.fired_in_pass = False

    def clear(self) -> None:
        for slot in self.slots.values():
            slot.chunks.clear()
            slot.fired_in_pass = False

    def take(self) -> Dict[str, torch.Tensor]:
        """Concatenate and hand over what was stored since the last ``clear``; clears the slots."""
        out = {}
        for name, slot in self.slots.items():
            if slot.chunks:
                out[name] = torch.cat(slot.chunks, dim=0) if len(slot.chunks) > 1 else slot.chunks[0]
        self.clear()
        return out

    def rows_this_pass(self) -> Dict[str, int]:
        return {n: int(s.chunks[-1].shape[0]) for n, s in self.slots.items() if s.fired_in_pass and s.chunks}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.clear()
        self.armed = False

    @property
    def num_handles(self) -> int:
        return len(self._handles)

    # -- the hook body ---------------------------------------------------------------------------
    def store(self, name: str, output: Any) -> None:
        slot = self.slots[name]
        if slot.fired_in_pass:
            return  # fixed slot: a module firing twice in a pass (checkpoint recompute) is kept once
        slot.fired_in_pass = True
        try:
            tensor = select_tensor(output, slot.selector)
        except Exception as exc:  # noqa: BLE001 - a bad selector must not break the forward pass
            slot.error = f"output selector failed: {exc!r}"
            return
        if not isinstance(tensor, torch.Tensor) or tensor.dim() == 0:
            slot.error = (
                f"output is {type(output).__name__} with no tensor to monitor; "
                f"pass selectors={{{name!r}: <index | key | callable>}}"
            )
            return
        # float32 throughout, also inside the user's autocast region (a projection would run in bf16)
        with torch.no_grad(), torch.autocast(tensor.device.type, enabled=False):
            t = tensor.detach()
            slot.shape = tuple(t.shape)
            slot.dtype = str(t.dtype).replace("torch.", "")
            reduced = slot.reduction(t.to(torch.float32))
            # Always a copy: the live output may be modified in place later (e.g. ReLU(inplace=True)).
            reduced = reduced.to(torch.float32, copy=True)
        slot.dim = int(reduced.shape[1])
        slot.error = None
        slot.chunks.append(reduced)


def _make_hook(capture_ref: "weakref.ReferenceType[Capture]", name: str) -> Callable[..., None]:
    @torch.compiler.disable
    def _body(output: Any) -> None:
        cap = capture_ref()
        if cap is not None and cap.armed:
            cap.store(name, output)

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        _body(output)
        return None

    return hook
