"""What a run says about itself: the coverage rows (every module, monitored or skipped and why) and
the run-log header (configuration, coverage, chains, versions)."""

from __future__ import annotations

import datetime as _dt
import platform
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from .capture.hooks import Capture
from .chains import Chain
from .estimators.base import Estimator
from .layers import activation_of


def coverage_rows(
    model: nn.Module,
    monitored: Mapping[str, nn.Module],
    skipped: Mapping[str, str],
    capture: Capture,
    chains: Sequence[Chain],
    estimators: Mapping[str, Estimator],
) -> List[Dict[str, Any]]:
    """One row per module of the model: monitored or skipped and why, shapes, reduction, chain."""
    chain_of = {n: c.name for c in chains for n in c.layers}
    rows = []
    for name, module in model.named_modules():
        if not name:
            continue
        row: Dict[str, Any] = {"name": name, "type": type(module).__name__}
        if name in monitored:
            slot = capture.slots[name]
            row.update(
                status="skipped" if slot.skipped else "monitored" if slot.error is None else "error",
                reason=slot.error or "",
                shape=["B", *slot.shape[1:]] if slot.shape else None,
                dtype=slot.dtype,
                reduction=slot.reduction.name,
                dim=slot.dim,
                activation=activation_of(module),
                chain=chain_of.get(name),
                estimator=", ".join(e.instrument_for(name, slot.dim) for e in estimators.values()),
            )
        else:
            row.update(status="skipped", reason=skipped.get(name, "not selected"))
        rows.append(row)
    return rows


def render_coverage_table(rows: Sequence[Mapping[str, Any]], title: str, *, all: bool = False) -> str:  # noqa: A002
    """The coverage table: one line per monitored layer and a one-line summary of the rest
    (``all=True``: every module)."""
    try:
        from .coverage import render_coverage  # the compact renderer, where available
    except ImportError:
        render_coverage = None
    if render_coverage is not None:
        return f"{title}\n{render_coverage(list(rows), all=all)}"
    lines = [
        title,
        f"  {'layer':<36} {'type':<20} {'status':<10} {'output':<18} {'reduction':<22} dim  chain / reason",
    ]
    shown = [r for r in rows if all or r["status"] != "skipped"]
    for row in shown:
        shape = "x".join(str(s) for s in row["shape"]) if row.get("shape") else "-"
        tail = (row.get("chain") or "") if row["status"] == "monitored" else row.get("reason", "")
        lines.append(
            f"  {row['name']:<36} {row['type'][:20]:<20} {row['status']:<10} {shape[:18]:<18} "
            f"{str(row.get('reduction') or '-')[:22]:<22} {str(row.get('dim') or '-'):<4} {tail}"
        )
    if not all:
        n_skipped = sum(1 for r in rows if r["status"] == "skipped")
        if n_skipped:
            lines.append(
                f"  ... {n_skipped} module(s) skipped (containers, parts of monitored blocks, dropout); "
                "coverage_table(all=True) lists them"
            )
    return "\n".join(lines)


def run_config(model: nn.Module, mode: str, layers: Sequence[str], estimators: Mapping[str, Any],
               schedule: Any, probe: Any, cc: Any, pc: Any, rl: Any, ec: Any) -> Dict[str, Any]:
    """The configuration written into the run-log header (and fingerprinted for resume checks)."""
    return {
        "mode": mode,
        "layers": list(layers),
        "estimators": {k: {"class": type(e).__name__, "params": e.params(), "traits": e.traits.to_dict()}
                       for k, e in estimators.items()},
        "schedule": repr(schedule),
        "probe_samples": probe.n if probe is not None else None,
        "probe": dict(probe.info) if probe is not None else None,
        "max_samples": cc.max_samples,
        "probe_batch_size": cc.probe_batch_size,
        "passive_window": pc.window,
        "memory_budget_mb": cc.memory_budget_mb,
        "seed": cc.seed,
        "background": ec.background,
        "figure_every": rl.figure_every,
        "model": type(model).__name__,
    }


def build_header(
    *,
    run_name: str,
    step: int,
    config: Mapping[str, Any],
    run_log: Any = None,
    coverage: Sequence[Mapping[str, Any]],
    chains: Sequence[Chain],
) -> Dict[str, Any]:
    return {
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "run_name": run_name,
        "run_log": str(run_log) if run_log is not None else None,
        "step": step,
        "config": dict(config),
        "coverage": list(coverage),
        "chains": [c.to_dict() for c in chains],
        "versions": versions(),
    }


def versions() -> Dict[str, Optional[str]]:
    return {
        "ibhooks": _version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": getattr(sys.modules.get("numpy"), "__version__", None),
    }


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ibhooks")
    except Exception:  # noqa: BLE001
        return "unknown"
