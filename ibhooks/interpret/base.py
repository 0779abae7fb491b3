"""What every check shares: its settings (:class:`CheckConfig`), its input (:class:`CheckContext`),
its output (:class:`Findings`) and the trait-based helpers that pick usable estimates and judge
significance. Checks read what an Estimate says it is (``Estimate.traits``, ``kind``), never its
estimator's name."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from ..chains import Chain
from ..schema.estimate import Estimate, jsonable
from ..schema.findings import BoundViolation, ChainCheck, DpiTally, DpiViolation, IBWarning
from ..schema.quantities import Quantity
from ..schema.record import LayerResult, Record


@dataclass(frozen=True)
class CheckConfig:
    """Thresholds of the checks.

    Attributes:
        tol_bits: Float tolerance: a difference of at most this is no violation.
        z: An inconsistency is ``significant`` when its size exceeds ``z`` times the combined
            standard error of the estimates involved (plus ``tol_bits``).
        dpi_pairs: ``"adjacent"`` (T_i vs T_{i+1}) or ``"all"`` (every i < j) chain pairs.
        extreme_bins_threshold: Fraction of unit values in the two extreme bins above which a
            binned layer is flagged as saturating.
        outside_range_threshold: Fraction of values outside a fixed bin range above which the layer
            is flagged as clipped.
        duplicate_rows_threshold: Fraction of duplicate rows above which a layer is flagged.
        samples_per_dim: Sample-size rule for non-exact estimators: n >= ``samples_per_dim * d`` ...
        orthant_max_dim: ... and n >= 2**min(d, ``orthant_max_dim``) (each sign pattern of a
            low-dimensional T seen once; capped at 2**10 = 1024 samples).
    """

    tol_bits: float = 1e-6
    z: float = 1.96
    dpi_pairs: str = "adjacent"
    extreme_bins_threshold: float = 0.25
    outside_range_threshold: float = 0.01
    duplicate_rows_threshold: float = 0.5
    samples_per_dim: float = 10.0
    orthant_max_dim: int = 10

    def __post_init__(self) -> None:
        if self.dpi_pairs not in ("adjacent", "all"):
            raise ValueError(f"CheckConfig: dpi_pairs must be 'adjacent' or 'all', got {self.dpi_pairs!r}")
        if not (self.tol_bits >= 0 and self.z >= 0):
            raise ValueError(f"CheckConfig: tol_bits and z must be >= 0, got {self.tol_bits!r}, {self.z!r}")
        for name in ("extreme_bins_threshold", "outside_range_threshold", "duplicate_rows_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"CheckConfig: {name} is a fraction in [0, 1], got {getattr(self, name)!r}")

    def to_dict(self) -> Dict[str, Any]:
        return jsonable(asdict(self))

    def required_samples(self, dim: int) -> int:
        """The sample-size rule for a non-exact estimator of a ``dim``-dimensional T."""
        return int(max(math.ceil(self.samples_per_dim * dim), 2 ** min(max(dim, 0), self.orthant_max_dim)))


@dataclass(frozen=True)
class CheckContext:
    """What a check sees: one Record, the chains, what is known about each layer, the thresholds."""

    record: Record
    chains: Tuple[Chain, ...] = ()
    layer_info: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    config: CheckConfig = field(default_factory=CheckConfig)

    def results(self):
        """``(layer, estimator, LayerResult)`` for every result without an error, in network order."""
        for layer, per_est in self.record.layers.items():
            for est, res in per_est.items():
                if res is not None and not res.error:
                    yield layer, est, res


@dataclass(frozen=True)
class Findings:
    """What one check found; :func:`~.checks.check_record` merges the findings of every check."""

    bounds_checked: int = 0
    bound_violations: Tuple[BoundViolation, ...] = ()
    chains: Tuple[ChainCheck, ...] = ()
    dpi: Tuple[DpiTally, ...] = ()
    dpi_violations: Tuple[DpiViolation, ...] = ()
    not_on_chain: Optional[Tuple[str, ...]] = None
    warnings: Tuple[IBWarning, ...] = ()


def usable(res: Optional[LayerResult], quantity: Quantity) -> Optional[Estimate]:
    """The estimate of ``quantity`` if it is a finite mutual information (else ``None``).

    An I(X;T) slot holding a differential entropy h(T) (``traits.xt_is_entropy``, e.g. kNN on a
    deterministic layer) is no mutual information: no bound or DPI applies to it.
    """
    if res is None or res.error:
        return None
    e = res.get(quantity)
    if e is None or e.value is None or not math.isfinite(e.value):
        return None
    if quantity is Quantity.I_XT and (e.traits.xt_is_entropy or e.diagnostics.get("not_mutual_information")):
        return None
    return e


def combined_se(*ests: Optional[Estimate]) -> Optional[float]:
    """sqrt(sum se^2) over the estimates given; ``None`` if any has unknown uncertainty."""
    tot = 0.0
    for e in ests:
        if e is None:
            continue
        s = e.stderr
        if s is None or not math.isfinite(s):
            return None
        tot += s * s
    return math.sqrt(tot)


def significance(size: float, unc: Optional[float], exact: bool, cfg: CheckConfig) -> Optional[bool]:
    """Whether a violation of ``size`` bits is beyond float tolerance (exact) or ``z`` x ``unc``;
    ``None`` when the uncertainty is unknown."""
    if exact:
        return size > cfg.tol_bits
    if unc is None:
        return None
    return size > cfg.z * unc + cfg.tol_bits


def significance_text(sig: Optional[bool], unc: Optional[float], exact: bool, cfg: CheckConfig) -> str:
    if exact:
        return "exact estimates have no sampling uncertainty, so any violation beyond float tolerance is real"
    if unc is None:
        return "uncertainty unknown (the estimates carry no ci), significance not assessed"
    return f"it {'exceeds' if sig else 'is within'} {cfg.z:g} x the combined standard error {unc:.3g} bits"


__all__ = [
    "CheckConfig",
    "CheckContext",
    "Findings",
    "combined_se",
    "significance",
    "significance_text",
    "usable",
]
