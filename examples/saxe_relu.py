"""Saxe et al. (2018) Fig. 1B: the same 12-10-7-5-4-3-2 network with ReLU hidden layers.

Binned as Saxe et al. did, with 100 equal bins between the minimum and maximum of each layer over
the whole run, the hidden layers do not compress (only the softmax output does). Training is
deterministic and unaffected by the monitor, so the run is made twice: the first pass learns each
layer's run-wide range (binning with range="running", whose last range is the min..max over all
measurements), the second bins with those fixed ranges. The same ReLU run binned on SZT's fixed
[-1, 1] fakes compression, and the clipped-range warning fires. The KDE upper bound
(sigma^2 = 0.1, Saxe et al.) of both tanh and ReLU runs is recorded too.

    python examples/saxe_relu.py --out runs/saxe_relu
    python examples/saxe_relu.py --smoke --out /tmp/saxe_smoke
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import mean_history, seed_table  # noqa: E402
from _szt import train_seeds  # noqa: E402
from ibhooks.schema import WarningCode  # noqa: E402

LABELS = {"1": "T1 (relu, 10)", "3": "T2 (relu, 7)", "5": "T3 (relu, 5)", "7": "T4 (relu, 4)",
          "9": "T5 (relu, 3)", "11": "output (softmax, 2)"}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/saxe_relu")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--epochs", type=int, default=4000)
    p.add_argument("--measurements", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--kde", action="store_true", help="also record the KDE upper bound (slower)")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.seeds, args.epochs, args.measurements = 2, 8, 12
    torch.set_num_threads(1)
    out = Path(args.out)
    seeds = tuple(range(args.seeds))
    common = dict(epochs=args.epochs, lr=args.lr, measurements=args.measurements, out=out,
                  log_every=0 if args.smoke else 500)
    t0 = time.time()
    # Pass 1: learn each layer's min..max over the run; also bin on SZT's fixed [-1, 1] (the trap).
    first = train_seeds("relu", seeds, run_prefix="relu_pass1",
                        estimators=[("binning", {"n_bins": 100, "range": "running"}),
                                    ("binning", {"n_bins": 30, "range": (-1.0, 1.0)})], **common)
    # Pass 2: the same (bit-identical) training, binned with each seed's run-wide ranges.
    histories_first = [mon.history for mon in first]  # read back from each run log once
    ranges = [{layer: tuple(res["binning"].i_xt.diagnostics["range_used"])
               for layer, res in hist[-1].layers.items()} for hist in histories_first]
    kde = [("kde", {"noise_var": 0.1})] if args.kde else []
    estimators_per_seed = [[("binning", {"n_bins": 100, "range": r})] + kde for r in ranges]
    second = train_seeds("relu", seeds, run_prefix="relu_runrange", estimators=None,
                         estimators_per_seed=estimators_per_seed, **common)
    runtime = time.time() - t0

    fixed_key = [k for k in first[0].estimators if k != "binning"][0]
    histories_second = [mon.history for mon in second]
    table_run = seed_table(histories_second, "binning", layer_labels=LABELS)
    table_fixed = seed_table(histories_first, fixed_key, layer_labels=LABELS)
    if args.kde:
        table_run += "\n\nKDE upper bound on I(X; T+N(0, 0.1)):\n\n" + seed_table(
            histories_second, "kde", layer_labels=LABELS)
    clipped = sorted({w.layer for hist in histories_first for w in hist[-1].warnings
                      if w.code is WarningCode.OUTSIDE_RANGE and w.estimator == fixed_key})
    summary = {"runtime_s": runtime, "seeds": args.seeds, "epochs": args.epochs, "ranges": ranges,
               "table_run_range_100_bins": table_run, "table_fixed_-1_1_30_bins": table_fixed,
               "clipped_range_warning_layers": clipped}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\nReLU, 100 bins between each layer's min and max over the run ({args.seeds} seeds, "
          f"{runtime:.0f}s)\n"
          f"{table_run}\n\nReLU, 30 bins on SZT's fixed [-1, 1] (the artefact)\n{table_fixed}\n"
          f"outside_range warning on layers: {clipped}")
    try:
        from ibhooks.plotting import save_all_figures
    except ImportError:
        return summary
    header = {"coverage": []}
    summary["figures_run_range"] = {k: str(v) for k, v in save_all_figures(
        mean_history(histories_second, "binning"), out / "figures_run_range", header=header).items()}
    summary["figures_fixed_range"] = {k: str(v) for k, v in save_all_figures(
        mean_history(histories_first, fixed_key), out / "figures_fixed_range", header=header).items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
