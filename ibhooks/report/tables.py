"""What the report and the summary show, as typed rows built from a run's Records.

Both renderers (:mod:`.html`, :mod:`.summary`) read these rows; the rows come from the record queries
of :mod:`ibhooks.plotting` and the typed schema, never from raw dicts (the run header, a free
dictionary of configuration and coverage, is the one exception).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .. import plotting
from ..schema import QUANTITIES, PhaseDecision, Quantity, Record, RecordError
from ..schema.phases import SeriesKey

#: The latest phase decision of each (layer, estimator, phase) series.
Phases = Mapping[SeriesKey, PhaseDecision]

PHASE_ABBREV = {"fitting": "fit", "compression": "comp"}


def fmt(x: Optional[float], digits: int = 3) -> str:
    """``x`` with ``digits`` decimals, ``"-"`` when missing or not finite."""
    if x is None or not math.isfinite(float(x)):
        return "-"
    return f"{x:.{digits}f}"


@dataclass(frozen=True)
class Peak:
    """The last and the largest value of one layer's series, and whether the last is at the cap."""

    last: float
    peak: float
    peak_step: int
    saturated: bool


@dataclass(frozen=True)
class LayerRow:
    """One layer under one estimator: I(X;T) and I(T;Y) (None when never measured) and its phases."""

    layer: str
    i_xt: Optional[Peak]
    i_ty: Optional[Peak]
    phases: str

    def get(self, quantity: Quantity) -> Optional[Peak]:
        return self.i_xt if quantity is Quantity.I_XT else self.i_ty


@dataclass(frozen=True)
class EstimatorSummary:
    """One estimator's table: what it measured, its cap on I(X;T), H(Y), one row per layer."""

    estimator: str
    xt_quantity: str
    ty_quantity: str
    xt_cap: Optional[float]
    h_y: Optional[float]
    rows: Tuple[LayerRow, ...]

    @property
    def any_saturated(self) -> bool:
        return any(r.i_xt is not None and r.i_xt.saturated for r in self.rows)


def phase_text(spans: Sequence[plotting.PhaseSpan]) -> str:
    """``"fit 0–400, comp? 1500→"``: each phase span, ``?`` = candidate, ``→`` = ongoing."""
    parts = []
    for s in spans:
        mark = "" if str(s.status) == "detected" else "?"
        end = "→" if s.ongoing else f"–{s.end:g}"
        parts.append(f"{PHASE_ABBREV.get(s.phase, s.phase)}{mark} {s.start:g}{end}")
    return ", ".join(parts) if parts else "-"


def _peak(series: plotting.Series) -> Optional[Peak]:
    if not len(series):
        return None
    values = np.asarray(series.value, dtype=float)
    k = int(np.argmax(values))
    return Peak(float(values[-1]), float(values[k]), int(series.steps[k]), bool(series.saturated[-1]))


def estimator_summary(records: Sequence[Record], estimator: str, phases: Optional[Phases] = None
                      ) -> EstimatorSummary:
    """The summary table of ``estimator``: per layer, last and peak (with its step) of I(X;T) and
    I(T;Y), whether the last I(X;T) is at its cap, and the phases (of ``phases``, the latest decision
    per series, e.g. ``Run.phases``; default: the fold of the records' phase changes)."""
    rows = []
    for layer in plotting.layer_names(records):
        xt, ty = (_peak(plotting.layer_series(records, layer, estimator, q)) for q in QUANTITIES)
        spans = plotting.phase_spans(records, layer, estimator, phases=phases)
        rows.append(LayerRow(layer, xt, ty, phase_text(spans)))
    xcap, hy = plotting.caps(records, estimator)
    return EstimatorSummary(
        estimator=estimator,
        xt_quantity=plotting.quantity_label(records, estimator, Quantity.I_XT),
        ty_quantity=plotting.quantity_label(records, estimator, Quantity.I_TY),
        xt_cap=xcap,
        h_y=hy,
        rows=tuple(rows),
    )


def run_facts(run: Any, records: Sequence[Record], estimator: Optional[str] = None) -> List[Tuple[str, str]]:
    """``(name, value)`` pairs about the run: log, name, measurements, mode, n, H(Y), time."""
    hdr = run.header
    facts = [("log", str(run.path))]
    if hdr.get("run_name"):
        facts.append(("run", str(hdr["run_name"])))
    if hdr.get("created"):
        facts.append(("created", str(hdr["created"])))
    if estimator is not None:
        facts.append(("estimator", estimator))
    if records:
        facts.append(("measurements", f"{len(records)} (steps {records[0].step} to {records[-1].step})"))
        facts.append(("mode", ", ".join(sorted({r.mode for r in records}))))
        facts.append(("probe samples n", str(records[-1].n_samples)))
        if records[-1].h_y is not None:
            facts.append(("H(Y)", plotting.fmt_bits(records[-1].h_y)))
        facts.append(("measurement time", f"{sum(r.seconds for r in records):.1f} s in total"))
    else:
        facts.append(("measurements", "none yet"))
    if run.truncated:
        facts.append(("note", "the last line of the log was cut off (killed run); it was skipped"))
    return facts


def errors_of(records: Sequence[Record]) -> List[Tuple[int, RecordError]]:
    """``(step, error)`` for every failure recorded in the run, in step order."""
    return [(rec.step, e) for rec in records for e in rec.errors]


def error_text(step: int, e: RecordError) -> str:
    """One line: ``step 5, estimate of fc2 under kde: boom``."""
    where = " under ".join(x for x in (e.layer and f"of {e.layer}", e.estimator) if x)
    return f"step {step}, {e.stage}{' ' + where if where else ''}: {e.error}"


@dataclass(frozen=True)
class RobustRow:
    """One layer's phase across the instrument sweep: the verdict, each setting's status (in the table's
    setting order, ``"-"`` where a setting has none) and the settings that do not find it."""

    layer: str
    phase: str
    verdict: str
    statuses: Tuple[str, ...]
    disagree: Tuple[str, ...]


@dataclass(frozen=True)
class RobustTable:
    """The robustness of the phase verdicts as of the latest measurement with the ``robust`` analysis."""

    step: int
    settings: Tuple[str, ...]
    rows: Tuple[RobustRow, ...]


def robust_table(records: Sequence[Record]) -> Optional[RobustTable]:
    """The robustness table of a run (``None`` when no record has ``record.analyses["robust"]``)."""
    from ..analyses.robust import Robustness, latest_verdicts

    step, settings, verdicts = latest_verdicts(records)
    if step is None:
        return None
    rows = []
    for v in verdicts:
        per = dict(v.settings)
        statuses = tuple(str(per[s].status).replace("_", " ") if s in per else "-" for s in settings)
        disagree = tuple(v.not_found_by) if v.verdict is Robustness.CONTESTED else ()
        rows.append(RobustRow(v.layer, v.phase, v.verdict.value, statuses, disagree))
    return RobustTable(int(step), tuple(settings), tuple(rows))
