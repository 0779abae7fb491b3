"""Two-dimensional rank-space box counts equal the brute-force predicate exactly (issue 14 item 5)."""
import numpy as np
import pytest
import torch

from ibhooks.estimators import _knn_compiled, _knn_rank2d, _knn_tree
from ibhooks.estimators.knn import KSG, Ross


def _pairwise_counts(x, y, r, strict):
    dist = np.maximum(np.abs(x[:, None] - x[None, :]), np.abs(y[:, None] - y[None, :]))
    inside = (dist < r[:, None]) if strict else (dist <= r[:, None])
    return (inside & ~np.eye(x.shape[0], dtype=bool)).sum(1)


def _case(n, seed, ties):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n) * 2
    y = np.tanh(x + rng.standard_normal(n))
    if ties:  # coarse grids, a third of the rows one duplicated row
        x, y = np.round(x * 2) / 2, np.round(y * 3) / 3
        x[: n // 3], y[: n // 3] = x[0], y[0]
    other = rng.integers(0, n, n)
    r = np.maximum(np.abs(x - x[other]), np.abs(y - y[other]))  # radii exactly equal to a distance
    r[::5] = rng.random(r[::5].shape[0])
    r[::13], r[::17] = 0.0, np.inf
    return x, y, r


@pytest.mark.parametrize("n", [1, 2, 3, 9, 130, 1001])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("block", [None, 4, 7, "fenwick"])
def test_box_counts_equal_pairwise_predicate(n, ties, block, monkeypatch):
    """Strict and closed, radii equal to exact distances, 0 and inf, duplicated rows, n not a multiple
    of the block, runs inside one block and spanning many; all in numpy, and the compiled sweep."""
    if block == "fenwick" and not _knn_compiled.AVAILABLE:
        pytest.skip("the compiled kNN kernel was not built")
    if block != "fenwick":  # numpy throughout: the runs' searchsorted ends too
        monkeypatch.setattr(_knn_compiled, "AVAILABLE", False)
    kw = {} if block == "fenwick" else {"block": block}
    x, y, r = _case(n, seed=n + 100 * ties, ties=ties)
    for strict in (True, False):
        got = _knn_rank2d.box_counts(x, y, r, strict, **kw)
        assert got.dtype == np.int64
        assert np.array_equal(got, _pairwise_counts(x, y, r, strict)), (strict, block)
    if n > 9:  # the boundary matters: strict and closed differ somewhere
        strict, closed = (_knn_rank2d.box_counts(x, y, r, s, **kw) for s in (True, False))
        assert (strict != closed).any()


def test_block_size_balances_table_and_ends():
    assert _knn_rank2d.block_size(10) == 8 and _knn_rank2d.block_size(10**9) == 64
    assert _knn_rank2d.block_size(2_000) < _knn_rank2d.block_size(16_000) <= 40


@pytest.mark.parametrize("algorithm", [1, 2])
def test_ksg_and_ross_in_two_dimensions_equal_brute_force(algorithm):
    """n above RANK2D_MIN_ROWS: the 2-D marginal counts of KSG (d = 2) and Ross' counts run on the rank
    path and give the brute force's values."""
    n = _knn_tree.RANK2D_MIN_ROWS + 211
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = torch.tanh(x + 0.5 * torch.randn(n, 2, generator=g, dtype=torch.float64))
    lab = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    brute = KSG(algorithm=algorithm, neighbors="brute").mutual_information(x, t)
    fast = KSG(algorithm=algorithm, neighbors="kdtree").mutual_information(x, t)
    assert fast.value == brute.value
    if algorithm == 1:
        assert Ross(neighbors="kdtree").mutual_information(t, lab).value == \
            Ross(neighbors="brute").mutual_information(t, lab).value


def test_ties_without_jitter_on_the_rank_path():
    """Duplicated rows and no jitter: KSG-1 and Ross depend on distances only, so the rank-path counts
    must agree with the brute force exactly."""
    n = _knn_tree.RANK2D_MIN_ROWS + 50
    g = torch.Generator().manual_seed(9)
    x = torch.round(torch.randn(n, 2, generator=g, dtype=torch.float64) * 2) / 2
    t = torch.round((x + torch.randn(n, 2, generator=g, dtype=torch.float64)) * 2) / 2
    lab = (t[:, 0] > 0).long()
    kw = {"jitter": 0.0}
    assert KSG(neighbors="brute", **kw).mutual_information(x, t).value == \
        KSG(neighbors="kdtree", **kw).mutual_information(x, t).value
    assert Ross(neighbors="brute", **kw).mutual_information(t, lab).value == \
        Ross(neighbors="kdtree", **kw).mutual_information(t, lab).value
