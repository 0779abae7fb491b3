"""The binning hot path (ibhooks.estimators._bin_codes) reproduces the float64 binning rule exactly:
same partition of rows into cells and the same end-bin fraction as binning the whole layer, including
values on bin edges, float64 input, fixed ranges with values outside, and rows wider than one int64."""

import pytest
import torch

from ibhooks.estimators._bin_codes import equal_width_row_codes, row_codes_counts
from ibhooks.estimators.binning import bin_indices, equal_width_range


def _layers():
    g = torch.Generator().manual_seed(0)
    for trial in range(120):
        n = int(torch.randint(2, 200, (1,), generator=g))
        d = int(torch.randint(1, 160, (1,), generator=g))
        n_bins = int(torch.randint(1, 40, (1,), generator=g))
        t = torch.randn(n, d, generator=g)
        kind = trial % 5
        if kind == 1:
            t = torch.tanh(3 * t)  # many values near the end bins
        elif kind == 2:
            t = torch.relu(t).round(decimals=1)  # ties and zeros
        elif kind == 3:
            t = (t * 4).round() / 4  # values on bin edges
        elif kind == 4:
            t = t.double()
        rng = (-0.5, 0.7) if trial % 3 == 0 else "layer"
        yield trial, t, n_bins, rng


@pytest.mark.parametrize("trial,t,n_bins,rng", list(_layers())[::6])
def test_same_partition_and_diagnostics_as_binning_the_whole_layer(trial, t, n_bins, rng):
    idx, lo, hi, _ = bin_indices(t, n_bins=n_bins, range=rng, as_float=True)
    codes_full, counts_full = row_codes_counts(idx, n_bins)
    lo2, hi2, diag2 = equal_width_range(t, n_bins, rng)
    codes_fast, counts_fast = equal_width_row_codes(t, lo2, hi2, n_bins)
    assert (lo, hi) == (lo2, hi2)
    # the end-bin fraction, counted on the binned layer itself (the reference) vs by thresholds
    assert diag2["fraction_in_extreme_bins"] == float(((idx == 0) | (idx == n_bins - 1)).sum()) / idx.numel()
    assert diag2["fraction_outside_range"] == float(((t < lo) | (t > hi)).sum()) / t.numel()
    # one partition: the pairs (full code, fast code) are a bijection between the two code sets
    pairs = torch.unique(torch.stack([codes_full, codes_fast], 1), dim=0)
    assert pairs.shape[0] == counts_full.numel() == counts_fast.numel()
    assert sorted(counts_full.tolist()) == sorted(counts_fast.tolist())


def test_wide_layer_stops_early_but_keeps_late_differences():
    # rows identical in the first 500 columns, different only in the last one: refinement must go on
    t = torch.zeros(6, 501)
    t[:, -1] = torch.arange(6, dtype=torch.float32)
    _, _, _ = equal_width_range(t, 30, "layer")
    codes, counts = equal_width_row_codes(t, 0.0, 5.0, 30)
    assert counts.numel() == 6
    t[3:, -1] = 0.0
    codes, counts = equal_width_row_codes(t, 0.0, 2.0, 30)
    assert sorted(counts.tolist()) == [1, 1, 4]
