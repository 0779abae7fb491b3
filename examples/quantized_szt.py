"""Lorenzen, Igel & Nielsen (ICLR 2022) on the 12-bit task: exact information of quantized networks.

The SZT network 12-10-7-5-4-3-2 with every hidden activation and the softmax output quantized to
8 bits in the forward pass (straight-through gradient), tanh and ReLU, several seeds trained together.
Each monitored layer is then a discrete variable, so with X uniform over the 4096 patterns
I(X;T) = H(T) and I(T;Y) are exact (``estimators=["exact"]``): no binning, no noise. The library's
phase tests say which layers fit and which compress, and the DPI along the chain must hold exactly.

Quantizers: tanh units on [-1, 1] and the softmax on [0, 1] with 2**bits evenly spaced levels; ReLU
units on [0, r] with r = max(1, running maximum of the seed's training activations of that layer),
frozen in eval mode, so the probe pass sees one grid. The loss is the cross-entropy of the unquantized
softmax (the straight-through gradient is the same; a quantized probability of exactly 0 would make
the log-loss infinite). Weights are not quantized: exactness needs only discrete activations.

    python examples/quantized_szt.py --out runs/quantized_szt          # 4 seeds x 1000 epochs, both
    python examples/quantized_szt.py --from-logs --out runs/quantized_szt  # tables and figures again
    python examples/quantized_szt.py --smoke --out /tmp/quantized       # a few epochs, for the tests
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ibhooks  # noqa: E402
from _results import mean_history, seed_table  # noqa: E402
from _szt import SeedBatchedLinear, szt_data, szt_seed_batched_network  # noqa: E402
from ibhooks.data import load_szt  # noqa: E402
from ibhooks.schema import PhaseStatus, Quantity, Record  # noqa: E402
from ibhooks.schema.phases import fold_phase_changes  # noqa: E402


class QuantSTE(nn.Module):
    """Uniform quantization to ``2**bits`` levels on [lo, hi] in the forward pass, identity gradient.

    ``hi=None``: the top of the range is max(1, running maximum of each seed's training activations), a
    (S, 1, 1) buffer for seed-batched (S, B, d) inputs, updated in training mode only.
    """

    def __init__(self, bits: int, lo: float, hi: Optional[float], seeds: int) -> None:
        super().__init__()
        self.bits, self.lo, self.running = bits, lo, hi is None
        self.register_buffer("hi", torch.full((seeds, 1, 1), 1.0 if hi is None else hi))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.running and self.training:
            self.hi = torch.maximum(self.hi, x.detach().amax(dim=(1, 2), keepdim=True))
        steps = 2 ** self.bits - 1
        scale = (self.hi - self.lo) / steps
        q = torch.round((x.clamp(self.lo) - self.lo) / scale).clamp_(0, steps) * scale + self.lo
        return x + (q - x).detach()


def quantized_network(activation: str, seeds: Sequence[int], bits: int) -> nn.Sequential:
    """SZT's seed-batched network with a quantizer after every activation and after the softmax."""
    layers: List[nn.Module] = []
    for module in szt_seed_batched_network(activation, tuple(seeds)):
        layers.append(module)
        if isinstance(module, SeedBatchedLinear):
            continue
        if isinstance(module, nn.Softmax):
            layers.append(QuantSTE(bits, 0.0, 1.0, len(seeds)))
        elif activation == "tanh":
            layers.append(QuantSTE(bits, -1.0, 1.0, len(seeds)))
        else:
            layers.append(QuantSTE(bits, 0.0, None, len(seeds)))
    return nn.Sequential(*layers)


def train(activation: str, seeds: Sequence[int], *, bits: int, epochs: int, measurements: int, lr: float,
          batch_size: int, out: Path) -> Tuple[list, List[float]]:
    """Train all seeds together (seed-batched layers), one IBMonitor per seed with the exact estimator."""
    x, y = load_szt()
    splits = [szt_data(s)[2] for s in seeds]  # each seed's random 80 % training split, as in _szt.py
    model = quantized_network(activation, seeds, bits)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = -(-splits[0].shape[0] // batch_size)
    names = [str(i) for i, m in enumerate(model) if isinstance(m, QuantSTE)]
    schedule = ibhooks.log_spaced(measurements, epochs * steps_per_epoch)
    monitors = [ibhooks.IBMonitor(
        model, layers=names, selectors={n: (lambda o, k=k: o[k]) for n in names}, probe=(x, y),
        schedule=schedule, estimators=[("exact", {"bits": bits})], chains=[names], log_dir=out,
        run_name=f"{activation}_seed{s}", seed=s, verbose=False) for k, s in enumerate(seeds)]
    order_gens = [torch.Generator().manual_seed(10_000 + s) for s in seeds]
    for epoch in range(epochs):
        orders = torch.stack([sp[torch.randperm(sp.shape[0], generator=g)]
                              for sp, g in zip(splits, order_gens)])
        for start in range(0, orders.shape[1], batch_size):
            idx = orders[:, start:start + batch_size]
            probs = model[:-1](x[idx])  # the unquantized softmax (see the module docstring)
            loss = sum(nn.functional.nll_loss(torch.log(probs[k].clamp_min(1e-12)), y[idx[k]])
                       for k in range(len(seeds)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            for mon in monitors:
                mon.step(epoch=epoch)
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(-1) == y).float().mean(dim=1)
    for mon in monitors:
        mon.close()
    return monitors, [float(a) for a in acc]


def _labels(activation: str) -> Dict[str, str]:
    widths = (10, 7, 5, 4, 3)
    names = [str(3 * i + 2) for i in range(6)]  # Linear, act, quantizer: the quantizers sit at 2, 5, ...
    return {n: (f"T{i + 1} ({activation}, {w})" if i < 5 else "output (softmax, 2)")
            for i, (n, w) in enumerate(zip(names, widths + (2,)))}


def fitting_table(histories: Sequence[Sequence[Record]], labels: Dict[str, str]) -> str:
    """I(T;Y) at the first measurement, its peak and the end (mean +- sd over seeds)."""
    rows = ["| layer | I(T;Y) first | I(T;Y) peak | I(T;Y) end |", "|---|---|---|---|"]
    for layer in histories[0][-1].layers:
        series = [[r.estimate(layer, Quantity.I_TY, "exact").value for r in h] for h in histories]

        def ms(v: List[float]) -> str:
            return f"{statistics.fmean(v):.3f} ± {statistics.pstdev(v):.3f}"

        rows.append(f"| {labels.get(layer, layer)} | {ms([s[0] for s in series])} | "
                    f"{ms([max(s) for s in series])} | {ms([s[-1] for s in series])} |")
    return "\n".join(rows)


def dpi_summary(histories: Sequence[Sequence[Record]]) -> Dict[str, int]:
    """DPI pairs checked and violated (and flagged as bugs) over every record of every seed."""
    checked = violated = bugs = bound_bugs = 0
    for hist in histories:
        for rec in hist:
            if rec.checks is None:
                continue
            total = rec.checks.dpi_total()
            checked += total.pairs_checked
            violated += total.violated
            bugs += sum(v.is_bug for v in rec.checks.dpi_violations)
            bound_bugs += rec.checks.bugs
    return {"dpi_pairs_checked": checked, "dpi_violated": violated, "dpi_bugs": bugs,
            "bound_bugs": bound_bugs}


def phase_table(histories: Sequence[Sequence[Record]], labels: Dict[str, str]) -> str:
    """Per layer and phase, in how many seeds the library's phase test reached ``detected`` at any
    measurement during training, and at the last one (a fitting phase that ended earlier is no longer
    detected at the end)."""
    rows = ["| layer | fitting: ever / at end | compression: ever / at end |", "|---|---|---|"]
    ends = [fold_phase_changes(c for r in h for c in r.phase_changes) for h in histories]
    for layer in histories[0][-1].layers:
        cells = []
        for phase in ("fitting", "compression"):
            ever = sum(any(c.layer == layer and c.phase == phase and c.status is PhaseStatus.DETECTED
                           for r in h for c in r.phase_changes) for h in histories)
            end = sum(e[key].detected for e in ends if (key := (layer, "exact", phase)) in e)
            cells.append(f"{ever}/{len(histories)} / {end}/{len(histories)}")
        rows.append(f"| {labels.get(layer, layer)} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def report(activation: str, histories: List[List[Record]], logs: List[Path], args: argparse.Namespace,
           extra: dict) -> dict:
    """Tables, DPI tally and figures of one activation's runs, from their records (run logs)."""
    labels = _labels(activation)
    run = {**extra, "table": seed_table(histories, "exact", layer_labels=labels),
           "phases": phase_table(histories, labels), "fitting": fitting_table(histories, labels),
           **dpi_summary(histories), "run_logs": [str(p) for p in logs]}
    acc = run.get("accuracy_all_4096")
    print(f"\n{activation}, {args.bits}-bit activations, exact information, {args.seeds} seeds x "
          f"{args.epochs} epochs" + (f", accuracy {statistics.fmean(acc):.3f}" if acc else "") +
          f"\n{run['table']}\n\n{run['phases']}\n\n{run['fitting']}\n"
          f"DPI: {run['dpi_violated']} of {run['dpi_pairs_checked']} pairs violated ({run['dpi_bugs']} bugs)")
    try:
        from ibhooks.plotting import save_all_figures
    except ImportError:
        return run
    out = Path(args.out)
    figs = save_all_figures(mean_history(histories, "exact"), out / f"figures_{activation}",
                            header={"coverage": []}, animation=False)
    seed0 = save_all_figures(logs[0], out / f"figures_{activation}_seed0", animation=False)
    run["figures"] = {k: str(v) for k, v in figs.items()}
    run["figures_seed0"] = {k: str(v) for k, v in seed0.items()}
    if args.publish:
        dest = Path(args.publish)
        dest.mkdir(parents=True, exist_ok=True)
        plane = f"quantized_{activation}_mean{args.seeds}_information_plane.png"
        shutil.copy(figs["information_plane"], dest / plane)
        shutil.copy(seed0["layer_curves"], dest / f"quantized_{activation}_seed0_layer_curves.png")
    return run


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/quantized_szt")
    p.add_argument("--activations", nargs="+", default=["tanh", "relu"], choices=["tanh", "relu"])
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--measurements", type=int, default=60)
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--publish", default=None, help="copy the figures to <dir>/quantized_<activation>_*.png")
    p.add_argument("--from-logs", action="store_true",
                   help="no training: redo tables and figures from the run logs in --out")
    p.add_argument("--smoke", action="store_true", help="tiny run that exercises everything")
    args = p.parse_args(argv)
    if args.smoke:
        args.seeds, args.epochs, args.measurements = 2, 4, 8
    torch.set_num_threads(1)  # tiny networks: threads only add overhead
    out = Path(args.out)
    old = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    summary: dict = {"bits": args.bits, "seeds": args.seeds, "epochs": args.epochs, "lr": args.lr, "runs": {}}
    for activation in args.activations:
        if args.from_logs:
            logs = [out / f"{activation}_seed{s}.jsonl" for s in range(args.seeds)]
            histories = [ibhooks.load_run(path).records for path in logs]
            extra = {k: v for k, v in old.get("runs", {}).get(activation, {}).items()
                     if k in ("runtime_s", "accuracy_all_4096")}
        else:
            t0 = time.time()
            monitors, acc = train(activation, tuple(range(args.seeds)), bits=args.bits, epochs=args.epochs,
                                  measurements=args.measurements, lr=args.lr, batch_size=args.batch_size,
                                  out=out)
            histories, logs = [m.history for m in monitors], [Path(m.log_path) for m in monitors]
            extra = {"runtime_s": time.time() - t0, "accuracy_all_4096": acc}
        summary["runs"][activation] = report(activation, histories, logs, args, extra)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
