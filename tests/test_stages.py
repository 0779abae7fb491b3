"""Each stage in isolation: capture (hooks, reductions, fixed slots), the passive reservoir, the
schedule, the config objects and the pipeline, without an IBMonitor."""
import math

import pytest
import torch
import torch.nn as nn

import ibhooks
from ibhooks.capture import Capture, PassiveReservoir, Reduction, Snapshot, parse_reduction
from ibhooks.chains import Chain
from ibhooks.config import CaptureConfig, RunLogConfig, build_configs
from ibhooks.estimators.binning import Binning
from ibhooks.pipeline import Console, Interpreter, MeasurementPipeline, SeriesHistory, SinkSet
from ibhooks.schedule import as_schedule, every_n, log_spaced
from ibhooks.schema import Quantity, Record


# -- capture -----------------------------------------------------------------------------------

def _mlp():
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(inplace=True), nn.Linear(3, 2))


def test_capture_attaches_only_while_recording():
    model = _mlp()
    cap = Capture(list(model.named_children()))
    assert cap.num_handles == 0
    with cap.recording():
        assert cap.num_handles == 3 and cap.armed
        cap.begin_pass(5)
        model(torch.randn(5, 4))
    assert cap.num_handles == 0 and not cap.armed
    acts = cap.take()
    assert {k: tuple(v.shape) for k, v in acts.items()} == {"0": (5, 3), "1": (5, 3), "2": (5, 2)}
    model(torch.randn(5, 4))  # no hooks: nothing stored
    assert cap.take() == {}


def test_inplace_activation_is_copied_before_it_changes():
    model = _mlp()
    cap = Capture(list(model.named_children()))
    with cap.recording():
        cap.begin_pass(6)
        model(torch.randn(6, 4))
    acts = cap.take()
    assert (acts["0"] < 0).any(), "the Linear output was captured after the in-place ReLU modified it"
    assert (acts["1"] >= 0).all()


def test_fixed_slot_keeps_one_copy_per_pass_and_skips_non_batch_outputs():
    class Pos(nn.Module):
        def forward(self, x):
            return torch.zeros(1, 3)  # a position embedding: batch dimension 1

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)
            self.pos = Pos()

        def forward(self, x):
            h = self.lin(x)
            h = self.lin(x)  # fires twice (as under activation checkpointing)
            return h + self.pos(x)

    net = Net()
    cap = Capture([("lin", net.lin), ("pos", net.pos)])
    with cap.recording():
        cap.begin_pass(7)
        net(torch.randn(7, 4))
    acts = cap.take()
    assert list(acts) == ["lin"] and acts["lin"].shape == (7, 3)
    assert "not the batch" in cap.slots["pos"].error


def test_reductions_and_their_names():
    x = torch.randn(3, 8, 5, 5)
    assert Reduction("mean")(x).shape == (3, 8)
    flat = Reduction("flatten")
    assert flat(x).shape == (3, 200) and flat.lossless and flat.name == "flatten"
    proj = Reduction("project:16", seed=1, layer="a")
    out = proj(x)
    assert out.shape == (3, 16) and not proj.lossless and proj.name == "flatten>project16"
    assert torch.equal(out, Reduction("project:16", seed=1, layer="a")(x)), "projection is seeded"
    state = torch.get_rng_state()
    Reduction("project:4", seed=2)(x)
    assert torch.equal(state, torch.get_rng_state()), "projection drew from the global RNG"
    for bad in ("project:abc", "project:0", ("project", True), "max", 3):
        with pytest.raises(ValueError, match="reduction must be"):
            parse_reduction(bad)


# -- reservoir -----------------------------------------------------------------------------------

def test_reservoir_bounded_subsample_paired_with_labels():
    res = PassiveReservoir(10, seed=0)
    for step in range(4):
        t = torch.arange(6, dtype=torch.float32).unsqueeze(1) + 100 * step
        res.add({"a": t, "b": -t}, torch.arange(6) + 100 * step, step)
    acts, y, steps = res.take()
    assert acts["a"].shape == (10, 1) and steps == [0, 1, 2, 3]
    assert torch.equal(acts["a"][:, 0].long(), y), "rows and labels were subsampled differently"
    assert torch.equal(acts["b"], -acts["a"]), "layers were subsampled differently"
    assert res.rows == 0


def test_reservoir_labels_on_some_steps_only_are_dropped_and_said():
    res = PassiveReservoir(100)
    res.add({"a": torch.zeros(3, 1)}, torch.zeros(3, dtype=torch.long), 1)
    res.add({"a": torch.zeros(3, 1)}, None, 2)
    assert res.labels_incomplete
    acts, y, _ = res.take()
    assert y is None and acts["a"].shape[0] == 6
    with pytest.raises(ValueError, match="got 2 labels but the monitored forward pass saw 3"):
        res.add({"a": torch.zeros(3, 1)}, torch.zeros(2, dtype=torch.long), 3)


# -- schedule and config ---------------------------------------------------------------------------

def test_schedules():
    assert [s for s in range(12) if every_n(5)(s)] == [0, 5, 10]
    ls = log_spaced(10, 1000)
    assert ls(0) and ls(1) and ls(1000) and len(ls.steps) <= 11
    assert as_schedule(3)(6) and not as_schedule(3)(7)
    with pytest.raises(ValueError, match="callable step -> bool"):
        as_schedule("often")


def test_flat_keywords_and_config_objects_agree_and_do_not_clash():
    flat = build_configs({}, {"max_samples": 100, "log_dir": "x"})
    grouped = build_configs({"capture": CaptureConfig(max_samples=100), "run_log": RunLogConfig(log_dir="x")}, {})
    assert flat == grouped
    with pytest.raises(ValueError, match="both as a keyword and inside capture"):
        build_configs({"capture": CaptureConfig()}, {"max_samples": 5})
    for bad, match in (({"max_samples": True}, "max_samples must be a positive integer"),
                       ({"seed": "abc"}, "seed must be an integer"),
                       ({"run_name": "../x"}, "plain name"),
                       ({"reduction": "project:abc"}, "reduction must be"),
                       ({"memory_budget_mb": float("nan")}, "memory_budget_mb")):
        with pytest.raises(ValueError, match=match):
            build_configs({}, bad)


# -- pipeline --------------------------------------------------------------------------------------

class ListSink:
    def __init__(self):
        self.records = []

    def write(self, record):
        self.records.append(record)


class BrokenSink:
    def write(self, record):
        raise OSError("disk on fire")


def test_pipeline_turns_snapshots_into_records_without_a_monitor():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2, (256, 6), generator=g).float()
    y = x[:, 0].long()
    console = Console(verbose=False)
    good = ListSink()
    history = SeriesHistory()
    pipe = MeasurementPipeline({"binning": Binning(n_bins=2, range=(0, 1))}, ["a", "b"],
                               Interpreter([Chain("c", ("a", "b"))], {}), SinkSet([BrokenSink(), good], console),
                               history, console)
    with pytest.warns(RuntimeWarning, match="BrokenSink.write failed"):
        for step in range(3):
            snap = Snapshot(step=step, mode="probe", activations={"a": x, "b": x[:, :1]}, labels=y)
            rec = pipe.process(snap)
    assert isinstance(rec, Record) and [r.step for r in good.records] == [0, 1, 2]
    codes = (x * 2 ** torch.arange(6)).sum(1).long()
    p = torch.bincount(codes).double()
    p = p[p > 0] / p.sum()
    plug_in = float(-(p * p.log2()).sum())  # exact: 2 bins on {0, 1} data keep every pattern apart
    assert rec.layers["a"]["binning"].i_xt.value == pytest.approx(plug_in, abs=1e-9)
    assert rec.layers["b"]["binning"].i_xt.value == pytest.approx(1.0, abs=0.01)
    assert rec.layers["b"]["binning"].i_ty.value == pytest.approx(rec.h_y, abs=1e-9)
    assert rec.checks is not None and rec.checks.dpi_total().pairs_checked == 2
    assert not snap.activations, "the snapshot's tensors were not released"
    s = history.series("b", "binning", Quantity.I_XT)
    assert list(s["step"]) == [0.0, 1.0, 2.0] and len(history) == 3


def test_pipeline_records_a_failing_estimator():
    class Bad(Binning):
        def layer_information(self, t, y=None, *, layer=None):
            raise RuntimeError("nope")

    console = Console(verbose=False)
    sink = ListSink()
    pipe = MeasurementPipeline({"bad": Bad()}, ["a"], Interpreter([], {}), SinkSet([sink], console),
                               SeriesHistory(), console)
    with pytest.warns(RuntimeWarning, match="estimator 'bad' failed"):
        rec = pipe.process(Snapshot(step=1, mode="probe", activations={"a": torch.randn(8, 2)}))
    assert rec.errors[0].estimator == "bad" and "nope" in rec.errors[0].error
    assert sink.records == [rec]


def test_history_is_compact():
    h = SeriesHistory()
    from ibhooks.schema.estimate import make_estimate

    est = make_estimate(1.0, "q", ci=(0.9, 1.1))
    for step in range(1000):
        h.append(Record(step=step, mode="probe", n_samples=1,
                        layers={f"l{i}": {"e": ibhooks.LayerResult(i_xt=est, i_ty=est)} for i in range(10)}))
    assert h.nbytes() <= 1000 * (10 * 2 * 4 * 8 + 8)
    assert math.isclose(h.series("l3", "e", "I_TY")["ci_high"][-1], 1.1)
