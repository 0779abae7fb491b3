"""IBMonitor: exact anchors through the whole pipeline, fault tolerance, lifecycle, state, bad input."""
import gc
import io
import math
import weakref

import pytest
import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

import ibhooks
from ibhooks.estimators.base import Estimator
from ibhooks.estimate import make_estimate
from models import TinyTransformer, data_for, mlp_bn_dropout

BITS12 = torch.tensor([[int(b) for b in format(i, "012b")] for i in range(4096)], dtype=torch.float32)


class LabelOf(nn.Module):
    """Computes the task label from the pattern: a layer that is a copy of Y."""

    def forward(self, x):
        return (x[:, 0] + x[:, 5] + x[:, 7] > 1).float().unsqueeze(1)


class Anchors(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pattern = nn.Tanh()  # tanh of a {0,1} pattern: still one distinct row per input
        self.label = LabelOf()
        self.zero = nn.Linear(12, 3)
        with torch.no_grad():
            self.zero.weight.zero_()
            self.zero.bias.fill_(0.3)

    def forward(self, x):
        return {"pattern": self.pattern(x), "label": self.label(x), "zero": self.zero(x)}


def test_binning_anchors_through_the_monitor(tmp_path):
    y = LabelOf()(BITS12)[:, 0].long()
    p1 = y.float().mean().item()
    h_y = -(p1 * math.log2(p1) + (1 - p1) * math.log2(1 - p1))
    mon = ibhooks.IBMonitor(
        Anchors(), probe=(BITS12, y), estimators=[("binning", {"n_bins": 30, "range": (-1, 1)})],
        schedule=1, log_dir=tmp_path, verbose=False,
    )
    assert mon.layer_names == ["pattern", "label", "zero"]
    rec = mon.step()
    mon.close()
    pat, lab, zero = (rec.layers[n]["binning"] for n in ("pattern", "label", "zero"))
    assert pat.i_xt.value == pytest.approx(12.0, abs=1e-9)
    assert pat.i_xt.saturated and pat.i_xt.cap == pytest.approx(12.0)
    assert pat.i_ty.value == pytest.approx(h_y, abs=1e-9)
    assert zero.i_xt.value == pytest.approx(0.0, abs=1e-12)
    assert zero.i_ty.value == pytest.approx(0.0, abs=1e-12)
    assert lab.i_xt.value == pytest.approx(h_y, abs=1e-9)
    assert lab.i_ty.value == pytest.approx(h_y, abs=1e-9)
    assert rec.h_y == pytest.approx(h_y, abs=1e-12)
    assert "bin30[-1,1]" in pat.i_xt.quantity


def test_output_selectors(tmp_path):
    class Multi(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)  # returns (out, weights)
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            out, _ = self.attn(x, x, x)
            return self.head(out.mean(1))

    x = torch.randn(40, 5, 8)
    y = torch.randint(0, 2, (40,))
    mon = ibhooks.IBMonitor(Multi(), probe=(x, y), schedule=1, log_dir=tmp_path, verbose=False,
                            layers=["attn", "head"], selectors={"attn": 1})  # attention weights (B, 5, 5)
    cov = {r["name"]: r for r in mon.coverage}
    assert cov["attn"]["shape"] == ["B", 5, 5] and cov["attn"]["dim"] == 25
    assert not mon.step().errors
    mon.close()


class AlwaysFails(Estimator):
    name = "always_fails"

    def layer_information(self, t, y=None, *, layer=None):
        raise RuntimeError("boom")


class ReturnsNaN(Estimator):
    name = "returns_nan"

    def layer_information(self, t, y=None, *, layer=None):
        return make_estimate(float("nan"), "nan"), None


def test_failing_estimators_are_recorded_and_training_goes_on(tmp_path):
    model = mlp_bn_dropout()
    x, y = data_for("mlp", 64)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(RuntimeWarning, match="always_fails"):
        mon = ibhooks.IBMonitor(model, probe=(x, y), estimators=[AlwaysFails(), ReturnsNaN(), "binning"],
                                schedule=2, log_dir=tmp_path, run_name="faulty", verbose=False)
        for _ in range(6):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mon.step()
    mon.close()
    assert mon.step_count == 6 and len(mon.history) == 4  # steps 0, 2, 4, 6
    rec = mon.history[-1]
    errs = {(e["estimator"], e["layer"]) for e in rec.errors}
    assert ("always_fails", "0") in errs and ("returns_nan", "0") in errs
    assert any("boom" in e["error"] for e in rec.errors)
    assert any("non-finite" in e["error"] for e in rec.errors)
    assert rec.layers["0"]["binning"].i_xt is not None  # the good estimator still ran
    run = ibhooks.load_run(tmp_path / "faulty.jsonl")
    assert any("boom" in e["error"] for e in run.records[-1].errors)


def test_close_removes_every_hook_and_releases_activations(tmp_path):
    model = mlp_bn_dropout()
    x, y = data_for("mlp", 64)
    before = sum(len(m._forward_hooks) for m in model.modules())
    mon = ibhooks.IBMonitor(model, passive_window=1, schedule=1, log_dir=tmp_path, verbose=False)
    assert mon.num_hooks == len(mon.layer_names) > 0
    assert sum(len(m._forward_hooks) for m in model.modules()) == before + mon.num_hooks
    model(x)  # armed: the passive capture stores this batch
    stored = [weakref.ref(c) for s in mon._capture.slots.values() for c in s.chunks]
    assert stored
    mon.close()
    gc.collect()
    assert mon.num_hooks == 0
    assert sum(len(m._forward_hooks) for m in model.modules()) == before
    assert all(r() is None for r in stored), "captured activations outlive close()"
    with ibhooks.IBMonitor(model, probe=(x, y), schedule=1, log_dir=tmp_path, verbose=False) as m2:
        # probe mode: hooks exist only around the probe pass, so training steps call none
        seen = []
        model.register_forward_hook(lambda mod, a, o: seen.append(sum(len(m._forward_hooks) for m in model.modules())))
        assert m2.num_hooks == 0
        assert sum(len(m._forward_hooks) for m in model.modules()) == before + 1
        m2.step()
        assert seen and min(seen) == before + 1 + len(m2.layer_names)  # attached during the probe pass
        assert m2.num_hooks == 0
    model._forward_hooks.clear()
    assert sum(len(m._forward_hooks) for m in model.modules()) == before
    # the monitor object itself can be collected (no hook -> monitor cycle pins it)
    ref = weakref.ref(mon)
    del mon
    gc.collect()
    assert ref() is None


def test_activation_checkpointing_keeps_one_copy_per_step(tmp_path):
    class Ckpt(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Sequential(nn.Linear(12, 8), nn.Tanh())
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            return self.head(checkpoint(self.block, x, use_reentrant=True))

    model = Ckpt()
    x, y = data_for("mlp", 32)
    x.requires_grad_(True)
    y = y.clamp(max=1)
    fired = []
    model.block.register_forward_hook(lambda m, a, o: fired.append(1))
    mon = ibhooks.IBMonitor(model, layers=["block", "head"], schedule=1, log_dir=tmp_path, verbose=False)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert len(fired) == 2  # forward + recomputation in backward
    rec = mon.step(y=y)
    mon.close()
    assert rec.n_samples == 32 and not rec.errors


def test_state_dict_round_trip_weights_only(tmp_path):
    model = mlp_bn_dropout()
    x, y = data_for("mlp", 64)
    mon = ibhooks.IBMonitor(model, probe=(x, y), schedule=2, log_dir=tmp_path, run_name="s", verbose=False)
    for _ in range(5):
        mon.step()
    buf = io.BytesIO()
    torch.save(mon.state_dict(), buf)
    mon.close()
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    mon2 = ibhooks.IBMonitor(model, probe=(x, y), schedule=2, log_dir=tmp_path, run_name="s", resume=True,
                             verbose=False)
    mon2.load_state_dict(state)
    assert mon2.step_count == 5 and len(mon2.history) == 3
    assert mon2.history[-1].to_dict() == mon.history[-1].to_dict()
    mon2.step()
    mon2.close()
    run = ibhooks.load_run(tmp_path / "s.jsonl")
    assert [r.step for r in run.records] == [0, 2, 4, 6] and len(run.resumes) == 1


def test_transformer_auto_layers_and_coverage(tmp_path):
    model = TinyTransformer()
    x, y = data_for("transformer", 64)
    mon = ibhooks.IBMonitor(model, probe=(x, y), schedule=1, log_dir=tmp_path, run_name="tr", verbose=False)
    assert mon.layer_names == ["embed", "encoder.layers.0", "encoder.layers.1", "head"]
    cov = {row["name"]: row for row in mon.coverage}
    assert cov["encoder.layers.0"]["shape"] == ["B", 6, 16]
    assert cov["encoder.layers.0"]["reduction"] == "flatten" and cov["encoder.layers.0"]["dim"] == 96
    assert cov["encoder.layers.0.self_attn"]["status"] == "skipped"
    # from the data flow: the embedding feeds the first block (the head reads a mean over tokens: off the chain)
    assert [c.layers for c in mon.chains] == [("embed", "encoder.layers.0", "encoder.layers.1")]
    rec = mon.step()
    mon.close()
    assert set(rec.layers) == set(mon.layer_names)
    header = ibhooks.load_run(tmp_path / "tr.jsonl").header
    assert {r["name"] for r in header["coverage"]} >= {"embed", "encoder.layers.0.self_attn", "head"}


def test_reductions_are_named_in_the_quantity(tmp_path):
    model = TinyTransformer()
    x, y = data_for("transformer", 64)
    mon = ibhooks.IBMonitor(model, probe=(x, y), layers=["encoder.layers.*"], schedule=1, log_dir=tmp_path,
                            reduction={"encoder.layers.0": "mean", "encoder.layers.1": "project:5"}, verbose=False)
    cov = {row["name"]: row for row in mon.coverage}
    assert cov["encoder.layers.0"]["dim"] == 16 and cov["encoder.layers.1"]["dim"] == 5
    assert mon.chains == []  # lossy reductions are not a Markov chain
    mon.close()


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"layers": ["nope"]}, ValueError, "unknown layer name 'nope'"),
        ({"layers": ["0.wieght"]}, ValueError, "unknown layer name"),
        ({"layers": "no_such_*"}, ValueError, "matches no module"),
        ({"schedule": "often"}, ValueError, "schedule must be a callable"),
        ({"schedule": 0}, ValueError, r"every_n\(n\) needs an integer n >= 1"),
        ({"estimators": ["nonsense"]}, ValueError, "unknown estimator 'nonsense'"),
        ({"probe": (torch.randn(10, 12), torch.zeros(9, dtype=torch.long))}, ValueError, "same length"),
        ({"probe": (torch.randn(10, 12), torch.zeros(10))}, ValueError, "integer class labels"),
        ({"probe": (torch.randn(10, 12), torch.zeros(10, 3, dtype=torch.long))}, ValueError, "1-D tensor"),
        ({"probe": (torch.randn(4096, 12), torch.zeros(4096, dtype=torch.long)), "memory_budget_mb": 0.1},
         ValueError, "memory_budget_mb"),
        ({"reduction": "median"}, ValueError, "reduction must be"),
        ({"max_samples": 0}, ValueError, "max_samples must be a positive integer"),
    ],
)
def test_bad_input_raises_clear_errors(kwargs, exc, match, tmp_path):
    model = nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 2))
    with pytest.raises(exc, match=match):
        ibhooks.IBMonitor(model, log_dir=tmp_path, verbose=False, **kwargs)


def test_no_monitorable_layer(tmp_path):
    with pytest.raises(ValueError, match="no monitorable layer"):
        ibhooks.IBMonitor(nn.Sequential(nn.Dropout(), nn.Identity()), log_dir=tmp_path, verbose=False)


def test_passive_labels_checked(tmp_path):
    model = nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 2))
    mon = ibhooks.IBMonitor(model, schedule=1, log_dir=tmp_path, verbose=False)
    model(torch.randn(16, 12))
    with pytest.raises(ValueError, match="got 8 labels but the monitored forward pass saw 16"):
        mon.step(y=torch.zeros(8, dtype=torch.long))
    model(torch.randn(16, 12))
    with pytest.raises(ValueError, match="1-D integer class labels"):
        mon.step(y=torch.zeros(16))
    mon.close()


def test_schedules():
    s = ibhooks.log_spaced(20, 1000)
    steps = sorted(s.steps)
    assert steps[0] == 0 and steps[1] == 1 and steps[-1] == 1000
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert gaps[-1] > gaps[0]  # dense early, sparse late
    assert ibhooks.every_n(5)(10) and not ibhooks.every_n(5)(11)
    with pytest.raises(ValueError, match="max_steps"):
        ibhooks.log_spaced(10, 0)


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, ibhooks; bad = [m for m in ('matplotlib', 'lightning', 'wandb', 'tensorboard', 'scipy') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_explicit_layers_give_one_chain_per_sequential(tmp_path):
    model = nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 4), nn.Tanh(), nn.Linear(4, 2), nn.Softmax(dim=1))
    x, y = data_for("mlp", 64)
    mon = ibhooks.IBMonitor(model, layers=[nn.Tanh, nn.Softmax], probe=(x, y.clamp(max=1)), schedule=1,
                            log_dir=tmp_path, verbose=False)
    assert [(c.name, c.layers) for c in mon.chains] == [("model", ("1", "3", "5"))]
    rec = mon.step()
    mon.close()
    assert not rec.errors
    assert rec.checks.dpi_total().pairs_checked == 4  # 2 adjacent pairs x (I_XT, I_TY)


def test_passive_mode_pools_enough_rows_by_default(tmp_path):
    """One training batch alone caps every layer at log2(batch) bits: by default the passive window widens
    to min(max_samples, 1024) rows once the batch size is known; fewer rows are said in the Record."""
    model = nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 2))
    x, y = data_for("mlp", 32)
    mon = ibhooks.IBMonitor(model, schedule=ibhooks.every_n(20), max_samples=256, log_dir=tmp_path,
                            verbose=False)
    records = []
    for _ in range(40):
        model(x)
        rec = mon.step(y=y)
        if rec is not None:
            records.append(rec)
    mon.close()
    assert mon.passive_window == 256 // 32
    assert [r.step for r in records] == [20, 40]
    assert all(r.n_samples == 256 and "rows_note" not in r.info for r in records)
    assert records[-1].info["passive_steps"] == list(range(33, 41))
    # a window too short for min_rows (min_rows above what the schedule leaves room for) is said
    mon = ibhooks.IBMonitor(model, schedule=1, passive_min_rows=100, log_dir=tmp_path, verbose=False)
    model(x)
    rec = mon.step(y=y)
    mon.close()
    assert rec.n_samples == 32 and "fewer than min_rows=100" in rec.info["rows_note"]
    assert "passive_window" in rec.info["rows_note"]
    capped = [w for w in rec.warnings if w.code == ibhooks.WarningCode.AT_CAP]
    assert capped and all("passive_window" in w.remedy and "probe samples" not in w.remedy for w in capped)


def test_probe_chunks_follow_the_size_of_the_monitored_outputs(tmp_path):
    """probe_batch_size=None: ~8 MiB of monitored outputs per chunk on a CPU (one pass for a small MLP,
    a handful of rows for a convnet), recorded in the header; an explicit value is kept."""
    mlp = nn.Sequential(nn.Linear(12, 10), nn.Tanh(), nn.Linear(10, 2))
    x, y = torch.randn(2048, 12), torch.randint(0, 2, (2048,))
    mon = ibhooks.IBMonitor(mlp, probe=(x, y), measure_initial=False, log_dir=tmp_path, verbose=False)
    assert mon._taker.probe_batch_size == 2048 and mon._config()["probe_chunk_rows"] == 2048
    mon.close()
    conv = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1))
    xc = torch.randn(64, 3, 32, 32)
    mon = ibhooks.IBMonitor(conv, probe=xc, measure_initial=False, log_dir=tmp_path, verbose=False,
                            memory_budget_mb=4096)
    per_row = 3 * 64 * 32 * 32 * 4  # three monitored outputs of 64 x 32 x 32 floats
    assert mon._taker.probe_batch_size == max(8, (8 << 20) // per_row) == 10
    mon.close()
    mon = ibhooks.IBMonitor(mlp, probe=(x, y), probe_batch_size=100, measure_initial=False, log_dir=tmp_path,
                            verbose=False)
    assert mon._taker.probe_batch_size == 100
    mon.close()
