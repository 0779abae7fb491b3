"""Contracts every registered estimator keeps: Estimate fields, bits, float32 input, NaN rejection, the
global RNG untouched, state round trips, the functional API, and the same answers on CUDA."""
import json
import math

import pytest
import torch

from ibhooks.estimate import KINDS, Estimate
from ibhooks.estimators.registry import available, make_estimator
from ibhooks.functional import layer_information, mutual_information

CHEAP = {  # small settings so the whole contract suite stays fast
    "binning": {}, "binning_adaptive": {}, "kde": {}, "ksg": {}, "ross": {}, "renyi": {},
    "noisy_channel": {"mc_samples": 1000}, "infonce": {"steps": 5, "batch_size": 32},
}


def data(n=200, d=3, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    t = torch.tanh(torch.randn(n, d, generator=g))
    y = (t[:, 0] > 0).long() + (t[:, 1] > 0.5).long()
    return t.to(device), y.to(device)


def test_registry_lists_the_suite():
    assert set(CHEAP) <= set(available())


@pytest.mark.parametrize("name", sorted(CHEAP))
def test_estimates_are_complete_and_honest(name):
    est = make_estimator((name, CHEAP[name]))
    t, y = data()
    state = torch.random.get_rng_state()
    i_xt, i_ty = est.layer_information(t, y, layer="layer1")
    assert torch.equal(state, torch.random.get_rng_state()), "estimators must not touch the global RNG"
    for e in (i_xt, i_ty):
        assert isinstance(e, Estimate) and e.kind in KINDS and e.quantity and e.estimator == name
        assert math.isfinite(e.value) and e.n == 200 and e.dim == 3
        json.dumps(e.to_dict())
        if e.ci is not None:
            assert e.ci[0] <= e.ci[1]
        if e.cap is not None:
            assert e.value <= e.cap + 1e-9
    json.dumps({k: str(v) for k, v in est.state_dict().items()})
    fresh = make_estimator((name, CHEAP[name]))
    fresh.load_state_dict(est.state_dict())
    with pytest.raises(ValueError, match="NaN"):
        est.layer_information(torch.tensor([[0.0, 1.0]] * 10 + [[float("nan"), 0.0]]), None)
    with pytest.raises(ValueError):
        est.layer_information(t, y[:-1])  # unpaired labels


def test_functional_api():
    t, y = data(n=500)
    e = mutual_information(t[:, :1], t[:, 1:], k=4)
    assert e.estimator == "ksg" and e.params["k"] == 4 and e.seconds > 0
    assert mutual_information(t, y, discrete_b=True).quantity.startswith("I(A;B) Ross")
    i_xt, i_ty = layer_information(t, y, n_bins=10)
    assert i_xt.estimator == "binning" and i_xt.params["n_bins"] == 10 and i_ty is not None
    assert layer_information(t)[1] is None
    with pytest.raises(TypeError):
        layer_information(t, estimator=make_estimator("kde"), noise_var=0.2)
    with pytest.raises(ValueError, match="unknown estimator"):
        mutual_information(t, t, estimator="nope")


@pytest.mark.gpu
def test_cuda_gives_the_cpu_answers():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    t, y = data(n=400)
    tc, yc = t.cuda(), y.cuda()
    for name in sorted(CHEAP):
        cpu = make_estimator((name, CHEAP[name])).layer_information(t, y)
        gpu = make_estimator((name, CHEAP[name])).layer_information(tc, yc)
        for a, b in zip(cpu, gpu):
            if name in ("noisy_channel", "infonce"):  # device RNG streams differ: same quantity, other draws
                tol = 5 * max(a.stderr or 0.0, b.stderr or 0.0) + 0.05
            else:
                tol = 1e-5
            assert abs(a.value - b.value) <= tol, (name, a.value, b.value)
