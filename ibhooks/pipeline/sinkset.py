"""Emit stage: the sinks of a run, each called safely (a failing sink is warned about once and the
others go on)."""

from __future__ import annotations

from typing import Any, Iterator, List, Sequence

from ..schema import Record
from .console import Console


class SinkSet:
    def __init__(self, sinks: Sequence[Any], console: Console) -> None:
        self.sinks: List[Any] = list(sinks)
        self._console = console

    def call(self, method: str, *args: Any) -> None:
        for sink in self.sinks:
            fn = getattr(sink, method, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - a broken logger must not stop training
                self._console.warn_once(
                    ("sink", type(sink).__name__, method),
                    f"sink {type(sink).__name__}.{method} failed: {exc!r}; other sinks go on",
                )

    def __iter__(self) -> Iterator[Any]:
        return iter(self.sinks)

    def __len__(self) -> int:
        return len(self.sinks)

    def write(self, record: Record) -> None:
        self.call("write", record)

    def close(self) -> None:
        self.call("close")
