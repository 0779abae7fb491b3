"""Verdicts that survive the instrument: the SZT tanh and the Saxe ReLU networks (12-10-7-5-4-3-2 on the
12-bit task) with ``analyses=["robust"]``: each phase test re-run with 10, 30 and 100 bins (or with the
KDE noise x0.5, x1, x2), and per layer which verdicts every setting agrees on.

* tanh: binned on SZT's fixed [-1, 1] (as examples/szt_tanh.py);
* ReLU: binned between each layer's min and max over the whole run (as examples/saxe_relu.py: a first
  pass learns the ranges, the bit-identical second pass measures);
* ``--instrument kde``: the KDE upper bound with sigma^2 = 0.1 (Saxe et al.), swept over 0.05/0.1/0.2.

    python examples/robust_verdicts.py --out runs/robust --seeds 4 --epochs 2000
    python examples/robust_verdicts.py --smoke --out /tmp/robust_smoke
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ibhooks  # noqa: E402
from _szt import train_seeds  # noqa: E402
from ibhooks.analyses.robust import PhaseVerdict, latest_verdicts  # noqa: E402

LABELS = ("T1", "T2", "T3", "T4", "T5", "output")


def train(activation: str, seeds: Sequence[int], estimators_per_seed: List[list], *, epochs: int,
          measurements: int, out: Path, prefix: str, analyses: Sequence = (),
          probe_rows: int = 0) -> List[ibhooks.IBMonitor]:
    """The seeds trained together (exactly their separate trajectories), one monitor per seed; the probe
    is all 4096 patterns, or a fixed random ``probe_rows`` of them."""
    return train_seeds(activation, tuple(seeds), epochs=epochs, estimators=None, out=out, run_prefix=prefix,
                       measurements=measurements, estimators_per_seed=estimators_per_seed,
                       analyses=tuple(analyses), probe_rows=probe_rows)


def _short(label: str) -> str:
    """``"binning(n_bins=10)"`` -> ``"n_bins=10"``."""
    return label[label.find("(") + 1:-1] if label.endswith(")") else label


def tally(verdicts_per_seed: Sequence[Sequence[PhaseVerdict]], layers: Sequence[str]) -> str:
    """Markdown: per layer and phase, how many seeds give each verdict and which settings disagree."""
    rows = ["| layer | phase | robust | contested | absent | undecided | found by (seeds) |",
            "|---|---|---|---|---|---|---|"]
    for i, layer in enumerate(layers):
        for phase in ("fitting", "compression"):
            vs = [v for per in verdicts_per_seed for v in per if v.layer == layer and v.phase == phase]
            counts = collections.Counter(v.verdict.value for v in vs)
            found = collections.Counter(label for v in vs for label in v.found_by)
            labels = [label for label, _ in vs[0].settings] if vs else []
            by = ", ".join(f"{_short(label)}: {found[label]}" for label in labels)
            rows.append(f"| {LABELS[i] if i < len(LABELS) else layer} | {phase} | "
                        + " | ".join(f"{counts[k]}/{len(vs)}" for k in ("robust", "contested", "absent",
                                                                          "undecided"))
                        + f" | {by} |")
    return "\n".join(rows)


def summarise(monitors: Sequence[ibhooks.IBMonitor]) -> Dict[str, object]:
    runs = [ibhooks.load_run(m.log_path) for m in monitors]
    verdicts = [latest_verdicts(run.records)[2] for run in runs]
    layers = list(monitors[0].layer_names)
    seconds = [sum(r.info.get("analysis_seconds", {}).get("robust", 0.0) for r in run.records)
               for run in runs]
    return {"table": tally(verdicts, layers), "robust_seconds_per_seed": seconds,
            "verdicts": [[{"layer": v.layer, "phase": v.phase, **v.to_dict()} for v in per]
                         for per in verdicts]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/robust")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2000)
    p.add_argument("--measurements", type=int, default=60)
    p.add_argument("--instrument", choices=("binning", "kde"), default="binning")
    p.add_argument("--only", choices=("tanh", "relu"), default=None)
    p.add_argument("--probe-rows", type=int, default=0,
                   help="measure on a fixed random subset of the 4096 patterns (KDE costs O(n^2))")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.seeds, args.epochs, args.measurements = 2, 6, 10
    torch.set_num_threads(1)
    out = Path(args.out)
    seeds = list(range(args.seeds))
    common = dict(epochs=args.epochs, measurements=args.measurements, out=out, analyses=["robust"],
                  probe_rows=args.probe_rows)
    summary: Dict[str, object] = {"seeds": args.seeds, "epochs": args.epochs, "instrument": args.instrument,
                                  "probe_rows": args.probe_rows or 4096}
    kde = ("kde", {"noise_var": 0.1})
    if args.only in (None, "tanh"):
        t0 = time.time()
        est = kde if args.instrument == "kde" else ("binning", {"n_bins": 30, "range": (-1.0, 1.0)})
        mons = train("tanh", seeds, [[est]] * len(seeds), prefix=f"tanh_{args.instrument}", **common)
        summary["tanh"] = {**summarise(mons), "runtime_s": time.time() - t0}
        print(f"\ntanh ({args.instrument}), {args.seeds} seeds x {args.epochs} epochs\n"
              f"{summary['tanh']['table']}")
    if args.only in (None, "relu"):
        t0 = time.time()
        if args.instrument == "kde":
            per_seed = [[kde]] * len(seeds)
        else:  # pass 1: each layer's min..max over the run; pass 2 (bit-identical training) bins with it
            first = train("relu", seeds, [[("binning", {"n_bins": 100, "range": "running"})]] * len(seeds),
                          epochs=args.epochs, measurements=args.measurements, out=out, prefix="relu_pass1",
                          probe_rows=args.probe_rows)
            ranges = [{layer: tuple(res["binning"].i_xt.diagnostics["range_used"])
                       for layer, res in m.history[-1].layers.items()} for m in first]
            per_seed = [[("binning", {"n_bins": 100, "range": r})] for r in ranges]
        mons = train("relu", seeds, per_seed, prefix=f"relu_{args.instrument}", **common)
        summary["relu"] = {**summarise(mons), "runtime_s": time.time() - t0}
        print(f"\nReLU ({args.instrument}), {args.seeds} seeds x {args.epochs} epochs\n"
              f"{summary['relu']['table']}")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"summary_{args.instrument}.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
