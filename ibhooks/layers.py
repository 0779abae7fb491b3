"""Which modules to monitor: the ``layers=`` spec (names, globs, module types) and the automatic choice.

The automatic choice (``layers="auto"``) picks the layers a person names when describing a model: the
stem, each residual block or stage, each transformer block (the residual stream), the final norm or
pool and the head. It uses the module tree only, no model-specific names:

1. A **block sequence** is an ``nn.Sequential`` or ``nn.ModuleList`` whose children (dropout and
   identity aside) are all composite modules: ResNet's ``layer1``, HF ``encoder.layer`` / GPT-2's
   ``h`` / ViT's ``layers`` / ResNet's and ConvNeXt's ``encoder.stages``, timm's ``blocks`` and
   ``stages``.
2. The children of an ``nn.Sequential`` or ``nn.ModuleList`` met on the way down are monitored as
   units (the blocks, or the layers of a plain ``nn.Sequential`` model: SZT's MLP is unchanged).
3. At a **trunk level**, a level where some child contains a block sequence, every other composite
   child (an ``nn.Sequential`` without blocks included) is one unit: the embedding module (HF
   ``embeddings`` / ``embedder``, timm ``patch_embed``), a pooler, a head (HF ResNet's
   ``classifier``); leaf children (``wte``, ``ln_f``, ``avgpool``, ``fc``) are monitored as they
   are. A run of conv / norm / activation / pooling leaves before the first block sequence
   (torchvision's ``conv1, bn1, relu, maxpool``) is one **stem**: only its last module is monitored.
4. Elsewhere composite modules are opened and their leaves monitored (small hand-written models).
5. Dropout, identity and reshape modules are skipped (they carry the same information).

Modules whose output has no batch dimension (position embeddings return ``(1, L, d)``) can only be
recognised from shapes: :func:`non_batch_reason` tells the capture, :meth:`Selection.drop` removes them.

Skip reasons read ``"<kind>: <detail>"`` so a coverage table can count them by kind.
"""
from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Set, Tuple, Type, Union

import torch.nn as nn

from .chains import Chain

LayerSpec = Union[str, Type[nn.Module], Sequence[Union[str, Type[nn.Module]]]]

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

# Leaf modules that make up a convolutional stem (rule 3).
_STEM_PARTS = (
    nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm,
    *_POOLING, *_ACTIVATIONS,
)

PASS_THROUGH_REASON = "pass-through: dropout/identity/reshape carry the same information"
NOT_SELECTED_REASON = "not selected: not matched by layers="
GLOB_HELP = ("in patterns '*' and '?' stay within one dotted segment ('encoder.layers.*' = the blocks), "
             "'**' crosses segments ('encoder.**' = every module inside encoder)")


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


def non_batch_reason(output_shape: Sequence[int], n_rows: int) -> Optional[str]:
    """Why an output of ``output_shape``, seen on an input of ``n_rows`` rows, is not a per-sample
    representation (``None`` if it is): no leading dimension, or a leading dimension that is not
    the batch (a position embedding's ``(1, L, d)``, a buffer returned as an output)."""
    shape = tuple(int(s) for s in output_shape)
    if not shape:
        return "no batch dimension: the output is a scalar, not one representation per sample"
    if shape[0] != n_rows:
        dims = "x".join(map(str, shape))
        return (f"no batch dimension: output {dims} has first dimension {shape[0]} on an "
                f"input of {n_rows} rows, so it is the same for every sample (a position embedding or a "
                "buffer), not a per-sample representation")
    return None


@dataclass
class Selection:
    """The result of resolving ``layers=``: the chosen modules, why others were skipped, the chains.

    ``chains`` are the structural candidates (runs of units in one ``nn.Sequential`` /
    ``nn.ModuleList``); :func:`ibhooks.dataflow.trace_chains` finds the chains the data flow shows.
    """

    monitored: List[Tuple[str, nn.Module]] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)
    chains: List[Chain] = field(default_factory=list)

    @property
    def names(self) -> List[str]:
        return [n for n, _ in self.monitored]

    def drop(self, reasons: Mapping[str, str]) -> "Selection":
        """A copy without the monitored layers named in ``reasons`` (now skipped, with that reason);
        chains keep the remaining layers (a chain left with fewer than two is dropped)."""
        unknown = [n for n in reasons if n not in self.names]
        if unknown:
            raise ValueError(f"Selection.drop: {unknown} are not monitored; monitored: {self.names}")
        keep = [(n, m) for n, m in self.monitored if n not in reasons]
        chains = [c for c in (ch.restricted(n for n, _ in keep) for ch in self.chains) if c is not None]
        return Selection(keep, {**self.skipped, **dict(reasons)}, chains)


# ----------------------------------------------------------------------------------------------
# Automatic selection
# ----------------------------------------------------------------------------------------------
def _is_leaf(m: nn.Module) -> bool:
    return not any(True for _ in m.children())


def _is_block_sequence(m: nn.Module) -> bool:
    if not isinstance(m, (nn.Sequential, nn.ModuleList)):
        return False
    kids = [c for c in m.children() if not isinstance(c, _PASS_THROUGH)]
    return bool(kids) and not any(_is_leaf(c) for c in kids)


class _Auto:
    """Applies the rules of the module docstring to one model."""

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self.sel = Selection()
        block_seqs = {id(m) for m in root.modules() if _is_block_sequence(m)}
        self._has_blocks: Dict[int, bool] = {}
        for m in root.modules():
            self._has_blocks[id(m)] = any(id(x) in block_seqs for x in m.modules())

    def has_blocks(self, m: nn.Module) -> bool:
        return self._has_blocks[id(m)]

    def run(self) -> Selection:
        if isinstance(self.root, (nn.Sequential, nn.ModuleList)):
            self.take_units(self.root, "", "model", f"children of nn.{type(self.root).__name__}")
        else:
            self.visit(self.root, "")
        return self.sel

    def monitor_unit(self, full: str, module: nn.Module) -> None:
        self.sel.monitored.append((full, module))
        for sub, _ in module.named_modules():
            if sub:
                self.sel.skipped[f"{full}.{sub}"] = f"inside monitored unit: {full}"

    def take_units(self, container: nn.Module, prefix: str, chain_name: str, source: str) -> None:
        names = []
        for name, child in container.named_children():
            full = f"{prefix}{name}"
            if isinstance(child, _PASS_THROUGH):
                self.sel.skipped[full] = PASS_THROUGH_REASON
                continue
            self.monitor_unit(full, child)
            names.append(full)
        if len(names) >= 2:
            self.sel.chains.append(Chain(chain_name, tuple(names), source))

    def stem(self, kids: List[Tuple[str, nn.Module]]) -> Tuple[Set[str], str]:
        """The stem leaves before the first block-holding child (all but the last), and the last."""
        run: List[str] = []
        for name, child in kids:
            if self.has_blocks(child):
                break
            if isinstance(child, _PASS_THROUGH):
                continue
            run = run + [name] if _is_leaf(child) and isinstance(child, _STEM_PARTS) else []
        else:
            return set(), ""  # no block sequence at this level
        return (set(run[:-1]), run[-1]) if len(run) >= 2 else (set(), "")

    def visit(self, module: nn.Module, prefix: str) -> None:
        kids = list(module.named_children())
        trunk = any(self.has_blocks(c) for _, c in kids)
        stem, stem_last = self.stem(kids) if trunk else (set(), "")
        for name, child in kids:
            full = f"{prefix}{name}"
            if isinstance(child, _PASS_THROUGH):
                self.sel.skipped[full] = PASS_THROUGH_REASON
            elif name in stem:
                self.sel.skipped[full] = f"stem: monitored at its last module {prefix}{stem_last}"
            elif _is_leaf(child):
                self.sel.monitored.append((full, child))
            elif isinstance(child, nn.ModuleList) or (isinstance(child, nn.Sequential)
                                                     and (self.has_blocks(child) or not trunk)):
                what = "blocks" if _is_block_sequence(child) else "children"
                self.sel.skipped[full] = f"container: its {what} are monitored"
                kind = "blocks of nn.ModuleList (applied in order)" if isinstance(child, nn.ModuleList) \
                    else "children of nn.Sequential"
                self.take_units(child, f"{full}.", full, kind)
            elif trunk and not self.has_blocks(child):
                self.monitor_unit(full, child)  # stem / embeddings / pooler / head as one unit
            else:
                self.sel.skipped[full] = "composite: its parts are monitored"
                self.visit(child, f"{full}.")


# ----------------------------------------------------------------------------------------------
# Explicit selection: names, globs, module types
# ----------------------------------------------------------------------------------------------
def glob_to_regex(pattern: str) -> "re.Pattern[str]":
    """Compile a layer-name glob: ``*`` / ``?`` / ``[...]`` within one dotted segment, ``**`` across
    segments (``a.**.b`` also matches ``a.b``; ``a.**`` is every module below ``a``)."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        if pattern.startswith("**", i):
            at_start = i == 0 or pattern[i - 1] == "."
            if at_start and pattern.startswith("**.", i):
                out.append(r"(?:.+\.)?")  # zero or more whole segments
                i += 3
                continue
            out.append(".+" if at_start and i + 2 == n else ".*")
            i += 2
        elif pattern[i] == "*":
            out.append(r"[^.]*")
            i += 1
        elif pattern[i] == "?":
            out.append(r"[^.]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            j = pattern.index("]", i + 2)
            body = pattern[i + 1:j]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _no_match(pattern: str, names: List[str]) -> ValueError:
    crossing = [x for x in names if fnmatch.fnmatchcase(x, pattern)]
    close = crossing[:3] or difflib.get_close_matches(pattern, names, n=3, cutoff=0.5)
    # the same pattern over names of its depth: 'encoder.layer.*' -> 'encoder.layers.*'
    segs = pattern.split(".")
    shaped = {".".join(p if any(c in p for c in "*?[") else q for p, q in zip(segs, x.split(".")))
              for x in names if x.count(".") == len(segs) - 1}
    better = [q for q in difflib.get_close_matches(pattern, sorted(shaped), n=2, cutoff=0.6)
              if any(glob_to_regex(q).match(x) for x in names)]
    hint = f" Did you mean {' or '.join(map(repr, better))}?" if better and not crossing else ""
    hint += f" Close names: {', '.join(map(repr, close))}." if close else ""
    if crossing:
        hint += f" (they match if '*' may cross dots: write {pattern.replace('*', '**')!r})."
    return ValueError(f"pattern {pattern!r} in layers= matches no module of the model.{hint} "
                      f"Note: {GLOB_HELP}; the names are those of model.named_modules().")


def _explicit(root: nn.Module, spec: Sequence[Union[str, Type[nn.Module]]]) -> Selection:
    sel = Selection()
    named = [(n, m) for n, m in root.named_modules() if n]
    names = [n for n, _ in named]
    chosen: Dict[str, nn.Module] = {}
    for item in spec:
        if isinstance(item, type) and issubclass(item, nn.Module):
            hits = [(n, m) for n, m in named if isinstance(m, item)]
            if not hits:
                raise ValueError(f"module type {item.__name__} in layers= matches no module of the model; "
                                 "see model.named_modules()")
        elif isinstance(item, str):
            if any(c in item for c in "*?["):
                rx = glob_to_regex(item)
                hits = [(n, m) for n, m in named if rx.match(n)]
                if not hits:
                    raise _no_match(item, names)
            else:
                hits = [(n, m) for n, m in named if n == item]
                if not hits:
                    close = difflib.get_close_matches(item, names, n=3)
                    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
                    raise ValueError(
                        f"unknown layer name {item!r}: no module of the model has that name.{hint} "
                        "Names are those of model.named_modules(); glob patterns ('encoder.layers.*', "
                        "'**.fc') and module types (nn.Linear) work too."
                    )
        else:
            raise TypeError(f"layers entries must be names, glob patterns or nn.Module types, got {item!r}")
        for n, m in hits:
            chosen.setdefault(n, m)
    order = {n: i for i, n in enumerate(names)}
    sel.monitored = sorted(chosen.items(), key=lambda kv: order[kv[0]])
    for n in names:
        if n not in chosen:
            sel.skipped[n] = NOT_SELECTED_REASON
    sel.chains = _sequential_chains(root, sel.names)
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
    """Resolve ``layers=`` against ``root`` (already unwrapped from DDP / torch.compile).

    ``spec`` is ``"auto"`` (the rules of this module's docstring), a layer name, a glob (``*`` and
    ``?`` within one dotted segment, ``**`` across segments), an ``nn.Module`` subclass, or a list
    of these. A name or pattern that matches nothing raises ``ValueError`` naming close matches.
    """
    if isinstance(spec, str) and spec == "auto":
        sel = _Auto(root).run()
    elif isinstance(spec, (str, type)):
        sel = _explicit(root, [spec])
    elif isinstance(spec, Sequence):
        if len(spec) == 0:
            raise ValueError("layers= is empty; pass 'auto' or a list of layer names/patterns/types")
        sel = _explicit(root, list(spec))
    else:
        raise TypeError(f"layers must be 'auto', a name/pattern, a module type, or a list of these; "
                        f"got {spec!r}")
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
            raise ValueError(f"chain {i} names layers that are not monitored: {missing}; "
                             f"monitored: {sorted(known)}")
        if len(names) < 2:
            raise ValueError(f"chain {i} needs at least two layers, got {names}")
        out.append(Chain(f"chain{i}", tuple(names), "declared"))
    return out
