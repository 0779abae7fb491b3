"""Markov chains of monitored layers from the observed data flow, not from container types.

During one forward pass (the shape-discovery pass: two probe rows, or the first passive batch),
temporary hooks record for every monitored module the storages of the tensors it receives and of
those it returns. Module B **follows** module A when B's main input (its first sample-dependent tensor
argument: the hidden states) is A's output. Storages, not tensor identity, are compared, so a view
(``flatten`` between a pool and ``fc``, ``x[:, 0]`` before a classifier) and an in-place activation
(``ReLU(inplace=True)`` returns the very tensor it received) still match.

An input is *sample-dependent* when its first dimension is the batch (and not broadcast with
stride 0); others (a causal mask ``(1, 1, L, L)``, position ids ``(1, L)``) are the same for every
sample and do not affect the chain. Other sample-dependent inputs of B that are not A's output (a
padding mask computed from X, a skip connection from an earlier layer) depend on X beyond A, so the
DPI can fail there: the chain keeps the link and names them in its ``source``.

Every output seen during the pass is held until the pass ends, so the allocator cannot reuse its
memory for an unrelated tensor that would then look like the same storage.
"""
from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from .chains import Chain, as_chains
from .layers import non_batch_reason

X = "X"  # producer name of the model's own inputs
OUTSIDE = "outside the monitored layers"  # producer of tensors computed by unmonitored code

_Key = Tuple[str, int]


def _tensors(obj: Any, where: str = "") -> Iterator[Tuple[str, torch.Tensor]]:
    """``(position, tensor)`` for every tensor in nested tuples / lists / dicts (HF ModelOutputs)."""
    if isinstance(obj, torch.Tensor):
        yield where, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _tensors(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, (tuple, list)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{where}[{i}]" if where else f"arg {i}")


def _key(t: torch.Tensor) -> Optional[_Key]:
    try:
        ptr = t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # sparse / nested / meta tensors have no plain storage
        return None
    return (str(t.device), ptr) if ptr else None


def _positional_names(module: nn.Module, n: int) -> List[str]:
    """Names of the first ``n`` positional parameters of ``module.forward`` (``arg i`` where unknown)."""
    try:
        params = [p.name for p in inspect.signature(module.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"arg {i}" for i in range(n)]


def _shape_text(shape: Tuple[int, ...], n_rows: int) -> str:
    return "x".join("B" if i == 0 and s == n_rows else str(s) for i, s in enumerate(shape))


@dataclass(frozen=True)
class SideInput:
    """A sample-dependent input of ``layer`` that is not the output of the layer it follows."""

    layer: str
    where: str  # "arg 1", "attention_mask", ...
    shape: Tuple[int, ...]
    source: str  # a monitored layer, X (the model input) or OUTSIDE

    def text(self, n_rows: int) -> str:
        return f"{self.where} ({_shape_text(self.shape, n_rows)}) from {self.source}"


@dataclass
class DataFlow:
    """What one traced forward pass showed.

    Attributes:
        chains: Maximal runs A -> B -> C of monitored layers in which each follows the previous one
            (a branch gives one chain per branch); at least two layers each.
        feeds: For each monitored layer, the monitored layers that consume its output (main or side).
        follows: ``B -> A`` when B's main input is A's output.
        side_inputs: For each layer that follows another, its X-dependent inputs from elsewhere.
        order: Monitored layers in the order they first ran.
        shapes: Each monitored layer's output shape (its first tensor), on the traced batch.
        calls: How many times each monitored layer ran (only its first call is traced).
        non_batch: Layers whose output has no batch dimension, with the reason (see
            :func:`ibhooks.layers.non_batch_reason`); they are on no chain.
        n_rows: The batch size of the traced pass.
    """

    chains: List[Chain] = field(default_factory=list)
    feeds: Dict[str, List[str]] = field(default_factory=dict)
    follows: Dict[str, str] = field(default_factory=dict)
    side_inputs: Dict[str, List[SideInput]] = field(default_factory=dict)
    order: List[str] = field(default_factory=list)
    shapes: Dict[str, Tuple[int, ...]] = field(default_factory=dict)
    calls: Dict[str, int] = field(default_factory=dict)
    non_batch: Dict[str, str] = field(default_factory=dict)
    n_rows: int = 0

    def silent(self, monitored: Mapping[str, nn.Module]) -> List[str]:
        """Monitored layers that never ran during the traced pass."""
        return [n for n in monitored if n not in self.calls]


class _Tracer:
    def __init__(self, monitored: Mapping[str, nn.Module], n_rows: Optional[int]) -> None:
        self.monitored = dict(monitored)
        self.n_rows = n_rows
        self.producer: Dict[_Key, str] = {}
        self.held: List[torch.Tensor] = []  # our only references to tensors seen: alive for the whole pass
        # per layer: (position, shape, stride of dim 0, producer) of each tensor input, and the output shape
        self.inputs: Dict[str, List[Tuple[str, Tuple[int, ...], int, Optional[str]]]] = {}
        self.outputs: Dict[str, Optional[Tuple[int, ...]]] = {}
        self.calls: Counter = Counter()
        self.order: List[str] = []
        self.root_calls = 0

    def hold(self, t: torch.Tensor, who: str) -> None:
        key = _key(t)
        if key is not None:
            self.held.append(t)
            self.producer[key] = who

    def root_pre(self, module: nn.Module, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        if self.root_calls:
            return  # the root ran again (the probe in several chunks): only the first pass is traced
        self.root_calls += 1
        found = list(_tensors(args)) + list(_tensors(kwargs))
        if self.n_rows is None and found:
            self.n_rows = int(found[0][1].shape[0]) if found[0][1].dim() else None
        for _, t in found:
            self.hold(t, X)

    def pre(self, name: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        self.calls[name] += 1
        if self.calls[name] > 1:
            return
        self.order.append(name)
        names = _positional_names(self.monitored[name], len(args))
        seen = [wt for label, a in zip(names, args) for wt in _tensors(a, label)] + list(_tensors(kwargs))
        self.inputs[name] = [(w, tuple(t.shape), t.stride(0) if t.dim() else 0, self.producer.get(_key(t)))
                             for w, t in seen]

    def post(self, name: str, output: Any) -> None:
        if self.calls[name] > 1 or name in self.outputs:
            return
        found = list(_tensors(output))
        self.outputs[name] = tuple(found[0][1].shape) if found else None
        for _, t in found:
            self.hold(t, name)

    def release(self) -> None:
        self.held.clear()
        self.inputs.clear()
        self.outputs.clear()

    def sample_dependent(self, shape: Tuple[int, ...], stride0: int) -> bool:
        return len(shape) > 0 and shape[0] == self.n_rows and (shape[0] == 1 or stride0 != 0)

    def result(self) -> DataFlow:
        if self.n_rows is None:  # the root never ran: take the commonest leading size of the outputs
            firsts = [s[0] for s in self.outputs.values() if s]
            self.n_rows = Counter(firsts).most_common(1)[0][0] if firsts else 0
        flow = DataFlow(order=list(self.order), calls=dict(self.calls), n_rows=int(self.n_rows))
        for name, shape in self.outputs.items():
            if shape is None:
                flow.non_batch[name] = "no batch dimension: the module returned no tensor"
                continue
            flow.shapes[name] = shape
            why = non_batch_reason(shape, flow.n_rows)
            if why:
                flow.non_batch[name] = why
        feeds: Dict[str, List[str]] = {n: [] for n in self.order}
        for name in self.order:
            if name in flow.non_batch:
                continue
            deps = [(w, shp, p) for w, shp, st, p in self.inputs[name] if self.sample_dependent(shp, st)]
            for _, _, p in deps:
                if p in feeds and p not in flow.non_batch and name not in feeds[p]:
                    feeds[p].append(name)
            if not deps:
                continue
            main = deps[0][2]
            if main in self.monitored and main not in flow.non_batch:
                flow.follows[name] = main
                side = [SideInput(name, w, shape, p or OUTSIDE) for w, shape, p in deps[1:] if p != main]
                if side:
                    flow.side_inputs[name] = side
        flow.feeds = feeds
        flow.chains = self.chains(flow)
        return flow

    def chains(self, flow: DataFlow) -> List[Chain]:
        followers: Dict[str, List[str]] = {}
        for b, a in flow.follows.items():
            followers.setdefault(a, []).append(b)
        out = []
        for root in (n for n in self.order if n in followers and n not in flow.follows):
            stack = [[root]]
            while stack:
                path = stack.pop()
                nxt = followers.get(path[-1], [])
                if not nxt:
                    out.append(Chain(_common_name(path), tuple(path), _source(path, flow)))
                stack.extend(path + [b] for b in reversed(nxt))
        return list(as_chains(out))


def _common_name(path: List[str]) -> str:
    parts = [p.split(".") for p in path]
    common = []
    for segs in zip(*parts):
        if len(set(segs)) > 1:
            break
        common.append(segs[0])
    return ".".join(common) or "model"


def _source(path: List[str], flow: DataFlow) -> str:
    text = "data flow: each layer consumes the previous one's output"
    groups: Dict[str, List[str]] = {}
    for layer in path[1:]:
        for s in flow.side_inputs.get(layer, []):
            groups.setdefault(s.text(flow.n_rows), []).append(layer)
    if groups:
        named = "; ".join(f"{what} into {ls[0]}" + (f" .. {ls[-1]} ({len(ls)} layers)" if len(ls) > 1 else "")
                          for what, ls in groups.items())
        text += f"; side inputs that depend on X (the DPI may not hold there): {named}"
    return text


def trace_chains(model: nn.Module, monitored: Mapping[str, nn.Module], run_forward: Callable[[], None], *,
                 n_rows: Optional[int] = None) -> DataFlow:
    """Run ``run_forward()`` once with temporary hooks on ``monitored`` (name -> module of ``model``)
    and return the :class:`DataFlow` it shows. The caller chooses the pass (eval mode, ``no_grad``,
    a couple of probe rows); the hooks are removed afterwards, whatever happens.

    ``n_rows`` is the batch size of that pass; by default the leading size of the first tensor
    ``model`` receives (so a pass of one row cannot tell sample-dependent inputs apart: use >= 2).
    """
    if not monitored:
        raise ValueError("trace_chains needs at least one monitored module; got none")
    tracer = _Tracer(monitored, n_rows)
    handles = [model.register_forward_pre_hook(tracer.root_pre, with_kwargs=True)]
    try:
        for name, module in monitored.items():
            handles.append(module.register_forward_pre_hook(
                lambda m, a, k, n=name: tracer.pre(n, a, k), with_kwargs=True))
            handles.append(module.register_forward_hook(
                lambda m, a, k, o, n=name: tracer.post(n, o), with_kwargs=True))
        run_forward()
        return tracer.result()
    finally:
        for h in handles:
            h.remove()
        tracer.release()
