"""The information-bottleneck bound: known curves (deterministic Y; the doubly symmetric binary source),
shape (monotone, concave, endpoints), no encoder above it, the ib_bound analysis end to end, the figure."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import ibhooks
from ibhooks import IBMonitor, load_run
from ibhooks._ib_solver import encoder_information
from ibhooks.analyses.ib_bound import rule_information
from ibhooks.ib_bound import (
    IBCurve,
    fit_sigmoid_rule,
    information_bottleneck_curve,
    joint_from_conditional,
    joint_from_labels,
    label_noise,
    szt_conditional,
)


def h2(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-300, 1.0)
    q = np.clip(1.0 - p, 1e-300, 1.0)
    return -(p * np.log2(p) + q * np.log2(q))


def h2_inverse(u):
    """The q in [0, 1/2] with h2(q) = u (bisection, 100 halvings: exact to float precision)."""
    lo, hi = np.zeros_like(u), np.full_like(u, 0.5)
    for _ in range(100):
        mid = (lo + hi) / 2
        big = h2(mid) > u
        hi, lo = np.where(big, mid, hi), np.where(big, lo, mid)
    return (lo + hi) / 2


def _random_joint(seed, nx=5, ny=3):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(nx, ny, generator=g, dtype=torch.float64) ** 3
    return p / p.sum()


def test_deterministic_labels_give_the_trivial_curve_exactly():
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 1, 0])
    curve = information_bottleneck_curve(joint_from_labels(y))
    p = np.bincount(y.numpy()) / y.numel()
    h_y = float(-(p * np.log2(p)).sum())
    r = np.linspace(0, math.log2(12), 97)
    assert curve.deterministic and curve.h_x == pytest.approx(math.log2(12), abs=1e-12)
    assert curve.i_xy == pytest.approx(h_y, abs=1e-12)
    np.testing.assert_allclose(curve.at(r), np.minimum(r, h_y), atol=1e-12)


def test_iterations_find_the_trivial_curve_too():
    """The iterative path, forced on a deterministic Y, lands on min(I(X;T), H(Y)) (tolerance 1e-3 bits)."""
    y = torch.tensor([0, 1, 1, 2, 2, 2])
    exact = information_bottleneck_curve(joint_from_labels(y))
    iterated = information_bottleneck_curve(joint_from_labels(y), analytic=False)
    r = np.linspace(0, exact.h_x, 60)
    assert iterated.deterministic
    assert np.abs(iterated.at(r) - exact.at(r)).max() < 1e-3


@pytest.mark.parametrize("eps", [0.1, 0.25])
def test_binary_symmetric_relation_matches_closed_form(eps):
    """X uniform binary, Y = X flipped with probability eps. By Mrs. Gerber's lemma (Wyner & Ziv 1973)
    the IB curve is I(T;Y) = 1 - h2(eps * (1 - q) + q * (1 - eps)) with q = h2^-1(1 - I(X;T)), reached by
    T = X through a BSC(q). Tolerance 1e-4 bits (measured 9e-6 and 3e-6)."""
    curve = information_bottleneck_curve(joint_from_conditional(label_noise(torch.tensor([0, 1]), eps)))
    r = np.linspace(0.0, 1.0, 201)
    q = h2_inverse(1.0 - r)
    truth = 1.0 - h2(eps * (1 - q) + q * (1 - eps))
    assert not curve.deterministic
    assert np.abs(curve.at(r) - truth).max() < 1e-4
    assert curve.i_xy == pytest.approx(1.0 - float(h2(eps)), abs=1e-12)


def test_curve_is_monotone_concave_with_the_right_endpoints():
    joint = _random_joint(3)
    curve = information_bottleneck_curve(joint)
    x, y = curve.i_xt, curve.i_ty
    slopes = np.diff(y) / np.diff(x)
    p_x, p_y = joint.sum(1).numpy(), joint.sum(0).numpy()
    h_x = float(-(p_x * np.log2(p_x)).sum())
    i_xy = float((joint.numpy() * np.log2(joint.numpy() / np.outer(p_x, p_y))).sum())
    assert (np.diff(x) > 0).all()
    assert (slopes >= -1e-12).all() and (np.diff(slopes) <= 1e-9).all()  # non-decreasing, concave
    assert slopes[0] <= 1.0 + 1e-9  # I(T;Y) <= I(X;T)
    assert tuple(curve.points[0]) == (0.0, 0.0)
    assert curve.points[-1, 0] == pytest.approx(h_x, abs=1e-9)
    assert curve.points[-1, 1] == pytest.approx(i_xy, abs=1e-9)


def test_no_random_encoder_lies_above_the_curve():
    """30,000 random channels p(t|x) with |T| in {2, 3, 5}: none lies more than 1e-6 bits above the curve
    (measured: the best one 6e-6 bits below it)."""
    joint = _random_joint(2)
    curve = information_bottleneck_curve(joint)
    p_x = joint.sum(1).numpy()
    p_y_x = joint.numpy() / p_x[:, None]
    rng = np.random.default_rng(0)
    excess = -np.inf
    for t in (2, 3, 5):
        q = rng.random((10_000, 5, t)) ** 4
        q /= q.sum(2, keepdims=True)
        pts = encoder_information(np.log(q), p_x, p_y_x)
        excess = max(excess, float((pts[:, 1] - curve.at(pts[:, 0])).max()))
    assert excess < 1e-6


def test_gap_at_and_round_trip():
    curve = IBCurve(np.array([[0.0, 0.0], [1.0, 0.8], [3.0, 1.0]]), 3.0, 1.0, 1.0, False, "test")
    assert curve.at(0.5) == pytest.approx(0.4)
    assert curve.at(2.0) == pytest.approx(0.9)
    assert curve.at(5.0) == pytest.approx(1.0)  # beyond H(X): I(X;Y)
    assert curve.gap(2.0, 0.5) == pytest.approx(0.4)
    assert curve.gap(0.5, 0.6) == pytest.approx(-0.2)  # above the bound: negative
    np.testing.assert_allclose(curve.gap(np.array([0.5, 2.0]), np.array([0.0, 0.9])), [0.4, 0.0])
    back = IBCurve.from_dict(curve.to_dict())
    np.testing.assert_array_equal(back.points, curve.points)
    assert (back.h_x, back.i_xy, back.deterministic, back.source) == (3.0, 1.0, False, "test")
    assert ibhooks.information_bottleneck_curve is information_bottleneck_curve and ibhooks.IBCurve is IBCurve


def test_label_noise_and_the_szt_rule():
    noisy = label_noise(torch.tensor([0, 2, 1]), 0.3, num_classes=3)
    np.testing.assert_allclose(noisy.numpy(), [[0.7, 0.15, 0.15], [0.15, 0.15, 0.7], [0.15, 0.7, 0.15]])
    # labels drawn from a known sigmoid of the active-bit count: the maximum-likelihood fit recovers it
    x = torch.tensor([[(i >> b) & 1 for b in range(12)] for i in range(4096)], dtype=torch.float32)
    p1 = torch.sigmoid(2.0 * (x.sum(1) - 6.0))
    y = (torch.rand(4096, generator=torch.Generator().manual_seed(0)) < p1).long()
    gain, theta = fit_sigmoid_rule(x.sum(1), y)
    assert gain == pytest.approx(2.0, abs=0.25) and theta == pytest.approx(6.0, abs=0.1)
    rule = szt_conditional(x, gain=2.0, theta=6.0)
    np.testing.assert_allclose(rule[:, 1].numpy(), p1.double().numpy(), atol=1e-6)
    curve = information_bottleneck_curve(joint_from_conditional(rule))
    assert curve.info["n_x_merged"] == 13  # one symbol per active-bit count
    assert curve.h_x == pytest.approx(12.0) and 0.0 < curve.i_xy < curve.h_y


def test_bad_input_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="2-D table"):
        information_bottleneck_curve(np.ones(4))
    with pytest.raises(ValueError, match="non-negative"):
        information_bottleneck_curve(np.array([[0.5, -0.1], [0.3, 0.3]]))
    with pytest.raises(ValueError, match="sum to 1"):
        joint_from_conditional(np.array([[0.5, 0.4]]))
    with pytest.raises(ValueError, match="betas"):
        information_bottleneck_curve(_random_joint(0), betas=[0.0, 1.0])


# --- the analysis ------------------------------------------------------------------------------


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3), nn.Tanh())


def _probe():
    g = torch.Generator().manual_seed(1)
    return torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g)


def _train(mon, model, probe, steps):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = probe
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step()
    mon.close()


def test_analysis_logs_gaps_to_the_trivial_bound(tmp_path):
    model, probe = _model(), _probe()
    mon = IBMonitor(
        model,
        probe=probe,
        schedule=3,
        log_dir=tmp_path,
        run_name="det",
        verbose=False,
        estimators=[("binning", {"n_bins": 8}), "kde"],
        analyses=["ib_bound"],
    )
    _train(mon, model, probe, 6)
    run = load_run(tmp_path / "det.jsonl")
    entries = [r.analyses["ib_bound"] for r in run.records]
    assert "curve" in entries[0] and all("curve" not in e and e["curve_step"] == 0 for e in entries[1:])
    curve = IBCurve.from_dict(entries[0]["curve"])
    assert curve.deterministic and curve.h_x == pytest.approx(6.0)
    for rec, entry in zip(run.records, entries):
        assert set(entry["gaps"]) == set(rec.layers)
        for layer, per_est in rec.layers.items():
            for key, res in per_est.items():
                assert entry["gaps"][layer][key] == pytest.approx(
                    curve.gap(res.i_xt.value, res.i_ty.value), abs=1e-8
                )
    # the 16-unit tanh layer keeps all 64 rows apart under 8 bins: it sits at the bound's end, gap 0
    assert run.records[0].layers["1"]["binning"].i_xt.value == pytest.approx(6.0)
    assert entries[0]["gaps"]["1"]["binning"] == pytest.approx(0.0, abs=1e-9)


def test_analysis_under_label_noise_measures_i_ty_under_the_rule(tmp_path):
    model, probe = _model(), _probe()
    mon = IBMonitor(
        model,
        probe=probe,
        schedule=3,
        log_dir=tmp_path,
        run_name="noisy",
        verbose=False,
        estimators=[("binning", {"n_bins": 8}), "kde"],
        analyses=[("ib_bound", {"label_noise": 0.2})],
    )
    _train(mon, model, probe, 3)
    run = load_run(tmp_path / "noisy.jsonl")
    entry = run.records[0].analyses["ib_bound"]
    curve = IBCurve.from_dict(entry["curve"])
    assert not curve.deterministic and "kde" in entry["skipped"]
    rule = label_noise(probe[1], 0.2)
    # layer "1" keeps every row apart: I(T;Y) under the rule is I(X;Y) of the rule, the gap 0
    assert entry["i_ty_rule"]["1"]["binning"] == pytest.approx(curve.i_xy, abs=1e-9)
    assert entry["gaps"]["1"]["binning"] == pytest.approx(0.0, abs=1e-8)
    # one cell holding every row: no information
    assert rule_information(torch.zeros(64, dtype=torch.long), rule) == pytest.approx(0.0, abs=1e-12)
    for rec in run.records:
        e = rec.analyses["ib_bound"]
        for layer, per_est in e["i_ty_rule"].items():
            assert e["gaps"][layer]["binning"] == pytest.approx(
                curve.gap(rec.layers[layer]["binning"].i_xt.value, per_est["binning"]), abs=1e-8
            )


def test_analysis_refuses_passive_mode_and_unlabelled_probes(tmp_path):
    with pytest.raises(ValueError, match="needs a fixed probe"):
        IBMonitor(_model(), schedule=1, log_dir=tmp_path, run_name="p", verbose=False, analyses=["ib_bound"])
    with pytest.raises(ValueError, match="needs labels"):
        IBMonitor(
            _model(),
            probe=_probe()[0],
            schedule=1,
            log_dir=tmp_path,
            run_name="u",
            verbose=False,
            analyses=["ib_bound"],
        )
    with pytest.raises(ValueError, match="one row per probe row"):
        IBMonitor(
            _model(),
            probe=_probe(),
            schedule=1,
            log_dir=tmp_path,
            run_name="r",
            verbose=False,
            analyses=[("ib_bound", {"p_y_given_x": torch.full((10, 2), 0.5)})],
        )


def test_plane_draws_the_bound_and_says_when_it_is_trivial(tmp_path):
    from ibhooks.plotting import close_figure, plot_information_plane

    model, probe = _model(), _probe()
    for name, spec in (("det", "ib_bound"), ("noisy", ("ib_bound", {"label_noise": 0.2}))):
        mon = IBMonitor(
            model,
            probe=probe,
            schedule=2,
            log_dir=tmp_path,
            run_name=name,
            verbose=False,
            estimators=[("binning", {"n_bins": 8})],
            analyses=[spec],
        )
        _train(mon, model, probe, 2)
        fig = plot_information_plane(tmp_path / f"{name}.jsonl")
        ax = fig.axes[0]
        bound = [line for line in ax.lines if line.get_gid() == "ib_bound"]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        curve = IBCurve.from_dict(
            load_run(tmp_path / f"{name}.jsonl").records[0].analyses["ib_bound"]["curve"]
        )
        assert len(bound) == 1
        np.testing.assert_allclose(bound[0].get_ydata(), curve.i_ty)
        if name == "det":
            assert "IB bound: trivial, Y = f(X)" in labels
        else:
            assert "IB bound" in labels and "I(T;Y) under the rule" in labels
            assert any((line.get_gid() or "").startswith("rule:") for line in ax.lines)
        fig.canvas.draw()
        close_figure(fig)
