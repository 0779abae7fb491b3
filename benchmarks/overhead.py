"""Training overhead of IBMonitor: the same training loop with and without the monitor, timed in the
same process, for an MLP, a CNN and a ResNet-18-sized network (and the tiny SZT tanh MLP as the
worst case: its step is so cheap that fixed per-step costs show most).

    python benchmarks/overhead.py --quick           # tiny models, a few seconds
    python benchmarks/overhead.py                   # the real sizes, 10-15 minutes on a 2-core CPU
    python benchmarks/overhead.py --device cuda

Two targets (issue #9):

(a) Steps where no measurement is due cost <= 1 % more. The monitor is attached (hooks registered,
    probe or passive mode) with a schedule that is never due inside the timed window. Arms A (plain)
    and B (monitored) run N steps each, interleaved A B, B A, A B, ... for R >= 5 repetitions; the
    ratio is the median over repetitions of B_i / A_i, with its min..max. The same model, optimizer
    and data serve both arms; the monitor is built (and closed) outside the timed window, and each
    arm warms up before its timed steps. Because a shared machine makes a 1 % difference hard to
    see, the table also gives a noise-free *component* estimate: the cost of ``monitor.step()``
    alone plus (hooks x the cost of one disarmed hook), over the plain step time.

(b) The amortised overhead of a realistic run with the default estimator (binning) on
    ``log_spaced(100, L)`` is <= 5 %. *Direct*: both arms run the whole L-step loop; the
    monitored arm includes building the monitor (its step-0 measurement) and every measurement.
    *Composed* (used where a direct run is too long on a CPU, and checked against the direct
    numbers where both exist): (L * (t_step + extra per step) + construction + M(L) * c_meas) /
    (L * t_step) - 1, with c_meas the mean cost of one measurement (probe forward + estimator +
    checks + phase tests + run-log write) measured here and M(L) the number of scheduled steps.
    Each model's last row repeats the composed number with ``probe_batch_size`` = the training batch
    size instead of the monitor's default, since on a CPU the probe's chunk size decides much of c_meas.

Timings use time.perf_counter (with torch.cuda.synchronize on CUDA) and one torch.set_num_threads
for the whole run. No numbers here are asserted anywhere: they depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import math
import os
import statistics
import sys
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import ibhooks  # noqa: E402

NEVER = ibhooks.every_n(10**9, start=10**9)
DEFAULT_PROBE_BS = (
    inspect.signature(ibhooks.IBMonitor).parameters["probe_batch_size"].default
)  # a schedule that is not due inside any timed window


# ---------------------------------------------------------------- models


class BasicBlock(nn.Module):
    """The ResNet basic block: two 3x3 convolutions with BatchNorm, identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def resnet18(width: int = 64, classes: int = 10) -> nn.Sequential:
    """ResNet-18 (2-2-2-2 basic blocks, widths w..8w) with the CIFAR stem (3x3 conv, no max-pool).
    width=64 is the real thing: 11.2 M parameters. The stages are the root Sequential's children, so
    the monitor's automatic choice watches stem, layer1..4, pool and fc."""
    w = [width, 2 * width, 4 * width, 8 * width]

    def stage(cin: int, cout: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))

    return nn.Sequential(
        OrderedDict(
            stem=nn.Sequential(nn.Conv2d(3, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU()),
            layer1=stage(w[0], w[0], 1),
            layer2=stage(w[0], w[1], 2),
            layer3=stage(w[1], w[2], 2),
            layer4=stage(w[2], w[3], 2),
            pool=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
            fc=nn.Linear(w[3], classes),
        )
    )


def mlp(sizes: Sequence[int], act: Callable[[], nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: List[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def cnn(c1: int = 32, c2: int = 64, side: int = 32, hidden: int = 128, classes: int = 10) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, c1, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * (side // 4) ** 2, hidden),
        nn.ReLU(),
        nn.Linear(hidden, classes),
    )


@dataclass
class Spec:
    name: str
    build: Callable[[], nn.Module]
    in_shape: Tuple[int, ...]
    batch: int
    classes: int
    steps: int  # N: timed steps per repetition of target (a)
    direct_len: int  # L of the direct run of target (b); 0 = composed only
    real_len: int  # L of the realistic run that the composed number is for
    probe_n: int
    what: str = ""
    num_sched: int = 100  # log_spaced(num_sched, L)
    warmup: int = 5  # untimed steps before each timed window, in both arms


def specs(quick: bool) -> List[Spec]:
    if quick:  # everything shrunk: a smoke test of the machinery, not a measurement
        return [
            Spec(
                "mlp",
                lambda: mlp([64, 64, 32, 10]),
                (64,),
                32,
                10,
                10,
                100,
                10_000,
                128,
                "64-64-32-10 ReLU",
                10,
                2,
            ),
            Spec(
                "cnn",
                lambda: cnn(4, 8, 16, 32),
                (3, 16, 16),
                16,
                10,
                5,
                0,
                20_000,
                64,
                "2 conv (4, 8 ch) + 2 fc, 16x16",
                10,
                2,
            ),
            Spec(
                "resnet18",
                lambda: resnet18(width=4),
                (3, 16, 16),
                4,
                10,
                3,
                0,
                20_000,
                16,
                "ResNet-18 at width 4, 16x16",
                10,
                1,
            ),
        ]
    return [
        Spec(
            "szt-mlp",
            lambda: mlp([12, 10, 7, 5, 4, 3, 2], nn.Tanh),
            (12,),
            256,
            2,
            1000,
            10_000,
            10_000,
            4096,
            "12-10-7-5-4-3-2 tanh (Shwartz-Ziv & Tishby), the worst case",
            100,
            20,
        ),
        Spec(
            "mlp",
            lambda: mlp([784, 512, 256, 128, 10]),
            (784,),
            128,
            10,
            200,
            5_000,
            20_000,
            2048,
            "784-512-256-128-10 ReLU",
            100,
            10,
        ),
        Spec(
            "cnn",
            lambda: cnn(32, 64, 32, 128),
            (3, 32, 32),
            64,
            10,
            20,
            0,
            20_000,
            1024,
            "2 conv (32, 64 ch) + 2 fc, 32x32",
            100,
            3,
        ),
        Spec(
            "resnet18",
            lambda: resnet18(width=64),
            (3, 32, 32),
            16,
            10,
            5,
            0,
            20_000,
            512,
            "ResNet-18 (11.2 M params), CIFAR stem, 32x32",
            100,
            2,
        ),
    ]


# ---------------------------------------------------------------- the training loop


class Bench:
    """One model, its optimizer and a few fixed batches on the device; a plain and a monitored loop."""

    def __init__(self, spec: Spec, device: str, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.spec, self.device = spec, device
        self.model = spec.build().to(device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        g = torch.Generator().manual_seed(seed)
        self.batches = [
            (
                torch.randn(spec.batch, *spec.in_shape, generator=g).to(device),
                torch.randint(0, spec.classes, (spec.batch,), generator=g).to(device),
            )
            for _ in range(4)
        ]
        self.probe = (
            torch.randn(spec.probe_n, *spec.in_shape, generator=g).to(device),
            torch.randint(0, spec.classes, (spec.probe_n,), generator=g).to(device),
        )
        self.i = 0
        self.logdir = tempfile.TemporaryDirectory(prefix="ibhooks-overhead-")
        self.n_params = sum(p.numel() for p in self.model.parameters())

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def train_step(self) -> torch.Tensor:
        x, y = self.batches[self.i % len(self.batches)]
        self.i += 1
        loss = F.cross_entropy(self.model(x), y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return y

    def monitor(
        self,
        mode: str,
        schedule: ibhooks.every_n | ibhooks.log_spaced,
        estimators=("binning",),
        probe_batch_size: Optional[int] = None,
    ) -> ibhooks.IBMonitor:
        probe = self.probe if mode == "probe" else None
        extra = {} if probe_batch_size is None else {"probe_batch_size": probe_batch_size}
        return ibhooks.IBMonitor(
            self.model,
            probe=probe,
            schedule=schedule,
            estimators=list(estimators),
            log_dir=self.logdir.name,
            run_name=f"{self.spec.name}-{mode}-{time.time_ns()}",
            verbose=False,
            max_samples=max(self.spec.probe_n, 1),
            **extra,
        )

    def plain(self, n: int) -> float:
        self.sync()
        t0 = time.perf_counter()
        for _ in range(n):
            self.train_step()
        self.sync()
        return time.perf_counter() - t0

    def monitored(self, n: int, mon: ibhooks.IBMonitor, passive: bool) -> float:
        self.sync()
        t0 = time.perf_counter()
        if passive:
            for _ in range(n):
                mon.step(y=self.train_step())
        else:
            for _ in range(n):
                self.train_step()
                mon.step()
        self.sync()
        return time.perf_counter() - t0

    def close(self) -> None:
        self.logdir.cleanup()


# ---------------------------------------------------------------- (a) steps with no measurement due


@dataclass
class IdleRow:
    model: str
    mode: str
    hooks: int
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
    """Cost of one disarmed monitor hook: forward passes of 16 tiny Linear layers with and without the
    monitor's hooks (best of many interleaved timings), difference / 16. Noise-robust (tiny tensors)."""
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
                    mon = ibhooks.IBMonitor(model, schedule=NEVER, log_dir=d, verbose=False)
                if not hooked and mon is not None:
                    mon.close()
                    mon = None
                best[hooked] = min(best[hooked], fwd())
        if mon is not None:
            mon.close()
    return max(0.0, (best[True] - best[False]) / (20 * k) * 1e6)


def step_call_cost_us(bench: Bench, mode: str, n: int = 2000) -> float:
    """Mean cost of ``monitor.step()`` when nothing is due (no forward pass in between)."""
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
                hooks = mon.num_hooks
                try:
                    bench.monitored(warmup, mon, mode == "passive")
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
    length: int
    measurements: int
    step_ms: float
    meas_ms: float  # mean cost of one measurement
    construct_ms: float  # building the monitor (shape discovery + step-0 measurement)
    direct: Optional[List[float]]  # per-rep ratios of the direct run (None: composed only)
    composed: float  # composed overhead for `length`
    idle_extra: float  # relative per-step extra used in the composition
    probe_bs: int = DEFAULT_PROBE_BS  # rows per chunk of the probe forward


def direct_run(
    bench: Bench, length: int, num: int, reps: int
) -> Tuple[List[float], float, float, int, float]:
    """Both arms run ``length`` steps; B builds the monitor inside the timed window and measures on
    log_spaced(num, length). Returns (ratios, mean measurement s, construction s, measurements, step s)."""
    ratios, meas, cons, plain = [], [], [], []
    count, warmup = 0, bench.spec.warmup
    for r in range(reps):
        times: Dict[str, float] = {}
        for arm in ("A", "B") if r % 2 == 0 else ("B", "A"):
            gc.collect()
            if arm == "A":
                bench.plain(warmup)
                times["A"] = bench.plain(length)
                continue
            bench.plain(warmup)
            bench.sync()
            t0 = time.perf_counter()
            mon = bench.monitor("probe", ibhooks.log_spaced(num, length))
            bench.sync()
            t_cons = time.perf_counter() - t0
            count = len(mon.history)
            for _ in range(length):
                bench.train_step()
                s0 = time.perf_counter()
                rec = mon.step()
                if rec is not None:
                    bench.sync()
                    meas.append(time.perf_counter() - s0)
                    count += 1
            mon.close()
            bench.sync()
            times["B"] = time.perf_counter() - t0
            cons.append(t_cons)
        ratios.append(times["B"] / times["A"])
        plain.append(times["A"] / length)
    return ratios, statistics.mean(meas), statistics.median(cons), count, statistics.median(plain)


def sampled_measurements(
    bench: Bench, k: int, probe_batch_size: Optional[int] = None
) -> Tuple[float, float, int]:
    """(construction s, mean measurement s, scheduled steps) without running the whole loop: build the
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
    return t_cons, statistics.mean(costs), len(sched.steps)


def composed(length: int, m: int, step_s: float, idle_extra: float, cons_s: float, meas_s: float) -> float:
    """Amortised relative overhead of a run of ``length`` steps with m scheduled measurements (step 0
    is the construction's own measurement)."""
    plain = length * step_s
    return (plain * idle_extra + cons_s + (m - 1) * meas_s) / plain


# ---------------------------------------------------------------- output


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
        if r.component > 0.01:  # the monitor's own work alone is above the target
            ok = f"MISSED by {100 * (r.component - 0.01):.1f} pt"
        elif r.median <= 1.01:
            ok = "met"
        else:
            ok = "noise?"  # the timed ratio says no, the monitor's own work says yes
        print(
            f"{r.model:<10}{r.mode:<9}{r.hooks:>6}{r.steps:>6}{r.step_ms:>10.3f}{r.median:>8.3f}"
            f"{_spread(r.ratios):>18}{r.min_ratio:>9.3f}{r.step_call_us:>11.2f}{r.hook_us:>9.2f}"
            f"{100 * r.component:>10.2f}%  {ok}"
        )
    print(
        "# median = median over repetitions of B_i / A_i, [min, max] its spread; min/min = fastest monitored "
        "window / fastest plain window;\n# component = (step() us + hooks x hook us) / plain step ms: the "
        "monitor's own per-step work, free of machine noise ('noise?': timed median > 1.01, component <= 1 %)"
    )


def print_runs(rows: List[RunRow]) -> None:
    print(
        "\n## (b) amortised overhead of a run with binning on log_spaced(num, L), probe mode, measurement "
        "cost included; target <= 5 %"
    )
    head = (
        f"{'model':<10}{'L':>7}{'M':>5}{'probe bs':>9}{'step ms':>10}{'meas ms':>10}{'build ms':>10}"
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
        ok = "met" if verdict <= 0.05 else "MISSED"
        print(
            f"{r.model:<10}{r.length:>7}{r.measurements:>5}{r.probe_bs:>9}{r.step_ms:>10.3f}{r.meas_ms:>10.1f}"
            f"{r.construct_ms:>10.1f}"
            f"{d:>9}{sp:>18}{100 * r.composed:>9.2f}%  {ok}"
        )
    print(
        "# direct = median over interleaved repetitions of (monitored run incl. construction and every "
        "measurement) / (plain run) - 1; composed = (L x idle extra + build + (M-1) x meas) / (L x step);\n"
        f"# probe bs = rows per chunk of the probe forward (the monitor's default probe_batch_size is "
        f"{DEFAULT_PROBE_BS}; the last row of each model uses the training batch size instead)"
    )


_SPECS: List[Spec] = []


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
        "--reps", type=int, default=0, help="interleaved repetitions of (a) (default 5 quick, 7 full)"
    )
    ap.add_argument("--models", default="", help="comma-separated subset of szt-mlp,mlp,cnn,resnet18")
    ap.add_argument("--no-passive", action="store_true", help="(a) in probe mode only")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but CUDA is not available")
    torch.set_num_threads(args.threads)
    reps = args.reps or (5 if args.quick else 9)
    run_reps = 1 if args.quick else 3
    _SPECS[:] = specs(args.quick)
    if args.models:
        wanted = set(args.models.split(","))
        _SPECS[:] = [s for s in _SPECS if s.name in wanted]
    print(
        f"# ibhooks training-overhead benchmark  device={args.device}  torch={torch.__version__}  "
        f"threads={torch.get_num_threads()}  quick={args.quick}  load average={_loadavg()}"
    )
    for s in _SPECS:
        b = s.build()
        print(
            f"#   {s.name:<9} {s.what}: {sum(p.numel() for p in b.parameters()):,} params, batch {s.batch}, "
            f"input {'x'.join(map(str, s.in_shape))}, probe {s.probe_n} rows"
        )
    sys.stdout.flush()
    hook_us = per_hook_cost_us(args.device, reps=50 if args.quick else 300)
    idle: List[IdleRow] = []
    runs: List[RunRow] = []
    for s in _SPECS:
        bench = Bench(s, args.device)
        try:
            for mode in ("probe",) if args.no_passive else ("probe", "passive"):
                idle.append(idle_overhead(bench, mode, reps, hook_us))
            probe_row = next(r for r in idle if r.model == s.name and r.mode == "probe")
            extra = probe_row.component  # the noise-free per-step extra of probe mode
            if s.direct_len:
                ratios, meas_s, cons_s, m, step_s = direct_run(bench, s.direct_len, s.num_sched, run_reps)
                runs.append(
                    RunRow(
                        s.name,
                        s.direct_len,
                        m,
                        step_s * 1e3,
                        meas_s * 1e3,
                        cons_s * 1e3,
                        ratios,
                        composed(s.direct_len, m, step_s, extra, cons_s, meas_s),
                        extra,
                        min(DEFAULT_PROBE_BS, s.probe_n),
                    )
                )
            else:
                cons_s, meas_s, _ = sampled_measurements(bench, 1 if args.quick else 3)
                step_s = probe_row.step_ms / 1e3
            if s.real_len != s.direct_len:
                m_real = len(ibhooks.log_spaced(s.num_sched, s.real_len).steps)
                runs.append(
                    RunRow(
                        s.name,
                        s.real_len,
                        m_real,
                        step_s * 1e3,
                        meas_s * 1e3,
                        cons_s * 1e3,
                        None,
                        composed(s.real_len, m_real, step_s, extra, cons_s, meas_s),
                        extra,
                        min(DEFAULT_PROBE_BS, s.probe_n),
                    )
                )
            # the same realistic run with the probe forward chunked like a training batch
            m_real = len(ibhooks.log_spaced(s.num_sched, s.real_len).steps)
            cons_b, meas_b, _ = sampled_measurements(bench, 1 if args.quick else 3, probe_batch_size=s.batch)
            runs.append(
                RunRow(
                    s.name,
                    s.real_len,
                    m_real,
                    step_s * 1e3,
                    meas_b * 1e3,
                    cons_b * 1e3,
                    None,
                    composed(s.real_len, m_real, step_s, extra, cons_b, meas_b),
                    extra,
                    min(s.batch, s.probe_n),
                )
            )
        finally:
            bench.close()
        print(f"# done {s.name}", file=sys.stderr)
    print_idle(idle, reps)
    print_runs(runs)
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
