"""Markdown renderings of the run for TensorBoard's text plugin: settings and coverage, warnings,
phases and DPI / bound checks (one wording for significance: yes / no / not assessed)."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, Sequence

from ibhooks.schema import PhaseDecision, Record

__all__ = ["config_markdown", "warnings_markdown", "phases_markdown", "dpi_markdown"]


def _md_cell(x: Any) -> str:
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x).replace("|", "\\|").replace("\n", " ")


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def config_markdown(header: Dict[str, Any]) -> str:
    parts = ["### ibhooks run"]
    cfg = header.get("config")
    if cfg:
        parts.append("**Settings**\n\n```\n" + json.dumps(cfg, indent=2, default=str)[:6000] + "\n```")
    cov = header.get("coverage") or []
    if cov:
        rows = [
            [
                c.get("name"),
                c.get("type"),
                c.get("status"),
                c.get("dim"),
                c.get("reduction"),
                c.get("chain") or c.get("reason"),
            ]
            for c in cov
        ]
        n_mon = sum(1 for c in cov if c.get("status") == "monitored")
        parts.append(
            f"**Coverage**: {n_mon} of {len(cov)} modules monitored\n\n"
            + _md_table(["module", "type", "status", "dim", "reduction", "chain / reason"], rows)
        )
    chains = header.get("chains") or []
    if chains:
        lines = []
        for c in chains:
            if isinstance(c, dict):
                lines.append(f"- {c.get('name')}: " + " → ".join(map(str, c.get("layers", []))))
            else:
                lines.append("- " + " → ".join(map(str, c)))
        parts.append("**Chains** (the DPI is checked along these)\n\n" + "\n".join(lines))
    return "\n\n".join(parts)


def warnings_markdown(record: Record) -> str:
    rows = [[w.severity.value, w.code.value, w.layer, w.estimator, w.message] for w in record.warnings]
    errs = [[e.layer, e.estimator, e.stage, e.error] for e in record.errors]
    parts = []
    if rows:
        parts.append(
            f"**{len(rows)} warning(s)**\n\n"
            + _md_table(["severity", "code", "layer", "estimator", "message"], rows)
        )
    if errs:
        parts.append(
            f"**{len(errs)} error(s)**\n\n" + _md_table(["layer", "estimator", "stage", "error"], errs)
        )
    return "\n\n".join(parts)


def phases_markdown(decisions: Iterable[PhaseDecision]) -> str:
    """The detected and candidate phases among the latest decisions of every series."""
    rows = [
        [
            d.layer,
            d.estimator,
            d.phase,
            d.status.value,
            d.start_step,
            "ongoing" if d.end_step is None else d.end_step,
            d.slope_bits_per_decade,
            d.p_adjusted,
        ]
        for d in decisions
        if d.shown
    ]
    if not rows:
        return ""
    return (
        "**Phases** (detected = passed the last decisions in a row; candidate = the latest only)\n\n"
        + _md_table(
            ["layer", "estimator", "phase", "status", "start step", "end step", "bits/decade",
             "p (adjusted)"],
            rows,
        )
    )


def _significance(v: Any) -> str:
    return {True: "significant", False: "within uncertainty", None: "not assessed"}[v.significant]


def dpi_markdown(record: Record) -> str:
    checks = record.checks
    if checks is None:
        return ""
    rows = [
        [
            v.chain,
            v.estimator,
            v.quantity.label,
            f"{v.upstream} → {v.downstream}",
            v.size_bits,
            _significance(v),
        ]
        for v in checks.dpi_violations
    ]
    bounds = [
        [v.layer, v.estimator, v.bound, v.size_bits, "bug" if v.is_bug else "estimator inconsistency"]
        for v in checks.bound_violations
    ]
    parts = []
    if rows:
        parts.append(
            "**DPI violations**\n\n"
            + _md_table(["chain", "estimator", "quantity", "layers", "excess (bits)", "significant"], rows)
        )
    if bounds:
        parts.append(
            "**Within-layer bound violations**\n\n"
            + _md_table(["layer", "estimator", "bound", "excess (bits)", "kind"], bounds)
        )
    return "\n\n".join(parts)
