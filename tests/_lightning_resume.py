"""Lightning kill-and-resume, run by tests/test_resume.py (``fit`` is also imported there for the
uninterrupted run).

    python tests/_lightning_resume.py OUT kill     # SIGKILLs itself in epoch 2, after the epoch-1 checkpoint
    python tests/_lightning_resume.py OUT resume   # Trainer.fit(ckpt_path=<epoch-1 checkpoint>)

The resumed IBCallback is given no log_dir / run_name: both come from the checkpointed callback state.
"""
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

import lightning.pytorch as L
from lightning.pytorch.callbacks import ModelCheckpoint

import ibhooks
from ibhooks.integrations.lightning import IBCallback

EPOCHS = 4
BATCHES = 6
KILL_AT = (2, 2)  # (epoch, batch_idx): global step 15, after the measurement at step 14


class Net(L.LightningModule):  # no dropout: Lightning checkpoints do not hold the global RNG state
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class Kill(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)


def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def fit(out: Path, mode: str, ckpt_path: Optional[Path] = None) -> IBCallback:
    """One fit; ``mode`` is "full", "kill" or "resume". Returns the callback (its monitor's history)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        L.seed_everything(0, verbose=False)
        model = Net()
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data(192, 0)), batch_size=32)
        where = {} if mode == "resume" else {"log_dir": out / ("full" if mode == "full" else "interrupted"),
                                             "run_name": "ib"}
        cb = IBCallback(probe=data(128, 1), schedule=ibhooks.every_n(2), figures=False, verbose=False,
                        estimators=["binning", ("infonce", {"steps": 15, "batch_size": 64, "hidden": 16, "embed": 8})],
                        **where)
        ckpt = ModelCheckpoint(dirpath=out / f"ckpt-{mode}", filename="{epoch}", every_n_epochs=1, save_top_k=-1,
                               save_on_train_epoch_end=True)
        callbacks = [cb, ckpt] + ([Kill()] if mode == "kill" else [])
        trainer = L.Trainer(max_epochs=EPOCHS, limit_train_batches=BATCHES, logger=False, callbacks=callbacks,
                            enable_progress_bar=False, enable_model_summary=False, deterministic=True,
                            num_sanity_val_steps=0, accelerator="cpu", devices=1)
        trainer.fit(model, loader, ckpt_path=ckpt_path)
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, out / f"final-{mode}.pt")
        return cb
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    out_dir, run_mode = Path(sys.argv[1]), sys.argv[2]
    fit(out_dir, run_mode, out_dir / "ckpt-kill" / "epoch=1.ckpt" if run_mode == "resume" else None)
