"""Geometry analysis: clustering statistics against hand-computed cases, the noise sigma it reads from the
run's estimators, and the figure."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from ibhooks import IBMonitor, load_run
from ibhooks.analyses.geometry import GeometryAnalysis, geometry_statistics, subsample_rows
from ibhooks.plotting import plot_geometry
from ibhooks.schema import Record


def _grid(m: int = 8, spacing: float = 1.0) -> torch.Tensor:
    axis = torch.arange(m, dtype=torch.float32) * spacing
    return torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


def test_two_points_per_class_known_ratio_and_silhouette():
    # class 0 at x = 0, 1; class 1 at x = 10, 11: within distances 1, between 10, 11, 9, 10 (mean 10)
    t = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.0, 0.0]])
    s = geometry_statistics(t, torch.tensor([0, 0, 1, 1]), sigma=1.0)
    assert s["within_mean"] == pytest.approx(1.0, abs=1e-12)
    assert s["between_mean"] == pytest.approx(10.0, abs=1e-12)
    assert s["within_between_ratio"] == pytest.approx(0.1, abs=1e-12)
    # silhouettes: a = 1 for every row; b = 10.5, 9.5, 9.5, 10.5
    assert s["silhouette"] == pytest.approx((9.5 / 10.5 + 8.5 / 9.5) / 2, abs=1e-12)
    assert s["mean_distance"] == pytest.approx((4 * 1 + 2 * 40) / 12, abs=1e-12)  # ordered pairs


def test_merged_fraction_on_a_grid_with_known_spacing():
    g = _grid(8, 1.0)  # 64 points, 112 neighbour pairs at distance 1, 98 diagonal pairs at sqrt(2)
    pairs = 64 * 63 / 2
    s = geometry_statistics(g, sigma=0.6)  # merge distance 1.2: the 112 unit pairs
    assert s["merged_fraction"] == 1.0 and s["merged_pair_fraction"] == pytest.approx(112 / pairs, abs=1e-12)
    s = geometry_statistics(g, sigma=0.75)  # 1.5: unit and diagonal pairs
    assert s["merged_pair_fraction"] == pytest.approx((112 + 98) / pairs, abs=1e-12)
    assert geometry_statistics(g, sigma=0.4)["merged_fraction"] == 0.0  # 0.8 < spacing: nothing merges
    lonely = torch.cat([g, torch.tensor([[100.0, 100.0]])])
    assert geometry_statistics(lonely, sigma=0.6)["merged_fraction"] == pytest.approx(64 / 65, abs=1e-12)
    assert "within_between_ratio" not in s  # no labels: no class statistics


def test_separated_clusters_small_ratio_random_labels_near_one():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=g) * 10
    y = torch.arange(400) % 4
    t = centres[y] + 0.05 * torch.randn(400, 16, generator=g)
    s = geometry_statistics(t, y, sigma=0.1)
    assert s["within_between_ratio"] < 0.02 and s["silhouette"] > 0.97
    blob = torch.randn(400, 16, generator=g)
    s = geometry_statistics(blob, torch.randint(0, 4, (400,), generator=g), sigma=0.1)
    assert abs(s["within_between_ratio"] - 1.0) < 0.03 and abs(s["silhouette"]) < 0.1


def test_scale_invariance_and_wide_layers_through_the_gram_matrix():
    g = torch.Generator().manual_seed(1)
    t, y = torch.randn(50, 6, generator=g), torch.randint(0, 3, (50,), generator=g)
    base = geometry_statistics(t, y, sigma=0.5)
    scaled = geometry_statistics(10 * t, y, sigma=5.0)
    wide = geometry_statistics(torch.cat([t, torch.zeros(50, 200)], 1), y, sigma=0.5)  # D > n: Gram route
    for other in (scaled, wide):
        for key in ("within_between_ratio", "silhouette", "merged_fraction", "merged_pair_fraction"):
            assert other[key] == pytest.approx(base[key], abs=1e-9), key


def test_bad_input_gets_one_clear_error():
    with pytest.raises(ValueError, match="one label per row"):
        geometry_statistics(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long), sigma=1.0)
    with pytest.raises(ValueError, match="sigma must be"):
        geometry_statistics(torch.zeros(4, 2), sigma=0.0)
    with pytest.raises(ValueError, match="n >= 2"):
        geometry_statistics(torch.zeros(1, 2), sigma=1.0)
    with pytest.raises(ValueError, match="max_rows"):
        GeometryAnalysis(max_rows=1)


def test_subsample_is_seeded_and_fixed():
    a, b = subsample_rows(100, 32, 7, torch.device("cpu")), subsample_rows(100, 32, 7, torch.device("cpu"))
    assert torch.equal(a, b) and len(a) == 32 and bool((a[1:] > a[:-1]).all())
    assert subsample_rows(20, 32, 7, torch.device("cpu")) is None


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def _probe(n=96):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 4, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0).long()


def _run(tmp_path, name, estimators, analyses, steps=4):
    mon = IBMonitor(_model(), probe=_probe(), schedule=2, log_dir=tmp_path, run_name=name, verbose=False,
                    estimators=estimators, analyses=analyses)
    opt = torch.optim.SGD(mon.model.parameters(), lr=0.5)
    x, y = _probe()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(mon.model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step()
    mon.close()
    return load_run(tmp_path / f"{name}.jsonl")


@pytest.fixture(scope="module")
def kde_run(tmp_path_factory):
    estimators = ["binning", ("kde", {"noise_var": 0.05})]
    return _run(tmp_path_factory.mktemp("geo"), "kde", estimators, ["geometry"])


def test_sigma_from_the_noise_estimator_or_a_fixed_relative_level(tmp_path, kde_run):
    for rec in kde_run.records:
        geo = rec.analyses["geometry"]
        assert set(geo) == set(rec.layers)
        for stats in geo.values():
            assert stats["sigma_source"] == "kde" and stats["sigma"] == pytest.approx(math.sqrt(0.05))
            assert stats["n"] == 96 and 0 <= stats["merged_fraction"] <= 1
    run = _run(tmp_path, "rel", ["binning"], [("geometry", {"relative_noise": 0.2, "max_rows": 64})])
    first = run.records[0]
    x, _ = _probe()
    with torch.no_grad():
        t0 = _model()[0](x)  # layer "0" at step 0, before training
    idx = subsample_rows(96, 64, 0, torch.device("cpu"))
    expected = math.sqrt(0.2 * float(t0[idx].double().var(0, unbiased=True).mean()))
    assert first.analyses["geometry"]["0"]["sigma"] == pytest.approx(expected, rel=1e-9)
    sigmas = {rec.analyses["geometry"]["0"]["sigma"] for rec in run.records}
    assert len(sigmas) == 1  # fixed at the layer's first measurement, as the estimators' relative noise
    assert all(rec.analyses["geometry"]["0"]["n"] == 64 for rec in run.records)


def test_unknown_estimator_key_refused(tmp_path):
    with pytest.raises(ValueError, match="not one of the run's estimators"):
        IBMonitor(_model(), probe=_probe(), log_dir=tmp_path, verbose=False,
                  analyses=[("geometry", {"estimator": "kde"})])


def test_geometry_figure_draws_from_the_run_log(kde_run):
    fig = plot_geometry(kde_run, estimator="kde")  # make_figures lists it: see test_heldout
    gids = {line.get_gid() for ax in fig.axes for line in ax.get_lines()}
    for layer in kde_run.records[0].layers:
        assert {f"geometry:within_between_ratio:{layer}", f"geometry:merged_fraction:{layer}"} <= gids
    fig.canvas.draw()
    fig = plot_geometry(kde_run, statistics=("merged_pair_fraction", "silhouette"))
    assert len([ax for ax in fig.axes if ax.get_lines()]) == 2 + 1  # plane + the two chosen panels
    with pytest.raises(ValueError, match="statistics must name"):
        plot_geometry(kde_run, statistics=("nope",))
    with pytest.raises(ValueError, match="analyses=\\['geometry'\\]"):
        plot_geometry([Record(step=0, mode="probe", n_samples=2)])
