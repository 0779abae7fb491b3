"""Goldfeld et al. (ICML 2019), "Estimating Information Flow in Deep Neural Networks": a *noisy* network,
in which I(X;T) is finite and the data-processing inequality holds, measured exactly as the paper
defines it, and contrasted with binning on the same run.

The network is the Shwartz-Ziv & Tishby 12-10-7-5-4-3-2 tanh network on their 12-bit task, with
additive Gaussian noise N(0, beta^2 I) after every hidden tanh, in training *and* at test time
(``GaussianNoise`` ignores ``eval()``): T_l = S_l + Z_l with S_l = tanh(W_l T_{l-1} + b_l). The noise is
drawn from the global RNG: during training that is the ordinary random stream of the model, and
the monitor runs its probe with the RNG forked and restored, so measuring does not shift training.

Measurement (the sample-propagation estimator of the paper, built on ibhooks' ``noisy_channel``):

* the monitor captures the pre-noise activations S_l (the tanh outputs) of a probe made of
  ``--inputs`` distinct patterns, each repeated ``--replicates`` times, so each row carries its own
  noise draws in the layers before l: the rows of one input are samples of S_l | X = x;
* T_l = S_l + N(0, beta^2 I) is then a Gaussian mixture centred on the rows, and ``noisy_channel``
  (sigma^2 = beta^2) computes its mutual information with a discrete label exactly, up to Monte-Carlo
  error: with the input index as the label it gives I(X;T_l) = h(T_l) - mean_x h(T_l | X = x), with the
  class as the label I(T_l;Y) = h(T_l) - sum_y p(y) h(T_l | Y = y);
* the noise the estimator adds is the network's own noise at layer l, and the noise of earlier layers is
  in the rows, so these are the quantities of the noisy network itself: X -> T_1 -> T_2 -> ... is a
  Markov chain, and the DPI must hold up to the estimates' uncertainty. The estimator declares this
  (``EstimatorTraits(noise_in_network=True)``), and the DPI tallies ``record.checks.dpi`` say whether
  it does.

The confidence intervals are Monte-Carlo only. With few noisy passes per input the plug-in mixture
underestimates h(T_l | X = x), so I(X;T_l) reads high: on this network, 8 passes read up to ~0.3 bit
above 64 passes in the deeper layers (and the same bias in every layer, so the DPI is unaffected);
raise ``--replicates`` for accurate values (the cost grows with the square of the probe rows).

Binning (30 bins on [-1, 1] of S_l, X uniform over the probe rows) runs on the same activations, as
Shwartz-Ziv & Tishby would measure them: its quantisation is not part of the network.

What it shows: the sample-propagation estimates obey the DPI at every measurement (no violated pair
along the chain, for I(X;T) and I(T;Y)). The deeper layers fit (I(T;Y) from ~0.1 to ~0.9 bit; the
phase tests flag it) while their I(X;T) rises, and in the last few measurements I(X;T) falls back by
0.3-0.8 bit as the same-class representations cluster (Goldfeld et al.'s account of compression; too
few log-spaced points for the phase test to call it). Binning breaks the DPI at every measurement
between the first two hidden layers (modules 1 and 4): the replicates of an input are identical in
S_1 but differ in S_2 by their noise, and binning, which takes T as a function of the probe row,
counts that noise as information (7 bits = log2 128 inputs, then 10 bits = log2 1024 rows). With two
estimators the figures come per estimator: ``dpi_goldfeld_sp.png`` shows the DPI holding,
``dpi_binning.png`` the binning violations on the same run.

    python examples/noisy_network.py --out runs/noisy_network       # ~2-3 min on 2 CPU cores
    python examples/noisy_network.py --smoke --out /tmp/noisy_smoke
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ibhooks  # noqa: E402
from _summary import dpi_summary, errors, format_dpi, layer_table, save_figures, warning_codes  # noqa: E402
from ibhooks.data import load_szt  # noqa: E402
from ibhooks.estimators.base import Estimator, LayerInformation  # noqa: E402
from ibhooks.estimators.noisy_channel import NoisyChannel  # noqa: E402
from ibhooks.schema import Estimate, EstimatorTraits, make_estimate  # noqa: E402

WIDTHS = (12, 10, 7, 5, 4, 3, 2)


class GaussianNoise(nn.Module):
    """Adds N(0, beta^2 I) in training and in eval mode (the noise is part of the network)."""

    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = float(beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.beta * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"beta={self.beta:g}"


def noisy_szt_network(beta: float, seed: int = 0) -> nn.Sequential:
    """12-10-7-5-4-3-2: Linear -> Tanh -> GaussianNoise per hidden layer, then the 2 logits."""
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(WIDTHS[:-1], WIDTHS[1:])):
        lin = nn.Linear(a, b)
        with torch.no_grad():  # truncated normal, std 1/sqrt(fan_in), as in the SZT code; biases 0
            w = torch.randn(b, a, generator=gen)
            while bool((w.abs() > 2).any()):
                bad = w.abs() > 2
                w[bad] = torch.randn(int(bad.sum()), generator=gen)
            lin.weight.copy_(w / math.sqrt(a))
            lin.bias.zero_()
        layers.append(lin)
        if i < len(WIDTHS) - 2:
            layers += [nn.Tanh(), GaussianNoise(beta)]
    return nn.Sequential(*layers)


class SamplePropagation(Estimator):
    """I(X;T) and I(T;Y) of a noisy network layer T = S + N(0, beta^2 I) (Goldfeld et al. 2019).

    ``t`` holds S for a probe of distinct inputs, each repeated ``replicates`` times in consecutive rows
    (rows ``i*replicates .. (i+1)*replicates - 1`` are input i under independent upstream noise).
    Both values are ``noisy_channel`` mutual informations of the mixture sum_rows N(s_row, beta^2 I):
    with the input index as the label (I(X;T)) and with the class label (I(T;Y)).
    """

    name = "goldfeld_sp"
    #: The noise is the network's own (the DPI holds for the true quantities). The I(X;T) cap is log2 of
    #: the distinct inputs, not of the probe rows, so no "log2_n" cap is declared (it is set per Estimate).
    traits = EstimatorTraits(noise_in_network=True)

    def __init__(self, beta: float, replicates: int, mc_samples: int = 8192, seed: int = 0) -> None:
        self.beta, self.replicates = float(beta), int(replicates)
        self.channel = NoisyChannel(noise_var=self.beta ** 2, mc_samples=mc_samples, seed=seed)

    def params(self) -> Dict[str, Any]:
        return {"beta": self.beta, "replicates": self.replicates, **self.channel.params()}

    def _relabel(self, e: Estimate, quantity: str, cap: Optional[float]) -> Estimate:
        return make_estimate(e.value, quantity, kind="estimate", estimator=self.name, ci=e.ci, cap=cap, n=e.n,
                             dim=e.dim, params=self.params(), diagnostics=e.diagnostics, traits=self.traits)

    def layer_information(self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *,
                          layer: Optional[str] = None) -> LayerInformation:
        n, m = t.shape[0], self.replicates
        if n % m:
            raise ValueError(f"{n} probe rows are not a whole number of groups of {m} replicates")
        inputs = torch.arange(n, device=t.device) // m
        noise = f"N(0,{self.beta:g}^2 I)"
        i_xt = self._relabel(self.channel.mutual_information(t, inputs, discrete_b=True),
                             f"I(X; S+{noise}) of the noisy network, X uniform over {n // m} inputs "
                             f"(sample propagation, {m} noisy passes per input)", math.log2(n // m))
        if y is None:
            return i_xt, None
        i_ty = self._relabel(self.channel.mutual_information(t, y, discrete_b=True),
                             f"I(S+{noise}; Y) of the noisy network (sample propagation)", None)
        return i_xt, i_ty


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/noisy_network", help="output folder (run log, figures)")
    p.add_argument("--beta", type=float, default=0.1, help="std of the network's Gaussian noise")
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--inputs", type=int, default=128, help="distinct probe inputs (X is uniform over them)")
    p.add_argument("--replicates", type=int, default=8,
                   help="noisy passes per probe input (more: less upward bias of I(X;T), slower)")
    p.add_argument("--measurements", type=int, default=25, help="log-spaced measurement points")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="a few epochs and a small probe (for the tests)")
    args = p.parse_args(argv)
    if args.smoke:
        args.epochs, args.measurements, args.inputs, args.replicates = 3, 4, 32, 4
    torch.set_num_threads(1)  # a tiny network: more threads only add overhead
    torch.manual_seed(args.seed)
    out = Path(args.out)

    x, y = load_szt()  # the 4096 12-bit patterns and their labels
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1000 + args.seed))
    train_idx = perm[: round(0.8 * len(y))]
    pick = torch.randperm(len(y), generator=torch.Generator().manual_seed(2000 + args.seed))[: args.inputs]
    x_probe = x[pick].repeat_interleave(args.replicates, dim=0)  # input i in rows i*m .. i*m + m - 1
    y_probe = y[pick].repeat_interleave(args.replicates, dim=0)

    model = noisy_szt_network(args.beta, seed=args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = -(-len(train_idx) // args.batch_size)
    max_steps = args.epochs * steps_per_epoch
    monitor = ibhooks.IBMonitor(
        model,
        layers=[nn.Tanh],          # S_l, before the noise: the estimator adds the layer's own N(0, beta^2 I)
        probe=(x_probe, y_probe),  # eval mode, but GaussianNoise stays on: each row gets its own draws
        schedule=ibhooks.log_spaced(args.measurements, max_steps),
        estimators=[SamplePropagation(args.beta, args.replicates, seed=args.seed),
                    ("binning", {"n_bins": 30, "range": (-1.0, 1.0)})],
        log_dir=out,
        run_name="noisy_network",
        max_samples=len(y_probe),
    )
    t0 = time.time()
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for start in range(0, len(order), args.batch_size):
            idx = order[start:start + args.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            monitor.step(epoch=epoch)
        if not args.smoke and (epoch + 1) % 250 == 0:
            with torch.no_grad():
                acc = (model(x).argmax(1) == y).float().mean().item()  # with the noise on
            print(f"epoch {epoch + 1:5d}  loss {loss.item():.3f}  acc(all 4096, noisy) {acc:.3f}  "
                  f"[{time.time() - t0:.0f}s]")
    monitor.close()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    runtime = time.time() - t0
    # a DPI figure per estimator: dpi_goldfeld_sp.png (the DPI holds) and dpi_binning.png (it breaks)
    figures = save_figures(monitor.log_path, out / "figures", smoke=args.smoke)
    history = monitor.history
    print(f"\nNoisy SZT network, beta = {args.beta:g}: {args.epochs} epochs ({max_steps} steps), accuracy "
          f"(noisy, all 4096 patterns) {acc:.3f}; {len(history)} measurements of {args.inputs} inputs x "
          f"{args.replicates} noisy passes; {runtime:.0f}s")
    print(layer_table(history))
    print(format_dpi(history))
    dpi = dpi_summary(history)
    for est in ("goldfeld_sp", "binning"):
        v = sum(dpi.get(f"{est}/{q}", {}).get("violated", 0) for q in ("I_XT", "I_TY"))
        s = sum(dpi.get(f"{est}/{q}", {}).get("significant", 0) for q in ("I_XT", "I_TY"))
        c = sum(dpi.get(f"{est}/{q}", {}).get("pairs_checked", 0) for q in ("I_XT", "I_TY"))
        print(f"  {est}: {v} of {c} adjacent pairs violated, {s} beyond the estimates' uncertainty")
    print(f"warnings: {warning_codes(history)}; estimator errors: {len(errors(history))}")
    print(f"run log: {monitor.log_path}\nfigures: {out / 'figures'}")
    return {"run_log": monitor.log_path, "figures": figures, "accuracy": acc, "history": history, "dpi": dpi}


if __name__ == "__main__":
    main()
