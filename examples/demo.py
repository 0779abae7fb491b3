"""The README demo: the Shwartz-Ziv & Tishby network (12-10-7-5-4-3-2, tanh) on the 12-bit task,
monitored with IBMonitor on a log-spaced schedule (1500 epochs at lr 2e-3: a shortened SZT run that
still shows fitting then compression) with binning (30 bins on [-1, 1], as SZT) and the
KDE upper bound (sigma^2 = 0.1, as Saxe et al.). Writes the JSONL run log, a TensorBoard run and
the figures (information plane, per-layer curves, DPI panel, animation).

    python examples/demo.py --out runs/demo        # a few minutes on 2 CPU cores
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ibhooks  # noqa: E402
from _szt import nll_of_softmax, szt_data, szt_network  # noqa: E402

#: Draw the TensorBoard figures (and print a progress line) at every FIGURE_EVERY-th measurement.
FIGURE_EVERY = 10


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="output folder")
    parser.add_argument("--epochs", type=int, default=1500)
    parser.add_argument("--measurements", type=int, default=50, help="log-spaced measurement points")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-kde", action="store_true", help="binning only (faster)")
    parser.add_argument("--no-tensorboard", action="store_true")
    parser.add_argument("--probe-samples", type=int, default=4096,
                        help="patterns in the probe (all 4096 by default)")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # a 294-parameter network: extra threads only add synchronisation
    out = Path(args.out)
    x, y, train_idx = szt_data(args.seed)
    model = szt_network("tanh", seed=args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    steps_per_epoch = -(-len(train_idx) // args.batch_size)
    estimators = [("binning", {"n_bins": 30, "range": (-1.0, 1.0)})]
    if not args.no_kde:
        estimators.append(("kde", {"noise_var": 0.1}))
    monitor = ibhooks.IBMonitor(
        model,
        layers=[nn.Tanh, nn.Softmax],                # the 5 hidden tanh layers and the softmax output
        probe=(x[:args.probe_samples], y[:args.probe_samples]),  # all 4096 patterns by default (SZT, Saxe)
        schedule=ibhooks.log_spaced(args.measurements, args.epochs * steps_per_epoch),
        estimators=estimators,
        chains=[["1", "3", "5", "7", "9", "11"]],    # the activations: the Markov chain X -> T1 -> ... -> T6
        log_dir=out,
        run_name="demo",
        sinks=[] if args.no_tensorboard else ["tensorboard"],  # TensorBoard run in <out>/demo
        figure_every=FIGURE_EVERY,                   # its plane and curves images: figures cost ~1 s each
        verbose=False,
    )
    t0 = time.time()
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for start in range(0, len(order), args.batch_size):
            idx = order[start:start + args.batch_size]
            loss = nll_of_softmax(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            record = monitor.step(epoch=epoch)  # the Record when it measured (synchronous mode)
            if record is not None and len(monitor.history_series) % FIGURE_EVERY == 0:
                with torch.no_grad():
                    acc = (model(x).argmax(1) == y).float().mean().item()
                print(f"epoch {epoch:5d} step {record.step:6d} loss {loss.item():.3f} acc(all) {acc:.3f} "
                      f"I(X;T_last) {record.estimate('9').value:.2f} bits  [{time.time() - t0:.0f}s]")
    monitor.close()
    figures = monitor.save_figures(out / "figures")
    print(f"\nrun log: {monitor.log_path}")
    if not args.no_tensorboard:
        print(f"tensorboard: tensorboard --logdir {out}")
    for name, path in figures.items():
        print(f"figure {name}: {path}")
    print(f"total {time.time() - t0:.0f}s")
    return monitor.log_path


if __name__ == "__main__":
    main()
