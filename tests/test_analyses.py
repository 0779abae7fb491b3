"""The analyses extension point: bound once, run per measurement, results in the Record and run log,
failures recorded, state saved, names validated."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from ibhooks import IBMonitor, load_run
from ibhooks.analyses import Analysis, build_analyses, register_analysis


class RowCount(Analysis):
    name = "row_count"

    def __init__(self, scale: int = 1) -> None:
        self.scale = scale
        self.calls = 0
        self.snapshots = 0

    def on_snapshot(self, snapshot):
        self.snapshots += 1
        snapshot.extras[self.name] = torch.ones(3)

    def analyse(self, snapshot, record):
        self.calls += 1
        assert snapshot.extras[self.name].shape == (3,)  # extras survive until the analysis ran
        assert record.layers  # estimates are there before the analysis
        return {"rows": {k: int(v.shape[0]) * self.scale for k, v in snapshot.activations.items()}}

    def params(self):
        return {"scale": self.scale}

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = int(state["calls"])


class Broken(Analysis):
    name = "broken"

    def analyse(self, snapshot, record):
        raise RuntimeError("boom")


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def _probe():
    g = torch.Generator().manual_seed(1)
    return torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g)


def test_results_reach_record_and_run_log(tmp_path):
    analysis = RowCount(scale=2)
    mon = IBMonitor(_model(), probe=_probe(), schedule=2, log_dir=tmp_path, run_name="a", verbose=False,
                    analyses=[analysis])
    for _ in range(4):
        mon.step()
    mon.close()
    run = load_run(tmp_path / "a.jsonl")
    assert [r.step for r in run.records] == [0, 2, 4]
    assert all(set(r.analyses["row_count"]["rows"].values()) == {128} for r in run.records)
    assert analysis.calls == analysis.snapshots == 3
    assert run.header["config"]["analyses"] == [{"name": "row_count", "params": {"scale": 2}}]


def test_failure_is_recorded_and_training_goes_on(tmp_path):
    mon = IBMonitor(_model(), probe=_probe(), schedule=1, log_dir=tmp_path, run_name="b", verbose=False,
                    analyses=[Broken(), RowCount()])
    rec = mon.step()
    mon.close()
    assert any("broken" in e.error and "boom" in e.error and e.stage == "analyse" for e in rec.errors)
    assert "row_count" in rec.analyses and "broken" not in rec.analyses


def test_state_round_trip(tmp_path):
    first = RowCount()
    mon = IBMonitor(_model(), probe=_probe(), schedule=1, log_dir=tmp_path, run_name="c", verbose=False,
                    analyses=[first])
    mon.step()
    state = mon.state_dict()
    mon.close()
    second = RowCount()
    mon2 = IBMonitor(_model(), probe=_probe(), schedule=1, log_dir=tmp_path, run_name="c", verbose=False,
                     analyses=[second], resume=True)
    mon2.load_state_dict(state)
    assert second.calls == first.calls == 2
    mon2.close()


def test_names_validated():
    with pytest.raises(ValueError, match="unknown analysis 'nope'"):
        build_analyses(["nope"])
    with pytest.raises(ValueError, match="given twice"):
        build_analyses([RowCount(), RowCount()])
    with pytest.raises(ValueError, match="analyses= takes"):
        build_analyses([3])
    register_analysis("row_count_test", RowCount)
    assert build_analyses([("row_count_test", {"scale": 3})])[0].scale == 3
