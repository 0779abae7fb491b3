"""Binning against exact discrete truth, the Saxe minimal model (normal CDF), running/adaptive ranges
and the bootstrap."""
import math

import numpy as np
import pytest
import torch

from _estimator_truth import plugin_mi_from_counts, saxe_minimal_entropy
from ibhooks.estimators.binning import AdaptiveBinning, Binning
from ibhooks.estimators.registry import make_estimator

H_Y_SZT = 0.999157  # var_u.mat labels, ESTIMATORS_AND_PAPERS §6a A1


def patterns12() -> torch.Tensor:
    i = torch.arange(4096).unsqueeze(1)
    return ((i >> torch.arange(11, -1, -1)) & 1).float()


def test_4096_distinct_patterns_give_12_bits_and_copy_of_labels():
    from ibhooks.data import load_szt

    x, y = load_szt()
    for rng in ("layer", (-1.0, 1.0), "running", "adaptive"):
        i_xt, i_ty = Binning(range=rng).layer_information(x, y, layer="l1")
        assert abs(i_xt.value - 12.0) < 1e-9 and i_xt.saturated and i_xt.kind == "exact"
        assert abs(i_ty.value - H_Y_SZT) < 1e-6
    i_xt, i_ty = Binning().layer_information(y.float(), y)  # a layer that copies Y
    assert abs(i_xt.value - H_Y_SZT) < 1e-6 and abs(i_ty.value - H_Y_SZT) < 1e-6
    i_xt, i_ty = Binning().layer_information(torch.full((4096, 3), 0.3), y)  # constant layer
    assert i_xt.value == 0.0 and i_ty.value == 0.0


def test_discrete_joint_table_with_known_mi():
    counts = np.array([[30, 5, 5], [5, 40, 10], [2, 3, 60], [20, 20, 0]])
    rows, cols = np.nonzero(counts)
    t_vals, y_vals = [], []
    for a, b in zip(rows, cols):
        t_vals += [float(a)] * counts[a, b]
        y_vals += [int(b)] * counts[a, b]
    t, y = torch.tensor(t_vals).unsqueeze(1), torch.tensor(y_vals)
    i_xt, i_ty = Binning(n_bins=4, range=(-0.5, 3.5)).layer_information(t, y)
    p_t = counts.sum(1) / counts.sum()
    assert abs(i_xt.value - float(-(p_t * np.log2(p_t)).sum())) < 1e-9
    assert abs(i_ty.value - plugin_mi_from_counts(counts)) < 1e-9  # tolerance: float rounding only


@pytest.mark.parametrize("w", [0.5, 1.0, 3.0, 10.0, 50.0])
def test_saxe_minimal_model_matches_normal_cdf(w):
    n = 200_000
    x = torch.randn(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    est, _ = Binning(n_bins=30, range=(-1.0, 1.0)).layer_information(torch.tanh(w * x).unsqueeze(1))
    truth = saxe_minimal_entropy(w)
    # Plug-in bias is about -(30-1)/(2 n ln 2) = -1e-4 bits; sampling sd of H at n=2e5 is ~0.005 bits.
    assert abs(est.value - truth) < 0.02, (w, est.value, truth)


def test_saxe_minimal_model_rises_then_falls_towards_one_bit():
    ws = [0.1, 0.3, 1.0, 3.0, 10.0, 100.0, 1e4]
    truth = [saxe_minimal_entropy(w) for w in ws]
    x = torch.randn(100_000, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    est = [Binning(range=(-1.0, 1.0)).layer_information(torch.tanh(w * x).unsqueeze(1))[0].value for w in ws]
    top = int(np.argmax(est))
    assert 0 < top < len(ws) - 1 and top == int(np.argmax(truth))
    assert all(est[i] < est[i + 1] for i in range(top)) and all(est[i] > est[i + 1] for i in range(top, len(ws) - 1))
    assert abs(est[-1] - 1.0) < 0.02  # two saturated bins at w -> inf (Saxe Fig. 2C)


def test_running_range_keeps_the_widest_range_per_layer_and_checkpoints():
    n = 3000
    wide = ((torch.arange(n) + 0.5) / n).unsqueeze(1)  # range ~[0, 1)
    narrow = wide * 0.5  # occupies exactly 15 of 30 running bins, 200 rows each
    b = Binning(range="running")
    b.layer_information(wide, layer="a")
    h_run = b.layer_information(narrow, layer="a")[0]
    assert abs(h_run.value - math.log2(15)) < 1e-9 and "running" in h_run.quantity
    h_other = b.layer_information(narrow, layer="b")[0]  # a fresh layer uses its own range
    assert abs(h_other.value - math.log2(30)) < 0.01
    b2 = Binning(range="running")
    b2.load_state_dict(b.state_dict())
    assert b2.layer_information(narrow, layer="a")[0].value == h_run.value
    assert Binning(range="layer").layer_information(narrow)[0].value > h_run.value + 0.9


def test_adaptive_equal_mass_bins():
    n = 3000
    t = torch.randn(n, 1, generator=torch.Generator().manual_seed(3))
    h = AdaptiveBinning(n_bins=30).layer_information(t)[0]
    assert abs(h.value - math.log2(30)) < 1e-9  # n/30 distinct values per bin exactly
    # quantile edges commute with a strictly increasing map applied to all units
    t2 = torch.randn(n, 3, generator=torch.Generator().manual_seed(4))
    y = (t2[:, 0] > 0).long()
    a = Binning(range="adaptive").layer_information(t2, y)
    b = Binning(range="adaptive").layer_information(torch.exp(t2), y)
    assert a[0].value == b[0].value and a[1].value == b[1].value
    assert make_estimator("binning_adaptive").layer_information(t2)[0].value == a[0].value


def test_bootstrap_ci_matches_delta_method_and_leaves_global_rng_alone():
    p = np.array([0.5, 0.25, 0.15, 0.1])
    n = 2000
    codes = torch.multinomial(torch.tensor(p), n, replacement=True, generator=torch.Generator().manual_seed(5))
    t = codes.float().unsqueeze(1)
    state = torch.random.get_rng_state()
    e = Binning(n_bins=4, n_boot=300, seed=1).layer_information(t)[0]
    assert torch.equal(state, torch.random.get_rng_state())
    # delta method: Var(H_hat) ~ Var(log2 p(T)) / n
    lp = np.log2(p)
    sd_delta = math.sqrt(((p * lp ** 2).sum() - (p * lp).sum() ** 2) / n)
    assert e.diagnostics["bootstrap_sd"] == pytest.approx(sd_delta, rel=0.25)
    assert e.ci[0] < e.value < e.ci[1]
    assert Binning(n_bins=4, n_boot=300, seed=1).layer_information(t)[0].ci == e.ci  # reproducible


def test_bad_input_and_settings_rejected():
    with pytest.raises(ValueError, match="NaN"):
        Binning().layer_information(torch.tensor([[0.0], [float("nan")]]))
    with pytest.raises(ValueError, match="range"):
        Binning(range="global")
    with pytest.raises(ValueError, match="n_boot"):
        Binning(n_boot=-1)
    e = Binning().layer_information(torch.randn(100, 2, dtype=torch.float32))[0]  # float32 accepted
    assert 0 < e.value <= math.log2(100)


def test_wide_rows_are_coded_exactly_as_unique_dim0():
    """Rows too wide to pack into one int64 are coded by lexicographic refinement: the same partition of
    the rows as torch.unique(dim=0), with duplicates, and with differences only in the last column."""
    from ibhooks.estimators.binning import _row_codes_counts

    g = torch.Generator().manual_seed(3)
    for n, d, k, dup in [(512, 300, 30, 4), (512, 300, 30, 1), (256, 400, 2, 8), (40, 70, 30, 1)]:
        base = torch.randint(0, k, (max(1, n // dup), d), generator=g)
        x = base[torch.randint(0, base.shape[0], (n,), generator=g)]
        x[:, -1] = torch.where(torch.rand(n, generator=g) < 0.3, x[:, -1], 0)
        codes, counts = _row_codes_counts(x, k)
        _, ref, ref_counts = torch.unique(x, dim=0, return_inverse=True, return_counts=True)
        assert torch.equal(codes.unsqueeze(0) == codes.unsqueeze(1), ref.unsqueeze(0) == ref.unsqueeze(1))
        assert sorted(counts.tolist()) == sorted(ref_counts.tolist())
