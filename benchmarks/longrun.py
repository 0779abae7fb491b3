"""A long run of measurements: does one measurement's cost, the process memory or the monitor's state
grow with the length of the history? (issue 12, item 4)

    python benchmarks/longrun.py --quick     # 200 measurements, a smoke test: no target asserted
    python benchmarks/longrun.py             # 3,200 measurements, targets asserted (exit status 1 if missed)

One small tanh MLP (5 monitored layers), trained on fixed random batches, monitored in probe mode
with binning on a probe of 512 rows, ``schedule=1`` (a measurement at every step), synchronous, the
JSONL run log as the only sink, ``verbose=False``. Record k is the measurement of step k - 1 (the
constructor's step-0 measurement is record 1). Three targets:

* **Time**: the median time of ``monitor.step()`` over the 20 measurements up to record 100 and up to
  the last record (3,200); ratio late / early <= 1.5. The same ratio is printed for the
  interpretation stage alone (checks + incremental phase tests, timed by wrapping the pipeline's
  interpreter), the part that used to re-analyse the whole history.
* **Memory**: process RSS (``/proc/self/statm`` after ``gc.collect()``) at record 200 and at the last
  record; growth per measurement <= 8 KB. RSS after ``malloc_trim(0)`` (freed heap pages returned)
  is printed next to it, and checkpoints in between show whether the growth is linear.
* **State**: ``len(pickle.dumps(monitor.state_dict()))`` at the last record <= 1 MB.

The benchmark keeps its own per-measurement numbers in preallocated arrays so that it does not add
to the RSS it measures. Timings depend on the machine's load (printed); the memory and state numbers
do not.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import pickle
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import ibhooks  # noqa: E402

KB = 1000
MB = 1000 * KB
_PAGE = os.sysconf("SC_PAGE_SIZE")
try:
    _LIBC: Optional[ctypes.CDLL] = ctypes.CDLL("libc.so.6")
except OSError:
    _LIBC = None

TARGET_TIME_RATIO = 1.5
TARGET_RSS_PER_MEAS = 8 * KB
TARGET_STATE_BYTES = 1 * MB
WINDOW = 20  # measurements per timing window


def rss() -> int:
    """Resident set size after a GC pass (bytes)."""
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def trimmed_rss() -> int:
    """RSS after a GC pass and ``malloc_trim(0)``: live memory rather than what the allocator caches."""
    gc.collect()
    if _LIBC is not None:
        try:
            _LIBC.malloc_trim(0)
        except AttributeError:
            pass
    return rss()


def build_model(seed: int = 0) -> Tuple[nn.Sequential, List[str]]:
    """12-16-12-8-4-2 tanh MLP; the four tanh outputs and the logits are monitored (5 layers)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 8), nn.Tanh(),
        nn.Linear(8, 4), nn.Tanh(), nn.Linear(4, 2),
    )
    return model, ["1", "3", "5", "7", "8"]


class TimedInterpreter:
    """Wraps the pipeline's interpreter and writes each call's duration into a preallocated array."""

    def __init__(self, inner: Any, size: int) -> None:
        self.inner = inner
        self.seconds = np.full(size, np.nan)
        self.i = 0

    def __call__(self, record: ibhooks.Record) -> None:
        t0 = time.perf_counter()
        self.inner(record)
        if self.i < len(self.seconds):
            self.seconds[self.i] = time.perf_counter() - t0
        self.i += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run(total: int, probe_rows: int, batch: int, logdir: str) -> Dict[str, Any]:
    """``total`` measurements (records 1..total); returns the timings, RSS checkpoints and state size."""
    model, layers = build_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    probe = (torch.randn(probe_rows, 12, generator=g), torch.randint(0, 2, (probe_rows,), generator=g))
    batches = [(torch.randn(batch, 12, generator=g), torch.randint(0, 2, (batch,), generator=g)) for _ in range(8)]

    step_s = np.full(total + 1, np.nan)  # index = record number; record 1 (construction) is not timed
    early_end = min(100, total)
    mem_first = min(200, total // 2)
    checkpoints = sorted({mem_first, *(c for c in (400, 800, 1600) if mem_first < c < total), total})
    raw: Dict[int, int] = {}
    trimmed: Dict[int, int] = {}

    t_start = time.perf_counter()
    mon = ibhooks.IBMonitor(model, layers=layers, probe=probe, schedule=1, estimators=["binning"],
                            log_dir=logdir, run_name="longrun", verbose=False, max_samples=probe_rows)
    pipeline = mon._runner.pipeline
    timer = TimedInterpreter(pipeline.interpreter, total + 1)
    pipeline.interpreter = timer
    try:
        for record in range(2, total + 1):
            x, y = batches[record % len(batches)]
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            t0 = time.perf_counter()
            out = mon.step()
            step_s[record] = time.perf_counter() - t0
            if out is None:
                raise RuntimeError(f"record {record}: step() measured nothing; the schedule should be due")
            if record in checkpoints:
                raw[record] = rss()
                trimmed[record] = trimmed_rss()
        wall = time.perf_counter() - t_start
        state_bytes = len(pickle.dumps(mon.state_dict()))
        series_bytes = mon.history_series.nbytes()
        n_records = len(mon.history_series)
    finally:
        mon.close()
    # interpreter call i is record i + 1
    interp = np.concatenate([[np.nan], timer.seconds[: total]])
    return {
        "total": total,
        "records": n_records,
        "early": (max(2, early_end - WINDOW + 1), early_end),
        "late": (total - WINDOW + 1, total),
        "step_s": step_s,
        "interp_s": interp,
        "checkpoints": checkpoints,
        "raw": raw,
        "trimmed": trimmed,
        "mem_first": mem_first,
        "state_bytes": state_bytes,
        "series_bytes": series_bytes,
        "wall": wall,
    }


def _median(a: np.ndarray, lo: int, hi: int) -> float:
    return float(statistics.median(a[lo: hi + 1].tolist()))


def report(r: Dict[str, Any], quick: bool) -> List[str]:
    """Print the tables; returns the targets missed (empty when all are met)."""
    (e0, e1), (l0, l1) = r["early"], r["late"]
    total, first = r["total"], r["mem_first"]
    missed: List[str] = []

    def verdict(ok: bool, what: str, by: str) -> str:
        if not ok:
            missed.append(f"{what} ({by})")
        return "met" if ok else f"MISSED ({by})"

    print(f"\n## measurement time: median over records {e0}-{e1} against records {l0}-{l1}; "
          f"target late / early <= {TARGET_TIME_RATIO}")
    head = f"{'part':<34}{'early ms':>10}{'late ms':>10}{'late/early':>12}  target"
    print(head)
    print("-" * len(head))
    for name, key, target in (("one measurement (monitor.step())", "step_s", True),
                              ("interpretation (checks + phases)", "interp_s", False)):
        early, late = _median(r[key], e0, e1), _median(r[key], l0, l1)
        ratio = late / early
        ok = verdict(ratio <= TARGET_TIME_RATIO, f"{name} time ratio",
                     f"{ratio:.2f} > {TARGET_TIME_RATIO}") if target else "(part of the above)"
        print(f"{name:<34}{1e3 * early:>10.2f}{1e3 * late:>10.2f}{ratio:>12.2f}  {ok}")

    print(f"\n## process RSS after gc.collect(), MB (10^6 bytes), from record {first:,} to record {total:,}; "
          f"target growth <= {TARGET_RSS_PER_MEAS / KB:.0f} KB per measurement")
    cps = r["checkpoints"]
    head = f"{'RSS':<10}" + "".join(f"{'@' + format(c, ','):>10}" for c in cps) + f"{'growth MB':>11}{'per meas KB':>13}  target"
    print(head)
    print("-" * len(head))
    for kind in ("raw", "trimmed"):
        vals = r[kind]
        grew = vals[total] - vals[first]
        per = grew / max(total - first, 1)
        ok = verdict(per <= TARGET_RSS_PER_MEAS, "RSS growth per measurement",
                     f"{per / KB:.1f} KB > {TARGET_RSS_PER_MEAS / KB:.0f} KB") if kind == "raw" else "(after malloc_trim)"
        print(f"{kind:<10}" + "".join(f"{vals[c] / MB:>10.2f}" for c in cps)
              + f"{grew / MB:>+11.3f}{per / KB:>+13.2f}  {ok}")

    print(f"\n## monitor state at record {total:,}; target len(pickle.dumps(state_dict())) <= "
          f"{TARGET_STATE_BYTES / MB:.0f} MB")
    head = f"{'what':<44}{'bytes':>12}  target"
    print(head)
    print("-" * len(head))
    sb = r["state_bytes"]
    print(f"{'pickle.dumps(monitor.state_dict())':<44}{sb:>12,}  "
          f"{verdict(sb <= TARGET_STATE_BYTES, 'state_dict size', f'{sb / MB:.2f} MB > 1 MB')}")
    print(f"{'history_series.nbytes() (in-memory series)':<44}{r['series_bytes']:>12,}  (not a target)")
    print(f"# {r['records']:,} records in {r['wall']:.1f} s (training steps included)")
    if quick:
        print("# --quick: a short run; the verdicts above are not the targets' verdicts (nothing asserted)")
        missed = []
    return missed


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 measurements, no target asserted")
    ap.add_argument("--measurements", type=int, default=0, help="records in the run (default 3,200; quick 200)")
    ap.add_argument("--probe", type=int, default=512, help="probe rows (default 512)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for the run")
    args = ap.parse_args(argv)
    total = args.measurements or (200 if args.quick else 3_200)
    if total < 2 * WINDOW + 2:
        ap.error(f"--measurements must be at least {2 * WINDOW + 2}")
    torch.set_num_threads(args.threads)
    print(f"# ibhooks long-run benchmark  torch={torch.__version__}  threads={torch.get_num_threads()}  "
          f"quick={args.quick}  measurements={total:,}  probe={args.probe} rows  load average={_loadavg()}")
    print("# 12-16-12-8-4-2 tanh MLP, 5 monitored layers, binning, schedule=1, sinks: JSONL only, synchronous")
    sys.stdout.flush()
    with tempfile.TemporaryDirectory(prefix="ibhooks-longrun-") as logdir:
        result = run(total, args.probe, 64, logdir)
    missed = report(result, args.quick)
    print(f"# load average at the end: {_loadavg()}")
    if missed:
        print("# targets missed: " + "; ".join(missed))
        return 1
    return 0


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    sys.exit(main())
