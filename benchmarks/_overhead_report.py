"""The tables of ``benchmarks/overhead.py``."""

from __future__ import annotations

import statistics
from typing import List, Sequence

from _overhead_measure import BlockedRow, IdleRow, RunRow, median_or_nan
from _overhead_setup import DEFAULT_PROBE_BS

IDLE_TARGET = 0.01
RUN_TARGET = 0.05
BLOCKED_TARGET = 1.10


def _spread(r: Sequence[float]) -> str:
    return f"[{min(r):.3f}, {max(r):.3f}]"


def print_idle(rows: List[IdleRow], reps: int) -> None:
    print(
        f"\n## (a) steps with no measurement due: {reps} interleaved repetitions (A B, B A, ...) of N steps "
        "per arm, each arm warmed up first; ratio = monitored / plain; target <= 1.01"
    )
    head = (
        f"{'model':<10}{'mode':<9}{'hooks':>6}{'N':>6}{'step ms':>10}{'median':>8}{'[min, max]':>18}"
        f"{'min/min':>9}{'step() us':>11}{'hook us':>9}{'component':>11}  target"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        if r.component > IDLE_TARGET:  # the monitor's own work alone is above the target
            ok = f"MISSED by {100 * (r.component - IDLE_TARGET):.1f} pt"
        elif r.median <= 1 + IDLE_TARGET:
            ok = "met"
        else:
            ok = "met (noise?)"  # the timed ratio says no, the monitor's own work says yes
        print(
            f"{r.model:<10}{r.mode:<9}{r.hooks:>6}{r.steps:>6}{r.step_ms:>10.3f}{r.median:>8.3f}"
            f"{_spread(r.ratios):>18}{r.min_ratio:>9.3f}{r.step_call_us:>11.2f}{r.hook_us:>9.2f}"
            f"{100 * r.component:>10.3f}%  {ok}"
        )
    print(
        "# hooks = hook handles registered between measurements (probe mode: 0, hooks exist only around the "
        "probe pass);\n# median = median over repetitions of B_i / A_i, [min, max] its spread; min/min = "
        "fastest monitored window / fastest plain window;\n# component = (step() us + hooks x hook us) / "
        "plain step ms: the monitor's own per-step work, free of machine noise (the verdict; 'noise?': "
        "timed median > 1.01)"
    )


def print_runs(rows: List[RunRow]) -> None:
    print(
        "\n## (b) amortised overhead of a run with the defaults (binning, probe mode) on log_spaced(100, L), "
        "measurement cost included; target <= 5 %"
    )
    head = (
        f"{'model':<10}{'mode':<12}{'L':>7}{'M':>5}{'probe bs':>9}{'step ms':>10}{'meas ms':>10}"
        f"{'build ms':>10}"
        f"{'direct':>9}{'[min, max]':>18}{'composed':>10}  target"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        if r.direct:
            pct = [100 * (x - 1) for x in r.direct]
            d, sp = f"{statistics.median(pct):.2f}%", f"[{min(pct):.1f}, {max(pct):.1f}]%"
            verdict = statistics.median(r.direct) - 1
        else:
            d, sp, verdict = "-", "", r.composed
        ok = "met" if verdict <= RUN_TARGET else f"MISSED by {100 * (verdict - RUN_TARGET):.1f} pt"
        print(
            f"{r.model:<10}{r.mode:<12}{r.length:>7}{r.measurements:>5}{r.probe_bs:>9}{r.step_ms:>10.3f}"
            f"{r.meas_ms:>10.1f}{r.construct_ms:>10.1f}{d:>9}{sp:>18}{100 * r.composed:>9.2f}%  {ok}"
        )
    print(
        "# direct = median over interleaved repetitions (plain, sync, background; order rotating) of "
        "(monitored run incl. construction,\n#   every measurement and close()) / (plain run) - 1 (the "
        "verdict where it exists); composed = (L x idle extra + build + (M-1) x meas) / (L x step);\n"
        "# meas ms = one measurement on the training thread, from (c): the whole of it (sync) or the "
        "blocked time (background: assumes a free core for the worker)\n"
        "# probe bs = rows per chunk of the probe forward (the default probe_batch_size is "
        f"{DEFAULT_PROBE_BS}; "
        "a model's last sync row, if its batch is smaller, uses the training batch size)"
    )


def print_blocked(rows: List[BlockedRow]) -> None:
    print(
        "\n## (c) training thread blocked per measurement: snapshot alone, synchronous and background "
        "measure(), interleaved; target background <= snapshot x 1.10"
    )
    head = (
        f"{'model':<10}{'reps':>5}{'snapshot ms':>13}{'sync ms':>10}{'bg ms':>10}{'bg/snap':>9}"
        f"{'[min, max]':>18}"
        f"{'bg/sync':>9}{'estim ms':>10}{'interp ms':>10}{'sinks ms':>10}  target"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        ratio = statistics.median(r.bg_over_snap)
        ok = "met" if ratio <= BLOCKED_TARGET else f"MISSED ({ratio:.2f} > {BLOCKED_TARGET:.2f})"
        print(
            f"{r.model:<10}{len(r.snap):>5}{1e3 * r.snap_s:>13.2f}{1e3 * r.sync_s:>10.2f}"
            f"{1e3 * r.bg_s:>10.2f}"
            f"{ratio:>9.3f}{_spread(r.bg_over_snap):>18}{statistics.median(r.bg_over_sync):>9.3f}"
            f"{1e3 * median_or_nan(r.estimate):>10.2f}{1e3 * median_or_nan(r.interpret):>10.2f}"
            f"{1e3 * median_or_nan(r.sinks):>10.2f}  {ok}"
        )
    print(
        "# snapshot = monitor._taker.take(step, None): probe pass with its hooks + capture; sync / bg = "
        "measure() in synchronous / background mode (means);\n# bg/snap, bg/sync = medians of the "
        "per-repetition ratios; estim / interp / sinks = medians of the synchronous measurement's parts "
        "(estimators,\n# checks + phase tests, run-log write): what background mode moves to the worker"
    )
