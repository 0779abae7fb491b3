"""The monitor's own state for checkpoints: what :meth:`IBMonitor.state_dict` saves and how
:meth:`IBMonitor.load_state_dict` checks and restores it (plain containers and tensors only, so
``torch.load(..., weights_only=True)`` works)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

from .analyses.base import Analysis
from .capture.reservoir import PassiveReservoir
from .estimators.base import Estimator
from .fingerprint import diff_configs, fingerprint, fingerprint_view
from .pipeline.interpretation import Interpreter

STATE_VERSION = 2


def save_state(
    *,
    step: int,
    run_name: str,
    config: Mapping[str, Any],
    interpreter: Interpreter,
    estimators: Mapping[str, Estimator],
    reservoir: Optional[PassiveReservoir],
    analyses: Sequence[Analysis] = (),
) -> Dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "step": step,
        "run_name": run_name,
        "interpretation": interpreter.state_dict(),
        "estimators": {k: e.state_dict() for k, e in estimators.items()},
        "reservoir": reservoir.state_dict() if reservoir is not None else {},
        "analyses": {a.name: a.state_dict() for a in analyses},
        "fingerprint": fingerprint(config),
        "config_view": fingerprint_view(config),
    }


def check_state(state: Any, config: Mapping[str, Any]) -> int:
    """The saved step, after checking the state is one of ours, of this version and this configuration
    (one ``ValueError`` naming the problem otherwise)."""
    if not isinstance(state, Mapping) or "step" not in state:
        raise ValueError("load_state_dict() needs a dict made by IBMonitor.state_dict()")
    if state.get("version") != STATE_VERSION:
        raise ValueError(
            f"monitor state version {state.get('version')!r} is not {STATE_VERSION}; it was saved "
            "by another ibhooks version"
        )
    if state.get("fingerprint") not in (None, fingerprint(config)):
        diffs = diff_configs(state.get("config_view") or {}, config) or ["fingerprints differ"]
        raise ValueError(
            "load_state_dict(): the state was saved by a monitor with another configuration ("
            + "; ".join(diffs[:8])
            + "); load it into a monitor built with the same layers, "
            "estimators and probe size"
        )
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int):
        raise ValueError(f"load_state_dict(): 'step' must be an integer, got {step!r}")
    return step


def restore_state(
    state: Mapping[str, Any],
    *,
    interpreter: Interpreter,
    estimators: Mapping[str, Estimator],
    reservoir: Optional[PassiveReservoir],
    analyses: Sequence[Analysis] = (),
) -> None:
    interpreter.load_state_dict(state.get("interpretation") or {})
    for key, est_state in (state.get("estimators") or {}).items():
        if key in estimators:
            estimators[key].load_state_dict(est_state)
    if reservoir is not None and state.get("reservoir"):
        reservoir.load_state_dict(state["reservoir"])
    saved = state.get("analyses") or {}
    for analysis in analyses:
        if analysis.name in saved:
            analysis.load_state_dict(saved[analysis.name])
