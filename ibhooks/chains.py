"""Markov chains of monitored layers (X -> T1 -> T2 -> ...) along which the DPI holds: one type,
one parser for every way a user or the layer selection declares them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union


@dataclass(frozen=True)
class Chain:
    """A Markov chain of layers X -> T1 -> T2 -> ..., along which the DPI holds.

    Attributes:
        name: A label, e.g. ``"features"`` or ``"encoder.layers"``.
        layers: Layer names (as in ``Record.layers``) in forward order; no repeats.
        source: Where it came from: ``"declared"`` (by the user) or how it was detected.
    """

    name: str
    layers: Tuple[str, ...]
    source: str = "declared"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Chain.name must be a non-empty string, got {self.name!r}")
        if isinstance(self.layers, str):
            raise ValueError(
                f"Chain {self.name!r}: layers must be a sequence of layer names, got the string {self.layers!r}"
            )
        layers = tuple(self.layers)
        bad = [x for x in layers if not isinstance(x, str) or not x]
        if bad:
            raise ValueError(f"Chain {self.name!r}: layer names must be non-empty strings, got {bad!r}")
        if not layers:
            raise ValueError(f"Chain {self.name!r} has no layers")
        dup = sorted({x for x in layers if layers.count(x) > 1})
        if dup:
            raise ValueError(
                f"Chain {self.name!r} lists layer(s) {dup} more than once; a chain visits each layer once"
            )
        object.__setattr__(self, "layers", layers)

    def validate(self, known_layers: Iterable[str]) -> None:
        """Raise ``ValueError`` naming any layer of the chain that is not in ``known_layers``."""
        known = list(known_layers)
        unknown = [x for x in self.layers if x not in set(known)]
        if unknown:
            shown = ", ".join(repr(k) for k in known[:20]) + (", ..." if len(known) > 20 else "")
            raise ValueError(
                f"Chain {self.name!r} names unknown layer(s) {unknown}; the monitored layers are: "
                f"{shown or '(none)'}. Use the names of monitored layers (as in Record.layers), in forward order."
            )

    def pairs(self, mode: str = "adjacent") -> List[Tuple[str, str]]:
        """``(upstream, downstream)`` pairs: consecutive layers (``"adjacent"``) or all i < j (``"all"``)."""
        if mode == "adjacent":
            return list(zip(self.layers[:-1], self.layers[1:]))
        if mode == "all":
            return [(a, b) for i, a in enumerate(self.layers) for b in self.layers[i + 1 :]]
        raise ValueError(f"mode must be 'adjacent' or 'all', got {mode!r}")

    def restricted(self, keep: Iterable[str]) -> Optional["Chain"]:
        """The chain over the layers in ``keep`` only (order kept), or ``None`` if fewer than two remain."""
        ks = set(keep)
        layers = tuple(x for x in self.layers if x in ks)
        return Chain(self.name, layers, self.source) if len(layers) >= 2 else None

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "layers": list(self.layers), "source": self.source}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Chain":
        return cls(name=str(d["name"]), layers=tuple(d["layers"]), source=str(d.get("source", "declared")))


ChainSpec = Union[Chain, Mapping[str, Any], Sequence[str]]
ChainsSpec = Union[None, Mapping[str, Sequence[str]], Sequence[ChainSpec]]

_HOW = (
    "give chains as a list of layer-name lists, e.g. chains=[['fc1', 'fc2', 'fc3']], a dict "
    "{'name': ['fc1', 'fc2']}, Chain objects, 'auto' (from the model) or None"
)


def as_chains(spec: ChainsSpec) -> Tuple[Chain, ...]:
    """Normalise chain declarations to a tuple of :class:`Chain` (the one parser of chain specs).

    Accepts ``None``; a dict ``{"name": [layers...]}``; or a sequence whose items are ``Chain``s,
    objects with ``.name`` and ``.layers``, ``{"name": ..., "layers": [...]}`` dicts, or plain
    lists of layer names (named ``chain0``, ...). A chain given twice is kept once; a name used
    again for other layers becomes ``name#2``, ``name#3``, ...
    """
    if spec is None:
        return ()
    if isinstance(spec, str):
        raise ValueError(f"chains={spec!r} is not a chain specification; {_HOW}")
    chains: List[Chain] = []
    if isinstance(spec, Mapping):
        if "layers" in spec and "name" in spec:
            chains = [Chain.from_dict(spec)]
        else:
            for k, v in spec.items():
                if isinstance(v, str):
                    raise ValueError(f"chain {k!r} is the string {v!r}; {_HOW}")
                chains.append(Chain(str(k), tuple(v)))
    else:
        if isinstance(spec, Chain):
            spec = [spec]
        for i, item in enumerate(spec):
            if isinstance(item, Chain):
                chains.append(item)
            elif isinstance(item, Mapping):
                if "layers" not in item or "name" not in item:
                    raise ValueError(
                        f"chain #{i} is a dict without 'name' and 'layers': {dict(item)!r}; {_HOW}"
                    )
                chains.append(Chain.from_dict(item))
            elif hasattr(item, "name") and hasattr(item, "layers"):
                chains.append(
                    Chain(str(item.name), tuple(item.layers), str(getattr(item, "source", "declared")))
                )
            elif isinstance(item, str):
                raise ValueError(f"chain #{i} is the string {item!r}; {_HOW}")
            elif isinstance(item, Iterable):
                chains.append(Chain(f"chain{i}", tuple(item)))
            else:
                raise ValueError(f"chain #{i} is {type(item).__name__}; {_HOW}")
    out: List[Chain] = []
    for c in chains:
        if any(o.layers == c.layers and o.name == c.name for o in out):
            continue
        name, k = c.name, 2
        while any(o.name == name for o in out):
            name, k = f"{c.name}#{k}", k + 1
        out.append(c if name == c.name else Chain(name, c.layers, c.source))
    return tuple(out)


def validate_chains(
    chains: ChainsSpec, known_layers: Iterable[str], *, min_layers: int = 1
) -> Tuple[Chain, ...]:
    """:func:`as_chains`, then every chain checked against ``known_layers`` (and ``min_layers``)."""
    known = list(known_layers)
    out = as_chains(chains)
    for c in out:
        c.validate(known)
        if len(c.layers) < min_layers:
            raise ValueError(f"Chain {c.name!r} needs at least {min_layers} layers, got {list(c.layers)}")
    return out
