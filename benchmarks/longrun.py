"""A long run of measurements: does one measurement's cost, the process memory or the monitor's state
grow with the length of the history? (issue 12, item 4)

    python benchmarks/longrun.py --quick     # 200 measurements, a smoke test: no target asserted
    python benchmarks/longrun.py             # 3,200 measurements, targets asserted (exit status 1 if missed)
    python benchmarks/longrun.py --passive   # the same in passive mode (training batches, no probe)

One small tanh MLP (5 monitored layers), trained on fixed random batches, monitored in probe mode
with binning on a probe of 512 rows, ``schedule=1`` (a measurement at every step), synchronous, the
JSONL run log as the only sink, ``verbose=False``. Record k is the measurement of step k - 1 (the
constructor's step-0 measurement is record 1). ``--passive``: no probe; each measurement pools the
training batch of its step (512 rows, ``passive_window=1``, labels passed to ``step(y=...)``), and the
interleaved comparison uses a second copy of the model (two passive monitors on one model would each
capture the other's training forwards). Three targets:

* **Time**: the median time of ``monitor.step()`` over 20 measurements up to record 100 and 20 after
  record 3,200; ratio late / early <= 1.5. So that machine load cannot tilt the ratio, the verdict
  compares them *interleaved*: after record 3,200 a fresh monitor on the same model is brought to
  record 80, and the two measure in turn, 20 records each. The sequential ratio (records 81-100
  against 3,181-3,200 of the long run, minutes apart) is printed too, and both for the
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

import _rss  # noqa: E402  (benchmarks/, the script's folder, is on the path)
from _rss import trimmed_rss  # noqa: E402
import ibhooks

KB = 1000
MB = 1000 * KB

TARGET_TIME_RATIO = 1.5
TARGET_RSS_PER_MEAS = 8 * KB
TARGET_STATE_BYTES = 1 * MB
WINDOW = 20  # measurements per timing window


def rss() -> int:
    """Resident set size after a GC pass (bytes)."""
    gc.collect()
    return _rss.rss()


def build_model(seed: int = 0) -> Tuple[nn.Sequential, List[str]]:
    """12-16-12-8-4-2 tanh MLP; the four tanh outputs and the logits are monitored (5 layers)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(12, 16),
        nn.Tanh(),
        nn.Linear(16, 12),
        nn.Tanh(),
        nn.Linear(12, 8),
        nn.Tanh(),
        nn.Linear(8, 4),
        nn.Tanh(),
        nn.Linear(4, 2),
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


class Loop:
    """The model, its optimizer, fixed batches and the probe."""

    def __init__(self, probe_rows: int, batch: int, passive: bool = False) -> None:
        self.passive = passive
        self.model, self.layers = build_model()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9)
        g = torch.Generator().manual_seed(1)
        self.probe = (
            torch.randn(probe_rows, 12, generator=g),
            torch.randint(0, 2, (probe_rows,), generator=g),
        )
        self.batches = [
            (torch.randn(batch, 12, generator=g), torch.randint(0, 2, (batch,), generator=g))
            for _ in range(8)
        ]
        self.i = 0

    def train_step(self) -> torch.Tensor:
        x, y = self.batches[self.i % len(self.batches)]
        self.i += 1
        loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return y

    def monitor(self, name: str, logdir: str, size: int) -> Tuple[ibhooks.IBMonitor, TimedInterpreter]:
        """A monitor measuring at every step (its constructor takes record 1) with a timed interpreter."""
        mon = ibhooks.IBMonitor(
            self.model,
            layers=self.layers,
            probe=None if self.passive else self.probe,
            passive_window=1 if self.passive else None,
            schedule=1,
            estimators=["binning"],
            log_dir=logdir,
            run_name=name,
            verbose=False,
            max_samples=self.probe[0].shape[0],
        )
        pipeline = mon._runner.pipeline
        timer = TimedInterpreter(pipeline.interpreter, size)
        pipeline.interpreter = timer
        return mon, timer

    def timed_step(self, mon: ibhooks.IBMonitor) -> float:
        """One training step, then ``mon.step()`` (which must measure); returns the step() time."""
        y = self.train_step()
        t0 = time.perf_counter()
        out = mon.step(y=y if self.passive else None)
        took = time.perf_counter() - t0
        if out is None:
            raise RuntimeError(f"step {mon.step_count}: step() measured nothing; the schedule should be due")
        return took


def run(total: int, probe_rows: int, batch: int, logdir: str, passive: bool = False) -> Dict[str, Any]:
    """``total`` measurements (records 1..total); returns the timings, RSS checkpoints and state size.

    Then, to compare the cost at the two ends of the history under the same machine load, a fresh
    monitor on the same model is brought to record ``100 - WINDOW`` and the two monitors measure in
    turn (order alternating) for WINDOW more records each: records up to 100 of the fresh one
    against records ``total + 1 ...`` of the long one."""
    loop = Loop(probe_rows, batch, passive)
    fresh_loop = Loop(probe_rows, batch, passive) if passive else loop
    step_s = np.full(total + 1, np.nan)  # index = record number; record 1 (construction) is not timed
    early_end = min(100, total)
    mem_first = min(200, total // 2)
    checkpoints = sorted({mem_first, *(c for c in (400, 800, 1600) if mem_first < c < total), total})
    raw: Dict[int, int] = {}
    trimmed: Dict[int, int] = {}
    paired: Dict[str, List[float]] = {"long": [], "fresh": [], "long_interp": [], "fresh_interp": []}

    t_start = time.perf_counter()
    mon, timer = loop.monitor("longrun", logdir, total + WINDOW + 1)
    fresh = None
    try:
        for record in range(2, total + 1):
            step_s[record] = loop.timed_step(mon)
            if record in checkpoints:
                raw[record] = rss()
                trimmed[record] = trimmed_rss()
        wall = time.perf_counter() - t_start
        state_bytes = len(pickle.dumps(mon.state_dict()))
        series_bytes = mon.history_series.nbytes()
        n_records = len(mon.history_series)

        fresh, fresh_timer = fresh_loop.monitor("fresh", logdir, early_end + 1)
        for _ in range(2, early_end - WINDOW + 1):
            fresh_loop.timed_step(fresh)
        for i in range(WINDOW):
            for name, lp, m, t in (("long", loop, mon, timer), ("fresh", fresh_loop, fresh, fresh_timer))[
                :: 1 if i % 2 == 0 else -1
            ]:
                paired[name].append(lp.timed_step(m))
                paired[name + "_interp"].append(float(t.seconds[t.i - 1]))
    finally:
        mon.close()
        if fresh is not None:
            fresh.close()
    # interpreter call i is record i + 1
    interp = np.concatenate([[np.nan], timer.seconds[:total]])
    return {
        "total": total,
        "records": n_records,
        "early": (max(2, early_end - WINDOW + 1), early_end),
        "late": (total - WINDOW + 1, total),
        "step_s": step_s,
        "interp_s": interp,
        "paired": paired,
        "checkpoints": checkpoints,
        "raw": raw,
        "trimmed": trimmed,
        "mem_first": mem_first,
        "state_bytes": state_bytes,
        "series_bytes": series_bytes,
        "wall": wall,
    }


def report(r: Dict[str, Any], quick: bool) -> List[str]:
    """Print the tables; returns the targets missed (empty when all are met)."""
    (e0, e1), (l0, l1) = r["early"], r["late"]
    total, first = r["total"], r["mem_first"]
    missed: List[str] = []

    def verdict(ok: bool, what: str, by: str) -> str:
        if not ok:
            missed.append(f"{what} ({by})")
        return "met" if ok else f"MISSED ({by})"

    p = r["paired"]
    print(
        f"\n## measurement time at record ~100 against record ~{total:,}; target late / early <= "
        f"{TARGET_TIME_RATIO}"
    )
    head = f"{'how':<13}{'part':<34}{'early ms':>10}{'late ms':>10}{'late/early':>12}  target"
    print(head)
    print("-" * len(head))
    rows = (
        ("interleaved", "one measurement (monitor.step())", p["fresh"], p["long"], True),
        ("interleaved", "interpretation (checks + phases)", p["fresh_interp"], p["long_interp"], False),
        (
            "sequential",
            "one measurement (monitor.step())",
            r["step_s"][e0 : e1 + 1],
            r["step_s"][l0 : l1 + 1],
            False,
        ),
        (
            "sequential",
            "interpretation (checks + phases)",
            r["interp_s"][e0 : e1 + 1],
            r["interp_s"][l0 : l1 + 1],
            False,
        ),
    )
    for how, name, early_s, late_s, target in rows:
        early, late = statistics.median(list(early_s)), statistics.median(list(late_s))
        ratio = late / early
        ok = (
            verdict(ratio <= TARGET_TIME_RATIO, f"{name} time ratio", f"{ratio:.2f} > {TARGET_TIME_RATIO}")
            if target
            else "(not the verdict)"
        )
        print(f"{how:<13}{name:<34}{1e3 * early:>10.2f}{1e3 * late:>10.2f}{ratio:>12.2f}  {ok}")
    print(
        f"# interleaved (the verdict): a fresh monitor's records {e0}-{e1} and this run's records "
        f"{total + 1:,}-{total + WINDOW:,}, measured in turn (same machine load; probe mode: on the same "
        "model, passive: on a copy of it);\n"
        f"# sequential: this run's records {e0}-{e1} against {l0:,}-{l1:,}, minutes apart (the machine's "
        "load may differ); medians"
    )

    print(
        f"\n## process RSS after gc.collect(), MB (10^6 bytes), from record {first:,} to record {total:,}; "
        f"target growth <= {TARGET_RSS_PER_MEAS / KB:.0f} KB per measurement"
    )
    cps = r["checkpoints"]
    head = (
        f"{'RSS':<10}"
        + "".join(f"{'@' + format(c, ','):>10}" for c in cps)
        + f"{'growth MB':>11}{'per meas KB':>13}  target"
    )
    print(head)
    print("-" * len(head))
    for kind in ("raw", "trimmed"):
        vals = r[kind]
        grew = vals[total] - vals[first]
        per = grew / max(total - first, 1)
        ok = (
            verdict(
                per <= TARGET_RSS_PER_MEAS,
                "RSS growth per measurement",
                f"{per / KB:.1f} KB > {TARGET_RSS_PER_MEAS / KB:.0f} KB",
            )
            if kind == "raw"
            else "(after malloc_trim)"
        )
        print(
            f"{kind:<10}"
            + "".join(f"{vals[c] / MB:>10.2f}" for c in cps)
            + f"{grew / MB:>+11.3f}{per / KB:>+13.2f}  {ok}"
        )

    print(
        f"\n## monitor state at record {total:,}; target len(pickle.dumps(state_dict())) <= "
        f"{TARGET_STATE_BYTES / MB:.0f} MB"
    )
    head = f"{'what':<44}{'bytes':>12}  target"
    print(head)
    print("-" * len(head))
    sb = r["state_bytes"]
    print(
        f"{'pickle.dumps(monitor.state_dict())':<44}{sb:>12,}  "
        f"{verdict(sb <= TARGET_STATE_BYTES, 'state_dict size', f'{sb / MB:.2f} MB > 1 MB')}"
    )
    print(f"{'history_series.nbytes() (in-memory series)':<44}{r['series_bytes']:>12,}  (not a target)")
    print(f"# {r['records']:,} records in {r['wall']:.1f} s (training steps included)")
    if quick:
        print("# --quick: a short run; the verdicts above are not the targets' verdicts (nothing asserted)")
        missed = []
    return missed


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 measurements, no target asserted")
    ap.add_argument(
        "--measurements", type=int, default=0, help="records in the run (default 3,200; quick 200)"
    )
    ap.add_argument("--probe", type=int, default=512, help="probe rows (default 512)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for the run")
    ap.add_argument("--passive", action="store_true", help="passive mode: the training batches, no probe")
    ap.add_argument("--batch", type=int, default=0, help="training batch rows (default 64; passive 512)")
    args = ap.parse_args(argv)
    batch = args.batch or (args.probe if args.passive else 64)
    total = args.measurements or (200 if args.quick else 3_200)
    if total < 2 * WINDOW + 2:
        ap.error(f"--measurements must be at least {2 * WINDOW + 2}")
    torch.set_num_threads(args.threads)
    print(
        f"# ibhooks long-run benchmark  torch={torch.__version__}  threads={torch.get_num_threads()}  "
        f"quick={args.quick}  measurements={total:,}  probe={args.probe} rows  load average={_loadavg()}"
    )
    how = f"passive (training batch of {batch} rows per measurement)" if args.passive else "probe"
    print(
        f"# 12-16-12-8-4-2 tanh MLP, 5 monitored layers, {how} mode, binning, schedule=1, sinks: JSONL only, "
        "synchronous"
    )
    sys.stdout.flush()
    with tempfile.TemporaryDirectory(prefix="ibhooks-longrun-") as logdir:
        result = run(total, args.probe, batch, logdir, args.passive)
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
