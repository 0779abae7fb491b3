"""Where passive mode's process memory goes, measurement by measurement (a diagnostic, no targets).

    python benchmarks/_passive_rss.py                  # 512-unit MLP, binning, every_n(10), 300 measurements
    python benchmarks/_passive_rss.py --estimator auto --width 64
    python benchmarks/_passive_rss.py --clear-caches   # the phase tests' caches emptied before each reading
    python benchmarks/_passive_rss.py --trace 50 150   # tracemalloc: top growing sites between two readings

A 64-w-w-10 ReLU MLP trained on fixed random batches, monitored in passive mode (``passive_window=4``,
``max_samples`` rows, JSONL run log only, synchronous). At the listed measurement counts it prints the
RSS after ``gc.collect()`` and ``malloc_trim(0)`` and the entries of the phase tests' process-wide
caches (``ibhooks.interpret.statistics``: ``_pairs``, the pair indices of a series of n points, and
``mahonian_cdf``, the exact Mann-Kendall null). ``--clear-caches`` empties them before each reading, so
what is left is growth that is not theirs. ``--trace A B`` starts tracemalloc at reading A (it sees Python
objects and numpy arrays, not torch's CPU allocations) and prints the allocation sites that grew most
between readings A and B, by traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import tracemalloc
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from _rss import trimmed_rss  # noqa: E402  (benchmarks/, the script's folder, is on the path)
import ibhooks  # noqa: E402
from ibhooks.interpret import statistics  # noqa: E402

KiB, MiB = 2**10, 2**20
READINGS = (10, 25, 50, 100, 150, 200, 250, 300, 400, 500, 600, 800, 1000, 1500, 2000, 3000)


def cache_entries() -> Tuple[int, int]:
    """Entries of the phase tests' process-wide caches: (``_pairs``, ``mahonian_cdf``)."""
    pairs = statistics._pairs
    if hasattr(pairs, "cache_info"):
        n = pairs.cache_info().currsize
    else:  # a cache bounded in bytes (see docs/results/passive_rss.md)
        n = len(getattr(statistics, "_pairs_cache", ()))
    return n, statistics.mahonian_cdf.cache_info().currsize


def clear_caches() -> None:
    if hasattr(statistics._pairs, "cache_clear"):
        statistics._pairs.cache_clear()
    else:
        getattr(statistics, "_pairs_cache", {}).clear()
    statistics.mahonian_cdf.cache_clear()


def run(args: argparse.Namespace, logdir: str) -> Dict[int, int]:
    torch.manual_seed(0)
    w = args.width
    model = nn.Sequential(nn.Linear(64, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    batches = [
        (torch.randn(args.batch, 64, generator=g), torch.randint(0, 10, (args.batch,), generator=g))
        for _ in range(8)
    ]
    mon = ibhooks.IBMonitor(
        model,
        schedule=ibhooks.every_n(args.every),
        estimators=[args.estimator],
        log_dir=logdir,
        run_name="passive-rss",
        verbose=False,
        max_samples=args.rows,
        passive_window=args.window,
    )
    readings = [r for r in READINGS if r <= args.measurements]
    trace_at = tuple(args.trace) if args.trace else ()
    snaps: Dict[int, tracemalloc.Snapshot] = {}
    out: Dict[int, int] = {}
    step = 0
    print(f"{'meas':>6}{'step':>8}{'RSS MiB':>10}{'caches (_pairs, mahonian)':>28}")
    try:
        while len(mon.history_series) < args.measurements:
            x, y = batches[step % len(batches)]
            step += 1
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            before = len(mon.history_series)
            mon.step(y=y)
            m = len(mon.history_series)
            if m == before or m not in readings:
                continue
            entries = cache_entries()
            if args.clear_caches:
                clear_caches()
            out[m] = trimmed_rss()
            if m == (trace_at[0] if trace_at else -1):
                tracemalloc.start(25)
            if m in trace_at:
                snaps[m] = tracemalloc.take_snapshot()
            print(f"{m:>6}{step:>8}{out[m] / MiB:>10.2f}{str(entries):>28}", flush=True)
        per = mon.history_series.nbytes() / max(len(mon.history_series), 1)
    finally:
        mon.close()
    first, last = min(out), max(out)
    print(f"# RSS growth from measurement {first} to {last}: "
          f"{(out[last] - out[first]) / KiB / (last - first):+.2f} KiB per measurement; the in-memory "
          f"history series take {per:.0f} bytes per measurement")
    if len(snaps) == 2:
        a, b = sorted(snaps)
        print_trace(snaps[b].compare_to(snaps[a], "traceback"), a, b, args.top)
    return out


def print_trace(stats: List[tracemalloc.StatisticDiff], a: int, b: int, top: int) -> None:
    print(f"\n## tracemalloc: top {top} growing allocation sites between measurements {a} and {b}")
    for s in stats[:top]:
        print(f"{s.size_diff / KiB:+10.1f} KiB  {s.count_diff:+6d} blocks")
        for line in s.traceback.format()[-8:]:
            print("      " + line)
    print(f"# all sites together: {sum(s.size_diff for s in stats) / KiB:+.1f} KiB")


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--estimator", default="binning", help="'binning' (pinned) or 'auto' (the default)")
    ap.add_argument("--every", type=int, default=10, help="schedule every_n(EVERY)")
    ap.add_argument("--window", type=int, default=4, help="passive_window")
    ap.add_argument("--rows", type=int, default=2048, help="max_samples")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--measurements", type=int, default=300)
    ap.add_argument("--clear-caches", action="store_true",
                    help="empty the phase tests' caches before each reading")
    ap.add_argument("--trace", type=int, nargs=2, metavar=("A", "B"), help="tracemalloc between two readings")
    ap.add_argument("--top", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.trace and not all(t in READINGS for t in args.trace):
        ap.error(f"--trace readings must be among {READINGS}")
    torch.set_num_threads(args.threads)
    print(f"# passive RSS diagnostic  torch={torch.__version__}  width={args.width}  "
          f"estimator={args.estimator}  every_n({args.every})  passive_window={args.window}  "
          f"max_samples={args.rows}  batch={args.batch}  clear_caches={args.clear_caches}")
    with tempfile.TemporaryDirectory(prefix="ibhooks-passive-rss-") as logdir:
        run(args, logdir)


if __name__ == "__main__":
    main()
