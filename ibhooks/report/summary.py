"""The terminal summary of a run (``ibhooks summary``): plain text, no matplotlib."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

from .. import plotting
from ..schema import QUANTITIES, Record
from .select import check_estimator, records_for, run_phases
from .tables import EstimatorSummary, error_text, errors_of, estimator_summary, fmt, run_facts

#: Warnings listed before "... and N more".
MAX_WARNINGS = 20

_HEAD = ["layer", "I(X;T) last", "peak @step", "I(T;Y) last", "peak @step", "phases"]


def _table(lines: List[List[str]]) -> List[str]:
    """Columns padded to their widest cell; the first and last left-aligned, numbers right-aligned."""
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    last = len(widths) - 1
    out = []
    for j, row in enumerate(lines):
        cells = [c.ljust(widths[i]) if i in (0, last) else c.rjust(widths[i]) for i, c in enumerate(row)]
        out.append(("  " + "  ".join(cells)).rstrip())
        if j == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return out


def _estimator_block(s: EstimatorSummary) -> List[str]:
    out = [
        "",
        f"estimator {s.estimator}",
        f"  I(X;T) measured as {s.xt_quantity or '-'}"
        + (f", cap {s.xt_cap:.4g} bits" if s.xt_cap is not None else ""),
        f"  I(T;Y) measured as {s.ty_quantity or '-'}",
    ]
    lines = [list(_HEAD)]
    for r in s.rows:
        cells = [r.layer]
        for q in QUANTITIES:
            p = r.get(q)
            cells += ["-", "-"] if p is None else [fmt(p.last) + ("*" if p.saturated else ""),
                                                  f"{fmt(p.peak)} @{p.peak_step}"]
        lines.append(cells + [r.phases])
    out += _table(lines)
    if s.any_saturated:
        out.append("  * at the estimator's cap: the true value may be higher")
    out.append(
        "  phases: fit = fitting (I(T;Y) rises), comp = compression (I(X;T) falls); "
        "? = candidate, → = ongoing"
    )
    return out


def _dpi_block(records: Sequence[Record]) -> List[str]:
    totals = plotting.dpi_totals(records)
    if not totals:
        return []
    out = ["", "DPI along chains"]
    for t in totals.values():
        out.append(
            f"  {t.estimator} {t.quantity.label}: violated at {t.measurements_violated} of {t.measurements} "
            f"measurements ({t.violated} of {t.pairs_checked} pairs: {t.significant} significant, "
            f"{t.not_assessed} not assessed)"
        )
    return out


def _warnings_block(records: Sequence[Record]) -> List[str]:
    warns = plotting.warnings_summary(records)
    if not warns:
        return []
    out = ["", f"warnings ({len(warns)} distinct)"]
    for w in warns[:MAX_WARNINGS]:
        out.append(f"  [{w.code}] {w.layer or '-'}: seen {w.count}x, steps {w.first_step}..{w.last_step}")
    if len(warns) > MAX_WARNINGS:
        out.append(f"  ... and {len(warns) - MAX_WARNINGS} more (see: ibhooks report)")
    return out


def _errors_block(records: Sequence[Record]) -> List[str]:
    errors = errors_of(records)
    if not errors:
        return []
    return ["", f"errors: {len(errors)} (first: {error_text(*errors[0])})"]


def render_summary(run: Any, estimator: Optional[str] = None) -> str:
    """The terminal summary of ``run`` (a :class:`ibhooks.runlog.Run`): run facts, then per estimator a
    table of layers x (last / peak I(X;T), last / peak I(T;Y), phases), then DPI checks, warnings and
    errors in brief.

    Args:
        run: The run read back from its log.
        estimator: Only this estimator (default: every one in the run).

    Raises:
        ReportError: ``estimator`` is not in the run.
    """
    names = check_estimator(run.records, estimator)
    records = records_for(run.records, estimator)
    facts = run_facts(run, records, estimator)
    width = max(len(k) for k, _ in facts)
    out = [f"{k:<{width}}  {v}" for k, v in facts]
    for name in names:
        out += _estimator_block(estimator_summary(records, name, run_phases(run)))
    out += _dpi_block(records) + _warnings_block(records) + _errors_block(records)
    return "\n".join(out)
