"""One information figure (:class:`Estimate`) and what its estimator is (:class:`EstimatorTraits`).

Checks, warnings and DPI wording read the traits an Estimate carries, never the estimator's name:
an estimator registered as ``robin`` that discretises its input is treated as binning because it
says so, not because its name contains "bin".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Dict, Mapping, Optional, Tuple

#: The kinds an :class:`Estimate` can be.
KINDS = ("exact", "estimate", "lower_bound", "upper_bound")

#: Default tolerance (bits) within which a value counts as being at its cap.
SATURATION_TOL_BITS = 0.05

#: What limits an estimator's value from above (``EstimatorTraits.cap``).
CAP_KINDS = ("none", "log2_n", "log2_k", "h_y")


@dataclass(frozen=True)
class EstimatorTraits:
    """What an estimator is, declared by its class and carried by every Estimate it makes.

    Attributes:
        discretises: The layer is discretised for analysis (binning): I(X;T) is H of the binned
            variable; saturating units and clipped values change it without any loss in the network.
        adds_noise: Noise is added to the layer at analysis time (KDE, noisy channel, fixed or
            relative scale): the quantity is I(X; T+N), and the noise is not propagated through the
            network, so the cross-layer DPI need not hold for the estimates.
        noise_in_network: The noise is part of the network (Goldfeld et al. 2019 sample propagation):
            the DPI holds for the true quantities.
        exact: Exact for its stated quantity (plug-in entropy of a discrete variable with X uniform
            over the probe rows): within-layer bounds hold exactly, a violation is a bug.
        cap: What limits its value: ``"log2_n"`` (probe size), ``"log2_k"`` (contrastive batch),
            ``"h_y"`` (label entropy) or ``"none"``.
        xt_is_entropy: Its I(X;T) slot holds a differential entropy h(T), not a mutual
            information (kNN on a deterministic layer): no MI bound or DPI applies to it.
        pairwise: Works from pairwise distances only (a Gram matrix suffices).
    """

    discretises: bool = False
    adds_noise: bool = False
    noise_in_network: bool = False
    exact: bool = False
    cap: str = "none"
    xt_is_entropy: bool = False
    pairwise: bool = False

    def __post_init__(self) -> None:
        if self.cap not in CAP_KINDS:
            raise ValueError(f"EstimatorTraits.cap must be one of {CAP_KINDS}, got {self.cap!r}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Optional[Mapping[str, Any]]) -> "EstimatorTraits":
        if not d:
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class Estimate:
    """One information figure, never a bare float.

    Attributes:
        value: The figure in bits.
        quantity: What it really is, e.g. ``"H(bin30[-1,1](T))"`` or ``"I(X; T+N(0,0.1)) upper bound"``.
        kind: ``"exact"``, ``"estimate"``, ``"lower_bound"`` or ``"upper_bound"``.
        estimator: Registry name (or monitor key) of the estimator that produced it.
        ci: An uncertainty interval ``(low, high)`` in bits (bootstrap or MC), or ``None``.
        cap: The most this estimator can report for this input (``log2 n``, ``log2 K``, ...).
        saturated: ``True`` when ``value`` is within tolerance of ``cap``: the true value may be higher.
        n: Number of samples used.
        dim: Dimension of T after reduction.
        params: Estimator settings, for the record.
        seconds: Wall time spent computing it.
        diagnostics: Evidence about the input that checks use (fraction of values outside a fixed
            bin range, fraction in the extreme bins, number of distinct rows, ...).
        traits: What the estimator is (:class:`EstimatorTraits`).
    """

    value: float
    quantity: str
    kind: str = "estimate"
    estimator: str = ""
    ci: Optional[Tuple[float, float]] = None
    cap: Optional[float] = None
    saturated: bool = False
    n: int = 0
    dim: int = 0
    params: Dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    diagnostics: Dict[str, Any] = field(default_factory=dict)
    traits: EstimatorTraits = field(default_factory=EstimatorTraits)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Estimate.kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def exact(self) -> bool:
        return self.kind == "exact"

    @property
    def stderr(self) -> Optional[float]:
        """Half-width of ``ci`` divided by 1.96 (a normal-approximation standard error), or None."""
        if self.ci is None:
            return 0.0 if self.kind == "exact" else None
        return (self.ci[1] - self.ci[0]) / (2 * 1.959964)

    def to_dict(self) -> Dict[str, Any]:
        # shallow (no deep-copying ``asdict``): only params and diagnostics can hold non-JSON values
        d = {name: getattr(self, name) for name in _ESTIMATE_FIELDS}
        d["ci"] = list(self.ci) if self.ci is not None else None
        d["traits"] = self.traits.to_dict()
        return jsonable(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Estimate":
        d = dict(d)
        if d.get("ci") is not None:
            d["ci"] = (float(d["ci"][0]), float(d["ci"][1]))
        if d.get("value") is None:
            d["value"] = math.nan  # a non-finite value is stored as null
        d["traits"] = EstimatorTraits.from_dict(d.get("traits")) if "traits" in d else _v1_traits(d)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_timing(self, seconds: float) -> "Estimate":
        return replace(self, seconds=float(seconds))

    def with_estimator(self, key: str) -> "Estimate":
        """The same figure under the monitor's key for its estimator (e.g. ``"binning_1"``)."""
        return self if key == self.estimator else replace(self, estimator=key)


def _v1_traits(d: Mapping[str, Any]) -> EstimatorTraits:
    """Traits of an Estimate from a version-1 run log (which had none), from what it recorded."""
    name = str(d.get("estimator") or "").lower()
    params = d.get("params") or {}
    diag = d.get("diagnostics") or {}
    discretises = name.startswith("binning") or "n_bins" in params
    noisy = name.startswith(("kde", "noisy_channel"))
    return EstimatorTraits(
        discretises=discretises,
        adds_noise=noisy and not bool(params.get("noise_in_network")),
        noise_in_network=bool(params.get("noise_in_network")),
        exact=d.get("kind") == "exact",
        cap="log2_n" if d.get("cap") is not None else "none",
        xt_is_entropy=bool(diag.get("not_mutual_information")),
        pairwise=noisy or name.startswith("renyi"),
    )


def make_estimate(
    value: float,
    quantity: str,
    *,
    kind: str = "estimate",
    estimator: str = "",
    ci: Optional[Tuple[float, float]] = None,
    cap: Optional[float] = None,
    n: int = 0,
    dim: int = 0,
    params: Optional[Dict[str, Any]] = None,
    diagnostics: Optional[Dict[str, Any]] = None,
    traits: Optional[EstimatorTraits] = None,
    saturation_tol: float = SATURATION_TOL_BITS,
) -> Estimate:
    """Build an :class:`Estimate`, setting ``saturated`` from ``value`` and ``cap``."""
    value = float(value)
    saturated = cap is not None and math.isfinite(value) and value >= float(cap) - saturation_tol
    return Estimate(
        value=value,
        quantity=quantity,
        kind=kind,
        estimator=estimator,
        ci=None if ci is None else (float(ci[0]), float(ci[1])),
        cap=None if cap is None else float(cap),
        saturated=bool(saturated),
        n=int(n),
        dim=int(dim),
        params=dict(params or {}),
        diagnostics=dict(diagnostics or {}),
        traits=traits if traits is not None else EstimatorTraits(exact=kind == "exact"),
    )


def jsonable(obj: Any) -> Any:
    """Make ``obj`` JSON-safe: tuples to lists, non-finite floats to None, enums to their values,
    numpy/torch scalars to Python, objects with ``to_dict`` to dicts."""
    kind = type(obj)
    if kind is float:  # the common cases first
        return obj if math.isfinite(obj) else None
    if kind is str or kind is int or obj is None or kind is bool:
        return obj
    if isinstance(obj, dict):
        return {
            str(k.value if hasattr(k, "value") and not isinstance(k, (int, str)) else k): jsonable(v)
            for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, str):
        return str(obj.value) if hasattr(obj, "value") and isinstance(getattr(obj, "value"), str) else obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return jsonable(to_dict())
    item = getattr(obj, "item", None)
    if callable(item):
        try:
            return jsonable(item())
        except (ValueError, RuntimeError):
            pass
    return str(obj)


_ESTIMATE_FIELDS = tuple(f.name for f in fields(Estimate))
