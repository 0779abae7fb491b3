"""Run by tests/test_resume.py: plain-torch training with the user's own checkpoints.

    python tests/_resume_script.py OUT full            # uninterrupted, 30 steps
    python tests/_resume_script.py OUT kill --kill-at K  # SIGKILLs itself right after step K
    python tests/_resume_script.py OUT resume --ckpt PATH

The checkpoint (every 10 steps) holds model, optimizer, RNG and ``monitor.state_dict()``, saved with
``torch.save`` and loaded with ``torch.load(weights_only=True)``. The monitor runs two estimators,
binning and InfoNCE (whose warm-started critic weights are part of the monitor state).
"""
import argparse
import os
import signal
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import ibhooks

STEPS = 30
CKPT_EVERY = 10


def model_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Dropout(0.1), nn.Linear(16, 8), nn.Tanh(),
                          nn.Linear(8, 3))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 12, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return model, x, y


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("mode", choices=["full", "kill", "resume"])
    ap.add_argument("--kill-at", type=int, default=None)
    ap.add_argument("--ckpt", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, x, y = model_and_data()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    run_dir = args.out / ("full" if args.mode == "full" else "interrupted")
    monitor = ibhooks.IBMonitor(
        model, probe=(x[:256], y[:256]), schedule=ibhooks.every_n(3),
        estimators=["binning", ("infonce", {"steps": 15, "batch_size": 64, "hidden": 16, "embed": 8})],
        log_dir=run_dir, run_name="run", resume=args.mode == "resume", verbose=False,
    )
    start = 0
    if args.mode == "resume":
        ckpt = torch.load(args.ckpt, weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        torch.set_rng_state(ckpt["rng"])
        monitor.load_state_dict(ckpt["monitor"])
        start = int(ckpt["step"])
    for step in range(start + 1, STEPS + 1):
        idx = torch.randint(0, x.shape[0], (32,), generator=torch.Generator().manual_seed(step))
        model.train()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        monitor.step()
        if step % CKPT_EVERY == 0:
            ckpt = {"model": model.state_dict(), "opt": opt.state_dict(), "rng": torch.get_rng_state(),
                    "monitor": monitor.state_dict(), "step": step}
            torch.save(ckpt, run_dir / f"ckpt-{step}.pt")
        if args.kill_at == step:
            os.kill(os.getpid(), signal.SIGKILL)  # no close(), no flush beyond the run log's own
    monitor.close()
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, run_dir / "final.pt")


if __name__ == "__main__":
    main()
