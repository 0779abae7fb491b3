"""Quantized networks end to end: which tensors and modules count as discrete, the DPI flagged as a bug
between exact values of the network's own layers, and a monitor run of a quantized MLP measured by the
"exact" estimator."""
import json
import runpy
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import ibhooks
from ibhooks.chains import Chain
from ibhooks.checks import check_record
from ibhooks.estimators._quantized import detect_grid, is_quantized, quantization_grid, quantizing_module
from ibhooks.estimators.exact import EXACT_TRAITS
from ibhooks.schema import (DpiViolation, EstimatorTraits, LayerResult, Quantity, Record, Severity,
                            WarningCode, make_estimate)

BINNING = EstimatorTraits(discretises=True, exact=True, cap="log2_n")


def quantize(t, bits=8, lo=-1.0, hi=1.0):
    levels = 2 ** bits - 1
    return torch.round((t.clamp(lo, hi) - lo) / (hi - lo) * levels) / levels * (hi - lo) + lo


class QuantSTE(nn.Module):
    """A custom straight-through quantizer on [lo, hi] (the idiom x + (q - x).detach())."""

    def __init__(self, bits=8, lo=-1.0, hi=1.0):
        super().__init__()
        self.bits, self.lo, self.hi = bits, lo, hi

    def forward(self, x):
        return x + (quantize(x, self.bits, self.lo, self.hi) - x).detach()


# ------------------------------------------------------------------------------------------------
# Detection
# ------------------------------------------------------------------------------------------------


def test_quantized_outputs_are_detected_and_continuous_ones_are_not():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 6, generator=gen)
    assert is_quantized(torch.round(3 * x))  # a rounding layer: integers in a float tensor
    assert is_quantized(quantize(torch.tanh(x)))  # 8 bits on [-1, 1]
    wild = 50 * x  # far outside the quantizer's range: the straight-through value carries x's rounding
    assert is_quantized(wild + (quantize(wild, 8, 0.0, 1.0) - wild))
    assert is_quantized(torch.randint(-5, 1000, (64, 3)))  # integer dtype: discrete whatever its range
    assert is_quantized(x > 0)
    assert is_quantized(torch.tensor([[0.0], [2.0], [5.0], [5.0]]))  # sparse occupancy of the unit grid
    assert not is_quantized(torch.tanh(x))  # thousands of distinct values per unit
    assert not is_quantized(torch.tanh(x[:30]))  # few values, but at irregular gaps
    ten_bit = quantize(torch.tanh(x), bits=10)
    assert not is_quantized(ten_bit) and is_quantized(ten_bit, max_levels=1024)
    assert "more than max_levels=256" in detect_grid(ten_bit)[1]


def test_fake_quantize_grids_are_found_with_their_scale():
    gen = torch.Generator().manual_seed(1)
    x = 3 * torch.randn(1024, 5, generator=gen)
    per_tensor = torch.ao.quantization.FakeQuantize()
    out = per_tensor(x)
    grid = quantization_grid(out)
    assert grid is not None and int(grid.levels.max()) <= 256
    assert torch.allclose(grid.step, per_tensor.scale.double().expand(5), rtol=1e-5)
    per_channel = torch.ao.quantization.FakeQuantize(
        observer=torch.ao.quantization.MovingAveragePerChannelMinMaxObserver, quant_min=-128, quant_max=127,
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric, ch_axis=1)
    out = per_channel(x * torch.arange(1, 6))
    grid = quantization_grid(out)
    assert grid is not None and torch.allclose(grid.step, per_channel.scale.double(), rtol=1e-5)


def test_quantizing_modules_by_type_and_name():
    class QuantAct(nn.Module):
        pass

    class RoundSTE(nn.Module):
        pass

    class QuantileHead(nn.Module):
        pass

    assert quantizing_module(torch.ao.quantization.FakeQuantize())
    assert quantizing_module(torch.ao.quantization.FusedMovingAvgObsFakeQuantize())
    assert quantizing_module(QuantAct()) and quantizing_module(RoundSTE())
    for m in (nn.ReLU(), nn.Linear(2, 2), QuantileHead(), torch.ao.quantization.QuantStub()):
        assert not quantizing_module(m), m
    with pytest.raises(TypeError):
        quantizing_module(torch.zeros(2))


# ------------------------------------------------------------------------------------------------
# The DPI along exact values of the network's own layers is a bug
# ------------------------------------------------------------------------------------------------


def _record(traits, name):
    def e(v):
        return make_estimate(v, "q", kind="exact", estimator=name, traits=traits, n=4096, dim=3)

    layers = {"a": {name: LayerResult(e(6.0), e(0.90))}, "b": {name: LayerResult(e(6.5), e(0.90))}}
    return Record(step=3, mode="probe", n_samples=4096, h_y=1.0, layers=layers)


def test_a_dpi_violation_between_exact_network_values_is_a_bug():
    checks, warnings = check_record(_record(EXACT_TRAITS, "exact"), [Chain("net", ("a", "b"))])
    (v,) = checks.dpi_violations
    assert v.is_bug and v.significant and v.size_bits == pytest.approx(0.5)
    assert v.message.startswith("BUG") and "holds exactly" in v.message and "skip connection" in v.message
    (w,) = [w for w in warnings if w.code is WarningCode.DPI_VIOLATION]
    assert w.severity is Severity.ERROR and w.message.startswith("BUG")
    assert w.evidence["violations"][0]["is_bug"]
    assert "chains=" in w.remedy
    # the same numbers from binning (exact only for the binned variable) are an estimator inconsistency
    checks, warnings = check_record(_record(BINNING, "binning"), [Chain("net", ("a", "b"))])
    (v,) = checks.dpi_violations
    assert not v.is_bug and "BUG" not in v.message and "not propagated" in v.message
    (w,) = [w for w in warnings if w.code is WarningCode.DPI_VIOLATION]
    assert w.severity is Severity.WARNING


def test_is_bug_survives_the_run_log_and_old_logs_read_false():
    v = DpiViolation("c", "exact", Quantity.I_XT, "a", "b", 1.0, 1.5, 0.5, 0.0, True, ("exact", "exact"), "m",
                     is_bug=True)
    assert DpiViolation.from_dict(json.loads(json.dumps(v.to_dict()))) == v
    old = {k: val for k, val in v.to_dict().items() if k != "is_bug"}
    assert DpiViolation.from_dict(old).is_bug is False


# ------------------------------------------------------------------------------------------------
# A monitor run of a quantized network
# ------------------------------------------------------------------------------------------------


def _probe(n=512, seed=0):
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(4096, generator=gen)[:n]
    x = ((idx.unsqueeze(1) >> torch.arange(11, -1, -1)) & 1).float()  # distinct 12-bit patterns
    return x, (x[:, :6].sum(1) > x[:, 6:].sum(1)).long()


def test_monitor_measures_a_quantized_mlp_exactly_and_the_dpi_holds(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 8), nn.Tanh(), QuantSTE(8, -1, 1), nn.Linear(8, 4), nn.ReLU(),
                          QuantSTE(4, 0, 2), nn.Linear(4, 2), nn.Softmax(dim=1), QuantSTE(8, 0, 1))
    names = [n for n, m in model.named_children() if quantizing_module(m)]
    assert names == ["2", "5", "8"]
    x, y = _probe()
    mon = ibhooks.IBMonitor(model, layers=names, probe=(x, y), estimators=["exact"], schedule=5,
                            log_dir=tmp_path, verbose=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(11):
        loss = nn.functional.nll_loss(torch.log(model[:-1](x).clamp_min(1e-9)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step()
    mon.close()
    run = ibhooks.load_run(mon.log_path)  # what plotting and the report read
    assert len(run.records) == 3 and [c.layers for c in mon.chains] == [tuple(names)]
    for rec in run.records:
        assert rec.errors == []
        for layer in names:
            res = rec.layers[layer]["exact"]
            for e in (res.i_xt, res.i_ty):
                assert e.kind == "exact" and e.traits == EXACT_TRAITS and "exact" in e.quantity
            assert 0.0 <= res.i_ty.value <= res.i_xt.value <= 9.0 + 1e-9  # log2 512
        assert rec.layers["2"]["exact"].i_xt.value > rec.layers["8"]["exact"].i_xt.value
        total = rec.checks.dpi_total()
        assert total.pairs_checked == 4 and total.violated == 0 and rec.checks.bugs == 0
        assert not [w for w in rec.warnings if w.severity is Severity.ERROR]


class TwoTaps(nn.Module):
    """Two quantized layers that both read X: declaring them a chain is wrong, and the DPI says so."""

    def __init__(self):
        super().__init__()
        self.la, self.lb, self.head = nn.Linear(12, 1), nn.Linear(12, 6), nn.Linear(7, 2)
        self.qa, self.qb = QuantSTE(1, -1, 1), QuantSTE(8, -1, 1)

    def forward(self, x):
        a, b = self.qa(torch.tanh(self.la(x))), self.qb(torch.tanh(self.lb(x)))
        return self.head(torch.cat([a, b], 1))


def test_a_wrong_chain_of_quantized_layers_is_reported_as_a_bug(tmp_path):
    torch.manual_seed(0)
    x, y = _probe(256)
    mon = ibhooks.IBMonitor(TwoTaps(), layers=["qa", "qb"], chains=[["qa", "qb"]], probe=(x, y),
                            estimators=["exact"], schedule=1, log_dir=tmp_path, verbose=False)
    rec = mon.step()
    mon.close()
    assert rec.layers["qa"]["exact"].i_xt.value <= 1.0 + 1e-12 < rec.layers["qb"]["exact"].i_xt.value
    bugs = [v for v in rec.checks.dpi_violations if v.is_bug]
    assert bugs and bugs[0].upstream == "qa" and bugs[0].quantity is Quantity.I_XT
    assert any(w.code is WarningCode.DPI_VIOLATION and w.severity is Severity.ERROR for w in rec.warnings)
    from ibhooks.report import render_report

    html = render_report(ibhooks.load_run(mon.log_path), figures=False)
    assert "bug (exact values)" in html  # the report's DPI table says which violations are bugs


def test_quantized_szt_example_smoke(tmp_path):
    """examples/quantized_szt.py (one activation, smoke size): exact records, no errors, the DPI holds,
    and the tables and figures come back from the run logs alone (--from-logs)."""
    pytest.importorskip("matplotlib")
    main = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "quantized_szt.py"))["main"]
    out = main(["--smoke", "--activations", "relu", "--out", str(tmp_path)])
    run = out["runs"]["relu"]
    assert run["dpi_pairs_checked"] > 0 and run["dpi_bugs"] == 0 and run["bound_bugs"] == 0
    for path in run["run_logs"]:
        for rec in ibhooks.load_run(path).records:
            assert rec.errors == [] and len(rec.layers) == 6
            assert all(res["exact"].i_xt.kind == "exact" for res in rec.layers.values())
    again = main(["--smoke", "--activations", "relu", "--out", str(tmp_path), "--from-logs"])
    assert again["runs"]["relu"]["table"] == run["table"]
    assert all(Path(p).is_file() for p in run["figures"].values())
