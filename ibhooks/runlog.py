"""Reading a JSONL run log back: :func:`load_run` (format versions 1 and 2)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Union

from .schema import PhaseDecision, Record
from .schema.phases import SeriesKey, fold_phase_changes
from .sinks.jsonl import FORMAT, FORMAT_VERSION


@dataclass
class Run:
    """A run log read back.

    Attributes:
        path: The file read.
        header: The header (config, coverage, chains, versions), with later ``header_update`` lines applied.
        records: The typed Records in step order (records re-measured after a resume replace the old ones).
        texts, resumes: Free-text lines and resume markers.
        truncated: The last line was cut off (a killed run) and skipped.
        format_version: The run-log format version of the header (1: ibhooks before the typed schema).
        phases: The latest :class:`~ibhooks.schema.PhaseDecision` of every (layer, estimator, phase)
            series: the fold of the records' ``phase_changes`` in order.
    """

    path: Path
    header: Dict[str, Any]
    records: List[Record] = field(default_factory=list)
    texts: List[Dict[str, Any]] = field(default_factory=list)
    resumes: List[Dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    format_version: int = FORMAT_VERSION
    phases: Dict[SeriesKey, PhaseDecision] = field(default_factory=dict)

    @property
    def layers(self) -> List[str]:
        names: List[str] = []
        for rec in self.records:
            for layer in rec.layers:
                if layer not in names:
                    names.append(layer)
        return names

    @property
    def coverage(self) -> List[Dict[str, Any]]:
        return list(self.header.get("coverage") or [])


def load_run(path: Union[str, os.PathLike]) -> Run:
    """Read a run log written by :class:`ibhooks.IBMonitor` (format version 1 or 2).

    A last line cut off mid-write (a killed run) is skipped and ``Run.truncated`` is set; a bad
    line anywhere else is an error.
    """
    p = Path(path)
    if p.is_dir():
        candidates = sorted(p.glob("*.jsonl"))
        if len(candidates) != 1:
            raise FileNotFoundError(
                f"{p} is a directory with {len(candidates)} .jsonl run logs; name one of them")
        p = candidates[0]
    if not p.exists():
        raise FileNotFoundError(
            f"run log {p} does not exist; pass the .jsonl file an IBMonitor wrote (see its log_dir)")
    lines = p.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(
            f"run log {p} is empty: the run wrote nothing (was IBMonitor constructed with this log_dir?)")
    parsed: List[Dict[str, Any]] = []
    truncated = False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1:
                truncated = True  # killed mid-write: drop the partial last line
                break
            raise ValueError(
                f"run log {p} line {i + 1} is not valid JSON ({exc}); the file is corrupt") from exc
    header = parsed[0]
    if header.get("type") != "header" or header.get("format") != FORMAT:
        raise ValueError(f"{p} is not an ibhooks run log (first line is not an '{FORMAT}' header)")
    version = int(header.get("version", 0))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{p} has run-log format version {header['version']}, newer than this ibhooks reads "
            f"({FORMAT_VERSION}); upgrade ibhooks"
        )
    run = Run(path=p, header=dict(header), truncated=truncated, format_version=version)
    after_resume = False
    for obj in parsed[1:]:
        kind = obj.get("type")
        if kind == "record":
            rec = Record.from_dict(obj)  # reads the version-1 and version-2 layouts
            if after_resume:
                # A resumed run re-measures the steps between its checkpoint and the crash: the
                # records written after the resume supersede the earlier ones from that step on.
                run.records = [r for r in run.records if r.step < rec.step]
                after_resume = False
            run.records.append(rec)
        elif kind == "header_update":
            run.header[obj["key"]] = obj["value"]
        elif kind == "text":
            run.texts.append(obj)
        elif kind == "resume":
            run.resumes.append(obj)
            after_resume = True
    for rec in run.records:
        fold_phase_changes(rec.phase_changes, into=run.phases)
    return run
