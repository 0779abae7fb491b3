"""Calibration twin: the twin's Monte Carlo truth against quadrature, the twin's moments, the Woodbury
(wide-layer) path against the dense formula, the monitor writing ``analyses["calibration"]``, and the
curves figure drawing the band."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
from scipy import integrate, stats

from ibhooks import IBMonitor, load_run
from ibhooks.analyses import build_analyses
from ibhooks.analyses._twin import fit_twin, from_moments
from ibhooks.analyses.calibration import CalibrationTwin, direct_xt, is_large
from ibhooks.estimators.noisy_channel import NoisyChannel


def _quadrature_bits(delta: float, p: float, var: float = 1.0) -> float:
    """I(T;Y) of p N(-delta/2, var) + (1-p) N(delta/2, var) by adaptive quadrature (bits)."""
    sd = math.sqrt(var)

    def integrand(x: float) -> float:
        a = p * stats.norm.pdf(x, -delta / 2, sd)
        b = (1 - p) * stats.norm.pdf(x, delta / 2, sd)
        m = a + b
        return sum(m * (q / m) * math.log((q / m) / pr) for q, pr in ((a, p), (b, 1 - p)) if q > 0)

    return integrate.quad(integrand, -40, 40, limit=400, epsabs=1e-12)[0] / math.log(2)


@pytest.mark.parametrize("delta,p,noise",
                         [(0.5, 0.5, 0.0), (2.0, 0.5, 0.0), (3.0, 0.2, 0.0), (2.0, 0.5, 0.5)])
def test_mc_truth_matches_quadrature_in_1d(delta, p, noise):
    twin = from_moments(torch.tensor([[-delta / 2], [delta / 2]]), torch.eye(1), torch.tensor([p, 1 - p]))
    value, se = twin.label_information(torch.Generator().manual_seed(0), samples=50_000, noise_var=noise)
    exact = _quadrature_bits(delta, p, 1.0 + noise)
    assert se < 3e-3  # 50k draws: a few thousandths of a bit at most
    assert abs(value - exact) < 4 * se + 1e-4, (value, exact, se)


def _layer(n: int, d: int, k: int, sep: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % k
    mu = torch.randn(k, d, generator=g) * sep / math.sqrt(d)
    scale = torch.rand(d, generator=g) + 0.5  # anisotropic within-class spread
    return mu[y] + torch.randn(n, d, generator=g) * scale, y


@pytest.mark.parametrize("d", [6, 160])  # the D x D path and the n x n (Woodbury) path
def test_twin_keeps_class_means_and_its_gram_matches_the_dense_formula(d):
    t, y = _layer(120, d, 3, 3.0, 1)
    twin = fit_twin(t, y)
    means = torch.stack([t[y == c].double().mean(0) for c in range(3)])
    assert torch.allclose(twin.means, means, atol=1e-5)
    # dense Sigma = (1 - a) S_w + a nu I from the same residuals
    resid = (t.double() - means[y])
    s_w = resid.T @ resid / (120 - 3)
    nu = float(s_w.diagonal().mean())
    sigma = (1 - twin.shrinkage) * s_w + twin.shrinkage * nu * torch.eye(d, dtype=torch.float64)
    c = means - twin.proportions @ means
    dense = c @ torch.linalg.solve(sigma, c.T)
    assert torch.allclose(twin.mahalanobis_gram(), dense, rtol=1e-6, atol=1e-8 * float(dense.abs().max()))
    noisy = c @ torch.linalg.solve(sigma + 0.3 * torch.eye(d, dtype=torch.float64), c.T)
    assert torch.allclose(twin.mahalanobis_gram(0.3), noisy, rtol=1e-6, atol=1e-8 * float(noisy.abs().max()))


def test_twin_samples_have_its_moments():
    t, y = _layer(200, 5, 2, 3.0, 2)
    twin = fit_twin(t, y, shrinkage=0.2)
    labels = torch.arange(40_000) % 2
    rows = twin.sample(labels, torch.Generator().manual_seed(3)).double()
    for c in range(2):
        got = rows[labels == c].mean(0)
        sd = rows[labels == c].std(0) / math.sqrt(20_000)
        assert torch.all((got - twin.means[c]).abs() < 5 * sd)  # 5 standard errors per coordinate
    resid = rows - twin.means[labels]
    cov = resid.T @ resid / rows.shape[0]
    means = twin.means[y]
    r = t.double() - means
    s_w = r.T @ r / (200 - 2)
    sigma = 0.8 * s_w + 0.2 * float(s_w.diagonal().mean()) * torch.eye(5, dtype=torch.float64)
    assert torch.allclose(cov, sigma, atol=0.05 * float(sigma.diagonal().max()))  # 40k rows: ~1 % noise


def test_debiased_means_remove_the_spread_of_sample_means():
    t, y = _layer(200, 50, 4, 0.0, 4)  # no class signal: the truth is 0 bits
    g = torch.Generator().manual_seed(5)
    plain = fit_twin(t, y).label_information(g, samples=20_000)[0]
    debiased = fit_twin(t, y, means="debiased").label_information(g, samples=20_000)[0]
    # 50 units, 50 rows a class: the sample means look apart (measured 0.56 bits); debiased keeps a
    # positive part (measured 0.12 bits), well under half of it
    assert plain > 0.3 and debiased < 0.5 * plain


def test_direct_xt_matches_the_noisy_channel_estimator():
    t = torch.randn(96, 3, generator=torch.Generator().manual_seed(6))
    value, se = direct_xt(t, 0.2, 40_000, seed=11)
    est = NoisyChannel(noise_var=0.2, mc_samples=40_000, seed=12).layer_information(t)[0]
    assert 0 < se < 0.02
    assert abs(value - est.value) < 4 * math.hypot(se, est.stderr)


def test_large_flag_threshold():
    assert is_large(0.11, 0.5, 0.1, 0.1) and not is_large(0.09, 0.5, 0.1, 0.1)
    assert not is_large(0.25, 3.0, 0.1, 0.1) and is_large(-0.35, 3.0, 0.1, 0.1)  # 10 % of 3 bits


def test_bad_settings_get_one_clear_error():
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        CalibrationTwin(every=0)
    with pytest.raises(ValueError, match="means must be one of"):
        CalibrationTwin(means="median")
    with pytest.raises(ValueError, match="shrinkage must be None"):
        CalibrationTwin(shrinkage=2.0)
    with pytest.raises(ValueError, match="unknown estimators"):
        IBMonitor(_model(), probe=_probe(), verbose=False, log_dir=None, estimators=["kde"],
                  analyses=[("calibration", {"estimators": ["binning"]})])


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 24), nn.Tanh(), nn.Linear(24, 3))


def _probe():
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 3, (128,), generator=g)
    return torch.randn(3, 6, generator=g)[y] * 2 + torch.randn(128, 6, generator=g), y


@pytest.fixture(scope="module")
def calibrated_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("cal")
    analysis = build_analyses([("calibration", {"every": 2, "mc_samples": 20_000, "xt_mc_samples": 8_192})])
    mon = IBMonitor(_model(), probe=_probe(), schedule=1, log_dir=path, run_name="c", verbose=False,
                    estimators=["kde", "binning"], analyses=analysis)
    for _ in range(2):
        mon.step()
    mon.close()
    return load_run(path / "c.jsonl")


def test_monitor_writes_calibration_every_other_measurement(calibrated_run):
    recs = calibrated_run.records
    assert [r.step for r in recs] == [0, 1, 2]
    assert "calibration" not in recs[1].analyses  # every=2
    for rec in (recs[0], recs[2]):
        cal = rec.analyses["calibration"]
        assert set(cal["layers"]) == set(rec.layers)
        for layer, per_est in cal["layers"].items():
            assert set(per_est) == {"kde", "binning"}
            kde = per_est["kde"]
            ty = kde["I_TY"]
            assert ty["error"] == pytest.approx(ty["twin_estimate"] - ty["truth"])
            assert 0 <= ty["truth"] <= math.log2(3) + 4 * ty["mc_se"] and ty["mc_se"] < 0.02
            assert ty["quantity"].startswith("I(T+N(0,0.1I)")  # the truth of what kde measures
            xt = kde["I_XT"]
            assert xt["method"] == "direct" and xt["estimate"] == rec.layers[layer]["kde"].i_xt.value
            assert xt["error"] >= -4 * xt["mc_se"]  # the KDE upper bound sits above the MC value
            assert per_est["binning"]["I_XT"]["method"] == "exact"
            assert per_est["binning"]["I_TY"]["quantity"] == "I(T;Y)"
        assert cal["flagged"] == [f"{layer}/{est}/{q}" for layer, d in cal["layers"].items()
                                  for est, e in d.items() for q, c in e.items() if c.get("large")]


def test_curves_draw_the_band_and_the_large_marker(calibrated_run):
    from ibhooks import plotting

    recs = calibrated_run.records
    layer = next(iter(recs[0].layers))
    entry = recs[2].analyses["calibration"]["layers"][layer]["kde"]["I_TY"]
    entry["large"] = True  # make sure one marker is drawn
    fig = plotting.plot_layer_curves(recs, estimator="kde")
    gids = {c.get_gid() for ax in fig.axes for c in ax.collections}
    assert f"calibration:I_TY:{layer}" in gids and f"calibration:I_XT:{layer}" in gids
    assert f"calibration-large:I_TY:{layer}" in gids
    band = next(c for ax in fig.axes for c in ax.collections if c.get_gid() == f"calibration:I_TY:{layer}")
    ys = band.get_paths()[0].vertices[:, 1]
    value = recs[2].layers[layer]["kde"].i_ty.value
    assert ys.max() == pytest.approx(max(value + abs(entry["error"]),
                                         recs[0].layers[layer]["kde"].i_ty.value
                                         + abs(recs[0].analyses["calibration"]["layers"][layer]["kde"]["I_TY"]
                                               ["error"])))
    no_cal = [type(r)(**{**r.__dict__, "analyses": {}}) for r in recs]
    plain = plotting.plot_layer_curves(no_cal, estimator="kde")
    gids = {c.get_gid() for ax in plain.axes for c in ax.collections}
    assert not any(str(g).startswith("calibration") for g in gids)
