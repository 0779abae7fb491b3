"""Gradient accumulation and validation forwards in a plain loop: ``monitor.step()`` once per optimizer
step, training stays bit-identical.

Probe mode is unaffected by micro-batches. In passive mode every training forward since the last step is
captured (validation forwards, in eval mode or under ``no_grad``, are not) and ``step(y=[...])`` gets one
label tensor per micro-batch, in order.
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
    x_val = data_for("mlp", 40, seed=3)[0]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = None
    if mode == "probe":
        mon = ibhooks.IBMonitor(model, probe=data_for("mlp", 64, seed=1), schedule=4, log_dir=tmp_path,
                                verbose=False)
    elif mode == "passive":
        mon = ibhooks.IBMonitor(model, schedule=4, passive_min_rows=1, log_dir=tmp_path, verbose=False)
    g = torch.Generator().manual_seed(7)
    step_rows = {}
    for step in range(1, STEPS + 1):
        labels = []
        for micro in range(ACCUM):
            idx = torch.randint(0, x.shape[0], (8 + micro,), generator=g)  # micro-batches of 8, 9, 10 rows
            loss = F.cross_entropy(model(x[idx]), y[idx]) / ACCUM
            loss.backward()
            labels.append(y[idx])
        step_rows[step] = sum(len(t) for t in labels)
        opt.step()
        opt.zero_grad()
        model.eval()  # a validation forward in eval mode ...
        with torch.no_grad():
            model(x_val)
        model.train()
        with torch.no_grad():  # ... and one in training mode under no_grad: neither is captured
            model(x_val)
        if mon is not None:
            mon.step(y=labels)  # one label tensor per micro-batch, in order
    records = mon.history if mon is not None else []
    if mon is not None:
        mon.close()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, records, step_rows


@pytest.mark.parametrize("mode", ["probe", "passive"])
def test_gradient_accumulation_plain_loop(mode, tmp_path):
    base, _, _ = _train(tmp_path)
    state, records, step_rows = _train(tmp_path, mode)
    assert all(torch.equal(base[k], state[k]) for k in base), "training changed under the monitor"
    assert [r.step for r in records] == ([0, 4, 8, 12] if mode == "probe" else [4, 8, 12])
    for r in records:
        # passive: the three micro-batches of the step (27 rows), not the 40 rows of a validation forward
        assert r.n_samples == (64 if mode == "probe" else step_rows[r.step])
        assert r.h_y is not None and r.layers and "labels_missing" not in r.info
        assert all(res.i_ty is not None for est in r.layers.values() for res in est.values())
        if mode == "passive":
            assert r.info["passive_steps"] == [r.step] * ACCUM
