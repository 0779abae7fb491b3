"""The timed experiments of ``benchmarks/overhead.py``: (a) idle steps, (b) amortised runs, (c) time
the training thread is blocked per measurement. Each returns plain rows; printing is elsewhere."""

from __future__ import annotations

import gc
import importlib
import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from _overhead_setup import DEFAULT_PROBE_BS, NEVER, Bench

import ibhooks

# ---------------------------------------------------------------- (a) steps with no measurement due


@dataclass
class IdleRow:
    model: str
    mode: str
    hooks: int  # hook handles registered between measurements
    steps: int
    step_ms: float
    ratios: List[float]
    min_ratio: float  # min over reps of B / min over reps of A: load only ever adds time
    step_call_us: float
    hook_us: float

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def component(self) -> float:
        return (self.step_call_us + self.hooks * self.hook_us) / (self.step_ms * 1e3)


def per_hook_cost_us(device: str, reps: int = 200) -> float:
    """Cost of one registered, disarmed monitor hook (passive mode between capture windows): forward
    passes of 16 tiny Linear layers with and without the hooks (best of many interleaved timings),
    difference / 16. Noise-robust (tiny tensors)."""
    k = 16
    model = nn.Sequential(*[nn.Linear(2, 2) for _ in range(k)]).to(device)
    x = torch.zeros(1, 2, device=device)

    def fwd() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            for _ in range(20):
                model(x)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as d:
        best = {True: math.inf, False: math.inf}
        mon = None
        for r in range(reps):
            for hooked in (False, True) if r % 2 == 0 else (True, False):
                if hooked and mon is None:
                    mon = ibhooks.IBMonitor(
                        model, schedule=NEVER, log_dir=d, verbose=False, run_name=f"hook-{r}"
                    )
                if not hooked and mon is not None:
                    mon.close()
                    mon = None
                best[hooked] = min(best[hooked], fwd())
        if mon is not None:
            mon.close()
    return max(0.0, (best[True] - best[False]) / (20 * k) * 1e6)


def step_call_cost_us(bench: Bench, mode: str, n: int = 2000) -> float:
    """Best-of-5 mean cost of ``monitor.step()`` when nothing is due (no forward pass in between)."""
    mon = bench.monitor(mode, NEVER)
    y = bench.batches[0][1]
    best = math.inf
    try:
        for _ in range(5):
            t0 = time.perf_counter()
            if mode == "passive":
                for _ in range(n):
                    mon.step(y=y)
            else:
                for _ in range(n):
                    mon.step()
            best = min(best, (time.perf_counter() - t0) / n)
    finally:
        mon.close()
    return best * 1e6


def idle_overhead(bench: Bench, mode: str, reps: int, hook_us: float) -> IdleRow:
    n, warmup = bench.spec.steps, bench.spec.warmup
    ratios, plain_times, mon_times = [], [], []
    hooks = 0
    for r in range(reps):
        times: Dict[str, float] = {}
        for arm in ("A", "B") if r % 2 == 0 else ("B", "A"):  # interleaved, order alternating
            gc.collect()
            if arm == "A":
                bench.plain(warmup)
                times["A"] = bench.plain(n)
            else:
                mon = bench.monitor(mode, NEVER)  # built outside the timed window
                try:
                    bench.monitored(warmup, mon, mode == "passive")
                    hooks = mon.num_hooks  # between measurements
                    times["B"] = bench.monitored(n, mon, mode == "passive")
                finally:
                    mon.close()
        ratios.append(times["B"] / times["A"])
        plain_times.append(times["A"])
        mon_times.append(times["B"])
    step_ms = statistics.median(plain_times) / n * 1e3
    return IdleRow(
        bench.spec.name,
        mode,
        hooks,
        n,
        step_ms,
        ratios,
        min(mon_times) / min(plain_times),
        step_call_cost_us(bench, mode),
        hook_us,
    )


# ---------------------------------------------------------------- (b) amortised over a realistic run


@dataclass
class RunRow:
    model: str
    mode: str  # "sync" or "background"
    length: int
    measurements: int
    step_ms: float
    meas_ms: float  # cost of one measurement on the training thread (blocked time in background mode)
    construct_ms: float  # building the monitor (shape discovery + step-0 measurement or snapshot)
    direct: Optional[List[float]]  # per-rep ratios of the direct run (None: composed only)
    composed: float  # composed overhead for `length`
    probe_bs: object = DEFAULT_PROBE_BS  # rows per chunk of the probe forward ("auto": the monitor's choice)


def direct_runs(bench: Bench, length: int, num: int, reps: int) -> Dict[bool, List[float]]:
    """Arms plain, synchronous and background run ``length`` steps each, interleaved with the order
    rotating; a monitored arm builds its monitor inside the timed window, measures on
    log_spaced(num, length) and closes it (the background arm's close() waits for the worker).
    Returns background? -> per-repetition ratios monitored / plain."""
    arms = ("plain", "sync", "background")
    out: Dict[bool, List[float]] = {False: [], True: []}
    for r in range(reps):
        times: Dict[str, float] = {}
        for arm in arms[r % 3 :] + arms[: r % 3]:
            gc.collect()
            bench.plain(bench.spec.warmup)
            if arm == "plain":
                times[arm] = bench.plain(length)
                continue
            bench.sync()
            t0 = time.perf_counter()
            mon = bench.monitor("probe", ibhooks.log_spaced(num, length), background=arm == "background")
            for _ in range(length):
                bench.train_step()
                mon.step()
            mon.close()
            bench.sync()
            times[arm] = time.perf_counter() - t0
        out[False].append(times["sync"] / times["plain"])
        out[True].append(times["background"] / times["plain"])
    return out


def sampled_sync(bench: Bench, k: int, probe_batch_size: Optional[int] = None) -> Tuple[float, float]:
    """(construction s, mean synchronous measurement s) without running the whole loop: build the
    monitor on log_spaced(num, L) (its step-0 measurement) and call ``measure()`` k more times."""
    sched = ibhooks.log_spaced(bench.spec.num_sched, bench.spec.real_len)
    bench.sync()
    t0 = time.perf_counter()
    mon = bench.monitor("probe", sched, probe_batch_size=probe_batch_size)
    bench.sync()
    t_cons = time.perf_counter() - t0
    costs = []
    try:
        for _ in range(k):
            bench.train_step()
            bench.sync()
            s0 = time.perf_counter()
            mon.measure(step=mon.step_count + 1)
            bench.sync()
            costs.append(time.perf_counter() - s0)
    finally:
        mon.close()
    return t_cons, statistics.mean(costs)


def composed(length: int, m: int, step_s: float, idle_extra: float, cons_s: float, meas_s: float) -> float:
    """Amortised relative overhead of a run of ``length`` steps with m scheduled measurements (step 0
    is the construction's own measurement)."""
    plain = length * step_s
    return (plain * idle_extra + cons_s + (m - 1) * meas_s) / plain


# ---------------------------------------------------------------- (c) blocked per measurement


@dataclass
class BlockedRow:
    model: str
    snap: List[float] = field(default_factory=list)  # monitor._taker.take() alone
    sync: List[float] = field(default_factory=list)  # synchronous measure()
    bg: List[float] = field(default_factory=list)  # background measure(): the training thread's share
    estimate: List[float] = field(default_factory=list)  # parts of the synchronous measure()
    interpret: List[float] = field(default_factory=list)
    sinks: List[float] = field(default_factory=list)
    cons_sync_s: float = 0.0
    cons_bg_s: float = 0.0

    @property
    def snap_s(self) -> float:
        return statistics.mean(self.snap)

    @property
    def sync_s(self) -> float:
        return statistics.mean(self.sync)

    @property
    def bg_s(self) -> float:
        return statistics.mean(self.bg)

    @property
    def bg_over_snap(self) -> List[float]:
        return [b / s for b, s in zip(self.bg, self.snap)]

    @property
    def bg_over_sync(self) -> List[float]:
        return [b / s for b, s in zip(self.bg, self.sync)]


class _Timer:
    """Calls ``fn`` and appends its duration to ``into``."""

    def __init__(self, fn: Callable[..., Any], into: List[float]) -> None:
        self.fn, self.into = fn, into

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.into.append(time.perf_counter() - t0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fn, name)


def blocked_times(bench: Bench, reps: int) -> BlockedRow:
    """Per repetition, interleaved (order rotating): the snapshot alone, a synchronous measure() and a
    background measure() on the same model (a training step before each). The background worker is
    drained, untimed, after each of its measurements, so no queue wait is included."""
    row = BlockedRow(bench.spec.name)
    sched = ibhooks.log_spaced(bench.spec.num_sched, bench.spec.real_len)
    pipeline_mod = importlib.import_module("ibhooks.pipeline.pipeline")
    parts: Dict[str, List[float]] = {"estimate": [], "interpret": [], "sinks": []}
    bench.sync()
    t0 = time.perf_counter()
    sync_mon = bench.monitor("probe", sched)
    bench.sync()
    row.cons_sync_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    bg_mon = bench.monitor("probe", sched, background=True)
    bench.sync()
    row.cons_bg_s = time.perf_counter() - t0
    bg_mon.flush()
    pipe = sync_mon._runner.pipeline
    run_estimators = pipeline_mod.run_estimators
    pipe.interpreter = _Timer(pipe.interpreter, parts["interpret"])
    pipe.sinks.write = _Timer(pipe.sinks.write, parts["sinks"])  # type: ignore[method-assign]
    arms = ("snap", "sync", "bg")
    try:
        for r in range(reps):
            for arm in arms[r % 3 :] + arms[: r % 3]:
                gc.collect()
                bench.train_step()
                bench.sync()
                if arm == "snap":
                    s0 = time.perf_counter()
                    snap = sync_mon._taker.take(sync_mon.step_count + 1, None)
                    bench.sync()
                    row.snap.append(time.perf_counter() - s0)
                    snap.release()
                elif arm == "sync":
                    pipeline_mod.run_estimators = _Timer(run_estimators, parts["estimate"])
                    try:
                        s0 = time.perf_counter()
                        sync_mon.measure(step=sync_mon.step_count + 1)
                        bench.sync()
                        row.sync.append(time.perf_counter() - s0)
                    finally:
                        pipeline_mod.run_estimators = run_estimators
                else:
                    s0 = time.perf_counter()
                    bg_mon.measure(step=bg_mon.step_count + 1)
                    bench.sync()
                    row.bg.append(time.perf_counter() - s0)
                    bg_mon.flush()
    finally:
        pipeline_mod.run_estimators = run_estimators
        sync_mon.close()
        bg_mon.close()
    row.estimate, row.interpret, row.sinks = (
        parts["estimate"],
        parts["interpret"][-reps:],
        parts["sinks"][-reps:],
    )
    return row


def median_or_nan(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else math.nan
