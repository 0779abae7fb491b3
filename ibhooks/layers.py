"""Which modules to monitor: the ``layers=`` spec, the automatic choice, the coverage table and the
Markov chains of monitored layers that the structure shows."""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch.nn as nn

from .checks import Chain

LayerSpec = Union[str, Sequence[Union[str, Type[nn.Module]]]]

# Modules that pass information through unchanged (at probe time) or only reshape it.
_PASS_THROUGH = (
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
    nn.Identity, nn.Flatten, nn.Unflatten,
)

_POOLING = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool2d,
)

_ACTIVATIONS = {
    nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Hardtanh: "hardtanh", nn.Softsign: "softsign",
    nn.ReLU: "relu", nn.LeakyReLU: "leaky_relu", nn.ReLU6: "relu6", nn.ELU: "elu", nn.GELU: "gelu",
    nn.SiLU: "silu", nn.Softplus: "softplus", nn.Softmax: "softmax", nn.LogSoftmax: "log_softmax",
    nn.Hardsigmoid: "hardsigmoid",
}


def activation_of(module: nn.Module) -> Optional[str]:
    """Name of the output nonlinearity of ``module`` (its own type, or its last leaf's), if known."""
    for cls, name in _ACTIVATIONS.items():
        if isinstance(module, cls):
            return name
    leaves = [m for m in module.modules() if not list(m.children())]
    # pooling and pass-through modules do not change which nonlinearity produced the values
    leaves = [m for m in leaves if not isinstance(m, _PASS_THROUGH + _POOLING)]
    if leaves and leaves[-1] is not module:
        return activation_of(leaves[-1])
    return None


@dataclass
class Selection:
    """The result of resolving ``layers=``: the chosen modules, why others were skipped, the chains."""

    monitored: List[Tuple[str, nn.Module]] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)
    chains: List[Chain] = field(default_factory=list)


def _auto(root: nn.Module) -> Selection:
    """Children of nn.Sequential, blocks of a ModuleList, leaf modules elsewhere; pass-through skipped."""
    sel = Selection()

    def take_units(container: nn.Module, prefix: str, chain_name: str, source: str) -> None:
        names = []
        for name, child in container.named_children():
            full = f"{prefix}{name}"
            if isinstance(child, _PASS_THROUGH):
                sel.skipped[full] = "pass-through module (dropout/identity/reshape): carries the same information"
                continue
            sel.monitored.append((full, child))
            names.append(full)
            for sub, _ in child.named_modules():
                if sub:
                    sel.skipped[f"{full}.{sub}"] = f"inside monitored unit {full}"
        if len(names) >= 2:
            sel.chains.append(Chain(chain_name, tuple(names), source))

    def visit(module: nn.Module, prefix: str) -> None:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if isinstance(child, _PASS_THROUGH):
                sel.skipped[full] = "pass-through module (dropout/identity/reshape): carries the same information"
            elif isinstance(child, nn.Sequential):
                sel.skipped[full] = "container: its children are monitored"
                take_units(child, f"{full}.", full, "children of nn.Sequential")
            elif isinstance(child, nn.ModuleList):
                sel.skipped[full] = "container: its blocks are monitored"
                take_units(child, f"{full}.", full, "blocks of nn.ModuleList (applied in order)")
            elif not list(child.children()):
                sel.monitored.append((full, child))
            else:
                sel.skipped[full] = "composite module: its parts are monitored"
                visit(child, f"{full}.")

    if isinstance(root, nn.Sequential):
        take_units(root, "", "model", "children of nn.Sequential")
    else:
        visit(root, "")
    return sel


def _explicit(root: nn.Module, spec: Sequence[Union[str, Type[nn.Module]]]) -> Selection:
    sel = Selection()
    named = [(n, m) for n, m in root.named_modules() if n]
    chosen: Dict[str, nn.Module] = {}
    for item in spec:
        if isinstance(item, type) and issubclass(item, nn.Module):
            hits = [(n, m) for n, m in named if isinstance(m, item)]
            what = f"module type {item.__name__}"
        elif isinstance(item, str):
            if any(c in item for c in "*?["):
                hits = [(n, m) for n, m in named if fnmatch.fnmatchcase(n, item)]
                what = f"pattern {item!r}"
            else:
                hits = [(n, m) for n, m in named if n == item]
                what = f"layer name {item!r}"
                if not hits:
                    close = difflib.get_close_matches(item, [n for n, _ in named], n=3)
                    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
                    raise ValueError(
                        f"unknown layer name {item!r}: no module of the model has that name.{hint} "
                        "Names are those of model.named_modules(); glob patterns ('encoder.*') and module "
                        "types (nn.Linear) work too."
                    )
        else:
            raise TypeError(f"layers entries must be names, glob patterns or nn.Module types, got {item!r}")
        if not hits:
            raise ValueError(f"{what} in layers= matches no module of the model; see model.named_modules()")
        for n, m in hits:
            chosen.setdefault(n, m)
    order = {n: i for i, (n, _) in enumerate(named)}
    sel.monitored = sorted(chosen.items(), key=lambda kv: order[kv[0]])
    for n, _ in named:
        if n not in chosen:
            sel.skipped[n] = "not selected by layers="
    sel.chains = _sequential_chains(root, [n for n, _ in sel.monitored])
    return sel


def _sequential_chains(root: nn.Module, monitored: List[str]) -> List[Chain]:
    """Chains among explicitly chosen layers: runs of >= 2 chosen children of one nn.Sequential."""
    chains = []
    mset = set(monitored)
    for cname, container in root.named_modules():  # includes the root itself, named ""
        if not isinstance(container, nn.Sequential):
            continue
        prefix = f"{cname}." if cname else ""
        names = [f"{prefix}{n}" for n, _ in container.named_children() if f"{prefix}{n}" in mset]
        if len(names) >= 2:
            chains.append(Chain(cname or "model", tuple(names), "children of nn.Sequential"))
    return chains


def select_layers(root: nn.Module, spec: LayerSpec = "auto") -> Selection:
    """Resolve ``layers=`` against ``root`` (already unwrapped from DDP / torch.compile)."""
    if isinstance(spec, str) and spec == "auto":
        sel = _auto(root)
    elif isinstance(spec, (str, type)):
        sel = _explicit(root, [spec])
    elif isinstance(spec, Sequence):
        if len(spec) == 0:
            raise ValueError("layers= is empty; pass 'auto' or a list of layer names/patterns/types")
        sel = _explicit(root, list(spec))
    else:
        raise TypeError(f"layers must be 'auto', a name/pattern, a module type, or a list of these; got {spec!r}")
    if not sel.monitored:
        raise ValueError(
            f"no monitorable layer found in {type(root).__name__}: the model has no child modules "
            "outside dropout/identity. Pass layers=[...] naming the modules whose outputs to monitor."
        )
    return sel


def declared_chains(chains: Sequence[Sequence[str]], monitored: Sequence[str]) -> List[Chain]:
    """Validate user-declared chains (lists of monitored layer names, input side first)."""
    out = []
    known = set(monitored)
    for i, names in enumerate(chains):
        names = list(names)
        missing = [n for n in names if n not in known]
        if missing:
            raise ValueError(f"chain {i} names layers that are not monitored: {missing}; monitored: {sorted(known)}")
        if len(names) < 2:
            raise ValueError(f"chain {i} needs at least two layers, got {names}")
        out.append(Chain(f"chain{i}", tuple(names), "declared"))
    return out
