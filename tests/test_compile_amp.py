"""torch.compile and autocast.

compile: in passive mode hooks registered before compiling fire in the compiled model; in probe mode
no hook exists during training steps (they are attached around the probe pass only, which runs
eagerly), so the model compiles exactly as without the monitor; either way monitoring adds no
recompiles (Dynamo's ``CompileCounter`` backend counts compiled graphs; after the first step,
``error_on_recompile`` turns any recompile into an error) over >= 20 steps with >= 3 measurements,
in probe and passive mode, for ``torch.compile(model)`` and in-place ``model.compile()``, and under
Lightning. A monitor created after compiling warns.

AMP: bf16 CPU autocast activations are captured as float32, the autocast state around the hooks is
unchanged, and training is bit-identical; the fp16 CUDA variant runs only where a GPU exists.
"""
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ibhooks
from models import data_for, mlp_bn_dropout

STEPS = 24
dynamo = pytest.importorskip("torch._dynamo")
from torch._dynamo.testing import CompileCounter  # noqa: E402


def real_errors(record):
    return [e for e in record.errors if not str(e.get("error", "")).startswith("checks failed")]


def _train_compiled(how, mode, tmp_path, monitored=True):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = mlp_bn_dropout()
    x, y = data_for("mlp", 256)
    monitor = None
    if monitored:
        kwargs = {"probe": data_for("mlp", 96, seed=1)} if mode == "probe" else {"passive_window": 2, "passive_min_rows": 1}
        monitor = ibhooks.IBMonitor(model, schedule=ibhooks.every_n(5), log_dir=tmp_path, verbose=False, **kwargs)
    counter = CompileCounter()
    if how == "wrap":
        compiled = torch.compile(model, backend=counter)
    else:
        model.compile(backend=counter)
        compiled = model
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(7)
    frames, records = [], []
    for step in range(STEPS):
        idx = torch.randint(0, x.shape[0], (32,), generator=g)
        # after the first step (warm-up: the first compile), any recompile is an error
        with dynamo.config.patch(error_on_recompile=step > 0):
            loss = F.cross_entropy(compiled(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if monitor is not None:
                rec = monitor.step(y=y[idx])
                records.append(rec) if rec is not None else None
        frames.append(counter.frame_count)
    if monitor is not None:
        records = monitor.history
        monitor.close()
    return model, frames, records


@pytest.mark.parametrize("how", ["wrap", "inplace"])
@pytest.mark.parametrize("mode", ["probe", "passive"])
def test_compile_no_recompiles(how, mode, tmp_path):
    base_model, base_frames, _ = _train_compiled(how, mode, tmp_path, monitored=False)
    model, frames, records = _train_compiled(how, mode, tmp_path)
    if mode == "passive":  # passive hooks stay registered: they must fire inside the compiled model
        assert frames[0] >= 1, "the compiled model did not compile (the hooks would not be exercised)"
    else:  # probe mode adds no hook to the training graph: it compiles exactly as the unmonitored model
        assert frames == base_frames
    assert frames[-1] == frames[0], f"graphs compiled after the first step: {frames}"
    assert base_frames[-1] == base_frames[0]
    measured = [r.step for r in records]
    assert len([s for s in measured if s > 0]) >= 3 and len(frames) >= 20
    for r in records:  # hooks fired inside the compiled model: every layer, every row
        assert not real_errors(r) and len(r.layers) == 6
        assert r.n_samples == (96 if mode == "probe" else 2 * 32)
    for (k, a), b in zip(base_model.named_parameters(), model.parameters()):
        assert torch.equal(a, b), f"{k} differs from the compiled run without monitoring"


def test_monitor_created_after_compiling_warns(tmp_path):
    """Measured on torch 2.13: forward hooks added to submodules after the compiled model has run are
    not traced into its graph (no recompile, the hooks never fire from it). Probe mode still works (the
    probe runs the inner module eagerly); passive mode captures nothing. Hence the warning."""
    x, y = data_for("mlp", 64)
    results = {}
    for mode in ("probe", "passive"):
        torch._dynamo.reset()
        model = mlp_bn_dropout()
        counter = CompileCounter()
        compiled = torch.compile(model, backend=counter)
        compiled(x)
        with pytest.warns(UserWarning, match="already torch.compile'd.*Create the monitor first"):
            mon = ibhooks.IBMonitor(compiled, probe=(x, y) if mode == "probe" else None, schedule=1,
                                    measure_initial=False, log_dir=tmp_path, verbose=False)
        compiled(x)
        results[mode] = (mon.step(y=y), counter.frame_count)
        mon.close()
    probe_rec, probe_frames = results["probe"]
    assert probe_rec.n_samples == 64 and len(probe_rec.layers) == 6 and probe_frames == 1
    passive_rec, passive_frames = results["passive"]
    assert passive_rec.n_samples == 0 and not passive_rec.layers and passive_frames == 1
    inplace = mlp_bn_dropout()
    inplace.compile(backend=CompileCounter())
    with pytest.warns(UserWarning, match="already torch.compile'd"):
        ibhooks.IBMonitor(inplace, probe=(x, y), schedule=1, log_dir=tmp_path, verbose=False).close()


@pytest.mark.parametrize("mode", ["probe", "passive"])
def test_lightning_compiled_module_no_recompiles(mode, tmp_path):
    L = pytest.importorskip("lightning.pytorch")
    from ibhooks.integrations.lightning import IBCallback

    class Net(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 3))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class Frames(L.Callback):
        def __init__(self):
            self.frames = []

        def on_train_batch_end(self, trainer, *args):
            self.frames.append(counter.frame_count)

    torch._dynamo.reset()
    counter = CompileCounter()
    x, y = data_for("mlp", 320)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y.clamp(max=2)), batch_size=16)
    probe = data_for("mlp", 64, seed=1) if mode == "probe" else None
    cb = IBCallback(probe=probe, schedule=ibhooks.every_n(5), verbose=False)
    frames = Frames()
    flag = torch.are_deterministic_algorithms_enabled()
    trainer = L.Trainer(max_epochs=1, limit_train_batches=20, logger=False, callbacks=[cb, frames],
                        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            trainer.fit(torch.compile(Net(), backend=counter), loader)
    finally:
        torch.use_deterministic_algorithms(flag)
    assert frames.frames[0] >= 1 and frames.frames[-1] == frames.frames[0], frames.frames
    steps = [r.step for r in cb.history]
    assert [s for s in steps if s > 0] == [5, 10, 15, 20] and len(frames.frames) == 20
    assert all(len(r.layers) == 3 and not real_errors(r) for r in cb.history)


def _train_autocast(mode, tmp_path, monitored):
    torch.manual_seed(0)
    model = mlp_bn_dropout()
    x, y = data_for("mlp", 256)
    monitor, seen = None, []
    if monitored:
        kwargs = {"probe": data_for("mlp", 96, seed=1)} if mode == "probe" else {"passive_window": 2, "passive_min_rows": 1}
        monitor = ibhooks.IBMonitor(model, schedule=ibhooks.every_n(5), log_dir=tmp_path, verbose=False, **kwargs)
        # a hook registered after the monitor's sees the autocast state the monitor's hook left behind
        model[0].register_forward_hook(lambda m, a, o: seen.append(
            (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"), o.dtype)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(7)
    out_dtypes = set()
    for _ in range(20):
        idx = torch.randint(0, x.shape[0], (32,), generator=g)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x[idx])
            out_dtypes.add(out.dtype)
            loss = F.cross_entropy(out.float(), y[idx])
            loss.backward()
            opt.step()
            opt.zero_grad()
            if monitor is not None:
                monitor.step(y=y[idx])  # inside the region: a probe forward also runs under autocast
    records = []
    if monitor is not None:
        records = monitor.history
        cov = {row["name"]: row for row in monitor.coverage}
        monitor.close()
        return model, out_dtypes, records, seen, cov
    return model, out_dtypes, records, seen, {}


@pytest.mark.parametrize("mode", ["probe", "passive"])
def test_bf16_autocast_captured_as_float32_training_unchanged(mode, tmp_path, monkeypatch):
    stored = []
    from ibhooks import capture

    original = capture.Capture.store

    def spy(self, name, output):
        n = sum(len(s.chunks) for s in self.slots.values())
        original(self, name, output)
        chunks = [c for s in self.slots.values() for c in s.chunks]
        if len(chunks) > n:
            stored.append((output.dtype, chunks[-1].dtype))

    monkeypatch.setattr(capture.Capture, "store", spy)
    base, base_dtypes, _, _, _ = _train_autocast(mode, tmp_path, monitored=False)
    model, dtypes, records, seen, cov = _train_autocast(mode, tmp_path, monitored=True)
    assert base_dtypes == dtypes == {torch.bfloat16}
    assert seen and all(s == (True, torch.bfloat16, torch.bfloat16) for s in seen)
    # bf16 outputs of the autocast region (probe mode also stores float32 ones, from its forward at
    # construction, outside the region) are all stored as float32
    assert torch.bfloat16 in {out for out, _ in stored} and {c for _, c in stored} == {torch.float32}
    assert cov["0"]["dtype"] == "bfloat16"
    assert len(records) >= 3 and all(not real_errors(r) and r.layers for r in records)
    for (k, a), b in zip(base.named_parameters(), model.parameters()):
        assert torch.equal(a, b), f"{k} differs under autocast"


def test_projection_under_autocast_is_computed_in_float32(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 3))
    mon = ibhooks.IBMonitor(model, layers=["0"], reduction={"0": "project:16"}, schedule=1, log_dir=tmp_path,
                            verbose=False)
    x = torch.randn(32, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = model[0](x)
        model(x)
    captured = mon._capture.slots["0"].chunks[-1]
    reference = hidden.float() @ mon._capture.slots["0"].reduction._proj
    mon.close()
    torch.testing.assert_close(captured, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_cuda_autocast_with_grad_scaler(tmp_path):
    def run(monitored):
        torch.manual_seed(0)
        model = mlp_bn_dropout().cuda()
        x, y = (t.cuda() for t in data_for("mlp", 256))
        mon = (ibhooks.IBMonitor(model, schedule=5, passive_window=2, passive_min_rows=1, log_dir=tmp_path,
                                 verbose=False) if monitored else None)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cuda")
        g = torch.Generator().manual_seed(7)
        for _ in range(20):
            idx = torch.randint(0, 256, (32,), generator=g).cuda()
            with torch.autocast("cuda", dtype=torch.float16):
                loss = F.cross_entropy(model(x[idx]).float(), y[idx])
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
            if mon is not None:
                mon.step(y=y[idx])
        if mon is None:
            return model, [], {}
        cov = {row["name"]: row for row in mon.coverage}
        records = mon.history
        mon.close()
        return model, records, cov

    base, _, _ = run(False)
    model, records, cov = run(True)
    assert cov["0"]["dtype"] == "float16"
    assert len(records) >= 3 and all(not real_errors(r) and r.n_samples == 64 for r in records)
    for (k, a), b in zip(base.named_parameters(), model.parameters()):
        assert torch.equal(a, b), f"{k} differs"
