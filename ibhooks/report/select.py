"""Choosing what a report, a summary or a figure set shows: one estimator's view of a run."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, List, Mapping, Optional, Sequence

from .. import plotting
from ..schema import Record
from .tables import Phases


class ReportError(ValueError):
    """Bad input to a report or summary (e.g. an estimator the run does not have); one line, names the fix."""


def check_estimator(records: Sequence[Record], estimator: Optional[str]) -> List[str]:
    """The estimators to show: all of the run's, or ``[estimator]`` when it is one of them.

    Raises:
        ReportError: ``estimator`` is not in the run; the message lists the ones it has.
    """
    names = plotting.estimator_names(records)
    if estimator is None:
        return names
    if estimator not in names:
        raise ReportError(
            f"estimator {estimator!r} is not in this run; it has: {', '.join(names) or 'none'} "
            "(pass one of them to --estimator)"
        )
    return [estimator]


def _one_estimator(rec: Record, estimator: str) -> Record:
    layers = {layer: {estimator: per_est[estimator]}
              for layer, per_est in rec.layers.items() if estimator in per_est}
    checks = rec.checks
    if checks is not None:
        checks = replace(
            checks,
            bound_violations=tuple(v for v in checks.bound_violations if v.estimator == estimator),
            dpi=tuple(t for t in checks.dpi if t.estimator == estimator),
            dpi_violations=tuple(v for v in checks.dpi_violations if v.estimator == estimator),
        )
    return replace(
        rec,
        layers=layers,
        checks=checks,
        warnings=[w for w in rec.warnings if w.estimator in (None, estimator)],
        errors=[e for e in rec.errors if e.estimator in (None, estimator)],
        phase_changes=[p for p in rec.phase_changes if p.estimator == estimator],
    )


def records_for(records: Sequence[Record], estimator: Optional[str]) -> List[Record]:
    """``records`` in step order (``estimator`` None), or copies holding only ``estimator``'s estimates,
    checks, warnings, errors and phase changes (findings about no estimator in particular stay).

    Raises:
        ReportError: ``estimator`` is not in the run.
    """
    check_estimator(records, estimator)
    ordered = sorted(records, key=lambda r: r.step)  # stable: a resumed run keeps its order
    return ordered if estimator is None else [_one_estimator(rec, estimator) for rec in ordered]


def run_phases(run: Any) -> Optional[Phases]:
    """``run.phases`` (the latest decision per series, folded by the run-log reader) when the run has
    it; ``None`` otherwise, so the queries fold the records' phase changes themselves."""
    phases = getattr(run, "phases", None)
    return phases if isinstance(phases, Mapping) else None
