"""The "exact" estimator against analytic truth: with X uniform over the probe rows, I(X;T) = H(T) and
I(T;Y) are exact for a layer the network itself quantizes; continuous layers are refused with the fix."""
import json
import math

import pytest
import torch

from ibhooks.estimators.exact import EXACT_TRAITS, Exact, exact_layer_information, level_codes
from ibhooks.estimators.registry import available, make_estimator

TOL = 1e-9  # exact quantities: float rounding only


def binary_rows(n_bits=12):
    """All 2**n_bits patterns as float rows (distinct: X uniform over them has H(X) = n_bits)."""
    x = torch.arange(2 ** n_bits)
    return ((x.unsqueeze(1) >> torch.arange(n_bits - 1, -1, -1)) & 1).float(), x


def h2(p):
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def quantize(t, bits=8, lo=-1.0, hi=1.0):
    levels = 2 ** bits - 1
    return torch.round((t.clamp(lo, hi) - lo) / (hi - lo) * levels) / levels * (hi - lo) + lo


@pytest.mark.parametrize("k", [1, 2, 3, 7, 16])
def test_x_mod_k_has_entropy_log2_k(k):
    x = torch.arange(k * 300)  # X uniform over k*300 rows, T = X mod k uniform over k values
    i_xt, i_ty = Exact().layer_information((x % k).float().unsqueeze(1), x % 2)
    assert i_xt.value == pytest.approx(math.log2(k), abs=TOL)
    assert i_xt.kind == "exact" and i_xt.traits == EXACT_TRAITS
    assert i_xt.cap == pytest.approx(math.log2(k * 300))
    assert i_xt.diagnostics["distinct_rows"] == k
    # Y = X mod 2: T = X mod k determines Y exactly when k is even, and is independent of it when k is odd
    want = 1.0 if k % 2 == 0 else 0.0
    assert i_ty.value == pytest.approx(want, abs=TOL)


def test_injective_layer_with_a_deterministic_label_gives_h_y():
    rows, x = binary_rows(12)
    y = (((x * 2654435761) % 4096) < 2118).long()  # a fixed label function with 2118 ones (as var_u.mat)
    t = quantize(rows * 2 - 1)  # the 12 +-1 inputs themselves: injective
    i_xt, i_ty = Exact(bits=8).layer_information(t, y)
    assert i_xt.value == pytest.approx(12.0, abs=TOL) and i_xt.saturated
    assert i_ty.value == pytest.approx(h2(2118 / 4096), abs=TOL)
    assert i_ty.diagnostics["H_Y"] == pytest.approx(h2(2118 / 4096), abs=TOL)
    assert "8-bit quantization" in i_xt.quantity and "X uniform over the probe" in i_xt.quantity
    assert i_xt.quantity.startswith("H(T) exact") and i_ty.quantity.startswith("H(T) + H(Y) - H(T,Y) exact")
    assert "8-bit" in i_ty.quantity


def test_independent_labels_give_zero_exactly_and_the_stated_plug_in_bias_otherwise():
    x = torch.arange(4096)
    t = (x % 8).float().unsqueeze(1)
    # Y = bit 3 of X is exactly independent of X mod 8 over the probe: plug-in I(T;Y) = 0
    assert Exact().layer_information(t, (x >> 3) & 1)[1].value == pytest.approx(0.0, abs=TOL)
    # Random labels independent of T: the plug-in is biased up by about (|T|-1)(|Y|-1) / (2 n ln 2) bits
    # (Miller-Madow), 7 / (2 * 4096 * ln 2) = 1.23e-3 bits here; its mean over 40 draws has a relative
    # sd of about sqrt(2/7)/sqrt(40) = 8.5 %, so 30 % is a 3.5-sd tolerance.
    gen = torch.Generator().manual_seed(0)
    draws = [torch.randint(0, 2, (4096,), generator=gen) for _ in range(40)]
    vals = [Exact().layer_information(t, y)[1].value for y in draws]
    bias = 7 / (2 * 4096 * math.log(2))
    assert sum(vals) / len(vals) == pytest.approx(bias, rel=0.30)


def test_straight_through_idiom_and_fake_quantize_count_like_their_integer_codes():
    gen = torch.Generator().manual_seed(1)
    rows, _ = binary_rows(10)
    pre = torch.tanh(rows @ torch.randn(10, 3, generator=gen) * 0.7 + 0.1)
    q = quantize(pre, bits=4)
    ste = pre + (q - pre).detach()  # carries an ulp of noise on some values
    codes = torch.round((q + 1) / 2 * 15).long()
    _, counts = torch.unique(codes, dim=0, return_counts=True)
    p = counts.double() / counts.sum()
    truth = float(-(p * p.log2()).sum())
    for t in (q, ste):
        assert Exact().layer_information(t)[0].value == pytest.approx(truth, abs=TOL)
    fq = torch.ao.quantization.FakeQuantize()  # per-tensor uint8, moving min/max observer
    out = fq(pre * 3)
    ints = torch.round(out / fq.scale).long()
    _, counts = torch.unique(ints, dim=0, return_counts=True)
    p = counts.double() / counts.sum()
    assert Exact().layer_information(out)[0].value == pytest.approx(float(-(p * p.log2()).sum()), abs=TOL)


def test_dpi_holds_exactly_along_a_quantized_chain():
    gen = torch.Generator().manual_seed(2)
    rows, x = binary_rows(12)
    y = (x % 5 == 0).long() | (x % 7 == 1).long()
    t, figures = rows, []
    for width in (10, 7, 5, 4, 3, 2):
        t = quantize(torch.tanh(t @ torch.randn(t.shape[1], width, generator=gen)), bits=3)
        i_xt, i_ty = Exact().layer_information(t, y)
        figures.append((i_xt.value, i_ty.value))
    for (xt_a, ty_a), (xt_b, ty_b) in zip(figures, figures[1:]):
        assert xt_b <= xt_a + 1e-12 and ty_b <= ty_a + 1e-12
    assert figures[0][0] > figures[-1][0]  # the chain loses information: the test can fail


def test_continuous_or_too_fine_layers_are_refused_with_the_fix():
    gen = torch.Generator().manual_seed(3)
    cont = torch.tanh(torch.randn(500, 4, generator=gen))
    with pytest.raises(ValueError, match=r"not discrete.*'binning'.*'auto'"):
        Exact().layer_information(cont)
    with pytest.raises(ValueError, match="irregular gaps"):
        Exact().layer_information(cont[:50])  # few rows: few values per unit, but on no grid
    fine = quantize(cont, bits=10)
    with pytest.raises(ValueError, match=r"more than max_levels=256.*raise max_levels"):
        Exact().layer_information(fine)
    assert Exact(bits=10).layer_information(fine)[0].value == pytest.approx(math.log2(500), abs=TOL)
    with pytest.raises(ValueError, match="NaN"):
        Exact().layer_information(torch.tensor([[0.0], [float("nan")]]))
    with pytest.raises(ValueError):
        Exact().layer_information(quantize(cont), torch.zeros(499, dtype=torch.long))  # unpaired labels
    for bad in ({"bits": 0}, {"bits": 40}, {"max_levels": 1}, {"bits": 2.5}):
        with pytest.raises(ValueError):
            Exact(**bad)


def test_integer_outputs_are_discrete_by_type_and_wide_ranges_are_counted():
    x = torch.arange(1024)
    wide = torch.stack([x * 1_000_003, x % 3], 1)  # int64 far beyond any grid of 256 levels
    i_xt, i_ty = Exact().layer_information(wide, x % 2)
    assert i_xt.value == pytest.approx(10.0, abs=TOL) and i_ty.value == pytest.approx(1.0, abs=TOL)
    assert i_xt.diagnostics["integer_dtype"] and "integer values" in i_xt.quantity
    flags = torch.stack([x % 2 == 0, x % 4 == 0], 1)  # bool: H = H(1/2 + 1/4 split) = 1.5 bits
    assert Exact().layer_information(flags)[0].value == pytest.approx(1.5, abs=TOL)


def test_conv_shaped_outputs_are_counted_whole_and_rows_are_coded_like_binning():
    gen = torch.Generator().manual_seed(4)
    t = quantize(torch.tanh(torch.randn(300, 2, 3, 3, generator=gen)), bits=2)
    codes, counts, grid = level_codes(t)
    assert codes.shape == (300,) and int(counts.sum()) == 300 and grid.offset.numel() == 18
    _, ref_counts = torch.unique(t.reshape(300, -1), dim=0, return_counts=True)
    assert sorted(counts.tolist()) == sorted(ref_counts.tolist())
    assert Exact.whole_activations  # no pooling: counting needs the layer's own values


def test_registry_functional_and_json():
    assert "exact" in available()
    est = make_estimator(("exact", {"bits": 4}))
    assert isinstance(est, Exact) and est.params() == {"bits": 4, "max_levels": 16}
    level = torch.arange(64) // 4  # each of the 16 levels of a 4-bit grid on 4 rows
    t = (level.float() / 15 * 2 - 1).unsqueeze(1)
    y = (level >= 8).long()
    by_class = est.layer_information(t, y)
    by_kernel = exact_layer_information(t, y, bits=4)
    assert [(e.value, e.quantity) for e in by_class] == [(e.value, e.quantity) for e in by_kernel]
    assert by_class[0].value == pytest.approx(4.0, abs=TOL)
    assert by_class[1].value == pytest.approx(1.0, abs=TOL)
    json.dumps([e.to_dict() for e in by_class])
    mi = est.mutual_information(t, y, discrete_b=True)
    assert mi.value == pytest.approx(1.0, abs=TOL) and mi.kind == "exact"
    pair = est.mutual_information(t, (level // 2).float())  # a function of t with 8 equally likely values
    assert pair.value == pytest.approx(3.0, abs=TOL)
