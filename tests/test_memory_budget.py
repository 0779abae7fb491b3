"""``memory_budget_mb`` is a bound (issue 15, item 5), and kNN's ``k >= n`` is refused at construction.

Everything the monitor holds counts (projection matrices, captured outputs, the reservoir, snapshots
alive at once, estimator state): :func:`ibhooks.capture.budget.held_bytes` counts the distinct tensor
storages it references. Probe mode refuses at construction what cannot fit; passive mode skips a layer
whose projection does not fit and caps the reservoir's rows, saying so.
"""
import gc
import weakref

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import ibhooks
from ibhooks.capture.budget import held_bytes
from models import data_for

MiB = 2**20


#: An estimator that needs vectors: the default reduction then projects wide layers (the default
#: estimator, ``auto``, works from Gram matrices and keeps them whole).
VECTORS = ["binning"]


def _wide(width: int) -> nn.Module:
    """A layer wider than AUTO_MAX_DIM: the default reduction projects it to 256 dims (a width x 256
    float32 matrix, 4 * width KiB) for estimators that need vectors."""
    return nn.Sequential(nn.Linear(12, width), nn.Tanh(), nn.Linear(width, 3))


def test_a_projection_over_the_budget_is_refused_in_probe_mode(tmp_path):
    x, y = data_for("mlp", 64)
    with pytest.raises(ValueError) as err:  # 2 layers x 4,000 x 256 x 4 bytes = 7.8 MiB under 1 MiB
        ibhooks.IBMonitor(_wide(4000), probe=(x, y), estimators=VECTORS, memory_budget_mb=1, log_dir=tmp_path,
                          verbose=False)
    msg = str(err.value)
    assert "memory_budget_mb=1" in msg and "7.8 MiB of projection matrices (wide layers ['0', '1'])" in msg
    assert "project:64" in msg
    mon = ibhooks.IBMonitor(_wide(4000), probe=(x, y), estimators=VECTORS, memory_budget_mb=9, log_dir=tmp_path,
                            verbose=False)
    mon.step()
    assert held_bytes(mon)["total"] <= 9 * MiB and held_bytes(mon)["projections"] == 2 * 4000 * 256 * 4
    mon.close()


def test_background_snapshots_count(tmp_path):
    """In background mode queue_size snapshots wait for the worker while one more is taken."""
    x, y = data_for("mlp", 2048)
    model = nn.Sequential(nn.Linear(12, 256), nn.Tanh(), nn.Linear(256, 3))  # ~2 MiB per snapshot
    kw = dict(probe=(x, y), memory_budget_mb=8, log_dir=tmp_path, verbose=False)  # 6 MiB sync, 22 background
    ibhooks.IBMonitor(model, **kw).close()
    with pytest.raises(ValueError, match=r"5 snapshots \(background mode: queue_size \+ 1\)"):
        ibhooks.IBMonitor(model, background=True, queue_size=4, **kw)


def test_a_wide_layer_in_passive_mode_is_skipped_not_projected_over_the_budget(tmp_path):
    model = _wide(4000)
    x, y = data_for("mlp", 64)
    mon = ibhooks.IBMonitor(model, schedule=2, estimators=VECTORS, memory_budget_mb=1, passive_min_rows=1,
                            log_dir=tmp_path, verbose=False)
    for _ in range(2):
        F.cross_entropy(model(x), y).backward()
        assert held_bytes(mon)["total"] <= 1 * MiB
        rec = mon.step(y=y)
    slot = mon._capture.slots["0"]
    assert slot.reduction._proj is None and slot.skipped and "memory_budget_mb" in slot.error
    assert {"0", "1"}.isdisjoint(rec.layers) and "2" in rec.layers and rec.n_samples == 64
    row = next(r for r in mon.coverage if r["name"] == "0")
    assert row["status"] == "skipped" and "projection matrix (3.9 MiB" in row["reason"]
    mon.close()


def test_the_passive_reservoir_stays_under_a_16_mib_budget(tmp_path):
    """4,096 rows of 1,030 values (4 KiB) would be 16 MiB: the reservoir is capped, the Record says so."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 1024), nn.Tanh(), nn.Linear(1024, 3), nn.Tanh())
    g = torch.Generator().manual_seed(0)
    mon = ibhooks.IBMonitor(model, schedule=8, max_samples=4096, memory_budget_mb=16, passive_window=8,
                            log_dir=tmp_path, verbose=False)
    peak, rec = 0, None
    for _ in range(8):
        x = torch.randn(512, 12, generator=g)
        y = torch.randint(0, 3, (512,), generator=g)
        for half in (x[:256], x[256:]):  # accumulation: two passes per step
            model(half).sum().backward()
        peak = max(peak, held_bytes(mon)["total"])
        rec = mon.step(y=[y[:256], y[256:]]) or rec
        peak = max(peak, held_bytes(mon)["total"])
    cap = mon._reservoir.max_rows
    mon.close()
    assert peak <= 16 * MiB, f"held {peak / MiB:.1f} MiB"
    assert 1000 < cap < 4096 and rec.n_samples == cap  # a uniform sample of the window's 4,096 rows
    assert rec.info["passive_rows_seen"] == 4096  # 8 steps x 2 passes x 256 rows
    assert rec.info["passive_steps"] == [s for s in range(1, 9) for _ in "ab"]
    assert f"capped at {cap} rows (max_samples=4096)" in rec.info["reservoir_note"]
    assert rec.h_y is not None and not rec.errors


def test_close_releases_everything(tmp_path):
    model = _wide(2000)
    x, y = data_for("mlp", 64)
    mon = ibhooks.IBMonitor(model, schedule=3, estimators=VECTORS, passive_window=3, passive_min_rows=1,
                            log_dir=tmp_path, verbose=False)
    for _ in range(2):
        model(x).sum().backward()
        mon.step(y=y)
    held = held_bytes(mon)
    assert held["projections"] == 2 * 2000 * 256 * 4 and held["reservoir"] > 0
    refs = [weakref.ref(mon._capture.slots["0"].reduction._proj)]
    refs += [weakref.ref(t) for t in mon._reservoir._acts.values()]
    mon.close()
    gc.collect()
    assert all(r() is None for r in refs), "projection or reservoir tensors outlive close()"
    assert held_bytes(mon)["total"] == 0


@pytest.mark.parametrize("name", ["ksg", "ross"])
def test_knn_k_at_least_the_probe_rows_is_refused_at_construction(name, tmp_path):
    x, y = data_for("mlp", 5)
    with pytest.raises(ValueError, match=rf"k=5 but the probe has 5 samples.*\('{name}', \{{'k': 4\}}\)"):
        ibhooks.IBMonitor(_wide(8), probe=(x, y), estimators=[(name, {"k": 5})], log_dir=tmp_path,
                          verbose=False)
    ibhooks.IBMonitor(_wide(8), probe=(x, y), estimators=[(name, {"k": 4})], log_dir=tmp_path,
                      verbose=False, measure_initial=False).close()


def test_the_default_estimator_keeps_wide_layers_whole_only_within_the_budget(tmp_path):
    """``auto`` works from Gram matrices: a wide layer is captured whole (no projection, on its chain)
    while the probe's activations fit the budget, and falls back to the projection when they do not."""
    small, y_small = data_for("mlp", 64)  # 2 layers x 64 rows x 4,000 x 4 bytes = 2 MiB whole
    mon = ibhooks.IBMonitor(_wide(4000), probe=(small, y_small), memory_budget_mb=9, measure_initial=False,
                            log_dir=tmp_path, verbose=False)
    assert {mon._capture.slots[n].reduction.name for n in ("0", "1")} == {"flatten"}
    assert held_bytes(mon)["projections"] == 0 and any({"0", "1"} <= set(c.layers) for c in mon.chains)
    mon.close()
    big, y_big = data_for("mlp", 2048)  # 64 MiB whole: over 16 MiB, so projected (14 MiB in all)
    mon = ibhooks.IBMonitor(_wide(4000), probe=(big, y_big), memory_budget_mb=16, measure_initial=False,
                            log_dir=tmp_path, verbose=False)
    assert held_bytes(mon)["total"] <= 16 * MiB and held_bytes(mon)["projections"] == 2 * 4000 * 256 * 4
    assert not any("0" in c.layers for c in mon.chains)  # a projection is lossy: off the chain
    mon.close()
