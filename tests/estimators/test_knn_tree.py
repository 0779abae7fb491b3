"""The KD-tree / sorted neighbour search gives the brute force's values exactly (issue 14 item 5), on
both tree engines: the compiled kernel (where it was built) and scipy's cKDTree."""
import numpy as np
import pytest
import torch

from ibhooks.estimators import _knn_compiled, _knn_sorted, _knn_tree, knn
from ibhooks.estimators.knn import KSG, Ross, kl_entropy


@pytest.fixture(params=["kernel", "scipy"])
def engine(request, monkeypatch):
    """Run a test on the compiled kernel and again with it switched off (scipy's cKDTree, numpy counts)."""
    if request.param == "kernel" and not _knn_compiled.AVAILABLE:
        pytest.skip("the compiled kNN kernel was not built (no C compiler at install time)")
    monkeypatch.setattr(_knn_compiled, "AVAILABLE", request.param == "kernel")
    return request.param


def _data(n, d, seed, ties=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    if ties:  # a coarse grid: many exactly equal coordinates and rows
        x = torch.round(x * 2) / 2
    y = x + torch.randn(n, d, generator=g, dtype=torch.float64)
    return x, y, (x[:, 0] > 0).long() + (y[:, -1] > 1).long()


@pytest.mark.parametrize("d", [1, 2, 4])
@pytest.mark.parametrize("algorithm", [1, 2])
def test_ksg_tree_equals_brute(d, algorithm, engine):
    x, y, _ = _data(700, d, seed=d)
    brute = KSG(algorithm=algorithm, neighbors="brute").mutual_information(x, y)
    tree = KSG(algorithm=algorithm, neighbors="kdtree").mutual_information(x, y)
    assert tree.value == brute.value and tree.ci == brute.ci
    assert tree.diagnostics["neighbor_search"] == "kdtree" and brute.diagnostics["neighbor_search"] == "brute"
    assert tree.diagnostics["tree_engine"] == {"kernel": "compiled", "scipy": "scipy"}[engine]


@pytest.mark.parametrize("d", [1, 3])
def test_ross_and_entropy_tree_equal_brute(d, engine):
    x, y, lab = _data(800, d, seed=10 + d)
    lab[:1] = 7  # a class with one row: dropped the same way on both paths
    for a, b in zip(Ross(neighbors="brute").layer_information(y, lab),
                    Ross(neighbors="kdtree").layer_information(y, lab)):
        assert a.value == b.value


@pytest.mark.parametrize("d", [1, 2])
def test_ties_without_jitter_are_identical_for_value_only_searches(d, engine):
    """Ties as documented: with jitter=0 and duplicated rows, KSG-1, Ross and KL depend on distances only,
    so tree and brute force agree exactly; KSG-2 may pick other tied neighbours (not asserted)."""
    x, y, lab = _data(600, d, seed=20 + d, ties=True)
    assert knn._distinct_rows(x) < 600
    kw = {"jitter": 0.0}
    assert KSG(neighbors="brute", **kw).mutual_information(x, y).value == \
        KSG(neighbors="kdtree", **kw).mutual_information(x, y).value
    assert Ross(neighbors="brute", **kw).mutual_information(x, lab).value == \
        Ross(neighbors="kdtree", **kw).mutual_information(x, lab).value
    big = x + 10.0  # KL of tied rows: log(0) = -inf on both paths; compare on the jittered default instead
    assert kl_entropy(big, neighbors="brute").value == kl_entropy(big, neighbors="kdtree").value


def test_sorted_1d_searches_match_pairwise_counts_with_ties(engine):
    g = torch.Generator().manual_seed(3)
    x = torch.randint(0, 25, (300, 1), generator=g).double() / 7
    dist = (x - x.T).abs().fill_diagonal_(float("inf"))
    for k in (1, 3):
        kth = dist.topk(k, largest=False).values[:, -1]
        assert torch.equal(_knn_tree.kth_distance(x, k), kth)
        assert torch.equal(_knn_tree.count_closer(x, kth, strict=True), (dist < kth[:, None]).sum(1))
        assert torch.equal(_knn_tree.count_closer(x, kth, strict=False), (dist <= kth[:, None]).sum(1))


def test_auto_choice_and_fallback_without_scipy(monkeypatch):
    x, y, _ = _data(300, 1, seed=4)
    assert KSG().mutual_information(x, y).diagnostics["neighbor_search"] == "kdtree"
    wide = torch.randn(300, knn.TREE_MAX_DIM + 1, dtype=torch.float64)
    assert KSG().mutual_information(wide, wide[:, :1]).diagnostics["neighbor_search"] == "brute"
    assert KSG().params()["neighbors"] == "auto"
    monkeypatch.setattr(_knn_tree, "TREE_AVAILABLE", False)
    monkeypatch.setattr(_knn_compiled, "AVAILABLE", False)
    e = KSG().mutual_information(x, y)
    assert e.diagnostics["neighbor_search"] == "brute"
    assert e.value == KSG(neighbors="brute").mutual_information(x, y).value
    with pytest.raises(ValueError, match="scipy"):
        KSG(neighbors="kdtree")
    with pytest.raises(ValueError, match="neighbors must be one of"):
        KSG(neighbors="balltree")


@pytest.mark.parametrize("ties", [False, True])
def test_sorted_counts_at_radii_equal_to_distances(ties, engine):
    """The searchsorted ends, corrected against the brute force's own test, count exactly at the boundary:
    each radius is an exact distance to another row (strict and closed then differ), some are 0 or inf."""
    rng = np.random.default_rng(7 + ties)
    x = rng.standard_normal(500) * 3
    if ties:
        x = np.round(x * 2) / 2
    r = np.abs(x - x[rng.integers(0, 500, 500)])
    r[::13], r[::17] = 0.0, np.inf
    dist = np.abs(x[:, None] - x[None, :])
    off = ~np.eye(500, dtype=bool)
    for strict in (True, False):
        ref = ((dist < r[:, None]) if strict else (dist <= r[:, None])) & off
        assert np.array_equal(_knn_sorted.count_1d(x, r, strict), ref.sum(1))
    assert (_knn_sorted.count_1d(x, r, True) != _knn_sorted.count_1d(x, r, False)).any()


def test_sorted_class_kth_distance_matches_pairwise_with_ties_and_edges(engine):
    """Per-class k-th distances from one (label, value) sort equal the masked pairwise ones, including rows
    at the ends of the array and of each class, duplicated values, and classes smaller than k + 1."""
    rng = np.random.default_rng(11)
    x = np.round(rng.standard_normal(400) * 4) / 4
    labels = rng.integers(0, 5, 400)
    labels[:2] = 9  # a class of two rows: k_i = 1
    labels[2] = 8   # a class of one row: k_i = 0 -> inf
    counts = np.bincount(labels)[labels]
    k_i = np.minimum(counts - 1, 3)
    dist = np.abs(x[:, None] - x[None, :])
    dist[(labels[:, None] != labels[None, :]) | np.eye(400, dtype=bool)] = np.inf
    ref = np.sort(dist, 1)[np.arange(400), np.maximum(k_i, 1) - 1]
    ref[k_i < 1] = np.inf
    assert np.array_equal(_knn_sorted.class_kth_distance_1d(x, labels, k_i), ref)
    for k in (1, 4):
        d = np.abs(x[:, None] - x[None, :]) + np.diag(np.full(400, np.inf))
        assert np.array_equal(_knn_sorted.kth_distance_1d(x, k), np.sort(d, 1)[:, k - 1])


@pytest.mark.parametrize("d", [1, 2])
def test_ross_tree_equals_brute_with_many_small_classes(d, engine):
    """Ross on the sorted (d = 1) and per-class tree (d = 2) paths with 40 classes, some of 1-3 rows."""
    x, _, _ = _data(500, d, seed=30 + d)
    lab = torch.arange(500) % 40
    lab[:3] = 41  # a class of three rows
    lab[3] = 42   # a class of one row (dropped)
    a = Ross(neighbors="brute").mutual_information(x, lab)
    b = Ross(neighbors="kdtree").mutual_information(x, lab)
    assert a.value == b.value and a.diagnostics["rows_dropped_singleton_class"] == 1
