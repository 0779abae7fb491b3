"""The monitor's in-memory history: compact numeric series, not Records.

Full Records live in the run log (``load_run``); in memory each (layer, estimator, quantity) keeps
four float64 arrays (step, value, ci low, ci high): ~32 bytes per point, so a run of thousands of
measurements stays small, and the last Record is kept for the caller.
"""

from __future__ import annotations

import math
from array import array
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from ..schema import QUANTITIES, Quantity, Record

SeriesKey = Tuple[str, str, Quantity]


class SeriesHistory:
    """Per-series arrays of every measurement so far, plus the latest Record."""

    def __init__(self) -> None:
        self._series: Dict[SeriesKey, Tuple[array, array, array, array]] = {}
        self._steps = array("d")
        self.last: Optional[Record] = None

    def append(self, record: Record) -> None:
        self._steps.append(float(record.step))
        for layer, per_est in record.layers.items():
            for est, res in per_est.items():
                for q in QUANTITIES:
                    e = res.get(q)
                    if e is None:
                        continue
                    cols = self._series.setdefault(
                        (layer, est, q), (array("d"), array("d"), array("d"), array("d"))
                    )
                    lo, hi = e.ci if e.ci is not None else (math.nan, math.nan)
                    for col, v in zip(cols, (record.step, e.value, lo, hi)):
                        col.append(float(v))
        self.last = record

    def __len__(self) -> int:
        return len(self._steps)

    @property
    def steps(self) -> np.ndarray:
        return np.frombuffer(self._steps, dtype=np.float64).copy() if len(self._steps) else np.zeros(0)

    def keys(self) -> List[SeriesKey]:
        return list(self._series)

    def series(self, layer: str, estimator: str, quantity: object = Quantity.I_XT) -> Dict[str, np.ndarray]:
        """``{"step", "value", "ci_low", "ci_high"}`` arrays of one series (empty if never measured)."""
        cols = self._series.get((layer, estimator, Quantity.parse(quantity)))
        names = ("step", "value", "ci_low", "ci_high")
        if cols is None:
            return {n: np.zeros(0) for n in names}
        return {n: np.frombuffer(c, dtype=np.float64).copy() for n, c in zip(names, cols)}

    def nbytes(self) -> int:
        return sum(c.itemsize * len(c) for cols in self._series.values() for c in cols) + 8 * len(self._steps)

    def __iter__(self) -> Iterator[SeriesKey]:
        return iter(self._series)
