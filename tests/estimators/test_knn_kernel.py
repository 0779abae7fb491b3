"""The compiled kNN kernel (ibhooks/estimators/knn_kernel/) against numpy's pairwise max-norm distances:
exact equality, with ties, duplicated rows, radii equal to distances, 0 and inf, and bad calls."""
import os
import shutil
import sysconfig

import numpy as np
import pytest

from ibhooks.estimators import _knn_compiled

needs_kernel = pytest.mark.skipif(not _knn_compiled.AVAILABLE, reason="the compiled kNN kernel was not built")


def _pairwise(x):
    return np.abs(x[:, None, :] - x[None, :, :]).max(-1)


def _points(n, d, seed, kind):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    if kind == "grid":  # coarse grid: many equal coordinates and duplicated rows
        x = np.round(x * 2) / 2
    elif kind == "line":  # all rows on one line: every split is along the same axis's order
        x = np.repeat(rng.standard_normal((n, 1)), d, axis=1)
    elif kind == "clusters":  # a few tight clusters far apart
        x = rng.integers(0, 4, (n, 1)) * 100.0 + 1e-3 * x
    return x


@needs_kernel
@pytest.mark.parametrize("kind", ["normal", "grid", "line", "clusters"])
@pytest.mark.parametrize("d", [1, 2, 3, 6])
def test_nearest_equals_sorted_pairwise_distances(kind, d):
    x = _points(300, d, seed=d, kind=kind)
    dist = _pairwise(x) + np.diag(np.full(300, np.inf))  # the row itself is not a neighbour
    ref = np.sort(dist, 1)
    for k in (1, 3, 10):
        got, rows = _knn_compiled.nearest(x, k, with_rows=True)
        assert np.array_equal(got, ref[:, :k])
        # the rows returned are at exactly those distances, and never the row itself
        assert np.array_equal(np.take_along_axis(dist, rows, 1), got)
        assert not (rows == np.arange(300)[:, None]).any()


@needs_kernel
@pytest.mark.parametrize("kind", ["normal", "grid", "clusters"])
@pytest.mark.parametrize("d", [1, 2, 4, 6])
def test_counts_at_radii_equal_to_distances(kind, d):
    """Each radius is an exact distance to another row (strict and closed counts then differ); some are 0,
    some inf, some tiny. The row itself is counted (distance 0)."""
    rng = np.random.default_rng(40 + d)
    x = _points(400, d, seed=50 + d, kind=kind)
    dist = _pairwise(x)
    r = dist[np.arange(400), rng.integers(0, 400, 400)]
    r[::13], r[::17], r[::19] = 0.0, np.inf, 1e-300
    for strict in (True, False):
        ref = (dist < r[:, None]) if strict else (dist <= r[:, None])
        assert np.array_equal(_knn_compiled.count_within(x, r, strict), ref.sum(1))
    assert (_knn_compiled.count_within(x, r, True) != _knn_compiled.count_within(x, r, False)).any()


@needs_kernel
def test_smallest_inputs_and_bad_calls():
    x = np.array([[0.0, 1.0], [2.0, -1.0]])
    assert np.array_equal(_knn_compiled.nearest(x, 1)[0], [[2.0], [2.0]])
    assert np.array_equal(_knn_compiled.count_within(x, np.array([2.0, 2.5]), True), [1, 2])
    with pytest.raises(ValueError, match="k < n"):
        _knn_compiled.nearest(x, 2)
    with pytest.raises(ValueError, match="radius"):
        _knn_compiled.count_within(x, np.array([1.0]), True)


@needs_kernel
def test_leaves_larger_than_a_leaf_of_equal_rows():
    """A block of identical rows cannot be split: it stays one leaf, and its rows are at distance 0."""
    x = np.vstack([np.zeros((50, 2)), np.random.default_rng(0).standard_normal((50, 2)) + 5])
    got = _knn_compiled.nearest(x, 3)[0]
    assert (got[:50] == 0).all()
    assert np.array_equal(got, np.sort(_pairwise(x) + np.diag(np.full(100, np.inf)), 1)[:, :3])


@needs_kernel
@pytest.mark.parametrize("strict", [True, False])
def test_run_bounds_and_fenwick_counts_equal_the_predicate(strict):
    """The galloping run ends (queries in any order) and the Fenwick sweep over rank runs, each against the
    brute-force predicate, with ties, radii equal to distances, 0 and inf."""
    rng = np.random.default_rng(5)
    s = np.sort(np.round(rng.standard_normal(300) * 3) / 3)
    v = rng.permutation(np.concatenate([s[:150], rng.standard_normal(150)]))
    r = np.abs(v - s[rng.integers(0, 300, 300)])
    r[::11], r[::13] = 0.0, np.inf
    inside = (np.abs(v[:, None] - s[None, :]) < r[:, None]) if strict else \
        (np.abs(v[:, None] - s[None, :]) <= r[:, None])
    lo, hi = _knn_compiled.run_bounds(s, v, r, strict)
    assert np.array_equal(hi - lo, inside.sum(1))
    assert all(inside[i, lo[i]:hi[i]].all() for i in range(300))
    p = rng.permutation(300)  # x-rank -> y-rank, and random runs of both
    xlo, ylo = rng.integers(0, 300, 300), rng.integers(0, 300, 300)
    xhi = np.minimum(xlo + rng.integers(0, 80, 300), 300)
    yhi = np.minimum(ylo + rng.integers(0, 80, 300), 300)
    a = np.arange(300)
    ref = [((a >= xlo[i]) & (a < xhi[i]) & (p >= ylo[i]) & (p < yhi[i])).sum() for i in range(300)]
    assert np.array_equal(_knn_compiled.rank_box_counts(p, xlo, xhi, ylo, yhi), ref)
    with pytest.raises(ValueError, match="ranks and runs"):
        _knn_compiled.rank_box_counts(p, xlo, xhi + 1000, ylo, yhi)


@needs_kernel
def test_class_kth_1d_merges_both_sides_within_a_label():
    rng = np.random.default_rng(6)
    x, lab = np.round(rng.standard_normal(400) * 4) / 4, rng.integers(0, 5, 400)
    lab[:2], lab[2] = 9, 8  # a label of two rows and one of a single row
    order = np.lexsort((x, lab))
    s, ls = x[order], lab[order]
    k_i = np.minimum(np.bincount(ls)[ls] - 1, 3)
    dist = np.abs(s[:, None] - s[None, :])
    dist[(ls[:, None] != ls[None, :]) | np.eye(400, dtype=bool)] = np.inf
    ref = np.sort(dist, 1)[np.arange(400), np.maximum(k_i, 1) - 1]
    ref[k_i < 1] = np.inf
    assert np.array_equal(_knn_compiled.class_kth_1d(s, ls, k_i), ref)


def test_kernel_is_built_where_a_compiler_and_headers_exist():
    """A packaging guard: setup.py's optional extension must build on a machine that can compile it."""
    header = os.path.join(sysconfig.get_paths()["include"], "Python.h")
    if not (shutil.which("cc") or shutil.which("gcc")) or not os.path.exists(header):
        pytest.skip("no C compiler or Python headers here")
    assert _knn_compiled.AVAILABLE
