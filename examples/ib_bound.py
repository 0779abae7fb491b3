"""The information-bottleneck bound in the plane on the SZT 12-bit task: the tanh network 12-10-7-5-4-3-2
trained on the var_u labels (one seed, Adam, 80 % split), binned into 30 bins on [-1, 1], with the
``ib_bound`` analysis under SZT's stochastic rule p(y=1|x) = sigmoid(gain (k(x) - theta)), k the number
of active inputs, gain and theta fitted to the var_u labels by maximum likelihood. With the var_u labels
themselves the bound is the trivial min(I(X;T), H(Y)) (Y is a function of X).

    python examples/ib_bound.py --out runs/ib_bound                # 400 epochs
    python examples/ib_bound.py --smoke --out /tmp/ib_bound_smoke  # a few epochs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _szt import nll_of_softmax, szt_data, szt_network

import ibhooks
from ibhooks.ib_bound import fit_sigmoid_rule, szt_conditional


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/ib_bound")
    p.add_argument("--epochs", type=int, default=400)
    p.add_argument("--measurements", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", default=None, help="also save the plane here (e.g. examples/figures/...png)")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.epochs, args.measurements = 3, 4
    torch.set_num_threads(1)
    out = Path(args.out)
    x, y, train = szt_data(args.seed)
    gain, theta = fit_sigmoid_rule(x.sum(1), y)
    rule = szt_conditional(x, gain=gain, theta=theta)
    model = szt_network("tanh", seed=args.seed)
    steps_per_epoch = -(-train.numel() // 256)
    layers = [str(i) for i, m in enumerate(model) if isinstance(m, (torch.nn.Tanh, torch.nn.Softmax))]
    t0 = time.time()
    mon = ibhooks.IBMonitor(
        model,
        layers=layers,
        probe=(x, y),
        chains=[layers],
        schedule=ibhooks.log_spaced(args.measurements, args.epochs * steps_per_epoch),
        estimators=[("binning", {"n_bins": 30, "range": (-1.0, 1.0)})],
        analyses=[("ib_bound", {"p_y_given_x": rule})],
        log_dir=out,
        run_name=f"szt_tanh_ib_seed{args.seed}",
        overwrite=True,
        verbose=False,
        seed=args.seed,
    )
    bind_s = time.time() - t0
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(10_000 + args.seed)
    for _ in range(args.epochs):
        order = train[torch.randperm(train.numel(), generator=gen)]
        for start in range(0, order.numel(), 256):
            idx = order[start : start + 256]
            loss = nll_of_softmax(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step()
    mon.close()
    run = ibhooks.load_run(mon.log_path)
    first = run.records[0].analyses["ib_bound"]
    last = run.records[-1].analyses["ib_bound"]
    curve = ibhooks.IBCurve.from_dict(first["curve"])
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    summary = {
        "rule": {"gain": gain, "theta": theta},
        "curve": {k: curve.to_dict()[k] for k in ("h_x", "h_y", "i_xy")},
        "curve_info": curve.info,
        "bind_seconds": round(bind_s, 2),
        "runtime_s": round(time.time() - t0, 1),
        "accuracy_all_4096": acc,
        "first_step": run.records[0].step,
        "last_step": run.records[-1].step,
        "first": {"gaps": first["gaps"], "i_ty_rule": first["i_ty_rule"]},
        "last": {"gaps": last["gaps"], "i_ty_rule": last["i_ty_rule"]},
        "i_xt_last": {lyr: res["binning"].i_xt.value for lyr, res in run.records[-1].layers.items()},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: summary[k] for k in ("rule", "curve", "accuracy_all_4096", "runtime_s")}, indent=1))
    print("step", run.records[-1].step, "layer: I(X;T), I(T;Y) under the rule, gap (bits)")
    for lyr in layers:
        print(
            f"  {lyr}: {summary['i_xt_last'][lyr]:.3f}  {last['i_ty_rule'][lyr]['binning']:.3f}  "
            f"{last['gaps'][lyr]['binning']:.3f}"
        )
    try:
        from ibhooks.plotting import close_figure, plot_information_plane
    except ImportError:
        return summary
    fig = plot_information_plane(run, title="SZT tanh, 30 bins: the IB bound of the sigmoid rule")
    for path in [out / "szt_ib_bound.png"] + ([Path(args.figure)] if args.figure else []):
        fig.savefig(path, dpi=150, metadata={"Software": None})
    close_figure(fig)
    return summary


if __name__ == "__main__":
    main()
