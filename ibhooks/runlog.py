"""Reading a JSONL run log back: :func:`load_run` (format versions 1 and 2).

The reader recovers every complete record anywhere in the file: a line that is not valid JSON, not
UTF-8, nested too deep or holding values of the wrong type is skipped and counted
(:attr:`Run.skipped_lines`, a :class:`RunLogWarning` naming how many and where); a last line cut off
by a killed run sets :attr:`Run.truncated`. Only a file whose header cannot be read is an error: one
``ValueError`` naming the file, the line and the problem (never another exception type).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from .runlog_check import field_problem, header_field_problem, header_problem
from .schema import PhaseDecision, Record
from .schema.phases import SeriesKey, fold_phase_changes
from .sinks.jsonl import FORMAT, FORMAT_VERSION


class RunLogWarning(UserWarning):
    """A run log was read with lines skipped (corrupt, or values of the wrong type)."""


@dataclass
class Run:
    """A run log read back (in a notebook it shows its interactive information plane).

    Attributes:
        path: The file read.
        header: The header (config, coverage, chains, versions), with later ``header_update`` lines applied.
        records: The typed Records in step order (records re-measured after a resume replace the old ones).
        texts, resumes: Free-text lines and resume markers.
        truncated: The last line was cut off (a killed run) and skipped.
        format_version: The run-log format version of the header (1: ibhooks before the typed schema).
        phases: The latest :class:`~ibhooks.schema.PhaseDecision` of every (layer, estimator, phase)
            series: the fold of the records' ``phase_changes`` in order.
        skipped_lines: 1-based numbers of the complete lines that could not be read and were skipped.
        problems: ``"line N: problem"`` for each skipped line, in file order.
    """

    path: Path
    header: Dict[str, Any]
    records: List[Record] = field(default_factory=list)
    texts: List[Dict[str, Any]] = field(default_factory=list)
    resumes: List[Dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    format_version: int = FORMAT_VERSION
    phases: Dict[SeriesKey, PhaseDecision] = field(default_factory=dict)
    skipped_lines: List[int] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)

    def _repr_html_(self) -> str:
        """The interactive plane and a summary table, for Jupyter (:func:`ibhooks.notebook.show`)."""
        from .notebook import show

        return show(self)._repr_html_()

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

    @property
    def notes(self) -> List[str]:
        """One sentence per recovery the reader made (skipped lines, a cut-off last line)."""
        out = []
        if self.skipped_lines:
            out.append(skipped_note(self.path, self.skipped_lines, self.problems, len(self.records)))
        if self.truncated:
            out.append(
                f"the last line of {self.path} was cut off (the run was killed while writing?); "
                "it was skipped"
            )
        return out


def skipped_note(path: Path, lines: List[int], problems: List[str], n_records: int) -> str:
    shown = ", ".join(str(n) for n in lines[:5]) + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
    return (
        f"run log {path}: skipped {len(lines)} unreadable line(s) (line {shown}; first: {problems[0]}); "
        f"{n_records} complete record(s) read"
    )


def _resolve(path: Union[str, os.PathLike]) -> Path:
    p = Path(path)
    if p.is_dir():
        candidates = sorted(p.glob("*.jsonl"))
        if len(candidates) != 1:
            raise FileNotFoundError(
                f"{p} is a directory with {len(candidates)} .jsonl run logs; name one of them"
            )
        p = candidates[0]
    if not p.exists():
        raise FileNotFoundError(
            f"run log {p} does not exist; pass the .jsonl file an IBMonitor wrote (see its log_dir)"
        )
    return p


def _parse(raw: bytes) -> Tuple[Optional[Dict[str, Any]], str]:
    """One line as a JSON object, or ``(None, problem)``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return None, "nested too deeply to read"
    except ValueError as exc:  # e.g. an integer with too many digits
        return None, f"not readable JSON ({exc})"
    if not isinstance(obj, dict):
        return None, f"a JSON {type(obj).__name__}, not an object"
    return obj, ""


def _header(p: Path, lines: List[bytes], cut_last: bool) -> Tuple[Dict[str, Any], int]:
    """The header object (the first non-empty line) and its index; one ValueError otherwise."""
    idx = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if idx is None:
        raise ValueError(
            f"run log {p} is empty: the run wrote nothing (was IBMonitor constructed with this log_dir?)"
        )
    if idx == len(lines) - 1 and cut_last:
        raise ValueError(
            f"run log {p} line {idx + 1}: the header is cut off (the run was killed while writing it); "
            "the log holds no measurements; start the run again (resume=True starts it anew)"
        )
    obj, problem = _parse(lines[idx])
    if obj is None:
        if problem == "not UTF-8 text":
            raise ValueError(
                f"run log {p} is not a text file (not UTF-8); pass the .jsonl an IBMonitor wrote"
            )
        raise ValueError(f"{p} is not an ibhooks run log: line {idx + 1} (the header) is {problem}")
    problem = header_problem(obj, format_name=FORMAT, newest=FORMAT_VERSION)
    if problem:
        raise ValueError(f"{p} is not an ibhooks run log it can read: line {idx + 1}: {problem}")
    return obj, idx


def _record(obj: Dict[str, Any]) -> Tuple[Optional[Record], str]:
    try:
        rec = Record.from_dict(obj)  # reads the version-1 and version-2 layouts
    except (
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        OverflowError,
        IndexError,
        RecursionError,
    ) as exc:
        return None, f"not a valid record ({type(exc).__name__}: {str(exc)[:80]})"
    problem = field_problem(rec, Record, "record")
    return (None, problem) if problem else (rec, "")


def read_header(path: Union[str, os.PathLike]) -> Optional[Dict[str, Any]]:
    """The header of an existing run log, or ``None`` when there is none to continue (no file, an empty
    file, a header cut off while it was written). Raises ``ValueError`` for a file that is not a run log."""
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        return None
    with open(p, "rb") as fh:
        first = fh.readline()
    if not first.endswith(b"\n"):
        return None
    header, _ = _header(p, [first], cut_last=False)
    return header


def load_run(path: Union[str, os.PathLike]) -> Run:
    """Read a run log written by :class:`ibhooks.IBMonitor` (format version 1 or 2).

    Every complete record is recovered; unreadable lines are skipped, counted in
    :attr:`Run.skipped_lines` and named in one :class:`RunLogWarning`; a cut-off last line sets
    :attr:`Run.truncated`.

    Raises:
        FileNotFoundError: no such file (or a directory without exactly one ``.jsonl``).
        ValueError: the file is empty, not text, or its header is missing, cut off or malformed
            (the message names the file, the line and the problem).
    """
    p = _resolve(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ValueError(f"run log {p} cannot be read: {exc.strerror or exc}") from None
    lines = data.split(b"\n")
    cut_last = bool(lines[-1].strip())  # no newline after the last line: cut off by a kill
    if not cut_last:
        lines.pop()
    header, first = _header(p, lines, cut_last)
    run = Run(path=p, header=dict(header), format_version=header["version"])
    after_resume = False
    for i in range(first + 1, len(lines)):
        raw = lines[i]
        if not raw.strip():
            continue
        obj, problem = _parse(raw)
        if obj is None and i == len(lines) - 1 and cut_last:
            run.truncated = True  # killed mid-write: drop the partial last line
            break
        kind = obj.get("type") if obj is not None else None
        if obj is not None:
            if kind == "record":
                rec, problem = _record(obj)
                if rec is not None:
                    if after_resume:
                        # A resumed run re-measures the steps between its checkpoint and the crash: the
                        # records written after the resume supersede the earlier ones from that step on.
                        run.records = [r for r in run.records if r.step < rec.step]
                        after_resume = False
                    run.records.append(rec)
            elif kind == "header_update":
                key = obj.get("key")
                problem = (
                    "a header update without a string key"
                    if not isinstance(key, str)
                    else header_field_problem(key, obj.get("value")) or ""
                )
                if not problem:
                    run.header[key] = obj.get("value")
            elif kind == "text":
                run.texts.append(obj)
            elif kind == "resume":
                run.resumes.append(obj)
                after_resume = True
        if problem:
            run.skipped_lines.append(i + 1)
            run.problems.append(f"line {i + 1}: {problem}")
    for rec in run.records:
        fold_phase_changes(rec.phase_changes, into=run.phases)
    if run.skipped_lines:
        warnings.warn(
            skipped_note(p, run.skipped_lines, run.problems, len(run.records)), RunLogWarning, stacklevel=2
        )
    return run
