"""Record queries about what interpretation found: chains, DPI tallies and violations, bound
violations, artefact warnings over a run, and phase spans from the folded phase changes.

Reads the typed objects only (``Record.checks`` is a :class:`~ibhooks.schema.Checks` or None,
``Record.warnings`` are :class:`~ibhooks.schema.IBWarning`, ``Record.phase_changes`` are
:class:`~ibhooks.schema.PhaseDecision`). No matplotlib here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..chains import Chain, as_chains
from ..schema import (
    BoundViolation,
    DpiViolation,
    IBWarning,
    PhaseDecision,
    PhaseStatus,
    Quantity,
    Record,
    Severity,
    WarningCode,
)
from ..schema.phases import SeriesKey, fold_phase_changes
from .queries import estimator_names, layer_names

__all__ = [
    "SHOWN_STATUSES", "DpiTotal", "DpiViolationSummary", "PhaseSpan", "WarningSummary", "bound_violations",
    "chains_of", "dpi_checked", "dpi_totals", "dpi_violation_summary", "dpi_violations", "latest_phases",
    "phase_decisions", "phase_spans", "warnings_summary",
]

# ---- chains and the DPI ---------------------------------------------------------------------------


def chains_of(header: Optional[Mapping[str, Any]], records: Sequence[Record] = ()) -> List[Chain]:
    """The chains to draw: the header's ``"chains"`` (any spec :func:`ibhooks.chains.as_chains`
    reads), else the chains checked at the latest record with checks (``Checks.chains``); each
    restricted to the measured layers, and only those with at least two of them."""
    spec = (header or {}).get("chains")
    if spec:
        chains = as_chains(spec)
    else:
        with_chains = (r.checks.chains for r in reversed(records) if r.checks is not None and r.checks.chains)
        checked = next(with_chains, ())
        chains = tuple(Chain(c.name, c.layers, c.source) for c in checked)
    if not records:
        return [c for c in chains if len(c.layers) >= 2]
    measured = layer_names(records)
    return [r for c in chains if (r := c.restricted(measured)) is not None]


def dpi_violations(record: Record) -> List[DpiViolation]:
    """The record's cross-layer DPI violations (significant or not; ``significant`` is None when the
    estimates carry no uncertainty). Empty without checks."""
    return [] if record.checks is None else list(record.checks.dpi_violations)


def bound_violations(record: Record) -> List[BoundViolation]:
    """The record's within-layer bound violations (``is_bug``: the inequality holds exactly). Empty
    without checks."""
    return [] if record.checks is None else list(record.checks.bound_violations)


def dpi_checked(record: Record, chain: str, estimator: str, quantity: Quantity) -> bool:
    """Whether ``record`` holds a DPI check of ``quantity`` under ``estimator`` covering ``chain``
    (chains named by the checks; any, when the checks name none)."""
    checks = record.checks
    if checks is None:
        return False
    names = [c.name for c in checks.chains]
    if names and chain not in names:
        return False
    tally = checks.tally(estimator, Quantity.parse(quantity))
    return tally is not None and tally.pairs_checked > 0


@dataclass(frozen=True)
class DpiTotal:
    """One (estimator, quantity) over a run: measurements whose checks covered it and how many had a
    violation; chain pairs checked, violated, violated beyond the uncertainty (``significant``) and
    violated with no uncertainty known (``not_assessed``)."""

    estimator: str
    quantity: Quantity
    measurements: int = 0
    measurements_violated: int = 0
    pairs_checked: int = 0
    violated: int = 0
    significant: int = 0
    not_assessed: int = 0


def dpi_totals(records: Sequence[Record]) -> Dict[Tuple[str, Quantity], DpiTotal]:
    """``{(estimator, quantity): DpiTotal}`` over the run from the records' ``Checks.dpi`` tallies
    (tallies with no pair checked are left out), in order of first appearance."""
    acc: Dict[Tuple[str, Quantity], List[int]] = {}
    for rec in records:
        for t in rec.checks.dpi if rec.checks is not None else ():
            if t.pairs_checked <= 0:
                continue
            a = acc.setdefault((t.estimator, t.quantity), [0] * 6)
            for i, v in enumerate((1, int(t.violated > 0), t.pairs_checked, t.violated, t.significant,
                                   t.not_assessed)):
                a[i] += v
    return {k: DpiTotal(k[0], k[1], *a) for k, a in acc.items()}


@dataclass(frozen=True)
class DpiViolationSummary:
    """One violated pair (chain, estimator, quantity, upstream -> downstream) over a run: how often,
    how often beyond the uncertainty / with no uncertainty known, the largest excess, the steps."""

    chain: str
    estimator: str
    quantity: Quantity
    upstream: str
    downstream: str
    count: int
    significant: int
    not_assessed: int
    max_size_bits: float
    first_step: int
    last_step: int
    bugs: int = 0  # violations between exact values of the network's own layers (DpiViolation.is_bug)


def dpi_violation_summary(records: Sequence[Record]) -> List[DpiViolationSummary]:
    """DPI violations over the run grouped by pair, in order of first appearance."""
    acc: Dict[Tuple[str, str, Quantity, str, str], Dict[str, Any]] = {}
    for rec in records:
        for v in dpi_violations(rec):
            a = acc.setdefault((v.chain, v.estimator, v.quantity, v.upstream, v.downstream),
                               {"count": 0, "significant": 0, "not_assessed": 0, "max_size_bits": 0.0,
                                "first_step": rec.step, "last_step": rec.step, "bugs": 0})
            a["count"] += 1
            a["bugs"] += int(bool(getattr(v, "is_bug", False)))
            a["significant"] += int(v.significant is True)
            a["not_assessed"] += int(v.significant is None)
            a["max_size_bits"] = max(a["max_size_bits"], float(v.size_bits))
            a["last_step"] = rec.step
    return [DpiViolationSummary(*k, **a) for k, a in acc.items()]


# ---- warnings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WarningSummary:
    """One artefact warning over a run (identity :attr:`IBWarning.key`: layer, code, estimator,
    quantity): the latest occurrence, how many measurements raised it, the first and last step."""

    warning: IBWarning
    count: int
    first_step: int
    last_step: int

    @property
    def layer(self) -> Optional[str]:
        return self.warning.layer

    @property
    def estimator(self) -> Optional[str]:
        return self.warning.estimator

    @property
    def quantity(self) -> Optional[Quantity]:
        return self.warning.quantity

    @property
    def code(self) -> WarningCode:
        return self.warning.code

    @property
    def severity(self) -> Severity:
        return self.warning.severity

    @property
    def message(self) -> str:
        """The latest message."""
        return self.warning.message

    @property
    def remedy(self) -> str:
        return self.warning.remedy


def warnings_summary(records: Sequence[Record]) -> List[WarningSummary]:
    """Artefact warnings deduplicated by :attr:`IBWarning.key`, in order of first appearance."""
    seen: Dict[Tuple[Any, ...], WarningSummary] = {}
    for rec in records:
        for w in rec.warnings:
            old = seen.get(w.key)
            seen[w.key] = WarningSummary(w, 1, rec.step, rec.step) if old is None else WarningSummary(
                w, old.count + 1, old.first_step, rec.step)
    return list(seen.values())


# ---- phases ---------------------------------------------------------------------------------------

#: The phase statuses figures draw (filled: detected; hatched: candidate).
SHOWN_STATUSES: Tuple[PhaseStatus, PhaseStatus] = (PhaseStatus.DETECTED, PhaseStatus.CANDIDATE)

Phases = Mapping[SeriesKey, PhaseDecision]


def latest_phases(records: Sequence[Record]) -> Dict[SeriesKey, PhaseDecision]:
    """The latest decision of every (layer, estimator, phase) series: the records' ``phase_changes``
    folded in the records' order (sorted by step, see :func:`as_records`)."""
    return fold_phase_changes(c for rec in records for c in rec.phase_changes)


def phase_decisions(records: Sequence[Record], layer: Optional[str] = None, estimator: Optional[str] = None,
                    *, phases: Optional[Phases] = None) -> List[PhaseDecision]:
    """The latest decisions (every status), optionally of one layer and/or estimator. ``phases``: an
    already folded ``{(layer, estimator, phase): PhaseDecision}`` (e.g. ``Run.phases``) to use instead
    of folding ``records``."""
    latest = latest_phases(records) if phases is None else phases
    return [d for d in latest.values()
            if (layer is None or d.layer == layer) and (estimator is None or d.estimator == estimator)]


@dataclass(frozen=True)
class PhaseSpan:
    """A drawn phase of one layer: ``start``..``end`` in steps (``end`` is the last measured step while
    ``ongoing``); ``status`` is detected or candidate; ``decision`` the PhaseDecision it comes from."""

    phase: str
    start: float
    end: float
    status: PhaseStatus = PhaseStatus.DETECTED
    ongoing: bool = False
    decision: Optional[PhaseDecision] = field(default=None, compare=False)


def phase_spans(records: Sequence[Record], layer: str, estimator: Optional[str] = None,
                *, phases: Optional[Phases] = None) -> List[PhaseSpan]:
    """The fitting / compression spans of ``layer`` under ``estimator`` (default: the first in the
    records): one per detected or candidate decision of the latest fold (or of ``phases``), from its
    ``start_step`` to its ``end_step``, or to the last record's step while it is ongoing."""
    if not records:
        return []
    if estimator is None:
        names = estimator_names(records)
        if not names:
            return []
        estimator = names[0]
    last_step = float(records[-1].step)
    spans = []
    for d in phase_decisions(records, layer, estimator, phases=phases):
        if not d.shown or d.start_step is None:
            continue
        ongoing = d.end_step is None
        spans.append(PhaseSpan(d.phase, float(d.start_step), last_step if ongoing else float(d.end_step),
                               d.status, ongoing, d))
    return spans
