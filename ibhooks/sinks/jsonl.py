"""The JSON-lines run log, always written: a versioned header line, one line per measurement.
``ibhooks.load_run`` reads it back.

What the writer promises (``docs/RELIABILITY.md``):

* every line is written whole or not at all: a write that fails part-way (disk full, file-size
  limit, an interrupt) is rolled back with ``truncate`` to the size before it, so the next line
  never lands after a fragment; each line is flushed and fsync'd;
* a resume never appends after a partial line: the cut-off tail of a killed run is removed first,
  and a ``text`` line says so;
* an existing run log is never replaced silently: a non-empty file is opened only with
  ``resume=True`` or ``overwrite=True``, and one log has one writer at a time (an advisory lock,
  where the platform has ``fcntl``).

Format version 2 (this writer): each record line is ``Record.to_dict()``. Version 1 (ibhooks before
the typed schema) stored checks and warnings as free dicts; the reader still loads it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ..schema import Record, jsonable
from .base import Sink

try:  # POSIX: one writer per run log
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock
    fcntl = None  # type: ignore[assignment]

FORMAT = "ibhooks-run"
#: Run-log layout written here; record lines are ``Record.to_dict()`` of layout ``RECORD_VERSION``.
FORMAT_VERSION = 2
_TAIL_CHUNK = 1 << 16


class RunLogExistsError(FileExistsError):
    """The run log exists (or another monitor is writing it) and neither resume nor overwrite was asked."""


def _last_newline_end(fd: int, size: int) -> int:
    """Offset just after the last ``\\n`` of the file (0 if it has none), read backwards in chunks."""
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        chunk = os.pread(fd, end - start, start)
        at = chunk.rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def _first_line(fd: int, size: int) -> bytes:
    out = b""
    while len(out) < size:
        chunk = os.pread(fd, min(_TAIL_CHUNK, size - len(out)), len(out))
        if not chunk:
            break
        at = chunk.find(b"\n")
        if at >= 0:
            return out + chunk[:at]
        out += chunk
    return out


def _is_header(line: bytes) -> bool:
    try:
        obj = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("type") == "header" and obj.get("format") == FORMAT


class JsonlSink(Sink):
    """Append-only JSONL writer.

    Args:
        path: The run log.
        resume: Continue an existing log (its cut-off last line, if any, is removed first; a log holding
            only a torn header is started anew). No log yet: start one.
        overwrite: Replace an existing log. Without ``resume`` or ``overwrite`` an existing non-empty
            log is an error (:class:`RunLogExistsError`): nothing is replaced silently.
        fsync: fsync after every line.

    Raises:
        RunLogExistsError: the log exists and neither flag was given, or another writer holds it.
        ValueError: ``resume=True`` on a file that is not an ibhooks run log.
    """

    name = "jsonl"

    def __init__(
        self,
        path: Union[str, os.PathLike],
        *,
        resume: bool = False,
        overwrite: bool = False,
        fsync: bool = True,
    ) -> None:
        for flag, value in (("resume", resume), ("overwrite", overwrite), ("fsync", fsync)):
            if not isinstance(value, bool):
                raise ValueError(f"JsonlSink {flag} must be True or False, got {value!r}")
        if resume and overwrite:
            raise ValueError(
                "JsonlSink: pass resume=True (continue the log) or overwrite=True (replace it), not both"
            )
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._fd: Optional[int] = None
        #: Bytes of a cut-off last line removed before resuming (0: none).
        self.removed_tail = 0
        #: Bytes of a torn header (a run killed while writing it) replaced by a new log (0: none).
        self.removed_header = 0
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            self._lock(fd)
            size = os.fstat(fd).st_size
            if size and not (resume or overwrite):
                raise RunLogExistsError(
                    f"run log {self.path} already exists ({size} bytes); pass resume=True to continue it, "
                    "overwrite=True to replace it, or choose another run_name"
                )
            if overwrite:
                os.ftruncate(fd, 0)
                size = 0
            if size:
                size = self._prepare_resume(fd, size)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._size = size
        self._dirty = False
        self.resume = size > 0
        if self.removed_tail:
            self.log_text(
                "resume",
                f"the run log ended in a partial line ({self.removed_tail} bytes, cut off when "
                "the run stopped); it was removed before resuming",
            )

    def _lock(self, fd: int) -> None:
        if fcntl is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise RunLogExistsError(
                f"run log {self.path} is being written by another monitor (this or another process); "
                "give each run its own run_name"
            ) from exc

    def _prepare_resume(self, fd: int, size: int) -> int:
        """Cut a partial last line; return the size kept (0: nothing usable, start a new log)."""
        keep = _last_newline_end(fd, size)
        if keep and not _is_header(_first_line(fd, keep)):
            raise ValueError(
                f"cannot resume into {self.path}: its first line is not an ibhooks run-log header; "
                "pass overwrite=True to replace it or choose another run_name"
            )
        if keep < size:
            os.ftruncate(fd, keep)
            if keep:
                self.removed_tail = size - keep
            else:  # a torn header alone: the log starts anew
                self.removed_header = size
        return keep

    # -- writing ---------------------------------------------------------------------------------
    def _append(self, data: bytes) -> None:
        """Write ``data`` as a whole or not at all (rolled back to the previous size on any failure)."""
        fd = self._fd
        if fd is None:
            return
        start = self._size
        try:
            if self._dirty:  # an earlier rollback failed: cut the fragment first
                os.ftruncate(fd, start)
                self._dirty = False
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fsync(fd)
        except BaseException:
            try:
                os.ftruncate(fd, start)
            except OSError:
                self._dirty = True
            raise
        self._size = start + len(data)

    def _emit(self, obj: Dict[str, Any]) -> None:
        self._append((json.dumps(jsonable(obj), allow_nan=False) + "\n").encode("utf-8"))

    def start(self, header: Dict[str, Any]) -> None:
        """Write the header (a new log) or a ``resume`` marker (created, step and fingerprint kept)."""
        if self.resume:
            kept = {k: header[k] for k in ("created", "step", "fingerprint") if k in header}
            self._emit({"type": "resume", "version": FORMAT_VERSION, **kept})
        else:
            self._emit({"type": "header", "format": FORMAT, "version": FORMAT_VERSION, **header})
            self.resume = True  # a second start() on this sink continues the log
            if self.removed_header:
                self.log_text(
                    "resume",
                    f"the previous run log held only a torn header ({self.removed_header} "
                    "bytes, the run was killed while writing it); this log starts anew",
                )

    def update_header(self, key: str, value: Any) -> None:
        self._emit({"type": "header_update", "key": key, "value": value})

    def write(self, record: Record) -> None:
        self._emit(record.to_dict())

    def log_text(self, tag: str, text: str, step: Optional[int] = None) -> None:
        self._emit({"type": "text", "tag": tag, "text": text, "step": step})

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing releases the lock
