"""The models, sizes and training loop of ``benchmarks/overhead.py``: one model, its optimizer and a
few fixed batches on the device; a plain and a monitored loop."""

from __future__ import annotations

import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

import ibhooks

#: A schedule that is never due inside any timed window.
NEVER = ibhooks.every_n(10**9, start=10**9)
#: The monitor's default rows per chunk of the probe forward.
DEFAULT_PROBE_BS = ibhooks.CaptureConfig().probe_batch_size or "auto"  # None: chosen from the layers' size


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
    """One model of the benchmark and the sizes of its timed runs."""

    name: str
    build: Callable[[], nn.Module]
    in_shape: Tuple[int, ...]
    batch: int
    classes: int
    steps: int  # N: timed steps per repetition of target (a)
    direct_len: int  # L of the direct runs of target (b); 0 = composed only
    real_len: int  # L of the realistic run that the composed numbers are for
    probe_n: int
    what: str = ""
    num_sched: int = 100  # log_spaced(num_sched, L)
    warmup: int = 5  # untimed steps before each timed window, in every arm
    blocked_reps: int = 3  # interleaved repetitions of (c)
    direct_reps: int = 3  # interleaved repetitions of the direct runs of (b) (1 in --quick)


def specs(quick: bool) -> List[Spec]:
    """The four models (``quick``: shrunk, a smoke test of the machinery, not a measurement)."""
    szt = lambda: mlp([12, 10, 7, 5, 4, 3, 2], nn.Tanh)
    if quick:
        return [
            Spec("szt-mlp", szt, (12,), 256, 2, 50, 200, 10_000, 256, "12-10-7-5-4-3-2 tanh", 10, 2, 2),
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
                2,
            ),
            Spec(
                "resnet18",
                lambda: resnet18(width=4),
                (3, 16, 16),
                4,
                10,
                2,
                0,
                20_000,
                16,
                "ResNet-18 at width 4, 16x16",
                10,
                1,
                2,
            ),
        ]
    return [
        Spec(
            "szt-mlp",
            szt,
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
            15,
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
            7,
            2,
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
            5,
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
            3,
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
        estimators: Sequence[str] = ("binning",),
        probe_batch_size: Optional[int] = None,
        background: bool = False,
    ) -> ibhooks.IBMonitor:
        """A monitor with the defaults, except the rows it keeps (the whole probe) and the run log's place."""
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
            background=background,
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
