"""Training and held-out probes side by side (Wickstrom et al. 2023: compression shows mainly on training
data): the Shwartz-Ziv & Tishby tanh network 12-10-7-5-4-3-2 on the 12-bit task, trained on 80 % of the
4096 patterns, measured at the same steps on a probe of training patterns and on the held-out 20 %
(the same number of rows, so both planes have the same log2 n cap), binned into 30 bins on [-1, 1].

Prints per layer the first / peak / last I(X;T) and the last I(T;Y) of both probes and the verdict
notes; saves the plane of both probes (filled circles: training probe, hollow squares: held-out).

    python examples/heldout_szt.py --out runs/heldout_szt --figure examples/figures/heldout_szt_plane.png
    python examples/heldout_szt.py --smoke --out /tmp/heldout_smoke
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _szt import nll_of_softmax, szt_data, szt_network  # noqa: E402

import ibhooks  # noqa: E402
from ibhooks.analyses.heldout import heldout_layers  # noqa: E402
from ibhooks.plotting import close_figure, plot_heldout_plane  # noqa: E402


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/heldout_szt")
    p.add_argument("--epochs", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--measurements", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", default=None, help="also save the plane here")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.epochs, args.measurements = 3, 4
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    x, y, train_idx = szt_data(args.seed)
    test_mask = torch.ones(len(y), dtype=torch.bool)
    test_mask[train_idx] = False
    test_idx = test_mask.nonzero().squeeze(1)
    order = torch.randperm(len(train_idx), generator=torch.Generator().manual_seed(5))
    pick = train_idx[order[: len(test_idx)]]  # training patterns, as many as held out
    model = szt_network("tanh", seed=args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    max_steps = args.epochs * -(-len(train_idx) // args.batch_size)
    monitor = ibhooks.IBMonitor(
        model, layers=[nn.Tanh, nn.Softmax], probe=(x[pick], y[pick]),
        schedule=ibhooks.log_spaced(args.measurements, max_steps),
        estimators=[("binning", {"n_bins": 30, "range": (-1.0, 1.0)})],
        analyses=[("heldout", {"probe": (x[test_idx], y[test_idx])})],
        log_dir=out, run_name="heldout_szt", verbose=False,
    )
    t0 = time.time()
    gen = torch.Generator().manual_seed(args.seed)
    for _ in range(args.epochs):
        order = train_idx[torch.randperm(len(train_idx), generator=gen)]
        for start in range(0, len(order), args.batch_size):
            idx = order[start:start + args.batch_size]
            loss = nll_of_softmax(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            monitor.step()
    monitor.close()
    with torch.no_grad():
        acc_train = (model(x[train_idx]).argmax(1) == y[train_idx]).float().mean().item()
        acc_test = (model(x[test_idx]).argmax(1) == y[test_idx]).float().mean().item()
    run = ibhooks.load_run(monitor.log_path)
    fig = plot_heldout_plane(run)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for path in [out / "figures" / "heldout_szt_plane.png"] + ([Path(args.figure)] if args.figure else []):
        fig.savefig(path, dpi=150, metadata={"Software": None})
    close_figure(fig)
    print(f"SZT tanh, {args.epochs} epochs ({max_steps} steps): accuracy train {acc_train:.3f}, held-out "
          f"{acc_test:.3f}; {len(run.records)} measurements of {len(pick)} + {len(test_idx)} rows; "
          f"{time.time() - t0:.0f}s")
    print("layer   I(X;T) train first/peak/last    held-out first/peak/last    I(T;Y) last train / held-out")
    table: Dict[str, Any] = {}
    for layer in run.records[0].layers:
        tr = [r.layers[layer]["binning"] for r in run.records]
        he = [heldout_layers(r.analyses["heldout"])[layer]["binning"] for r in run.records]
        tx, hx = [r.i_xt.value for r in tr], [r.i_xt.value for r in he]
        table[layer] = {"train_I_XT": tx, "heldout_I_XT": hx, "train_I_TY": [r.i_ty.value for r in tr],
                        "heldout_I_TY": [r.i_ty.value for r in he]}
        print(f"{layer:>5}   {tx[0]:5.2f} / {max(tx):5.2f} / {tx[-1]:5.2f}          "
              f"{hx[0]:5.2f} / {max(hx):5.2f} / {hx[-1]:5.2f}           "
              f"{tr[-1].i_ty.value:.3f} / {he[-1].i_ty.value:.3f}")
    last = run.records[-1].analyses["heldout"]
    print("verdicts (train / held-out):")
    for v in last["verdicts"]:
        print(f"  {v['layer']:>3} {v['phase']:<12} {v['train']:<18} {v['heldout']}")
    print("notes:", last["notes"] or "none (verdicts agree)")
    return {"run_log": monitor.log_path, "table": table, "notes": last["notes"],
            "accuracy": (acc_train, acc_test)}


if __name__ == "__main__":
    main()
