"""Forward hooks that copy layer outputs, reduced to (n, d) float32 on the model's device.

Hooks exist only while a capture needs them: in probe mode they are registered around the probe
pass and removed after it (idle training steps pay nothing), in passive mode for the steps of the
capture window. Their body is compile-disabled, returns ``None``, detaches the output, selects the
tensor, reduces it, copies it to float32 and stores it in a fixed slot: a module that fires twice in
one pass (activation checkpointing) is kept once.

Passive mode (``track_passes``) keeps every *training* forward pass (grad enabled and the model in
training mode; a validation forward in eval mode or under ``no_grad`` is neither stored nor counted),
each as its own numbered pass, so that the labels of every micro-batch can be paired with it by order.
A pass begins at the model's own forward (a pre-hook on the root module); where the model's forward is
never called (a LightningModule whose ``training_step`` calls a submodule), a monitored module firing a
second time outside the backward pass begins the next one. Passes beyond the byte share are dropped
but counted (their rows are known), so the pairing by order still holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
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
    chunk_pass: List[int] = dataclasses.field(default_factory=list)  # passive: the pass of each chunk
    fired_in_pass: bool = False
    skipped: bool = False  # found to be no per-sample representation: never captured again
    projection_refused: int = 0  # bytes of a projection matrix refused by the memory budget

    @property
    def stored_bytes(self) -> int:
        return sum(c.numel() * c.element_size() for c in self.chunks)


@dataclasses.dataclass
class PassInfo:
    """One training forward pass seen in passive mode: the first dimension of each output it stored
    (the batch rows) and whether it was dropped for lack of memory (kept as a count only)."""

    index: int
    first_dims: List[int] = dataclasses.field(default_factory=list)
    dropped: bool = False

    @property
    def rows(self) -> Optional[int]:
        """The batch rows: the first dimension most of its outputs share (None: nothing fired)."""
        if not self.first_dims:
            return None
        return max(set(self.first_dims), key=lambda r: (self.first_dims.count(r), r))


def _in_backward() -> bool:
    """Inside autograd's backward (activation checkpointing recomputes forwards there)."""
    task = getattr(torch._C, "_current_graph_task_id", None)
    return task is not None and task() != -1


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
        self._module_of = dict(self._modules)
        self.slots: Dict[str, LayerSlot] = {}
        for name, _ in self._modules:
            spec = reduction.get(name, "auto") if isinstance(reduction, Mapping) else reduction
            self.slots[name] = LayerSlot(
                name, Reduction(spec, seed=seed, layer=name, whole=whole), selectors.get(name)
            )
        self.armed = False
        self._rows: Optional[int] = None
        self._handles: List[Any] = []  # one forward hook per monitored module
        self._pre_handle: Any = None  # passive mode: the root module's forward pre-hook
        # passive mode: every training forward is its own pass (see track_passes)
        self._root: Optional[nn.Module] = None
        self._root_seen = False
        self._training_pass = False
        self.passes: List[PassInfo] = []
        self.pass_limit_bytes: Optional[int] = None
        self._pass_bytes = 0
        #: bytes the projection matrices may take in all (None: no limit); a layer whose projection would
        #: exceed it is skipped with that reason before the matrix is made
        self.projection_limit_bytes: Optional[int] = None

    def track_passes(self, root: nn.Module, max_bytes: Optional[int] = None) -> None:
        """Passive mode: keep every training forward of ``root`` as its own pass (at most ``max_bytes``
        of stored outputs in all; later passes are counted, not stored). Call before ``attach``."""
        self._root = root
        self.pass_limit_bytes = max_bytes

    @property
    def tracks_passes(self) -> bool:
        return self._root is not None

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
        if self._root is not None:
            self._pre_handle = self._root.register_forward_pre_hook(_make_pre_hook(ref, compile_safe))

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if self._pre_handle is not None:
            self._pre_handle.remove()
            self._pre_handle = None

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    @property
    def num_handles(self) -> int:
        return len(self._handles)

    @property
    def projection_bytes(self) -> int:
        """Bytes of the projection matrices held now."""
        return sum(s.reduction.held_bytes for s in self.slots.values())

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
        if self.tracks_passes:
            return  # passive passes begin at the model's own forward (or a module firing again)
        for slot in self.slots.values():
            slot.fired_in_pass = False

    def clear(self) -> None:
        for slot in self.slots.values():
            slot.chunks.clear()
            slot.chunk_pass.clear()
            slot.fired_in_pass = False
        self.passes = []
        self._pass_bytes = 0
        self._training_pass = False

    def take(self) -> Dict[str, torch.Tensor]:
        """Concatenate and hand over what was stored since the last ``clear``; clears the slots."""
        out = {}
        for name, slot in self.slots.items():
            if slot.chunks:
                out[name] = torch.cat(slot.chunks, dim=0) if len(slot.chunks) > 1 else slot.chunks[0]
        self.clear()
        return out

    def take_passes(self) -> "List[Tuple[PassInfo, Dict[str, torch.Tensor]]]":
        """Passive mode: every training pass since the last ``clear``, in order, with its outputs (empty
        for a dropped pass); clears the slots."""
        out: List[Tuple[PassInfo, Dict[str, torch.Tensor]]] = [(p, {}) for p in self.passes]
        pos = {p.index: i for i, p in enumerate(self.passes)}
        for name, slot in self.slots.items():
            for chunk, k in zip(slot.chunks, slot.chunk_pass):
                if k in pos:
                    out[pos[k]][1][name] = chunk
        self.clear()
        return out

    def stored_bytes(self) -> int:
        return sum(s.stored_bytes for s in self.slots.values())

    def release(self) -> None:
        """Remove every hook and drop every stored tensor and projection matrix."""
        self.detach()
        self.clear()
        self.armed = False
        self._root = None
        for slot in self.slots.values():
            slot.reduction.release()

    # -- passive passes ------------------------------------------------------------------------
    def root_forward(self, training: bool) -> None:
        """The model's own forward begins (pre-hook): a new pass if it is a training forward."""
        if not self.armed:
            return
        self._root_seen = True
        self._training_pass = training
        if training:
            self._new_pass()

    def _new_pass(self) -> None:
        self.passes.append(PassInfo(self.passes[-1].index + 1 if self.passes else 0))
        for slot in self.slots.values():
            slot.fired_in_pass = False

    def _passive_gate(self, slot: LayerSlot, module_training: bool) -> bool:
        """Whether this firing belongs to a training pass and is its first of this slot (opens passes
        where the model's own forward is never called)."""
        if self._root_seen:
            return self._training_pass and not slot.fired_in_pass
        if not (torch.is_grad_enabled() and module_training):
            return False  # validation / no_grad forward: neither stored nor counted
        if _in_backward():
            return False  # activation checkpointing's recomputation of a pass already kept
        if not self.passes or slot.fired_in_pass:
            self._new_pass()
        return True

    def _keep_in_pass(self, slot: LayerSlot, rows: int, reduced_bytes: Callable[[], int]) -> bool:
        """Record this output's rows in the current pass; False when the pass is (now) dropped."""
        current = self.passes[-1]
        current.first_dims.append(rows)
        if current.dropped:
            return False
        limit = self.pass_limit_bytes
        if limit is not None and self._pass_bytes + reduced_bytes() > limit:
            current.dropped = True  # over the share: drop what this pass stored, keep its count
            for s in self.slots.values():
                if s.chunk_pass and s.chunk_pass[-1] == current.index:  # one chunk per slot and pass
                    self._pass_bytes -= s.chunks.pop().numel() * 4
                    s.chunk_pass.pop()
            return False
        return True

    # -- the hook body -------------------------------------------------------------------------
    def store(self, name: str, output: Any) -> None:
        slot = self.slots[name]
        if slot.skipped:
            return
        if self.tracks_passes:
            if not self._passive_gate(slot, self._module_of[name].training):
                return
        elif slot.fired_in_pass:
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
        if not self._projection_fits(slot, tensor):
            return
        if self.tracks_passes:
            rows = int(tensor.shape[0])
            width = slot.dim or math.prod(tensor.shape[1:])
            if not self._keep_in_pass(slot, rows, lambda: rows * width * 4):
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
        if self.tracks_passes:
            slot.chunk_pass.append(self.passes[-1].index)
            self._pass_bytes += reduced.numel() * 4

    def _projection_fits(self, slot: LayerSlot, tensor: torch.Tensor) -> bool:
        """Plan the reduction on the first output; a projection matrix that would take the projections
        over ``projection_limit_bytes`` is never made: the layer is skipped with the numbers and the fix."""
        red = slot.reduction
        if red.resolved is not None:
            return True
        red.resolved = red.plan(tensor)
        slot.shape = tuple(tensor.shape)
        need = red.projection_bytes(math.prod(tensor.shape[1:]))
        limit = self.projection_limit_bytes
        if not need or limit is None:
            return True
        planned = sum(s.reduction.projection_bytes(math.prod(s.shape[1:])) for s in self.slots.values()
                      if s is not slot and s.shape and s.reduction.resolved and not s.skipped)
        if planned + need <= limit:
            return True
        slot.projection_refused = need
        slot.error = (
            f"its random projection matrix ({need / 2**20:.1f} MiB for {math.prod(tensor.shape[1:])} values "
            f"per sample) would take the projections to {(planned + need) / 2**20:.1f} MiB, over the "
            f"{limit / 2**20:.1f} MiB they may use of memory_budget_mb; skipped. Give this layer "
            "reduction='mean' or 'project:k' with a smaller k, or raise memory_budget_mb"
        )
        slot.skipped = True
        return False


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


def _make_pre_hook(
    capture_ref: "weakref.ReferenceType[Capture]", compile_safe: bool = True
) -> Callable[..., None]:
    """The root module's forward pre-hook of passive mode: a training forward begins a new pass."""

    def _body(training: bool) -> None:
        cap = capture_ref()
        if cap is not None and cap.armed:
            cap.root_forward(training and torch.is_grad_enabled())

    if compile_safe:
        _body = torch.compiler.disable(_body)

    def pre_hook(module: nn.Module, args: Any) -> None:
        _body(module.training)
        return None

    return pre_hook
