"""What interpretation finds in one measurement: artefact warnings, bound and DPI violations.

Produced by :mod:`ibhooks.interpret`, stored in :class:`~ibhooks.schema.Record`, read by sinks,
figures, the report and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .estimate import jsonable
from .quantities import Quantity


class WarningCode(str, Enum):
    """Why a figure may not mean what it seems to."""

    SATURATING_UNITS = "saturating_units"  # saturated units fake compression under binning
    OUTSIDE_RANGE = "outside_range"  # values clipped by a fixed bin range
    AT_CAP = "at_cap"  # value at the estimator's cap: changes above it cannot show
    TOO_FEW_SAMPLES = "too_few_samples"  # n small for the dimension
    DUPLICATE_ROWS = "duplicate_rows"  # many coinciding rows
    BOUND_VIOLATION = "bound_violation"  # a within-layer inequality fails
    DPI_VIOLATION = "dpi_violation"  # a cross-layer DPI inequality fails significantly

    def __str__(self) -> str:
        return self.value


class Severity(str, Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


def _opt_quantity(v: Any) -> Optional[Quantity]:
    return None if v is None else Quantity.parse(v)


@dataclass(frozen=True)
class IBWarning:
    """One artefact warning: which layer and estimate, what, the evidence, and what to do."""

    layer: Optional[str]
    estimator: Optional[str]
    quantity: Optional[Quantity]
    code: WarningCode
    severity: Severity
    message: str
    evidence: Dict[str, Any] = field(default_factory=dict)
    remedy: str = ""

    @property
    def key(self) -> Tuple[Optional[str], str, Optional[str], Optional[str]]:
        """Identity across measurements (layer, code, estimator, quantity): for "new" vs "repeated"."""
        return (
            self.layer,
            self.code.value,
            self.estimator,
            None if self.quantity is None else self.quantity.value,
        )

    def to_dict(self) -> Dict[str, Any]:
        return jsonable({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "IBWarning":
        return cls(
            layer=d.get("layer"),
            estimator=d.get("estimator"),
            quantity=_opt_quantity(d.get("quantity")),
            code=WarningCode(d["code"]),
            severity=Severity(d.get("severity", "warning")),
            message=str(d.get("message", "")),
            evidence=dict(d.get("evidence") or {}),
            remedy=str(d.get("remedy") or ""),
        )


@dataclass(frozen=True)
class BoundViolation:
    """A within-layer inequality that fails, e.g. ``I_TY <= I_XT``.

    ``is_bug``: the inequality holds exactly for the estimated quantity (exact estimates, or a value
    above the estimator's own cap), so the violation is a bug; otherwise an estimator inconsistency.
    ``significant`` is ``None`` when the uncertainty is unknown.
    """

    layer: str
    estimator: str
    bound: str
    lhs_bits: float
    rhs_bits: float
    size_bits: float
    uncertainty_bits: Optional[float]
    significant: Optional[bool]
    is_bug: bool
    message: str

    @property
    def quantity(self) -> Quantity:
        return Quantity.parse(self.bound.split(" ")[0])

    def to_dict(self) -> Dict[str, Any]:
        return jsonable({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "BoundViolation":
        return cls(
            layer=str(d["layer"]),
            estimator=str(d["estimator"]),
            bound=str(d["bound"]),
            lhs_bits=float(d["lhs_bits"]),
            rhs_bits=float(d["rhs_bits"]),
            size_bits=float(d["size_bits"]),
            uncertainty_bits=None if d.get("uncertainty_bits") is None else float(d["uncertainty_bits"]),
            significant=d.get("significant"),
            is_bug=bool(d["is_bug"]) if "is_bug" in d else d.get("kind") == "bug",
            message=str(d.get("message", "")),
        )


@dataclass(frozen=True)
class DpiViolation:
    """``upstream -> downstream`` along ``chain``: the downstream layer's figure exceeds the upstream one.

    ``is_bug``: both figures are exact values of the network's own (discrete) layers, for which the DPI
    holds exactly, so the violation is a bug (of the declared chain or of the estimator), not noise.
    """

    chain: str
    estimator: str
    quantity: Quantity
    upstream: str
    downstream: str
    upstream_bits: float
    downstream_bits: float
    size_bits: float
    uncertainty_bits: Optional[float]
    significant: Optional[bool]
    estimate_kinds: Tuple[str, ...]
    message: str
    is_bug: bool = False

    def to_dict(self) -> Dict[str, Any]:
        return jsonable({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DpiViolation":
        return cls(
            chain=str(d["chain"]),
            estimator=str(d["estimator"]),
            quantity=Quantity.parse(d["quantity"]),
            upstream=str(d["upstream"]),
            downstream=str(d["downstream"]),
            upstream_bits=float(d["upstream_bits"]),
            downstream_bits=float(d["downstream_bits"]),
            size_bits=float(d["size_bits"]),
            uncertainty_bits=None if d.get("uncertainty_bits") is None else float(d["uncertainty_bits"]),
            significant=d.get("significant"),
            estimate_kinds=tuple(d.get("estimate_kinds") or ()),
            message=str(d.get("message", "")),
            is_bug=bool(d.get("is_bug", False)),
        )


@dataclass(frozen=True)
class DpiTally:
    """Counts of one (estimator, quantity) over the chain pairs of one measurement.

    ``not_assessed``: violations whose significance is unknown (estimates without an interval).
    """

    estimator: str
    quantity: Quantity
    pairs_checked: int = 0
    violated: int = 0
    significant: int = 0
    not_assessed: int = 0
    skipped: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return jsonable({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DpiTally":
        return cls(
            estimator=str(d["estimator"]),
            quantity=Quantity.parse(d["quantity"]),
            **{
                k: int(d.get(k) or 0)
                for k in ("pairs_checked", "violated", "significant", "not_assessed", "skipped")
            },
        )


@dataclass(frozen=True)
class ChainCheck:
    """A chain as checked at one measurement: its layers, where it came from, which were missing."""

    name: str
    layers: Tuple[str, ...]
    source: str = "declared"
    missing: Tuple[str, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        return jsonable({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ChainCheck":
        return cls(
            name=str(d["name"]),
            layers=tuple(d.get("layers") or ()),
            source=str(d.get("source", "declared")),
            missing=tuple(d.get("missing") or ()),
        )


@dataclass(frozen=True)
class Checks:
    """Bound and DPI checks of one measurement.

    Attributes:
        bounds_checked: Number of within-layer inequalities evaluated.
        bound_violations: Those that failed.
        dpi_pairs: ``"adjacent"`` or ``"all"`` chain pairs.
        chains: The chains checked.
        dpi: One tally per (estimator, quantity).
        dpi_violations: Every DPI violation (significant or not).
        not_on_chain: Measured layers that are on no chain (no DPI check).
        tol_bits: Float tolerance used.
        z: Significance multiple of the combined standard error.
    """

    bounds_checked: int = 0
    bound_violations: Tuple[BoundViolation, ...] = ()
    dpi_pairs: str = "adjacent"
    chains: Tuple[ChainCheck, ...] = ()
    dpi: Tuple[DpiTally, ...] = ()
    dpi_violations: Tuple[DpiViolation, ...] = ()
    not_on_chain: Tuple[str, ...] = ()
    tol_bits: float = 1e-6
    z: float = 1.96

    @property
    def bugs(self) -> int:
        return sum(1 for v in self.bound_violations if v.is_bug)

    def dpi_total(self) -> DpiTally:
        """All tallies summed (estimator ``"*"``, quantity I(X;T) as a placeholder)."""
        tot = {k: 0 for k in ("pairs_checked", "violated", "significant", "not_assessed", "skipped")}
        for t in self.dpi:
            for k in tot:
                tot[k] += getattr(t, k)
        return DpiTally("*", Quantity.I_XT, **tot)

    def tally(self, estimator: str, quantity: Quantity) -> Optional[DpiTally]:
        return next((t for t in self.dpi if t.estimator == estimator and t.quantity == quantity), None)

    def to_dict(self) -> Dict[str, Any]:
        return jsonable({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Checks":
        if "bounds" in d or "version" in d:
            return _checks_v1(d)
        return cls(
            bounds_checked=int(d.get("bounds_checked") or 0),
            bound_violations=tuple(BoundViolation.from_dict(v) for v in d.get("bound_violations") or ()),
            dpi_pairs=str(d.get("dpi_pairs", "adjacent")),
            chains=tuple(ChainCheck.from_dict(c) for c in d.get("chains") or ()),
            dpi=tuple(DpiTally.from_dict(t) for t in d.get("dpi") or ()),
            dpi_violations=tuple(DpiViolation.from_dict(v) for v in d.get("dpi_violations") or ()),
            not_on_chain=tuple(d.get("not_on_chain") or ()),
            tol_bits=float(d.get("tol_bits", 1e-6)),
            z=float(d.get("z", 1.96)),
        )


def _checks_v1(d: Mapping[str, Any]) -> Checks:
    """Convert the version-1 ``record.checks`` dict layout."""
    bounds = d.get("bounds") or {}
    dpi = d.get("dpi") or {}
    viol = [DpiViolation.from_dict(v) for v in dpi.get("violations") or ()]
    tallies: List[DpiTally] = []
    for est, per_q in (dpi.get("summary") or {}).items():
        for q, cell in (per_q or {}).items():
            not_assessed = sum(
                1 for v in viol if v.estimator == est and v.quantity.value == q and v.significant is None
            )
            tallies.append(
                DpiTally.from_dict({"estimator": est, "quantity": q, **cell, "not_assessed": not_assessed})
            )
    return Checks(
        bounds_checked=int(bounds.get("checked") or 0),
        bound_violations=tuple(BoundViolation.from_dict(v) for v in bounds.get("violations") or ()),
        dpi_pairs=str(dpi.get("pairs", "adjacent")),
        chains=tuple(ChainCheck.from_dict(c) for c in dpi.get("chains") or ()),
        dpi=tuple(tallies),
        dpi_violations=tuple(viol),
        not_on_chain=tuple(dpi.get("not_checked") or ()),
        tol_bits=float(d.get("tol_bits", 1e-6)),
        z=float(d.get("z", 1.96)),
    )
