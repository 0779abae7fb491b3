"""The configuration fingerprint of a run: what must be the same for a resumed run to continue the same
series (model class and monitored layers, estimators and their parameters, probe size).

    fp = fingerprint(config)                   # config: the monitor's header "config" dict
    check_resume(log_path, fp, config)         # ValueError naming the differences, if any

Settings that do not change what a series measures (schedule, verbosity, background, figure_every)
are left out, so they may change across a resume.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, List, Mapping, Union

from .schema import jsonable

#: The configuration keys a fingerprint covers (estimators: class and params, not the derived traits).
FINGERPRINT_KEYS = ("model", "mode", "layers", "estimators", "probe_samples")


def fingerprint_view(config: Mapping[str, Any]) -> Dict[str, Any]:
    """The part of ``config`` the fingerprint covers, JSON-safe (missing keys are ``None``)."""
    if not isinstance(config, Mapping):
        raise TypeError(f"fingerprint() needs the run configuration as a dict, got {type(config).__name__}")
    view: Dict[str, Any] = {k: config.get(k) for k in FINGERPRINT_KEYS}
    estimators = view["estimators"]
    if isinstance(estimators, Mapping):
        view["estimators"] = {
            str(k): ({"class": v.get("class"), "params": v.get("params")} if isinstance(v, Mapping) else v)
            for k, v in estimators.items()
        }
    return jsonable(view)


def fingerprint(config: Mapping[str, Any]) -> str:
    """A stable hash (16 hex digits) of the model class, monitored layers, estimators with their
    parameters and the probe size in ``config``: equal for equal settings, in any process or session."""
    text = json.dumps(fingerprint_view(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _diff(a: Any, b: Any, where: str, out: List[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            sub = f"{where}.{key}" if where else str(key)
            if key not in b:
                out.append(f"{sub}: {a[key]!r} -> (absent)")
            elif key not in a:
                out.append(f"{sub}: (absent) -> {b[key]!r}")
            else:
                _diff(a[key], b[key], sub, out)
    elif a != b:
        out.append(f"{where}: {a!r} -> {b!r}")


def diff_configs(a: Mapping[str, Any], b: Mapping[str, Any]) -> List[str]:
    """The fingerprinted settings that differ from ``a`` to ``b``, one ``"path: old -> new"`` each
    (e.g. ``"estimators.binning.params.n_bins: 30 -> 5"``); empty when the fingerprints agree."""
    out: List[str] = []
    _diff(fingerprint_view(a), fingerprint_view(b), "", out)
    return out


def check_resume(log_path: Union[str, os.PathLike], fingerprint_now: str, config: Mapping[str, Any]) -> None:
    """Refuse to resume into a run log made with another configuration.

    Nothing to continue (no file, an empty one, a header cut off while written): passes. A header with
    another fingerprint (or, for logs written before fingerprints, another fingerprint of its config):
    ``ValueError`` naming each difference and the fix.

    Raises:
        ValueError: the configurations differ, or the file is not an ibhooks run log.
    """
    from .runlog import read_header

    header = read_header(log_path)
    if header is None:
        return
    old_config = header.get("config") if isinstance(header.get("config"), Mapping) else {}
    old_fp = header.get("fingerprint")
    if not isinstance(old_fp, str):
        old_fp = fingerprint(old_config)
    if old_fp == fingerprint_now:
        return
    diffs = diff_configs(old_config, config) or [f"fingerprint {old_fp} -> {fingerprint_now}"]
    raise ValueError(
        f"cannot resume into run log {log_path}: it was written with another configuration ("
        + "; ".join(diffs[:8])
        + (f"; and {len(diffs) - 8} more" if len(diffs) > 8 else "")
        + "). Resume with the settings of that run, or start a separate run with another run_name"
    )


__all__ = ["fingerprint", "fingerprint_view", "diff_configs", "check_resume", "FINGERPRINT_KEYS"]
