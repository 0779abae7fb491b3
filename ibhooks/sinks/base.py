"""The sink extension point: anything that receives the run header and one :class:`Record` per
measurement. Sinks read Records only; they never touch modules, hooks or tensors.

Adding a sink = one file with a :class:`Sink` subclass + one line in ``ibhooks/sinks/registry.py``.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from ..schema import Record


class Sink:
    """Base class. ``start`` gets the run header (config, coverage, chains) once; ``write`` gets
    each Record; ``close`` flushes and releases resources. ``update_header`` receives late
    information (e.g. the coverage table in passive mode, known only after the first capture)."""

    name: str = ""

    def start(self, header: Dict[str, Any]) -> None:
        del header

    def update_header(self, key: str, value: Any) -> None:
        del key, value

    def write(self, record: Record) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def log_text(self, tag: str, text: str, step: Optional[int] = None) -> None:
        """Optional free text (e.g. a warning); sinks that cannot show text ignore it."""
        del tag, text, step
