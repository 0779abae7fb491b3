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
