"""Small helpers shared by the architecture examples (cnn_digits, transformer_encoder, resnet_blocks,
lightning_mlp, noisy_network): the printed summary table, the DPI totals and the figures."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ibhooks.estimate import Record


def layer_table(history: Sequence[Record], estimators: Optional[Sequence[str]] = None) -> str:
    """Per layer and estimator: I(X;T) and I(T;Y) at the first measurement, at the peak of I(X;T)
    and at the last measurement (bits), as a Markdown table."""
    if not history:
        return "(no measurements)"
    first, last = history[0], history[-1]
    ests = list(estimators) if estimators else last.estimators
    rows = ["| layer | estimator | I(X;T) first | I(X;T) max | I(X;T) last | I(T;Y) first | I(T;Y) last |",
            "|---|---|---|---|---|---|---|"]

    def val(rec: Record, layer: str, q: str, est: str) -> Optional[float]:
        e = rec.estimate(layer, q, est) if est in rec.layers.get(layer, {}) else None
        return None if e is None else e.value

    def fmt(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.2f}"

    for layer in last.layers:
        for est in ests:
            xs = [v for v in (val(r, layer, "I_XT", est) for r in history) if v is not None]
            cells = [val(first, layer, "I_XT", est), max(xs) if xs else None, val(last, layer, "I_XT", est),
                     val(first, layer, "I_TY", est), val(last, layer, "I_TY", est)]
            rows.append(f"| {layer} | {est} | " + " | ".join(fmt(c) for c in cells) + " |")
    return "\n".join(rows)


def dpi_summary(history: Sequence[Record]) -> Dict[str, Dict[str, int]]:
    """Over the run, per ``estimator/quantity``: adjacent pairs checked along the chains, pairs violated,
    and of those how many exceed the estimates' uncertainty (``significant``), lie within it
    (``within``) or could not be assessed because the estimates carry no interval (``unknown``),
    from ``record.checks["dpi"]``."""
    out: Dict[str, Dict[str, int]] = {}
    for rec in history:
        dpi = (rec.checks or {}).get("dpi") or {}
        for est, per_q in (dpi.get("summary") or {}).items():
            for q, cell in (per_q or {}).items():
                t = out.setdefault(f"{est}/{q}", {"pairs_checked": 0, "violated": 0, "significant": 0,
                                                  "within": 0, "unknown": 0})
                t["pairs_checked"] += int(cell.get("pairs_checked", 0) or 0)
        for v in dpi.get("violations") or []:
            t = out[f"{v['estimator']}/{v['quantity']}"]
            t["violated"] += 1
            sig = v.get("significant")
            t["significant" if sig else "unknown" if sig is None else "within"] += 1
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
        for w in rec.warnings or []:
            out[w.get("code", "?")] = out.get(w.get("code", "?"), 0) + 1
    return out


def errors(history: Sequence[Record]) -> List[Dict[str, Any]]:
    return [e for rec in history for e in rec.errors or []]


def save_figures(run_log: Path, out_dir: Path, *, smoke: bool, dpi: int = 100) -> Dict[str, Path]:
    """Every figure of the run, drawn from its JSONL run log alone (as ``ibhooks plot`` does), as PNGs
    at ``dpi`` in ``out_dir``; the plane animation (GIF) only in full runs."""
    from ibhooks.plotting import save_all_figures

    return save_all_figures(run_log, out_dir, dpi=dpi, animation=not smoke)
