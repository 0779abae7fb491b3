"""Passive mode's memory does not grow with the number of measurements beyond the compact history.

A long passive run used to look like it grew ~50-75 KiB per measurement (benchmarks/RESULTS.md); the
growth was one-time warm-up (lazy imports, the phase tests' per-series buffers filling to their
capacity, the statistics module's bounded caches: see docs/results/passive_rss.md). These tests run
past the warm-up on a small model and assert what must then hold: every per-window structure is emptied
by its measurement, every per-series structure stays at its bound, and the Python heap (tracemalloc:
Python objects and numpy arrays) grows by no more than the in-memory history.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any, Callable, Dict, Tuple

import numpy.ma  # noqa: F401  (np.median imports it at its first call: a one-time import, not growth)
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ibhooks
from ibhooks.interpret import PhaseConfig, PhaseTracker

#: The phase tests' buffer capacity in these runs: the smallest PhaseConfig allows (2 * min_points +
#: smooth), so the buffers and the statistics caches are full after a short warm-up.
MAX_POINTS = 2 * 8 + 5
WARMUP, MEASURED = 40, 60
#: Heap allowed per measurement beyond the history's own bytes: the history's columns are Python arrays
#: that over-allocate when they grow, plus noise (measured: well under 0.5 KiB). A Record kept per
#: measurement would add several KiB; a per-step list, too small for this margin, is caught by the
#: structural checks instead.
SLACK_PER_MEAS = 1024


class Run:
    """A 3-layer tanh MLP trained on fixed batches, monitored in passive mode at every step."""

    def __init__(self, log_dir: str) -> None:
        torch.manual_seed(0)
        self.model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.05)
        g = torch.Generator().manual_seed(1)
        self.batches = [(torch.randn(64, 8, generator=g), torch.randint(0, 3, (64,), generator=g))
                        for _ in range(4)]
        self.mon = ibhooks.IBMonitor(self.model, layers=["1", "3", "4"], schedule=1, estimators=["binning"],
                                     passive_window=1, max_samples=64, log_dir=log_dir,
                                     run_name="passive-memory", verbose=False)
        self.tracker = PhaseTracker(PhaseConfig(max_points=MAX_POINTS))
        self.mon._runner.pipeline.interpreter.tracker = self.tracker
        self.i = 0

    def measurements(self) -> int:
        return len(self.mon.history_series)

    def until(self, n: int, each: Callable[[], None] = lambda: None) -> None:
        """Train and step until ``n`` measurements; ``each()`` after every measurement."""
        while self.measurements() < n:
            x, y = self.batches[self.i % len(self.batches)]
            self.i += 1
            loss = F.cross_entropy(self.model(x), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            before = self.measurements()
            self.mon.step(y=y)
            if self.measurements() > before:
                each()

    def sizes(self) -> Tuple[int, ...]:
        """Sizes of the structures that must not grow with the number of measurements."""
        t = self.tracker
        return (len(self.mon.console._warned), len(t._series), len(t._caveats), len(t._latest),
                len(self.mon.history_series.keys()), len(self.mon._capture.slots))

    def check_window_emptied(self) -> None:
        """After a measurement nothing of its window is held, and every phase series is within bounds."""
        res, cap = self.mon._reservoir, self.mon._capture
        assert res.steps == [] and res.rows == 0 and res._acts == {}, "the window's reservoir outlived it"
        assert cap.passes == [] and all(not s.chunks for s in cap.slots.values()), "a step's passes stayed"
        assert len(self.mon.history_series.last.info["passive_steps"]) == 1  # passive_window steps
        assert all(len(s.steps) <= MAX_POINTS for s in self.tracker._series.values())
        assert all(len(s.recent) <= self.tracker.config.persistence for s in self.tracker._series.values())
        longest = max(len(s.steps) for s in self.tracker._series.values())
        self.longest = max(getattr(self, "longest", 0), longest)


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """WARMUP measurements, then MEASURED more under tracemalloc, checking the state after each."""
    run = Run(str(tmp_path_factory.mktemp("passive-memory")))
    try:
        run.until(WARMUP)
        sizes = run.sizes()
        gc.collect()
        tracemalloc.start()
        try:
            start, hist0 = tracemalloc.take_snapshot(), run.mon.history_series.nbytes()
            run.until(WARMUP + MEASURED, run.check_window_emptied)
            gc.collect()
            end, hist1 = tracemalloc.take_snapshot(), run.mon.history_series.nbytes()
        finally:
            tracemalloc.stop()
        keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
        diff = end.filter_traces(keep).compare_to(start.filter_traces(keep), "filename")
        return {"sizes": (sizes, run.sizes()), "longest": run.longest, "heap": sum(s.size_diff for s in diff),
                "history": hist1 - hist0}
    finally:
        run.mon.close()


def test_per_window_and_per_series_state_stays_bounded(measured: Dict[str, Any]) -> None:
    before, after = measured["sizes"]
    assert after == before  # warn-once keys, phase series, caveats, decisions, history series, slots
    assert measured["longest"] == MAX_POINTS  # the buffers did reach their bound: thinning was exercised


def test_heap_grows_only_by_the_history(measured: Dict[str, Any]) -> None:
    grew, hist = measured["heap"], measured["history"]
    allowed = hist + MEASURED * SLACK_PER_MEAS
    assert hist > 0
    assert grew <= allowed, (
        f"the heap grew {grew / MEASURED:.0f} bytes per measurement over {MEASURED} measurements; the "
        f"history {hist / MEASURED:.0f}, allowed {allowed / MEASURED:.0f}")
