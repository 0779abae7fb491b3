"""A small CNN on scikit-learn's bundled 8x8 digits (no download), monitored in a plain training loop.

The model is an ``nn.Sequential`` of named blocks (conv1, conv2, fc, out), so ``layers="auto"``
monitors each block and the blocks form one Markov chain. The conv blocks are mean-pooled over
space (16 and 32 channel means; the coverage table printed at start shows each layer's reduction),
which is lossy: those two layers leave the DPI chain and only fc -> out is checked. Probe: the
held-out digits (never trained on). Estimators suited to ReLU features of changing scale:

* ``binning`` with ``range="running"``: 30 equal bins between each layer's min and max over all
  measurements so far (a fixed [-1, 1] would clip ReLU features, the trap of Saxe et al.);
* ``kde``: the pairwise-KL upper bound on I(X; T + N(0, 0.1 I)) (Saxe et al.'s sigma^2 = 0.1).

What it shows: binning sits at its cap log2(500) = 8.97 bits on every layer from the first
measurement (every held-out digit falls in a bin cell of its own once a layer has 10+ units; the
``at_cap`` warning says so), so it cannot show anything here. The KDE starts near 0 (the initial
features are small next to the noise) and rises with the scale of the ReLU features, I(T;Y) with it
(the fitting phase, flagged by the phase tests); there is no compression, as Saxe et al. found for
ReLU networks.

    python examples/cnn_digits.py --out runs/cnn_digits              # ~1 min on 2 CPU cores
    python examples/cnn_digits.py --smoke --out /tmp/cnn_smoke        # a few steps, for the tests
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ibhooks  # noqa: E402
from _summary import errors, format_dpi, layer_table, save_figures, warning_codes  # noqa: E402


def digits(seed: int = 0, n_test: int = 500):
    """``(x_train, y_train, x_test, y_test)``: 8x8 images scaled to [0, 1], a random held-out split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


def cnn() -> nn.Sequential:
    # Max-pooling before the ReLU is the same function as after it (they commute), and a block that ends
    # in its activation lets the checks know the activation (ReLU: not saturating).
    return nn.Sequential(OrderedDict(
        conv1=nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.MaxPool2d(2), nn.ReLU()),   # 16 x 4 x 4
        conv2=nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.MaxPool2d(2), nn.ReLU()),  # 32 x 2 x 2
        fc=nn.Sequential(nn.Flatten(), nn.Linear(128, 32), nn.ReLU()),
        out=nn.Linear(32, 10),
    ))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/cnn_digits", help="output folder (run log, TensorBoard, figures)")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--measurements", type=int, default=40, help="log-spaced measurement points")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tensorboard", action="store_true", help="also write a TensorBoard run")
    p.add_argument("--smoke", action="store_true", help="a few steps and a small probe (for the tests)")
    args = p.parse_args(argv)
    n_test = 500
    if args.smoke:
        args.epochs, args.measurements, n_test = 2, 4, 120
    torch.set_num_threads(1)  # a tiny model: more threads only add overhead (and contend on a busy box)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    x_train, y_train, x_test, y_test = digits(args.seed, n_test)
    model = cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = -(-len(y_train) // args.batch_size)
    max_steps = args.epochs * steps_per_epoch

    monitor = ibhooks.IBMonitor(
        model,
        layers="auto",                                   # conv1, conv2, fc, out: one chain (nn.Sequential)
        probe=(x_test, y_test),                          # held-out digits
        schedule=ibhooks.log_spaced(args.measurements, max_steps),
        estimators=[("binning", {"n_bins": 30, "range": "running"}), ("kde", {"noise_var": 0.1})],
        reduction={"conv1": "mean", "conv2": "mean"},    # channel means (pooled over space); others flattened
        log_dir=out,
        run_name="cnn_digits",
        sinks=["tensorboard"] if args.tensorboard else [],
    )
    t0 = time.time()
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(y_train), generator=gen)
        for start in range(0, len(order), args.batch_size):
            idx = order[start:start + args.batch_size]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            monitor.step(epoch=epoch)
        if not args.smoke and (epoch + 1) % 10 == 0:
            with torch.no_grad():
                model.eval()
                acc = (model(x_test).argmax(1) == y_test).float().mean().item()
            print(f"epoch {epoch + 1:3d}  loss {loss.item():.3f}  held-out acc {acc:.3f}  "
                  f"[{time.time() - t0:.0f}s]")
    monitor.close()
    model.eval()
    with torch.no_grad():
        acc = (model(x_test).argmax(1) == y_test).float().mean().item()
    runtime = time.time() - t0
    figures = save_figures(monitor.log_path, out / "figures", smoke=args.smoke)
    history = monitor.history
    print(f"\nCNN on digits: {args.epochs} epochs ({max_steps} steps), held-out accuracy {acc:.3f}, "
          f"{len(history)} measurements on {len(y_test)} held-out digits, {runtime:.0f}s")
    print(layer_table(history))
    print(format_dpi(history))
    print(f"warnings: {warning_codes(history)}; estimator errors: {len(errors(history))}")
    print(f"run log: {monitor.log_path}\nfigures: {out / 'figures'}")
    return {"run_log": monitor.log_path, "figures": figures, "accuracy": acc, "history": history}


if __name__ == "__main__":
    main()
