"""Measurements off the training thread: same Records as synchronous mode, failures contained in the
worker, flush/close/state_dict wait for queued work, a full queue waits and says so."""
import math
import threading
import time

import pytest
import torch
import torch.nn as nn

import ibhooks
from ibhooks.estimate import make_estimate
from ibhooks.estimators.base import Estimator
from models import data_for, mlp_bn_dropout


def _run(tmp_path, background, steps=12, **kw):
    torch.manual_seed(0)
    model = mlp_bn_dropout()
    x, y = data_for("mlp", 128)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mon = ibhooks.IBMonitor(model, probe=(x, y), schedule=ibhooks.every_n(3), log_dir=tmp_path,
                            run_name="bg" if background else "sync", verbose=False, background=background, **kw)
    returned = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        returned.append(mon.step())
    records = mon.history
    mon.close()
    return returned, records, mon


def _values(records):
    return [(r.step, {(l, e, q): getattr(res, q).value for l, per in r.layers.items() for e, res in per.items()
                      for q in ("i_xt", "i_ty") if getattr(res, q) is not None}) for r in records]


def test_background_records_equal_synchronous_ones(tmp_path):
    ret_sync, sync, _ = _run(tmp_path, False)
    ret_bg, bg, mon = _run(tmp_path, True)
    assert all(r is None for r in ret_bg), "step() returns at once in background mode"
    assert sum(r is not None for r in ret_sync) == 4
    assert [r.step for r in bg] == [r.step for r in sync] == [0, 3, 6, 9, 12]
    assert _values(bg) == _values(sync)
    assert [len(r.warnings) for r in bg] == [len(r.warnings) for r in sync]
    assert mon.num_hooks == 0


class Slow(Estimator):
    name = "slow"

    def __init__(self, seconds=0.3):
        self.seconds = seconds

    def layer_information(self, t, y=None, *, layer=None):
        time.sleep(self.seconds)
        return make_estimate(1.0, "const", n=t.shape[0], dim=t.shape[1]), None


class Boom(Estimator):
    name = "boom"

    def layer_information(self, t, y=None, *, layer=None):
        raise RuntimeError("kaboom")


def test_failing_estimator_in_worker_is_recorded_and_training_goes_on(tmp_path):
    with pytest.warns(RuntimeWarning, match="estimator 'boom' failed"):
        _, records, _ = _run(tmp_path, True, estimators=["binning", Boom()])
    assert len(records) == 5
    for r in records:
        assert any(e.estimator == "boom" and "kaboom" in e.error for e in r.errors)
        assert all(res["binning"].i_xt is not None and math.isfinite(res["binning"].i_xt.value)
                   for res in r.layers.values())


def test_flush_and_state_dict_wait_for_the_worker(tmp_path):
    model = nn.Sequential(nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 2))
    x, y = data_for("mlp", 64)
    mon = ibhooks.IBMonitor(model, probe=(x, y), schedule=1, measure_initial=False, estimators=[Slow(0.2)],
                            log_dir=tmp_path, verbose=False, background=True, queue_size=4)
    t0 = time.perf_counter()
    assert mon.step() is None
    assert time.perf_counter() - t0 < 0.2, "step() waited for the estimator"
    state = mon.state_dict()  # flushes first
    assert len(mon.history_series) == 1 and state["step"] == 1
    mon.step()
    mon.step()
    mon.flush()
    assert len(mon.history_series) == 3
    mon.step()
    mon.close()  # processes what is queued
    assert [r.step for r in mon.history] == [1, 2, 3, 4]


def test_full_queue_waits_and_the_record_says_so(tmp_path):
    model = nn.Sequential(nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 2))
    x, y = data_for("mlp", 64)
    with pytest.warns(RuntimeWarning, match="queue was full"):
        mon = ibhooks.IBMonitor(model, probe=(x, y), schedule=1, measure_initial=False, estimators=[Slow(0.15)],
                                log_dir=tmp_path, verbose=False, background=True, queue_size=1)
        for _ in range(4):
            mon.step()
        mon.close()
    waited = [r.info.get("queue_wait_seconds") for r in mon.history]
    assert any(w is not None and w > 0.05 for w in waited), waited


def test_worker_thread_ends_at_close(tmp_path):
    before = {t.name for t in threading.enumerate()}
    _run(tmp_path, True, steps=3)
    time.sleep(0.05)
    assert "ibhooks-measurements" not in {t.name for t in threading.enumerate()} - before
