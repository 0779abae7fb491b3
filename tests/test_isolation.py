"""Training is bit-identical with and without the monitor (probe and passive mode, measurements on the
training thread or on the background worker)."""
import copy

import pytest
import torch
import torch.nn.functional as F

import ibhooks
from models import MODELS, data_for

STEPS = 100


def _train(kind: str, monitor_kwargs=None, tmp_path=None):
    torch.manual_seed(1234)
    model = MODELS[kind]()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = data_for(kind, 256)
    monitor = None
    records = []
    if monitor_kwargs is not None:
        monitor = ibhooks.IBMonitor(model, log_dir=tmp_path, verbose=False, **monitor_kwargs)
    g = torch.Generator().manual_seed(7)
    for _ in range(STEPS):
        idx = torch.randint(0, x.shape[0], (32,), generator=g)
        xb, yb = x[idx], y[idx]
        model.train()
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if monitor is not None:
            rec = monitor.step(y=yb) if monitor.mode == "passive" else monitor.step()
            if rec is not None:
                records.append(rec)
    if monitor is not None:
        if monitor.execution_config.background:
            records = monitor.history  # the worker's Records, read back from the run log
        monitor.close()
    state = {
        "params": {k: v.detach().clone() for k, v in model.named_parameters()},
        "grads": {k: v.grad.clone() for k, v in model.named_parameters() if v.grad is not None},
        "buffers": {k: v.clone() for k, v in model.named_buffers()},
        "opt": copy.deepcopy(opt.state_dict()),
        "rng": torch.get_rng_state(),
        "next_rand": torch.rand(4),  # the global stream continues identically
        "training_flags": [m.training for m in model.modules()],
    }
    return state, records


def _assert_identical(a, b):
    for group in ("params", "grads", "buffers"):
        assert a[group].keys() == b[group].keys()
        for k in a[group]:
            assert torch.equal(a[group][k], b[group][k]), f"{group} {k} differs"
    sa, sb = a["opt"]["state"], b["opt"]["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        for name in sa[k]:
            assert torch.equal(torch.as_tensor(sa[k][name]), torch.as_tensor(sb[k][name])), f"opt state {k}.{name}"
    assert torch.equal(a["rng"], b["rng"])
    assert torch.equal(a["next_rand"], b["next_rand"])
    assert a["training_flags"] == b["training_flags"]


@pytest.mark.parametrize("background", [False, True], ids=["sync", "background"])
@pytest.mark.parametrize("kind", ["mlp", "cnn", "transformer"])
@pytest.mark.parametrize("mode", ["probe", "passive"])
def test_training_bit_identical(kind, mode, background, tmp_path):
    baseline, _ = _train(kind)
    probe = data_for(kind, 200, seed=1)
    # in background mode an estimator that draws random numbers (Monte Carlo) runs on the worker
    # thread while training runs: it must use its own generator, never the global stream
    estimators = ["binning", ("noisy_channel", {"noise_var": 0.1})] if background else ["binning"]
    kwargs = {"schedule": ibhooks.every_n(20), "estimators": estimators, "background": background}
    if mode == "probe":
        kwargs["probe"] = probe
    else:
        kwargs["passive_window"] = 3
        kwargs["passive_min_rows"] = 1  # exactly the window (the default would widen it to 1024 rows)
    monitored, records = _train(kind, kwargs, tmp_path)
    _assert_identical(baseline, monitored)
    assert len(records) >= 5
    assert all(r.mode == mode for r in records)
    assert all(not r.errors for r in records), records[0].errors
    assert all(r.layers for r in records)
    if mode == "passive":
        # 3 steps x 32 rows pooled per measurement
        assert records[-1].n_samples == 96
        assert "passive" in records[-1].info["note"]
    else:
        assert records[-1].n_samples == 200


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_cuda_rng_untouched(tmp_path):
    model = MODELS["mlp"]().cuda()
    x, y = data_for("mlp", 128)
    torch.cuda.manual_seed(3)
    before = torch.cuda.get_rng_state()
    mon = ibhooks.IBMonitor(model, probe=(x.cuda(), y.cuda()), schedule=1, log_dir=tmp_path, verbose=False)
    mon.step()
    mon.close()
    assert torch.equal(before, torch.cuda.get_rng_state())
