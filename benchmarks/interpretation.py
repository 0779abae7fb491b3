"""Cost of the interpretation stage over a long run: ``check_record`` + ``PhaseTracker.update`` per
measurement, at record 100 against record 3,200, the tracker's state size and the process's RSS
growth per update.

A synthetic run of 10 tanh-like layers x 1 binning estimator (exact, with a bootstrap ci, capped at
log2 n), measured every 10 steps (a linear schedule, so the phase buffers must thin), one chain
through all layers. Records are not kept (the run log holds them), as in the monitor.

Targets (issue 12): time at 3,200 <= 1.5 x time at 100; RSS growth <= 8 KB per update;
``state_dict`` <= 1 MB.

Usage: python benchmarks/interpretation.py [--quick] [--layers 10] [--records 3200]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import pickle
import statistics
import time
from typing import Dict, List

import numpy as np

from ibhooks.chains import Chain
from ibhooks.interpret import PhaseTracker, check_record
from ibhooks.schema import EstimatorTraits, LayerResult, Record, make_estimate

N = 4096
CAP = math.log2(N)
BINNING = EstimatorTraits(discretises=True, exact=True, cap="log2_n")


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def make_record(k: int, n_records: int, layers: List[str], rng: np.random.Generator) -> Record:
    step = 10 * k
    t = math.log10(step + 1) / math.log10(10 * n_records + 1)
    per: Dict[str, Dict[str, LayerResult]] = {}
    for li, layer in enumerate(layers):
        depth = li / max(len(layers) - 1, 1)
        top, start, comp = 12 - 6 * depth, 9.5 - 6 * depth, 2.6 * depth
        ixt = min(
            CAP,
            start
            + (top - start) * (1 - math.exp(-7 * t))
            - comp * max(0.0, t - 0.45) ** 1.3
            + float(rng.normal(0, 0.03)),
        )
        ity = min(ixt, 0.05 + 0.9 / (1 + math.exp(-10 * (t - 0.35 - 0.04 * li))) + float(rng.normal(0, 0.01)))
        common = dict(kind="exact", estimator="binning", n=N, dim=10, params={"n_bins": 30}, traits=BINNING)
        per[layer] = {
            "binning": LayerResult(
                make_estimate(
                    ixt,
                    "H(bin30(T))",
                    ci=(ixt - 0.05, min(CAP, ixt + 0.05)),
                    cap=CAP,
                    diagnostics={
                        "fraction_outside_range": 0.0,
                        "fraction_in_extreme_bins": 0.1 + 0.3 * t,
                        "range_used": [-1.0, 1.0],
                    },
                    **common,
                ),
                make_estimate(
                    ity, "I(bin30(T); Y)", ci=(ity - 0.02, ity + 0.02), diagnostics={"H_Y": 1.0}, **common
                ),
            )
        }
    return Record(step=step, mode="probe", n_samples=N, layers=per, h_y=1.0)


def run(n_records: int, n_layers: int, early: int, window: int, seed: int = 0) -> Dict[str, float]:
    layers = [f"fc{i + 1}" for i in range(n_layers)]
    chains = [Chain("main", tuple(layers))]
    info = {x: {"activation": "tanh"} for x in layers}
    rng = np.random.default_rng(seed)
    tracker = PhaseTracker()
    times: List[float] = []
    warm = min(early, n_records) // 2
    rss0 = 0
    gc.collect()
    for k in range(n_records):
        rec = make_record(k, n_records, layers, rng)  # building the estimates is not timed
        t0 = time.perf_counter()
        rec.checks, rec.warnings = check_record(rec, chains, layer_info=info)
        rec.phase_changes = tracker.update(rec)
        times.append(time.perf_counter() - t0)
        if k + 1 == warm:
            gc.collect()
            rss0 = rss_bytes()
        del rec
    gc.collect()
    rss1 = rss_bytes()

    def around(i: int) -> float:
        lo = max(0, i - window)
        return statistics.median(times[lo : i + window])

    return {
        "t_early": around(early - 1),
        "t_late": around(n_records - 1),
        "state_bytes": float(len(pickle.dumps(tracker.state_dict()))),
        "rss_per_update": (rss1 - rss0) / max(n_records - warm, 1),
        "max_points": float(max(tracker.series_sizes().values())),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a CI-sized run (800 records)")
    ap.add_argument("--layers", type=int, default=10)
    ap.add_argument("--records", type=int, default=None, help="records in the run (default 3200; quick 800)")
    args = ap.parse_args()
    n = args.records or (800 if args.quick else 3200)
    early, window = 100, 5
    r = run(n, args.layers, early, window)
    ratio = r["t_late"] / r["t_early"]
    rows = [
        (
            f"check_record + update at record {early} (median of {2 * window})",
            f"{1e3 * r['t_early']:.2f} ms",
            "",
        ),
        (f"check_record + update at record {n} (median of {2 * window})", f"{1e3 * r['t_late']:.2f} ms", ""),
        (f"ratio record {n} / record {early}", f"{ratio:.2f}x", "<= 1.5x"),
        (f"tracker state_dict, pickled, at {n}", f"{r['state_bytes'] / 1024:.1f} KB", "<= 1024 KB"),
        (f"RSS growth per update over {n}", f"{r['rss_per_update'] / 1024:.2f} KB", "<= 8 KB"),
        ("points per series (buffer)", f"{r['max_points']:.0f}", ""),
    ]
    print(f"interpretation stage: {args.layers} layers x 1 estimator, {n} records, one every 10 steps")
    w = max(len(a) for a, _, _ in rows)
    print(f"{'':{w}}  {'measured':>12}  {'target':>10}")
    for a, b, c in rows:
        print(f"{a:{w}}  {b:>12}  {c:>10}")


if __name__ == "__main__":
    main()
