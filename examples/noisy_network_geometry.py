"""Does compression track clustering? The noisy SZT network of Goldfeld et al. (ICML 2019), measured by
sample propagation (as in ``noisy_network.py``) with the ``geometry`` analysis beside it.

Goldfeld et al. report that the compression of I(X;T_l) in a noisy network is driven by clustering of the
representations: as same-class rows gather, the network's own noise N(0, beta^2 I) can no longer tell
them apart. For every hidden layer this script logs, at each measurement, I(X;T_l) (sample propagation),
the within/between-class distance ratio of S_l, and the fraction of probe row pairs closer than
2 beta (merged by the noise; sigma = beta is read from the estimator's ``noise_var``), then reports per
layer the Spearman and Pearson correlation over training of I(X;T) with each statistic, over all
measurements and over the measurements after the layer's I(X;T) peak (where compression would show).

The probe repeats each input ``--replicates`` times (sample propagation needs it), so every row has its
own replicates nearby: the row-wise merged fraction is near 1 by construction, and the pair fraction
(dominated by pairs of different inputs) is the informative one.

    python examples/noisy_network_geometry.py --out runs/noisy_geometry      # ~ as long as noisy_network.py
    python examples/noisy_network_geometry.py --smoke --out /tmp/noisy_geometry_smoke
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from noisy_network import SamplePropagation, noisy_szt_network  # noqa: E402

import ibhooks  # noqa: E402
from ibhooks.data import load_szt  # noqa: E402
from ibhooks.plotting import close_figure  # noqa: E402
from ibhooks.plotting.geometry import plot_geometry  # noqa: E402

STATISTICS = ("within_between_ratio", "merged_pair_fraction", "silhouette")


def _rank(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(len(v))
    for val in np.unique(v):  # average ranks of ties
        tie = v == val
        ranks[tie] = ranks[tie].mean()
    return ranks


def correlation(a: Sequence[float], b: Sequence[float], *, spearman: bool) -> Optional[float]:
    """Pearson (or Spearman) correlation of two series; None with fewer than 4 points or no spread."""
    x, y = np.asarray(a, float), np.asarray(b, float)
    if len(x) < 4:
        return None
    if spearman:
        x, y = _rank(x), _rank(y)
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def layer_correlations(records: Sequence[Any], estimator: str = "goldfeld_sp") -> Dict[str, Dict[str, Any]]:
    """Per layer: I(X;T) series, the geometry series, and their correlations (all points; after the peak)."""
    out: Dict[str, Dict[str, Any]] = {}
    for layer in records[0].layers:
        rows = [(r.step, r.layers[layer][estimator].i_xt.value, r.analyses["geometry"][layer])
                for r in records if layer in r.layers and r.layers[layer][estimator].i_xt is not None
                and layer in (r.analyses.get("geometry") or {})]
        steps = [s for s, _, _ in rows]
        ixt = [v for _, v, _ in rows]
        peak = int(np.argmax(ixt))
        res: Dict[str, Any] = {"steps": steps, "I_XT": ixt, "peak_step": steps[peak],
                               "I_XT_drop_after_peak": ixt[peak] - ixt[-1]}
        for key in STATISTICS:
            vals = [g.get(key) for _, _, g in rows]
            res[key] = vals
            res[f"spearman_{key}"] = correlation(ixt, vals, spearman=True)
            res[f"pearson_{key}"] = correlation(ixt, vals, spearman=False)
            res[f"spearman_{key}_after_peak"] = correlation(ixt[peak:], vals[peak:], spearman=True)
        out[layer] = res
    return out


def _fmt(v: Optional[float]) -> str:
    return "  n/a" if v is None or not math.isfinite(v) else f"{v:+.2f}"


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/noisy_geometry")
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--inputs", type=int, default=128)
    p.add_argument("--replicates", type=int, default=8)
    p.add_argument("--measurements", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", default=None, help="also save the geometry figure here")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.epochs, args.measurements, args.inputs, args.replicates = 3, 4, 32, 4
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    out = Path(args.out)

    x, y = load_szt()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1000 + args.seed))
    train_idx = perm[: round(0.8 * len(y))]
    pick = torch.randperm(len(y), generator=torch.Generator().manual_seed(2000 + args.seed))[: args.inputs]
    x_probe = x[pick].repeat_interleave(args.replicates, dim=0)
    y_probe = y[pick].repeat_interleave(args.replicates, dim=0)

    model = noisy_szt_network(args.beta, seed=args.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    max_steps = args.epochs * -(-len(train_idx) // args.batch_size)
    monitor = ibhooks.IBMonitor(
        model, layers=[nn.Tanh], probe=(x_probe, y_probe),
        schedule=ibhooks.log_spaced(args.measurements, max_steps),
        estimators=[SamplePropagation(args.beta, args.replicates, seed=args.seed)],
        analyses=["geometry"], log_dir=out, run_name="noisy_geometry", max_samples=len(y_probe),
        verbose=False,
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
    monitor.close()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    run = ibhooks.load_run(monitor.log_path)
    corr = layer_correlations(run.records)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    fig = plot_geometry(run, statistics=("within_between_ratio", "merged_pair_fraction"))
    paths = [out / "figures" / "noisy_network_geometry.png"] + ([Path(args.figure)] if args.figure else [])
    for path in paths:
        fig.savefig(path, dpi=150, metadata={"Software": None})
    close_figure(fig)
    (out / "correlations.json").write_text(json.dumps(corr, indent=1))
    print(f"noisy SZT network, beta = {args.beta:g}: {args.epochs} epochs ({max_steps} steps), "
          f"accuracy (noisy) {acc:.3f}; {len(run.records)} measurements; {time.time() - t0:.0f}s")
    print("layer  I(X;T) first/peak/last  drop   ratio first/last  pairs merged first/last   "
          "rho(I,ratio) rho(I,merged) | after peak: rho(I,ratio) rho(I,merged)")
    for layer, c in corr.items():
        i, r, m = c["I_XT"], c["within_between_ratio"], c["merged_pair_fraction"]
        print(f"{layer:>5}  {i[0]:5.2f} / {max(i):5.2f} / {i[-1]:5.2f}  {c['I_XT_drop_after_peak']:5.2f}   "
              f"{r[0]:.3f} / {r[-1]:.3f}        {m[0]:.4f} / {m[-1]:.4f}          "
              f"{_fmt(c['spearman_within_between_ratio'])}        {_fmt(c['spearman_merged_pair_fraction'])}"
              f"      |          {_fmt(c['spearman_within_between_ratio_after_peak'])}        "
              f"{_fmt(c['spearman_merged_pair_fraction_after_peak'])}")
    return {"run_log": monitor.log_path, "correlations": corr, "accuracy": acc}


if __name__ == "__main__":
    main()
