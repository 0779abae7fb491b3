"""IBCallback in real (tiny) Lightning Trainer runs: TensorBoard and W&B loggers receive scalars and
figures, training is bit-identical to the run without the callback, validation and the sanity check
are never captured, gradient accumulation measures once per optimizer step, hooks go away on
teardown and on exceptions, and the pytorch_lightning mirror works."""
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

L = pytest.importorskip("lightning.pytorch")

import ibhooks  # noqa: E402
from ibhooks.integrations.lightning import IBCallback  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAYER = "net.0"


@pytest.fixture(autouse=True)
def _restore_torch_flags():
    """Trainer(deterministic=True) flips a process-wide flag; put it back for the other tests."""
    flag = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(flag)


class Net(L.LightningModule):
    def __init__(self, fail_at: int = -1) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Dropout(0.1), nn.Linear(16, 8), nn.ReLU(),
                                 nn.Linear(8, 3))
        self.fail_at = fail_at

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        if batch_idx == self.fail_at:
            raise RuntimeError("boom")
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def loaders(val_batch=32, val=True):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(384, 12, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:256], y[:256]), batch_size=16, shuffle=True)
    valid = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[256:], y[256:]), batch_size=val_batch)
    return (train, valid) if val else (train,)


def fit(tmp_path, callback=None, logger=False, model=None, val=True, **trainer_kwargs):
    L.seed_everything(0, verbose=False)
    model = model or Net()
    val_batch = trainer_kwargs.pop("val_batch", 32)
    kwargs = dict(default_root_dir=tmp_path, max_epochs=2, limit_train_batches=8, limit_val_batches=2,
                  enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                  deterministic=True, logger=logger, callbacks=[callback] if callback else [])
    kwargs.update(trainer_kwargs)
    trainer = L.Trainer(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Lightning's advice on workers, log intervals ...
        warnings.simplefilter("ignore", DeprecationWarning)
        trainer.fit(model, *loaders(val=val, val_batch=val_batch))
    return model, trainer


def assert_same_weights(a, b):
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), f"{k} differs"


def real_errors(record):
    return [e for e in record.errors if not str(e.get("error", "")).startswith("checks failed")]


def wait_for_wandb_exit(wfile, read):
    deadline = time.monotonic() + 60
    while True:
        records = read(wfile)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def test_trainer_run_logs_to_tensorboard_and_wandb_and_is_bit_identical(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    pytest.importorskip("tensorboard")
    pytest.importorskip("matplotlib")
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from test_wandb import read_wandb_records

    from ibhooks.integrations.tensorboard import TensorBoardSink
    from ibhooks.integrations.wandb import WandbSink

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    baseline, _ = fit(tmp_path / "base")

    cb = IBCallback(probe="val", probe_samples=96, schedule=ibhooks.every_n(6), figure_every=2, verbose=False)
    loggers = [TensorBoardLogger(tmp_path, name="tb"), WandbLogger(save_dir=tmp_path, offline=True, project="ibt")]
    try:
        model, trainer = fit(tmp_path / "mon", cb, logger=loggers)
    finally:
        wandb.finish()
        wandb.teardown()  # drop wandb's process-wide settings, so later tests' WANDB_DIR takes effect
    assert_same_weights(baseline, model)

    steps = [0, 6, 12]  # 16 optimizer steps, every 6, plus step 0 before training
    assert [r.step for r in cb.history] == steps
    assert all(r.mode == "probe" and r.n_samples == 96 and not real_errors(r) for r in cb.history)
    assert [type(s).__name__ for s in cb.monitor.sinks] == ["JsonlSink", TensorBoardSink.__name__,
                                                             WandbSink.__name__]
    assert cb.monitor.num_hooks == 0 and not any(m._forward_hooks for m in model.modules())

    # JSONL run log, in the first logger's folder
    (log,) = Path(trainer.log_dir).glob("*.jsonl")
    assert [r.step for r in ibhooks.load_run(log).records] == steps

    # TensorBoard: scalars per layer (one sub-run per layer: coloured lines with a legend) at the measured
    # steps, and the plane figure in the logger's own run
    tb_dir = Path(trainer.loggers[0].log_dir)
    layer_dir = next(p for p in tb_dir.iterdir() if p.is_dir() and f" {LAYER} " in f"{p.name} ")
    sub = EventAccumulator(str(layer_dir), size_guidance={"scalars": 0})
    sub.Reload()
    assert [e.step for e in sub.Scalars("ib/I_XT")] == steps
    assert [e.step for e in sub.Scalars("ib/I_TY")] == steps
    assert sub.Scalars("ib/I_XT")[-1].value == pytest.approx(cb.history[-1].layers[LAYER]["auto"].i_xt.value)
    acc = EventAccumulator(str(tb_dir), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    assert "ib/plane" in acc.Tags()["images"] and len(acc.Images("ib/plane")) >= 2

    # W&B offline run: history rows with our keys, and the plane image written to media/
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    (wfile,) = run_dir.glob("run-*.wandb")
    records = wait_for_wandb_exit(wfile, read_wandb_records)
    keys = set()
    for rec in records:
        if rec.WhichOneof("record_type") == "history":
            keys |= {it.key or "/".join(it.nested_key) for it in rec.history.item}
    assert {f"ib/{LAYER}/I_XT", f"ib/{LAYER}/I_TY", "ib/step"} <= keys
    assert any(k.startswith("ib/plane") for k in keys)
    assert list((run_dir / "files" / "media" / "images").rglob("*.png"))
    # ... on the trainer's step axis: ib/* plotted against the logger's trainer/global_step, which every
    # row of ours carries (the measured global steps), as do the trainer's own metrics (val_loss)
    metrics = [r.metric for r in records if r.WhichOneof("record_type") == "metric"]
    assert any(m.glob_name == "ib/*" and m.step_metric == "trainer/global_step" for m in metrics)
    assert not any(m.step_metric == "ib/step" for m in metrics)
    rows = [{(it.key or "/".join(it.nested_key)): json.loads(it.value_json) for it in rec.history.item}
            for rec in records if rec.WhichOneof("record_type") == "history"]
    ours = [r for r in rows if f"ib/{LAYER}/I_XT" in r]
    assert [r["trainer/global_step"] for r in ours] == [r["ib/step"] for r in ours] == steps
    assert ours[-1][f"ib/{LAYER}/I_XT"] == pytest.approx(cb.history[-1].layers[LAYER]["auto"].i_xt.value)
    val_steps = [r["trainer/global_step"] for r in rows if "val_loss" in r]  # one per epoch, on the same axis
    assert len(val_steps) == 2 and all(0 < s <= trainer.global_step for s in val_steps), val_steps

    # the callback state travels in a Lightning checkpoint loadable with weights_only=True
    ckpt = tmp_path / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=True)["callbacks"]["IBCallback"]
    mon_state = state["monitor"]  # the monitor's own state: step, bounded phase-test state, fingerprint
    assert mon_state["step"] == trainer.global_step and state["run_name"] == cb.monitor.run_name
    assert mon_state["fingerprint"] and "history" not in mon_state, "Records belong in the run log, not the state"


def test_passive_mode_gradient_accumulation_never_captures_validation(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    kwargs = dict(accumulate_grad_batches=2, num_sanity_val_steps=2, val_batch=10)
    baseline, _ = fit(tmp_path / "base", **kwargs)
    cb = IBCallback(probe=None, schedule=1, verbose=False)  # capture armed all the time, validation included
    model, trainer = fit(tmp_path / "mon", cb, logger=CSVLogger(tmp_path, name="csv"), **kwargs)
    assert_same_weights(baseline, model)
    # 16 batches, 2 per optimizer step -> global steps 1..8; each capture holds both micro-batches of its
    # step (2 x 16 rows, each paired with its own labels), never a validation batch (10 rows): not the
    # sanity check before step 1, not the validation after step 4 (end of epoch 0)
    assert [r.step for r in cb.history] == list(range(1, 9))
    for r in cb.history:
        assert r.mode == "passive" and r.n_samples == 32 and r.info["passive_steps"] == [r.step, r.step]
        assert r.h_y is not None and not real_errors(r)
    # other loggers get the scalars through log_metrics
    (metrics,) = Path(trainer.log_dir).glob("metrics.csv")
    header = metrics.read_text().splitlines()[0].split(",")
    assert f"ib/{LAYER}/I_XT" in header


def test_exception_removes_hooks_and_keeps_the_log(tmp_path):
    cb = IBCallback(probe=None, schedule=1, verbose=False)
    model = Net(fail_at=5)
    with pytest.raises(RuntimeError, match="boom"):
        fit(tmp_path, cb, model=model)
    assert cb.monitor._closed and cb.monitor.num_hooks == 0
    assert not any(m._forward_hooks for m in model.modules())
    assert [r.step for r in ibhooks.load_run(cb.monitor.log_path).records] == [1, 2, 3, 4, 5]


def test_probe_sources_and_label_checks(tmp_path):
    with pytest.raises(ValueError, match="probe must be"):
        IBCallback(probe="train")
    with pytest.raises(ValueError, match="sets .*max_samples"):
        IBCallback(max_samples=10)
    with pytest.raises(ValueError, match="no validation dataloader"):
        fit(tmp_path / "a", IBCallback(probe="val", verbose=False), val=False)
    # auto without validation data: passive mode, said once; float targets: I(T;Y) skipped, said once
    cb = IBCallback(schedule=4, target_getter=lambda batch: batch[0][:, 0], verbose=False)
    with pytest.warns(RuntimeWarning) as caught:
        fit(tmp_path / "b", cb, val=False, max_epochs=1)
    messages = " ".join(str(w.message) for w in caught)
    assert "passive mode" in messages and "needs 1-D integer class labels" in messages
    assert [r.step for r in cb.history] == [4, 8]
    assert all(r.mode == "passive" and r.h_y is None for r in cb.history)
    # a user probe (tensors) is used as given
    x, y = torch.randn(40, 12), torch.randint(0, 3, (40,))
    cb = IBCallback(probe=(x, y), schedule=8, measure_initial=False, verbose=False)
    fit(tmp_path / "c", cb, max_epochs=1)
    assert [(r.step, r.mode, r.n_samples) for r in cb.history] == [(8, "probe", 40)]


@pytest.mark.slow
def test_pytorch_lightning_mirror(tmp_path):
    pytest.importorskip("pytorch_lightning")
    code = f"""
import json, sys, warnings
warnings.filterwarnings("ignore")
import torch, torch.nn as nn, torch.nn.functional as F
import pytorch_lightning as pl
import ibhooks
from ibhooks.integrations.lightning import IBCallback

class M(pl.LightningModule):
    def __init__(self):
        super().__init__(); self.net = nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3))
    def forward(self, x): return self.net(x)
    def training_step(self, b, i): return F.cross_entropy(self(b[0]), b[1])
    def configure_optimizers(self): return torch.optim.SGD(self.parameters(), lr=0.1)

x = torch.randn(128, 12); y = (x[:, 0] > 0).long()
cb = IBCallback(probe=None, schedule=2, log_dir={str(tmp_path)!r}, run_name="pl", verbose=False)
trainer = pl.Trainer(callbacks=cb, max_epochs=1, limit_train_batches=4, logger=False, enable_progress_bar=False,
                     enable_checkpointing=False, enable_model_summary=False)
trainer.fit(M(), torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16))
print(json.dumps({{"steps": [r.step for r in cb.history], "is_pl_callback": isinstance(cb, pl.Callback),
                  "lightning_imported": "lightning.pytorch" in sys.modules, "hooks": cb.monitor.num_hooks}}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"steps": [2, 4], "is_pl_callback": True, "lightning_imported": False, "hooks": 0}
    assert [r.step for r in ibhooks.load_run(tmp_path / "pl.jsonl").records] == [2, 4]
