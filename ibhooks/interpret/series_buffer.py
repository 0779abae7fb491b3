"""One phase series' bounded state for :class:`~.phases.PhaseTracker`: its points thinned evenly in
log(step + 1) (capacity ``PhaseConfig.max_points``), its recent test outcomes (for persistence), and
(de)serialisation to plain containers."""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .trend import FIRST_LEVEL, PhaseConfig, SeriesAnalysis, SeriesTest


def _bucket(step: float, level: int) -> int:
    """Cell of ``step`` on a grid of ``2**level`` cells per doubling of ``step + 1``."""
    return math.floor(math.log2(max(step, 0.0) + 1.0) * 2.0**level)


class SeriesBuffer:
    """Bounded points of one series, thinned evenly in log(step + 1), plus its recent outcomes."""

    __slots__ = ("steps", "values", "stderr", "count", "level", "recent", "cache")

    def __init__(self) -> None:
        self.steps: List[float] = []
        self.values: List[float] = []
        self.stderr: List[float] = []
        self.count = 0
        self.level = FIRST_LEVEL
        self.recent: List[Tuple[float, bool]] = []
        self.cache: Optional[SeriesTest] = None

    def _tail_is_extra(self) -> bool:
        """Whether the latest point shares its cell with the point before it (kept only as the latest)."""
        return len(self.steps) >= 2 and _bucket(self.steps[-1], self.level) == _bucket(
            self.steps[-2], self.level
        )

    def append(self, step: float, value: float, se: float, capacity: int) -> None:
        if self._tail_is_extra():
            self._pop()
        self.steps.append(step)
        self.values.append(value)
        self.stderr.append(se)
        self.count += 1
        while len(self.steps) > capacity:  # coarser cells: the first point of each cell, and the latest
            self.level -= 1
            cells = [_bucket(x, self.level) for x in self.steps]
            last = len(cells) - 1
            keep = [i for i in range(len(cells)) if i == 0 or i == last or cells[i] != cells[i - 1]]
            for name in ("steps", "values", "stderr"):
                col = getattr(self, name)
                setattr(self, name, [col[i] for i in keep])
        self.cache = None

    def _pop(self) -> None:
        for col in (self.steps, self.values, self.stderr):
            col.pop()

    def truncate(self, step: float) -> None:
        """Drop points and outcomes at ``step`` or later (a re-measurement)."""
        while self.steps and self.steps[-1] >= step:
            self._pop()
            self.count -= 1  # thinned-away measurements are not counted back: approximate
        self.count = max(self.count, len(self.steps))
        self.recent = [(s, sig) for s, sig in self.recent if s < step]
        self.cache = None

    def test(self, phase: str, cfg: PhaseConfig) -> SeriesTest:
        """The staged test on the buffered points (kept until a point changes)."""
        if self.cache is None:
            self.cache = SeriesTest(self.steps, self.values, self.stderr, phase, cfg)
        return self.cache

    def report(self, a: SeriesAnalysis) -> SeriesAnalysis:
        """``a`` with how many measurements the (thinned) points stand for."""
        return (
            replace(a, n_measurements=self.count, thinned_from=self.count)
            if self.count > len(self.steps)
            else a
        )

    def consecutive(self) -> int:
        run = 0
        for _, sig in reversed(self.recent):
            if not sig:
                break
            run += 1
        return run

    def to_state(self) -> Dict[str, Any]:
        return {
            "steps": list(self.steps),
            "values": list(self.values),
            "stderr": [None if math.isnan(x) else x for x in self.stderr],
            "count": self.count,
            "level": self.level,
            "recent": [[x, sig] for x, sig in self.recent],
        }

    @classmethod
    def from_state(cls, d: Mapping[str, Any]) -> "SeriesBuffer":
        s = cls()
        s.steps = [float(v) for v in d["steps"]]
        s.values = [float(v) for v in d["values"]]
        s.stderr = [math.nan if v is None else float(v) for v in d["stderr"]]
        s.count, s.level = int(d["count"]), int(d["level"])
        s.recent = [(float(a), bool(b)) for a, b in d["recent"]]
        if not len(s.steps) == len(s.values) == len(s.stderr):
            raise ValueError("series columns differ in length")
        return s


def _float(x: Optional[float]) -> float:
    return math.nan if x is None else float(x)


