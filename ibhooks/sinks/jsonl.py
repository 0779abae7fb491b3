"""The JSON-lines run log, always written: a versioned header line, one line per measurement,
flushed (and fsync'd) per line so that a run killed mid-way stays readable minus at most the
line being written. ``ibhooks.load_run`` reads it back.

Format version 2 (this writer): each record line is ``Record.to_dict()`` (typed checks, warnings and
the phase decisions that changed at that measurement). Version 1 (ibhooks before the typed schema)
stored checks and warnings as free dicts and every phase decision in every record; the reader still
loads it."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ..schema import Record, jsonable
from .base import Sink

FORMAT = "ibhooks-run"
#: Run-log layout written here; record lines are ``Record.to_dict()`` of layout ``RECORD_VERSION``.
FORMAT_VERSION = 2


class JsonlSink(Sink):
    """Append-only JSONL writer. ``resume=True`` appends to an existing log instead of starting a new one."""

    name = "jsonl"

    def __init__(self, path: Union[str, os.PathLike], *, resume: bool = False, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.resume = resume and self.path.exists() and self.path.stat().st_size > 0
        self._fsync = fsync
        self._fh = open(self.path, "a" if self.resume else "w", encoding="utf-8")

    def _emit(self, obj: Dict[str, Any]) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(jsonable(obj), allow_nan=False) + "\n")
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    def start(self, header: Dict[str, Any]) -> None:
        if self.resume:
            kept = {k: header[k] for k in ("created", "step") if k in header}
            self._emit({"type": "resume", "version": FORMAT_VERSION, **kept})
        else:
            self._emit({"type": "header", "format": FORMAT, "version": FORMAT_VERSION, **header})

    def update_header(self, key: str, value: Any) -> None:
        self._emit({"type": "header_update", "key": key, "value": value})

    def write(self, record: Record) -> None:
        self._emit(record.to_dict())

    def log_text(self, tag: str, text: str, step: Optional[int] = None) -> None:
        self._emit({"type": "text", "tag": tag, "text": text, "step": step})

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
