"""Capture memory of IBMonitor: peak extra memory against the configured budget, and a flat process
RSS over a long passive run.

    python benchmarks/memory.py --quick          # small model, 1,000 steps, a few seconds
    python benchmarks/memory.py                  # 10,000 steps
    python benchmarks/memory.py --device cuda    # stored bytes on the GPU; RSS is still the host's

tracemalloc does not see torch's CPU allocations, so two other gauges are used:

* **Held bytes**: the distinct tensor storages the monitor references
  (:func:`ibhooks.capture.budget.held_bytes`: captured outputs, projection matrices, the passive
  reservoir's buffers, estimator state, snapshots waiting for the background worker), read after
  every training forward, after every step and just before every hand-over to estimation. This is
  what ``memory_budget_mb`` bounds; every row must be at most its budget.
* **Process RSS** (``/proc/self/statm``), sampled every millisecond by a background thread for the
  peak, and read at checkpoints for the growth, both raw and after ``malloc_trim(0)`` (which gives
  back freed heap pages, so allocator caching is not mistaken for growth). Peak RSS above the level
  of the same training loop without the monitor also counts what the budget does not cover: the
  probe's own forward pass (its activations at ``probe_batch_size`` rows) and the estimator's
  temporaries.

Flatness: a passive-mode run with ``every_n`` measurements; RSS at step 1,000 against step 10,000
(quick: 100 against 1,000), next to the same loop without the monitor. The monitor's in-memory
history (``monitor.history_series``: compact numeric series, a few hundred bytes per measurement;
full Records live in the run log) grows with the number of measurements; its size is printed so
that the RSS growth can be set against it. ``benchmarks/longrun.py`` measures the growth per
measurement over 3,200 measurements.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import threading
import time
import tracemalloc
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _rss import rss, trimmed_rss  # noqa: E402  (benchmarks/, the script's folder, is on the path)
import ibhooks  # noqa: E402
from ibhooks.capture.budget import held_bytes  # noqa: E402

MiB = 2**20


class PeakRSS:
    """High-water mark of the RSS, sampled every millisecond in a daemon thread while active."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._th: Optional[threading.Thread] = None

    def __enter__(self) -> "PeakRSS":
        self.peak = rss()
        self._stop.clear()
        self._th = threading.Thread(target=self._run, daemon=True)
        self._th.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.001)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._th is not None
        self._th.join()
        self.peak = max(self.peak, rss())


#: The estimator of every run: binning, as when these budgets were first measured (issue 15). It needs
#: vectors, so wide layers are projected and the projection matrices are part of what is budgeted; the
#: default ``auto`` keeps them whole while they fit (tests/test_memory_budget.py) and costs seconds per
#: wide layer, which would dominate these runs without changing what is stored between measurements.
ESTIMATORS = ["binning"]


def stored_bytes(mon: ibhooks.IBMonitor) -> int:
    """Bytes the monitor references right now (distinct storages; see ``held_bytes``)."""
    return held_bytes(mon)["total"]


def watch_stored(mon: ibhooks.IBMonitor) -> Dict[str, int]:
    """Track the peak of stored_bytes: wraps the capture's ``take`` and ``take_passes`` (the slots are
    full just before them) and the reservoir's ``take`` (full just before a passive hand-over)."""
    peak = {"bytes": 0}

    def wrap(obj: object, name: str) -> None:
        inner = getattr(obj, name)

        def recorded(*a: object, **k: object) -> object:
            peak["bytes"] = max(peak["bytes"], stored_bytes(mon))
            return inner(*a, **k)

        setattr(obj, name, recorded)

    wrap(mon._capture, "take")
    wrap(mon._capture, "take_passes")
    if mon._reservoir is not None:
        wrap(mon._reservoir, "take")
    return peak


# ---------------------------------------------------------------- models and loop


def make_model(kind: str, quick: bool) -> Tuple[nn.Module, Tuple[int, ...], int]:
    """(model, input shape, classes)."""
    if kind == "wide":  # a 4,096-wide layer: projected to 256 dims by "auto" (4 MiB of matrix per layer)
        return nn.Sequential(nn.Linear(64, 4096), nn.ReLU(), nn.Linear(4096, 10)), (64,), 10
    if kind == "mlp":
        w = 64 if quick else 512
        return (
            nn.Sequential(nn.Linear(64, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 10)),
            (64,),
            10,
        )
    c = 4 if quick else 16
    model = nn.Sequential(
        nn.Conv2d(3, c, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c, 2 * c, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * c * 8 * 8, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    return model, (3, 32, 32), 10


class Loop:
    def __init__(self, kind: str, quick: bool, device: str, batch: int, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.model, shape, self.classes = make_model(kind, quick)
        self.model.to(device)
        self.device = device
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        g = torch.Generator().manual_seed(seed)
        self.batches = [
            (
                torch.randn(batch, *shape, generator=g).to(device),
                torch.randint(0, self.classes, (batch,), generator=g).to(device),
            )
            for _ in range(8)
        ]
        self.shape = shape
        self.i = 0

    def step(self) -> torch.Tensor:
        x, y = self.batches[self.i % len(self.batches)]
        self.i += 1
        loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return y

    def probe(self, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(1)
        return (
            torch.randn(n, *self.shape, generator=g).to(self.device),
            torch.randint(0, self.classes, (n,), generator=g).to(self.device),
        )


# ---------------------------------------------------------------- peak against the budget


def budget_case(
    kind: str,
    mode: str,
    quick: bool,
    device: str,
    rows: int,
    budget_mb: float,
    steps: int,
    every: int,
    window: int,
    batch: int,
    logdir: str,
    background: bool = False,
) -> Dict[str, object]:
    loop = Loop(kind, quick, device, batch)
    for _ in range(20):  # the plain loop's own high-water mark first
        loop.step()
    with PeakRSS() as plain_peak:
        for _ in range(max(steps // 4, 20)):
            loop.step()
    base = max(plain_peak.peak, trimmed_rss())
    probe = loop.probe(rows) if mode == "probe" else None
    with PeakRSS() as peak:
        mon = ibhooks.IBMonitor(
            loop.model,
            probe=probe,
            schedule=ibhooks.every_n(every),
            estimators=ESTIMATORS,
            log_dir=logdir,
            run_name=f"budget-{kind}-{mode}-{background}",
            verbose=False,
            max_samples=rows,
            memory_budget_mb=budget_mb,
            passive_window=window,
            background=background,
        )
        stored = watch_stored(mon)
        after_step = 0
        for _ in range(steps):
            y = loop.step()
            after_step = max(after_step, stored_bytes(mon))  # this step's training pass is held
            mon.step(y=y if mode == "passive" else None)
            after_step = max(after_step, stored_bytes(mon))
        mon.flush()
        dims = [s.dim for s in mon._capture.slots.values() if s.dim is not None and not s.skipped]
        kept = mon._reservoir.max_rows if mon._reservoir is not None else rows
        mon.close()
        n_meas = len(mon.history_series)
    peak_stored = max(stored["bytes"], after_step)
    predicted = kept * sum(dims) * 4
    return {
        "model": kind,
        "mode": mode + ("/bg" if background else ""),
        "rows": kept,
        "dims": sum(dims),
        "layers": len(dims),
        "budget": budget_mb * MiB,
        "predicted": predicted,
        "stored": peak_stored,
        "rss_extra": max(0, peak.peak - base),
        "measurements": n_meas,
        "end_stored": stored_bytes(mon),
    }


def print_budget(rows: List[Dict[str, object]]) -> None:
    print("\n## peak extra memory against the configured budget (memory_budget_mb)")
    head = (
        f"{'model':<6}{'mode':<12}{'rows':>6}{'layers':>7}{'sum d':>7}{'budget MiB':>12}{'predicted':>11}"
        f"{'peak stored':>13}{'/predicted':>11}{'/budget':>9}{'peak RSS extra':>16}{'after close':>13}"
        "  verdict"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        keys = ("budget", "predicted", "stored", "rss_extra")
        b, p, s, x = (float(r[k]) / MiB for k in keys)  # type: ignore
        ok = "held <= budget" if s <= b else "OVER BUDGET"
        print(
            f"{r['model']:<6}{r['mode']:<12}{r['rows']:>6}{r['layers']:>7}{r['dims']:>7}{b:>12.1f}{p:>11.2f}"
            f"{s:>13.2f}{s / p:>11.3f}{s / b:>9.3f}{x:>16.1f}{float(r['end_stored']) / MiB:>13.1f}  {ok}"
        )
    notes = [
        "# rows = probe rows, or the passive reservoir's row cap (max_samples, lowered to fit the budget);",
        "# predicted = rows x sum of reduced widths x 4 bytes (activations of one snapshot only);",
        "# peak stored = the most the monitor referenced at once (held_bytes: captured outputs, projection",
        "#   matrices, reservoir buffers, estimator state, queued snapshots); it must be <= the budget;",
        "# peak RSS extra = process high-water mark above the same loop without the monitor (probe forward,",
        "#   estimator temporaries: not held between calls, not in the budget);",
        "# after close = bytes still held",
    ]
    print("\n".join(notes))


# ---------------------------------------------------------------- flat over a long run


def history_heap_bytes(history: object) -> int:
    """Python-heap bytes of the monitor's in-memory history (``history_series``): a fresh copy (pickle
    round trip, so every array, float and string is new) built under tracemalloc, which does see
    Python objects."""
    blob = pickle.dumps(history)
    tracemalloc.start()
    try:
        copy = pickle.loads(blob)
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del copy
    return size


class once:  # noqa: N801 - a schedule, reads like every_n
    """Measure at one step only (the per-step control: hooks fire and step() runs, nothing is captured)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def __call__(self, step: int) -> bool:
        return step == self.step

    def __repr__(self) -> str:
        return f"once({self.step})"


def flat_run(
    kind: str,
    quick: bool,
    device: str,
    total: int,
    checkpoints: List[int],
    schedule: object,
    window: int,
    rows: int,
    batch: int,
    logdir: str,
) -> Dict[str, object]:
    """One run of ``total`` steps: plain (schedule=None) or monitored in passive mode on ``schedule``."""
    loop = Loop(kind, quick, device, batch)
    mon = None
    if schedule is not None:
        mon = ibhooks.IBMonitor(
            loop.model,
            schedule=schedule,
            estimators=ESTIMATORS,
            log_dir=logdir,
            run_name=f"flat-{kind}-{schedule!r}",
            verbose=False,
            max_samples=rows,
            passive_window=window,
        )
    raw, trimmed, hist = {}, {}, {}
    t0 = time.perf_counter()
    for i in range(1, total + 1):
        y = loop.step()
        if mon is not None:
            mon.step(y=y)
        if i in checkpoints:
            raw[i] = rss()
            trimmed[i] = trimmed_rss()
            if mon is not None:
                hist[i] = (len(mon.history_series), history_heap_bytes(mon.history_series))
            else:
                hist[i] = (0, 0)
    seconds = time.perf_counter() - t0
    leak_scale = 0
    if mon is not None:
        width = sum(s.dim or 0 for s in mon._capture.slots.values())
        armed = sum(
            1
            for i in range(checkpoints[0] + 1, total + 1)
            if any(mon.schedule(j) for j in range(i, i + window))
        )
        leak_scale = armed * batch * width * 4
        mon.close()
    name = "plain" if schedule is None else repr(schedule).replace(", start=0", "")
    return {
        "name": name,
        "raw": raw,
        "trimmed": trimmed,
        "hist": hist,
        "seconds": seconds,
        "leak_scale": leak_scale,
    }


def print_flat(
    runs: List[Dict[str, object]], checkpoints: List[int], window: int, first: int, last: int
) -> None:
    print(
        f"\n## process RSS over passive runs (passive_window={window}), MiB; target: no growth from step "
        f"{first:,} to step {last:,}"
    )
    head = (
        f"{'run':<16}{'RSS':<9}"
        + "".join(f"{'@' + format(c, ','):>10}" for c in checkpoints)
        + f"{'growth':>10}  {'history: records, heap MiB':<30}"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        for kind in ("raw", "trimmed"):
            vals: Dict[int, int] = r[kind]  # type: ignore[assignment]
            growth = (vals[last] - vals[first]) / MiB
            h = r["hist"]  # type: ignore[assignment]
            hist = (
                f"{h[first][0]} -> {h[last][0]}, {h[first][1] / MiB:.2f} -> {h[last][1] / MiB:.2f}"
                if kind == "raw" and r["name"] != "plain"
                else ""
            )
            print(
                f"{r['name']:<16}{kind:<9}"
                + "".join(f"{vals[c] / MiB:>10.1f}" for c in checkpoints)
                + f"{growth:>+10.2f}  {hist}"
            )

    def growth(r: Dict[str, object]) -> float:
        return (r["trimmed"][last] - r["trimmed"][first]) / MiB  # type: ignore[index]

    def added(r: Dict[str, object]) -> Tuple[int, float]:
        h = r["hist"]  # type: ignore[assignment]
        return h[last][0] - h[first][0], (h[last][1] - h[first][1]) / MiB  # type: ignore[index]

    plain, sparse, dense = runs
    per_step = growth(sparse) - growth(plain)
    n_dense, heap_dense = added(dense)
    n_sparse, _ = added(sparse)
    per_record = (growth(dense) - growth(sparse)) / max(n_dense - n_sparse, 1)
    print(
        f"# per step: {sparse['name']} (one measurement, before step {first:,}: hooks fire and step() runs, "
        f"nothing is captured) minus plain = {per_step:+.2f} MiB over {last - first:,} steps: "
        f"{'no per-step growth' if per_step <= 1.0 else 'GROWS per step'} (tolerance 1 MiB)\n# per armed "
        f"step: keeping one captured batch per armed step of {dense['name']} would add "
        f"{dense['leak_scale'] / MiB:.0f} MiB; what it grew is below"
    )
    print(
        f"# per measurement: {dense['name']} grew {growth(dense) - growth(plain):+.2f} MiB more than plain, "
        f"{1024 * per_record:+.1f} KiB of RSS per measurement added ({n_dense} added; the in-memory history "
        f"series grew {1024 * heap_dense / max(n_dense, 1):.2f} KiB per measurement).\n# The history keeps "
        "compact series in memory (full Records live in the run log). These measurements fall inside a "
        "one-time warm-up of ~150 measurements (phase-test caches, lazy imports, phase buffers filling); "
        "benchmarks/longrun.py [--passive] measures the growth per measurement over 3,200 measurements."
    )


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small models, 1,000 steps")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for the run")
    ap.add_argument(
        "--steps", type=int, default=0, help="length of the flatness run (default 10,000; quick 1,000)"
    )
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but CUDA is not available")
    torch.set_num_threads(args.threads)
    total = args.steps or (1_000 if args.quick else 10_000)
    first = max(1, total // 10)
    checkpoints = sorted({first, total // 4, total // 2, 3 * total // 4, total})
    print(
        f"# ibhooks capture-memory benchmark  device={args.device}  torch={torch.__version__}  "
        f"threads={torch.get_num_threads()}  quick={args.quick}  load average="
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    q = args.quick
    with tempfile.TemporaryDirectory(prefix="ibhooks-memory-") as logdir:
        # passive: window x batch is twice the reservoir, so the subsampling cap is exercised
        cases = [
            # (model, mode, rows, budget MiB, steps, every, window, batch)
            ("mlp", "probe", 512 if q else 4096, 8 if q else 64, 30 if q else 200, 10 if q else 50, 1, 64),
            (
                "mlp",
                "passive",
                512 if q else 4096,
                8 if q else 64,
                40 if q else 200,
                20 if q else 50,
                16 if q else 32,
                64 if q else 256,
            ),
            ("cnn", "probe", 256 if q else 2048, 8 if q else 64, 10 if q else 40, 5 if q else 20, 1, 32),
            (
                "cnn",
                "passive",
                256 if q else 2048,
                8 if q else 64,
                20 if q else 60,
                10 if q else 30,
                8 if q else 16,
                64 if q else 256,
            ),
        ]
        cases += [  # projections count: 2 layers x 4,096 x 256 x 4 bytes = 8 MiB of matrices
            ("wide", "probe", 512, 16, 10, 5, 1, 64),
            ("wide", "passive", 2048, 16, 20, 10, 8, 256),
        ]
        rows = [
            budget_case(m, mode, q, args.device, n, b, s, e, w, bs, logdir)
            for (m, mode, n, b, s, e, w, bs) in cases
        ]
        rows.append(budget_case("mlp", "passive", q, args.device, 512 if q else 4096, 8 if q else 64,
                                40 if q else 200, 20 if q else 50, 16 if q else 32, 64 if q else 256, logdir,
                                background=True))
        print_budget(rows)
        sys.stdout.flush()
        every = 20 if q else 100
        flat = [
            flat_run("mlp", q, args.device, total, checkpoints, e, 4, 512 if q else 2048, 64, logdir)
            for e in (None, once(first // 2), ibhooks.every_n(every))
        ]
    print_flat(flat, checkpoints, 4, first, total)
    print(
        "# run times: " + ", ".join(f"{r['name']} {r['seconds']:.1f} s" for r in flat) + "; "
        f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
