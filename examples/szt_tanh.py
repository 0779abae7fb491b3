"""Shwartz-Ziv & Tishby (2017) Fig. 1A / Saxe et al. (2018) Fig. 1A: the tanh network
12-10-7-5-4-3-2 on the 12-bit task, binned into 30 equal bins on [-1, 1], over several seeds trained
together. Expected from the papers: layers 1-2 stay at ~12 bits, the deeper layers fit then compress,
and the softmax output compresses.

    python examples/szt_tanh.py --out runs/szt_tanh             # full run (8 seeds)
    python examples/szt_tanh.py --smoke --out /tmp/szt_smoke     # a few epochs, for the tests
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

LABELS = {"1": "T1 (tanh, 10)", "3": "T2 (tanh, 7)", "5": "T3 (tanh, 5)", "7": "T4 (tanh, 4)",
          "9": "T5 (tanh, 3)", "11": "output (softmax, 2)"}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/szt_tanh")
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--epochs", type=int, default=4000)
    p.add_argument("--measurements", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--kde", action="store_true",
                   help="also record the KDE upper bound, sigma^2 = 0.1 (slower)")
    p.add_argument("--smoke", action="store_true", help="tiny run that exercises everything")
    args = p.parse_args(argv)
    if args.smoke:
        args.seeds, args.epochs, args.measurements = 2, 8, 12
    torch.set_num_threads(1)  # tiny networks: threads only add overhead
    out = Path(args.out)
    t0 = time.time()
    monitors = train_seeds(
        "tanh", tuple(range(args.seeds)), epochs=args.epochs, lr=args.lr, measurements=args.measurements,
        estimators=[("binning", {"n_bins": 30, "range": (-1.0, 1.0)})]
        + ([("kde", {"noise_var": 0.1})] if args.kde else []),
        out=out, run_prefix="tanh",
        log_every=0 if args.smoke else 500,
    )
    runtime = time.time() - t0
    histories = [m.history for m in monitors]
    table = seed_table(histories, "binning", layer_labels=LABELS)
    if args.kde:
        table += "\n\nKDE upper bound on I(X; T+N(0, 0.1)):\n\n" + seed_table(histories, "kde",
                                                                                  layer_labels=LABELS)
    summary = {"runtime_s": runtime, "seeds": args.seeds, "epochs": args.epochs, "table": table,
               "run_logs": [str(m.log_path) for m in monitors]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\nSZT tanh, 30 bins on [-1,1], {args.seeds} seeds x {args.epochs} epochs, {runtime:.0f}s\n"
          f"{table}")
    try:
        from ibhooks.plotting import save_all_figures
    except ImportError:
        return summary
    figures = save_all_figures(mean_history(histories, "binning"), out / "figures", header={"coverage": []})
    summary["figures"] = {k: str(v) for k, v in figures.items()}
    summary["figures_seed0"] = {k: str(v) for k, v in monitors[0].save_figures(out / "figures_seed0").items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
