"""Run by tests/test_ddp.py as ``python tests/_lightning_ddp.py OUT``; Lightning's ``strategy="ddp"``
re-launches this script for rank 1 (so it must run top to bottom the same way on both ranks).

Three fits on 2 CPU ranks (gloo): unmonitored, IBCallback in probe mode, IBCallback in passive mode
with ``gather_passive=True``. Each rank writes ``OUT/rank<r>.json``; rank 0 writes ``OUT/summary.json``
(whether the monitored weights equal the unmonitored ones).
"""
import json
import sys
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import lightning.pytorch as L
from lightning.pytorch.loggers import TensorBoardLogger

import ibhooks
from ibhooks.integrations.lightning import IBCallback

warnings.filterwarnings("ignore")


class Net(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Dropout(0.1),
                                 nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def fit(out: Path, name: str, callback=None):
    L.seed_everything(0, verbose=False)
    model = Net()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data(128, 0)), batch_size=8)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=1, limit_train_batches=8,
        logger=TensorBoardLogger(out / "tb", name=name) if callback else False,
        callbacks=[callback] if callback else [], enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, deterministic=True, num_sanity_val_steps=0,
    )
    trainer.fit(model, loader)
    return model, trainer


def main(out: Path) -> None:
    base, trainer = fit(out, "base")
    callbacks = {
        "probe": IBCallback(probe=data(64, 1), schedule=ibhooks.every_n(2), log_dir=out / "probe", run_name="ib",
                            figures=False, verbose=False),
        "gather": IBCallback(probe=None, schedule=ibhooks.every_n(2), gather_passive=True, passive_min_rows=1, log_dir=out / "gather",
                             run_name="ib", figures=False, verbose=False),
    }
    rank_info, equal = {}, {}
    for name, cb in callbacks.items():
        model, trainer = fit(out, name, cb)
        mon = cb.monitor
        rank_info[name] = {
            "is_writer": mon.is_writer,
            "n_sinks": len(mon.sinks),
            "records": [(r.step, r.mode, r.n_samples) for r in mon.history],
            "hooks_after_fit": mon.num_hooks,
        }
        equal[name] = all(torch.equal(p, q) for p, q in zip(base.parameters(), model.parameters()))
    rank = trainer.global_rank
    (out / f"rank{rank}.json").write_text(json.dumps(rank_info))
    if rank == 0:
        (out / "summary.json").write_text(json.dumps({"weights_equal": equal}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
