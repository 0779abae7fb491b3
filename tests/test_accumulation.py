"""Gradient accumulation in a plain loop: ``monitor.step()`` once per optimizer step.

Probe mode is unaffected by micro-batches. In passive mode the capture armed by ``step()`` keeps
the first forward pass after it, i.e. the first micro-batch of the next optimizer step, so
``step(y=...)`` must get that micro-batch's labels (Lightning's IBCallback does this itself).
"""
import pytest
import torch
import torch.nn.functional as F

import ibhooks
from models import data_for, mlp_bn_dropout

ACCUM = 3
STEPS = 12


def _train(tmp_path, mode=None):
    torch.manual_seed(0)
    model = mlp_bn_dropout()
    x, y = data_for("mlp", 512)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = None
    if mode == "probe":
        mon = ibhooks.IBMonitor(model, probe=data_for("mlp", 64, seed=1), schedule=4, log_dir=tmp_path, verbose=False)
    elif mode == "passive":
        mon = ibhooks.IBMonitor(model, schedule=4, passive_min_rows=1, log_dir=tmp_path, verbose=False)
    g = torch.Generator().manual_seed(7)
    first_rows = {}
    for step in range(1, STEPS + 1):
        labels = None
        for micro in range(ACCUM):
            idx = torch.randint(0, x.shape[0], (8 + micro,), generator=g)  # micro-batches of 8, 9, 10 rows
            loss = F.cross_entropy(model(x[idx]), y[idx]) / ACCUM
            loss.backward()
            if micro == 0:
                labels = y[idx]
                first_rows[step] = len(idx)
        opt.step()
        opt.zero_grad()
        if mon is not None:
            mon.step(y=labels)  # the labels of the first micro-batch
    records = mon.history if mon is not None else []
    if mon is not None:
        mon.close()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, records, first_rows


@pytest.mark.parametrize("mode", ["probe", "passive"])
def test_gradient_accumulation_plain_loop(mode, tmp_path):
    base, _, _ = _train(tmp_path)
    state, records, first_rows = _train(tmp_path, mode)
    assert all(torch.equal(base[k], state[k]) for k in base)
    assert [r.step for r in records] == ([0, 4, 8, 12] if mode == "probe" else [4, 8, 12])
    for r in records:
        assert r.n_samples == (64 if mode == "probe" else first_rows[r.step])
        assert r.h_y is not None and r.layers
