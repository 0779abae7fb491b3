"""The Shwartz-Ziv & Tishby (2017) setup shared by the examples: network 12-10-7-5-4-3-2 on the
12-bit task, trained with Adam on 80 % of the 4096 patterns (random split, as in Saxe et al.'s
code), information measured on all 4096 patterns (as both papers do)."""
from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn as nn

from ibhooks.data import load_szt

WIDTHS = (12, 10, 7, 5, 4, 3, 2)


def szt_network(activation: str = "tanh", *, seed: int = 0) -> nn.Sequential:
    """12-10-7-5-4-3-2 with ``activation`` hidden units and a 2-way softmax output.

    Weights: truncated normal, std 1/sqrt(fan_in), cut at 2 std (IDNNs); biases 0.
    """
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:])):
        lin = nn.Linear(a, b)
        with torch.no_grad():
            w = torch.randn(b, a, generator=gen)
            while bool((w.abs() > 2).any()):  # resample outside 2 std (truncated normal)
                bad = w.abs() > 2
                w[bad] = torch.randn(int(bad.sum()), generator=gen)
            lin.weight.copy_(w / math.sqrt(a))
            lin.bias.zero_()
        layers.append(lin)
        layers.append(act() if i < len(WIDTHS) - 2 else nn.Softmax(dim=1))
    return nn.Sequential(*layers)


def szt_data(seed: int = 0, train_fraction: float = 0.8) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x, y, train_idx)``: all 4096 patterns, labels, and a random 80 % training split."""
    x, y = load_szt()
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(1000 + seed))
    return x, y, perm[: round(train_fraction * x.shape[0])]


def nll_of_softmax(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of a softmax output (SZT clip the probabilities the same way)."""
    return nn.functional.nll_loss(torch.log(probs.clamp_min(1e-12)), y)


class SeedBatchedLinear(nn.Module):
    """``S`` independent linear layers applied at once: (B, in) or (S, B, in) -> (S, B, out).

    Training S seeds together is exact: the summed loss gives each seed its own gradients, and
    Adam is elementwise, so every seed follows the trajectory it would follow alone.
    """

    def __init__(self, seeds: int, fan_in: int, fan_out: int, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)  # (S, in, out)
        self.bias = nn.Parameter(torch.zeros(seeds, 1, fan_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.weight.shape[0], -1, -1)
        return torch.baddbmm(self.bias, x, self.weight)


def szt_seed_batched_network(activation: str, seeds: Tuple[int, ...]) -> nn.Sequential:
    """The SZT network for several seeds at once; seed s uses the init of ``szt_network(seed=s)``."""
    singles = [szt_network(activation, seed=s) for s in seeds]
    layers = []
    for i, module in enumerate(singles[0]):
        if isinstance(module, nn.Linear):
            w = torch.stack([net[i].weight.detach().t() for net in singles])
            layers.append(SeedBatchedLinear(len(seeds), module.in_features, module.out_features, w))
        elif isinstance(module, nn.Softmax):
            layers.append(nn.Softmax(dim=-1))
        else:
            layers.append(type(module)())
    return nn.Sequential(*layers)


def train_seeds(
    activation: str,
    seeds: Tuple[int, ...],
    *,
    epochs: int,
    estimators,
    out,
    run_prefix: str,
    measurements: int = 100,
    lr: float = 1e-3,
    batch_size: int = 256,
    log_every: int = 0,
    sinks_seed0: tuple = (),
    estimators_per_seed=None,
    analyses: tuple = (),
    probe_rows: int = 0,
):
    """Train the SZT network for ``seeds`` together, one IBMonitor per seed (a selector picks the
    seed's slice of every layer output). ``estimators_per_seed`` overrides ``estimators`` with one
    list per seed; ``analyses`` go to every monitor; the probe is all 4096 patterns, or a fixed random
    ``probe_rows`` of them. Returns the list of closed monitors."""
    import ibhooks

    x, y = load_szt()
    probe = (x, y)
    if probe_rows:
        rows = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(7))[:probe_rows]
        probe = (x[rows], y[rows])
    splits = [szt_data(s)[2] for s in seeds]
    model = szt_seed_batched_network(activation, seeds)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = -(-splits[0].shape[0] // batch_size)
    act_type = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    layer_names = [str(i) for i, m in enumerate(model) if isinstance(m, (act_type, nn.Softmax))]
    monitors = []
    for k, s in enumerate(seeds):
        monitors.append(ibhooks.IBMonitor(
            model,
            layers=layer_names,
            selectors={name: (lambda out, k=k: out[k]) for name in layer_names},
            probe=probe,
            schedule=ibhooks.log_spaced(measurements, epochs * steps_per_epoch),
            estimators=estimators_per_seed[k] if estimators_per_seed else estimators,
            chains=[layer_names],
            log_dir=out,
            run_name=f"{run_prefix}_seed{s}",
            sinks=list(sinks_seed0) if k == 0 else [],
            seed=s,
            verbose=False,
            analyses=list(analyses),
        ))
    gens = [torch.Generator().manual_seed(10_000 + s) for s in seeds]
    for epoch in range(epochs):
        orders = torch.stack([split[torch.randperm(split.shape[0], generator=g)]
                              for split, g in zip(splits, gens)])
        for start in range(0, orders.shape[1], batch_size):
            idx = orders[:, start:start + batch_size]  # (S, B)
            probs = model(x[idx])
            loss = sum(nll_of_softmax(probs[k], y[idx[k]]) for k in range(len(seeds)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for mon in monitors:
                mon.step(epoch=epoch)
        if log_every and (epoch + 1) % log_every == 0:
            with torch.no_grad():
                acc = (model(x).argmax(-1) == y).float().mean(dim=1)
            print(f"epoch {epoch + 1}: mean acc(all 4096) {acc.mean():.3f}", flush=True)
    for mon in monitors:
        mon.close()
    return monitors
