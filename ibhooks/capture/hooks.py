"""Forward hooks that copy layer outputs, reduced to (n, d) float32 on the model's device.

Hooks exist only while a capture needs them: in probe mode they are registered around the probe
pass and removed after it (idle training steps pay nothing), in passive mode for the steps of the
capture window. Their body is compile-disabled, returns ``None``, detaches the output, selects the
tensor, reduces it, copies it to float32 and stores it in a fixed slot: a module that fires twice in
one pass (activation checkpointing) is kept once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import weakref
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from .reduction import Reduction, ReductionSpec
from .selectors import Selector, select_tensor


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
    skipped: bool = False  # found to be no per-sample representation: never captured again

    @property
    def stored_bytes(self) -> int:
        return sum(c.numel() * c.element_size() for c in self.chunks)


class Capture:
    """Owns the hooks and the slots of the monitored modules.

    ``attach()`` / ``detach()`` register and remove the hooks; ``recording()`` is the context a
    capture runs in (attached and armed). ``begin_pass(rows)`` marks a new forward pass of ``rows``
    samples: each slot keeps its first firing per pass, and an output whose first dimension is not
    ``rows`` is no per-sample representation (a position embedding) and is skipped with that reason.
    """

    def __init__(
        self,
        modules: Sequence[Tuple[str, nn.Module]],
        *,
        reduction: Union[ReductionSpec, Mapping[str, ReductionSpec]] = "auto",
        selectors: Optional[Mapping[str, Selector]] = None,
        seed: int = 0,
        whole: bool = False,
    ) -> None:
        selectors = dict(selectors or {})
        self._modules = list(modules)
        self.slots: Dict[str, LayerSlot] = {}
        for name, _ in self._modules:
            spec = reduction.get(name, "auto") if isinstance(reduction, Mapping) else reduction
            self.slots[name] = LayerSlot(
                name, Reduction(spec, seed=seed, layer=name, whole=whole), selectors.get(name)
            )
        self.armed = False
        self._rows: Optional[int] = None
        self._handles: List[Any] = []

    # -- hooks ---------------------------------------------------------------------------------
    def attach(self, compile_safe: Optional[bool] = None) -> None:
        """Register the hooks (no-op when attached). Hooks hold no strong reference to the capture.

        ``compile_safe``: wrap the hook body in ``torch.compiler.disable`` (needed when a compiled graph
        may trace the hook). Default: only where torch.compile is in use (``torch._dynamo`` imported),
        since importing it takes seconds."""
        if self._handles:
            return
        if compile_safe is None:
            compile_safe = "torch._dynamo" in sys.modules
        ref = weakref.ref(self)
        self._handles = [
            module.register_forward_hook(_make_hook(ref, name, compile_safe))
            for name, module in self._modules
        ]

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    @property
    def num_handles(self) -> int:
        return len(self._handles)

    @contextlib.contextmanager
    def recording(self) -> Iterator["Capture"]:
        """Attached and armed inside; restores the attachment state and disarms on exit."""
        was_attached = self.attached
        self.attach()
        self.arm()
        try:
            yield self
        finally:
            self.disarm()
            if not was_attached:
                self.detach()

    # -- control -------------------------------------------------------------------------------
    def arm(self) -> None:
        self.armed = True
        self.begin_pass()

    def disarm(self) -> None:
        self.armed = False

    def begin_pass(self, rows: Optional[int] = None) -> None:
        self._rows = rows
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

    def stored_bytes(self) -> int:
        return sum(s.stored_bytes for s in self.slots.values())

    def release(self) -> None:
        """Remove every hook and drop every stored tensor and projection matrix."""
        self.detach()
        self.clear()
        self.armed = False
        for slot in self.slots.values():
            slot.reduction.release()

    # -- the hook body -------------------------------------------------------------------------
    def store(self, name: str, output: Any) -> None:
        slot = self.slots[name]
        if slot.fired_in_pass or slot.skipped:
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
        if self._rows is not None and tensor.shape[0] != self._rows:
            slot.shape = tuple(tensor.shape)
            slot.error = (
                f"output's first dimension ({tensor.shape[0]}) is not the batch ({self._rows} rows): "
                "not a per-sample representation (e.g. a position embedding); skipped"
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


def _make_hook(
    capture_ref: "weakref.ReferenceType[Capture]", name: str, compile_safe: bool = True
) -> Callable[..., None]:
    def _body(output: Any) -> None:
        cap = capture_ref()
        if cap is not None and cap.armed:
            cap.store(name, output)

    if compile_safe:
        _body = torch.compiler.disable(_body)

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        _body(output)
        return None

    return hook
