"""Training overhead of IBMonitor: the same training loop with and without the monitor, timed in the
same process, for an MLP, a CNN and a ResNet-18-sized network, and the tiny SZT tanh MLP as the worst
case (its step is so cheap that fixed per-step and per-measurement costs show most).

    python benchmarks/overhead.py --quick           # tiny models, about a minute
    python benchmarks/overhead.py                   # the real sizes, 20-30 minutes on a 2-core CPU
    python benchmarks/overhead.py --device cuda

Three targets (issue 12, items 5-7):

(a) Steps where no measurement is due cost <= 1 % more (for the SZT MLP too). The monitor is
    attached (probe or passive mode) with a schedule that is never due inside the timed window. Arms
    A (plain) and B (monitored) run N steps each, interleaved A B, B A, A B, ... for R >= 5
    repetitions; the ratio is the median over repetitions of B_i / A_i, with its min..max. The same
    model, optimizer and data serve both arms; the monitor is built (and closed) outside the timed
    window, and each arm warms up before its timed steps. Because a shared machine makes a 1 %
    difference hard to see, the table also gives a noise-free *component* estimate: the cost of
    ``monitor.step()`` alone plus (hooks registered between measurements x the cost of one hook), over
    the plain step time. In probe mode hooks exist only around the probe pass (``monitor.num_hooks``
    is 0 between measurements), so the component is ``monitor.step()`` alone.

(b) The amortised overhead of a realistic run with the defaults (binning, probe mode) on
    ``log_spaced(100, L)`` is <= 5 %: in background mode for all four models, and synchronously for
    the MLP, the CNN and ResNet-18. *Direct*: the plain arm and a synchronous and a background
    monitored arm run the whole L-step loop, interleaved (order rotating); the monitored arms include
    building the monitor (its step-0 measurement) and every measurement, and the background arm
    its final ``close()`` (which waits for the worker). *Composed* (where a direct run is too long on
    a CPU, and checked against the direct numbers where both exist):
    (L * t_step * idle extra + construction + (M - 1) * c) / (L * t_step), with c the cost of one
    measurement on the training thread from (c): the whole measurement in synchronous mode, the
    blocked time in background mode (the composition assumes a free core for the worker; the direct
    runs do not). Each model's last row repeats the synchronous composed number with
    ``probe_batch_size`` = the training batch size.

(c) The time the training thread is blocked per measurement in background mode (``measure()`` on a
    due step) is <= the snapshot time + 10 %. Per repetition, interleaved with the order rotating:
    the snapshot alone (``monitor._taker.take(step, None)``: the probe pass with its hooks and the
    capture), a synchronous ``measure()`` and a background ``measure()`` (the worker is drained,
    untimed, after each); ratios are medians of the per-repetition ratios. The synchronous
    measurement is split into snapshot, estimation, interpretation (checks + phase tests) and sinks
    (the run log) to show what is left for a small model.

Timings use time.perf_counter (with torch.cuda.synchronize on CUDA) and one torch.set_num_threads
for the whole run. No numbers here are asserted anywhere: they depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, List, Optional

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _overhead_measure import (
    BlockedRow,
    RunRow,
    blocked_times,
    composed,
    direct_runs,
    idle_overhead,
    per_hook_cost_us,
    sampled_sync,
)
from _overhead_report import print_blocked, print_idle, print_runs
from _overhead_setup import DEFAULT_PROBE_BS, Bench, Spec, specs

import ibhooks


def bench_model(
    s: Spec,
    args: argparse.Namespace,
    reps: int,
    hook_us: float,
    idle: List,
    runs: List[RunRow],
    blocked: List[BlockedRow],
) -> None:
    """All three targets for one model; rows are appended to ``idle``, ``runs`` and ``blocked``."""
    bench = Bench(s, args.device)
    try:
        for mode in ("probe",) if args.no_passive else ("probe", "passive"):
            idle.append(idle_overhead(bench, mode, reps, hook_us))
        probe_row = next(r for r in idle if r.model == s.name and r.mode == "probe")
        extra = probe_row.component  # the noise-free per-step extra of probe mode
        step_s = probe_row.step_ms / 1e3
        brow = blocked_times(bench, s.blocked_reps)
        blocked.append(brow)
        pbs = min(DEFAULT_PROBE_BS, s.probe_n) if isinstance(DEFAULT_PROBE_BS, int) else DEFAULT_PROBE_BS
        cost = {False: (brow.cons_sync_s, brow.sync_s), True: (brow.cons_bg_s, brow.bg_s)}
        direct: Dict[bool, List[float]] = {}
        length = s.real_len
        if s.direct_len and not args.no_direct:
            direct = direct_runs(bench, s.direct_len, s.num_sched, 1 if args.quick else s.direct_reps)
            length = s.direct_len
        m = len(ibhooks.log_spaced(s.num_sched, length).steps)
        for bg in (False, True):
            cons_s, meas_s = cost[bg]
            runs.append(
                RunRow(
                    s.name,
                    "background" if bg else "sync",
                    length,
                    m,
                    step_s * 1e3,
                    meas_s * 1e3,
                    cons_s * 1e3,
                    direct.get(bg),
                    composed(length, m, step_s, extra, cons_s, meas_s),
                    pbs,
                )
            )
        if s.real_len != length:
            m_real = len(ibhooks.log_spaced(s.num_sched, s.real_len).steps)
            for bg in (False, True):
                cons_s, meas_s = cost[bg]
                runs.append(
                    RunRow(
                        s.name,
                        "background" if bg else "sync",
                        s.real_len,
                        m_real,
                        step_s * 1e3,
                        meas_s * 1e3,
                        cons_s * 1e3,
                        None,
                        composed(s.real_len, m_real, step_s, extra, cons_s, meas_s),
                        pbs,
                    )
                )
        if not isinstance(pbs, int) or s.batch < pbs:  # synchronous, the probe chunked like a training batch
            m_real = len(ibhooks.log_spaced(s.num_sched, s.real_len).steps)
            cons_b, meas_b = sampled_sync(bench, 1 if args.quick else 2, probe_batch_size=s.batch)
            runs.append(
                RunRow(
                    s.name,
                    "sync",
                    s.real_len,
                    m_real,
                    step_s * 1e3,
                    meas_b * 1e3,
                    cons_b * 1e3,
                    None,
                    composed(s.real_len, m_real, step_s, extra, cons_b, meas_b),
                    s.batch,
                )
            )
    finally:
        bench.close()


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny models and short runs (smoke test)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads for the whole run (default 1: on a shared machine more threads "
        "than free cores make every step's timing a lottery)",
    )
    ap.add_argument(
        "--reps", type=int, default=0, help="interleaved repetitions of (a) (default 3 quick, 9 full)"
    )
    ap.add_argument("--models", default="", help="comma-separated subset of szt-mlp,mlp,cnn,resnet18")
    ap.add_argument("--no-passive", action="store_true", help="(a) in probe mode only")
    ap.add_argument("--no-direct", action="store_true", help="(b) composed only (no direct L-step runs)")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but CUDA is not available")
    torch.set_num_threads(args.threads)
    reps = args.reps or (3 if args.quick else 9)
    chosen = specs(args.quick)
    if args.models:
        wanted = set(args.models.split(","))
        unknown = wanted - {s.name for s in chosen}
        if unknown:
            ap.error(f"--models: unknown {sorted(unknown)}; choose from szt-mlp,mlp,cnn,resnet18")
        chosen = [s for s in chosen if s.name in wanted]
    print(
        f"# ibhooks training-overhead benchmark  device={args.device}  torch={torch.__version__}  "
        f"threads={torch.get_num_threads()}  quick={args.quick}  load average={_loadavg()}"
    )
    for s in chosen:
        b = s.build()
        print(
            f"#   {s.name:<9} {s.what}: {sum(p.numel() for p in b.parameters()):,} params, batch {s.batch}, "
            f"input {'x'.join(map(str, s.in_shape))}, probe {s.probe_n} rows"
        )
    sys.stdout.flush()
    hook_us = per_hook_cost_us(args.device, reps=20 if args.quick else 300)
    idle: List = []
    runs: List[RunRow] = []
    blocked: List[BlockedRow] = []
    for s in chosen:
        bench_model(s, args, reps, hook_us, idle, runs, blocked)
        print(f"# done {s.name}  load average={_loadavg()}", file=sys.stderr)
    print_idle(idle, reps)
    print_runs(runs)
    print_blocked(blocked)
    if args.quick:
        print(
            "# --quick: models, runs and probes are shrunk; the verdicts above are not the targets' verdicts"
        )
    print(f"# load average at the end: {_loadavg()}")
    sys.stdout.flush()


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    main()
