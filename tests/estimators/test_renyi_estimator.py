"""Matrix-based Renyi alpha-entropy: a numpy reference, exact anchors (cap, constant, class copy)."""
import math

import numpy as np
import pytest
import torch

from ibhooks.estimators.renyi import MatrixRenyi


def renyi_reference(a: np.ndarray, b: np.ndarray, sigma: float, alpha: float) -> float:
    """I_alpha(A;B) with numpy eigvalsh, Gaussian kernels of width sigma on both sides."""
    def gram(x):
        d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        k = np.exp(-d2 / (2 * sigma ** 2))
        return k / np.trace(k)

    def s(m):
        lam = np.clip(np.linalg.eigvalsh(m), 0, None)
        lam = lam / lam.sum()
        return np.log2((lam ** alpha).sum()) / (1 - alpha)

    ga, gb = gram(a), gram(b)
    j = ga * gb
    return s(ga) + s(gb) - s(j / np.trace(j))


def test_matches_numpy_reference():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(120, 3, generator=g, dtype=torch.float64)
    b = a[:, :2] + 0.5 * torch.randn(120, 2, generator=g, dtype=torch.float64)
    for alpha in (1.01, 2.0):
        ours = MatrixRenyi(alpha=alpha, sigma=1.0).mutual_information(a, b).value
        assert ours == pytest.approx(renyi_reference(a.numpy(), b.numpy(), 1.0, alpha), abs=1e-8)


def test_exact_anchors():
    n = 200
    far = 100.0 * torch.arange(n, dtype=torch.float64).unsqueeze(1)  # A = I/n: S = log2 n for any alpha
    e = MatrixRenyi(sigma=1.0).layer_information(far)[0]
    assert abs(e.value - math.log2(n)) < 1e-6 and e.saturated and e.cap == math.log2(n)
    assert abs(MatrixRenyi().layer_information(torch.zeros(n, 4))[0].value) < 1e-6  # constant layer
    # A layer that copies the labels: S(T) = I(T;Y) = Renyi entropy of the class frequencies
    y = torch.tensor([0] * 100 + [1] * 60 + [2] * 40)
    alpha = 1.01
    p = np.array([100, 60, 40]) / 200
    h_alpha = math.log2((p ** alpha).sum()) / (1 - alpha)
    t = 10.0 * torch.nn.functional.one_hot(y).float()
    for sigma in ("silverman", 0.5):
        i_xt, i_ty = MatrixRenyi(alpha=alpha, sigma=sigma).layer_information(t, y)
        assert abs(i_xt.value - h_alpha) < 1e-6 and abs(i_ty.value - h_alpha) < 1e-6


def test_bounds_dependence_and_batches():
    g = torch.Generator().manual_seed(1)
    t = torch.randn(1300, 4, generator=g)
    y_dep = (t[:, 0] > 0).long()
    y_ind = torch.randint(0, 2, (1300,), generator=g)
    est = MatrixRenyi(batch_size=500)
    i_xt, i_dep = est.layer_information(t, y_dep)
    _, i_ind = est.layer_information(t, y_ind)
    assert i_xt.diagnostics["n_batches"] == 3 and i_xt.ci is not None
    assert i_xt.cap == math.log2(433)  # tensor_split of 1300 into 3 random batches: 434, 433, 433
    assert 0 <= i_dep.value <= min(i_xt.value, 1.0) + 1e-9
    assert i_dep.value > i_ind.value + 0.2  # measured: dependent 0.72, independent 0.27 (positive bias of I_a)
    assert i_xt.diagnostics["sigma_used"] > 0 and "silverman" in i_xt.quantity
    knn = MatrixRenyi(sigma="knn", batch_size=500).layer_information(t)[0]
    assert 0 < knn.value < knn.cap


def test_bad_input_rejected():
    with pytest.raises(ValueError, match="NaN"):
        MatrixRenyi().layer_information(torch.tensor([[0.0], [float("nan")]]))
    with pytest.raises(ValueError, match="sigma"):
        MatrixRenyi(sigma="scott")
    with pytest.raises(ValueError, match="alpha"):
        MatrixRenyi(alpha=0.0)
