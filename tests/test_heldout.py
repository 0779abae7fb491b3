"""Held-out probe analysis: results in the run log, the same instrument as the training probe (a held-out
probe equal to the training probe reads exactly the same), training and the training readings unchanged,
passive mode refused, verdict notes, figures."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ibhooks import IBMonitor, load_run
from ibhooks.analyses.heldout import verdict_notes
from ibhooks.plotting import make_figures, plot_heldout_plane
from ibhooks.schema import Record

STEPS = 12


def _data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


def _train(tmp_path, name, analyses=(), estimators=("binning",), probe=None):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    mon = IBMonitor(model, probe=probe or _data(64, 1), schedule=3, log_dir=tmp_path, run_name=name,
                    verbose=False, estimators=list(estimators), analyses=list(analyses))
    x, y = _data(256, 2)
    g = torch.Generator().manual_seed(7)
    for _ in range(STEPS):
        idx = torch.randint(0, 256, (32,), generator=g)
        model.train()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step()
    state = mon.state_dict()
    mon.close()
    trained = {
        "params": {k: v.detach().clone() for k, v in model.named_parameters()},
        "grads": {k: v.grad.clone() for k, v in model.named_parameters()},
        "opt": copy.deepcopy(opt.state_dict()),
        "rng": torch.get_rng_state(),
        "flags": [m.training for m in model.modules()],
    }
    return load_run(tmp_path / f"{name}.jsonl"), trained, state


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("heldout")
    ests = ("binning", ("kde", {"relative_noise": 0.1}))
    plain = _train(tmp, "plain", estimators=(("binning", {"range": "running"}),) + ests[1:])
    # held-out inputs 10x wider: a shared running bin range or relative noise scale would move
    held = _train(tmp, "held", estimators=(("binning", {"range": "running"}),) + ests[1:],
                  analyses=[("heldout", {"probe": (10 * _data(64, 3)[0], _data(64, 3)[1])}), "geometry"])
    return plain, held


def test_results_written_and_training_unchanged(runs):
    (plain, trained0, _), (held, trained1, state) = runs
    assert [r.step for r in held.records] == [0, 3, 6, 9, 12]
    for rec in held.records:
        res = rec.analyses["heldout"]
        assert res["n"] == 64 and res["errors"] == []
        assert set(res["layers"]) == set(rec.layers)
        for per_est in res["layers"].values():
            assert set(per_est) == {"binning", "kde"}
            assert all(d["I_XT"]["value"] is not None and d["I_TY"] is not None for d in per_est.values())
        assert {(v["phase"], v["estimator"]) for v in res["verdicts"]} == {
            (p, e) for p in ("fitting", "compression") for e in ("binning", "kde")}
    # isolation: parameters, gradients, optimizer state, RNG and train flags bit-identical
    for group in ("params", "grads"):
        for k in trained0[group]:
            assert torch.equal(trained0[group][k], trained1[group][k]), f"{group} {k}"
    for k, st in trained0["opt"]["state"].items():
        for name, v in st.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(trained1["opt"]["state"][k][name]))
    assert torch.equal(trained0["rng"], trained1["rng"]) and trained0["flags"] == trained1["flags"]
    # the training probe's readings do not see the held-out data (instrument state restored)
    for a, b in zip(plain.records, held.records):
        for layer, per_est in a.layers.items():
            for key, res in per_est.items():
                other = b.layers[layer][key]
                assert res.i_xt.value == other.i_xt.value and res.i_ty.value == other.i_ty.value
                assert res.i_xt.quantity == other.i_xt.quantity
    assert set(state["analyses"]["heldout"]) == {"train", "heldout"}


@pytest.fixture(scope="module")
def same(tmp_path_factory):
    probe = _data(64, 1)
    analyses = [("heldout", {"probe": probe}), "geometry"]
    return _train(tmp_path_factory.mktemp("same"), "same", analyses=analyses, probe=probe)[0]


def test_same_probe_reads_the_same(same):
    for rec in same.records:
        res = rec.analyses["heldout"]
        for layer, per_est in res["layers"].items():
            for key, d in per_est.items():
                assert d["I_XT"]["value"] == pytest.approx(rec.layers[layer][key].i_xt.value, abs=1e-12)
                assert d["I_TY"]["value"] == pytest.approx(rec.layers[layer][key].i_ty.value, abs=1e-12)
        assert res["notes"] == [] and all(v["train"] == v["heldout"] for v in res["verdicts"])


def test_passive_mode_and_bad_inputs_refused(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    with pytest.raises(ValueError, match="needs probe mode"):
        IBMonitor(model, log_dir=tmp_path, verbose=False, analyses=[("heldout", {"probe": _data(16, 0)})])
    with pytest.raises(ValueError, match="cannot be run through the model"):
        IBMonitor(model, probe=_data(16, 0), log_dir=tmp_path, verbose=False,
                  analyses=[("heldout", {"probe": (torch.randn(16, 5), torch.zeros(16, dtype=torch.long))})])
    with pytest.raises(ValueError, match="needs probe="):
        IBMonitor(model, probe=_data(16, 0), log_dir=tmp_path, verbose=False,
                  analyses=[("heldout", {"probe": None})])


def test_verdict_notes():
    verdicts = [
        {"layer": "fc2", "estimator": "binning", "phase": "compression", "train": "detected",
         "heldout": "not_detected"},
        {"layer": "fc2", "estimator": "binning", "phase": "fitting", "train": "detected",
         "heldout": "detected"},
        {"layer": "fc1", "estimator": "kde", "phase": "fitting", "train": "candidate", "heldout": "detected"},
    ]
    assert verdict_notes(verdicts) == [
        "fc2 / binning: compression detected on the training probe, not detected on the held-out probe",
        "fc1 / kde: fitting a candidate only on the training probe, detected on the held-out probe",
    ]


def test_figures_listed_and_drawn(same):
    figs = make_figures(same)
    assert {"heldout_plane", "geometry"} <= set(figs)
    fig = figs["heldout_plane"]
    gids = {line.get_gid() for ax in fig.axes for line in ax.get_lines()}
    assert all(f"heldout:{layer}" in gids and f"train:{layer}" in gids for layer in same.records[0].layers)
    squares = [c for ax in fig.axes for c in ax.collections if c.get_paths() and len(c.get_offsets())
               and not c.get_facecolors().size]
    assert squares  # hollow held-out markers
    fig.canvas.draw()
    with pytest.raises(ValueError, match="heldout"):
        plot_heldout_plane([Record(step=0, mode="probe", n_samples=2)])
