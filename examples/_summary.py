"""Small helpers shared by the architecture examples (cnn_digits, transformer_encoder, resnet_blocks,
lightning_mlp, noisy_network): the printed summary table, the DPI totals and the figures. They read
typed Records only (``record.checks`` a :class:`~ibhooks.schema.Checks`, ``record.warnings``
:class:`~ibhooks.schema.IBWarning`, ``record.errors`` :class:`~ibhooks.schema.RecordError`)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ibhooks.schema import Quantity, Record, RecordError


def layer_table(history: Sequence[Record], estimators: Optional[Sequence[str]] = None) -> str:
    """Per layer and estimator: I(X;T) and I(T;Y) at the first measurement, at the peak of I(X;T)
    and at the last measurement (bits), as a Markdown table."""
    if not history:
        return "(no measurements)"
    first, last = history[0], history[-1]
    ests = list(estimators) if estimators else last.estimators
    rows = ["| layer | estimator | I(X;T) first | I(X;T) max | I(X;T) last | I(T;Y) first | I(T;Y) last |",
            "|---|---|---|---|---|---|---|"]

    def val(rec: Record, layer: str, q: Quantity, est: str) -> Optional[float]:
        e = rec.estimate(layer, q, est) if est in rec.layers.get(layer, {}) else None
        return None if e is None else e.value

    def fmt(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.2f}"

    xt, ty = Quantity.I_XT, Quantity.I_TY
    for layer in last.layers:
        for est in ests:
            xs = [v for v in (val(r, layer, xt, est) for r in history) if v is not None]
            cells = [val(first, layer, xt, est), max(xs) if xs else None, val(last, layer, xt, est),
                     val(first, layer, ty, est), val(last, layer, ty, est)]
            rows.append(f"| {layer} | {est} | " + " | ".join(fmt(c) for c in cells) + " |")
    return "\n".join(rows)


def dpi_summary(history: Sequence[Record]) -> Dict[str, Dict[str, int]]:
    """Over the run, per ``estimator/quantity``: adjacent pairs checked along the chains, pairs violated,
    and of those how many exceed the estimates' uncertainty (``significant``), lie within it
    (``within``) or could not be assessed because the estimates carry no interval (``unknown``),
    summed from the tallies ``record.checks.dpi``."""
    out: Dict[str, Dict[str, int]] = {}
    for rec in history:
        if rec.checks is None:
            continue
        for tally in rec.checks.dpi:
            t = out.setdefault(f"{tally.estimator}/{tally.quantity.value}", dict.fromkeys(
                ("pairs_checked", "violated", "significant", "within", "unknown"), 0))
            t["pairs_checked"] += tally.pairs_checked
            t["violated"] += tally.violated
            t["significant"] += tally.significant
            t["unknown"] += tally.not_assessed
            t["within"] += tally.violated - tally.significant - tally.not_assessed
    return out


def format_dpi(history: Sequence[Record]) -> str:
    totals = dpi_summary(history)
    if not any(t["pairs_checked"] for t in totals.values()):
        return "DPI: no chain checked (no two monitored layers on a Markov chain with a lossless reduction)"
    lines = ["DPI along the chains, adjacent pairs over all measurements:",
             f"  {'estimator/quantity':<24} {'checked':>7} {'violated':>8}   "
             "of which: beyond / within / unknown uncertainty"]
    for key, t in sorted(totals.items()):
        lines.append(f"  {key:<24} {t['pairs_checked']:7d} {t['violated']:8d}   "
                     f"{t['significant']:>10d} / {t['within']:>6d} / {t['unknown']:>7d}")
    return "\n".join(lines)


def warning_codes(history: Sequence[Record]) -> Dict[str, int]:
    """How many (layer, estimator) warnings of each code the run raised, over all measurements."""
    out: Dict[str, int] = {}
    for rec in history:
        for w in rec.warnings:
            out[w.code.value] = out.get(w.code.value, 0) + 1
    return out


def errors(history: Sequence[Record]) -> List[RecordError]:
    """Every failure recorded during the run (training went on)."""
    return [e for rec in history for e in rec.errors]


def save_figures(run_log: Path, out_dir: Path, *, smoke: bool, dpi: int = 100) -> Dict[str, Path]:
    """Every figure of the run, drawn from its JSONL run log alone (as ``ibhooks plot`` does), as PNGs
    at ``dpi`` in ``out_dir``; the plane animation (GIF) only in full runs."""
    from ibhooks.plotting import save_all_figures

    return save_all_figures(run_log, out_dir, dpi=dpi, animation=not smoke)
