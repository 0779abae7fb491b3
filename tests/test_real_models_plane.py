"""An informative information plane on real architectures (issue 13, point 4), with the automatic
per-layer instrument (``estimators=[("auto", {"ty": "kde"})]``: binning for layers of a few units,
KDE with noise at 0.3 x each wide layer's total variance for both quantities; the classifier probe of
the full ``"auto"`` takes seconds per layer, too slow for this matrix).

Criteria, after 40 training steps on a learnable task (tiny HF configs, random weights, no downloads):
no recorded errors; <= 25 % of (layer, measurement) I(X;T) estimates at their cap; I(X;T) spread by
>= 1 bit across layers at some measurement; a chain of >= 3 layers from the data flow; I(T;Y) of the
last two layers rises by >= 0.2 bit as the model learns; every Estimate names the instrument chosen.

Known gap (xfail, strict): on the HF ResNet the stages' scale grows about threefold in 40 steps while
the noise stays fixed at the first measurement (so the instrument does not drift), and 34 % of the
estimates reach the cap of log2 128 = 7 bits by step 20."""

import pytest

from ibhooks.schema import Quantity

transformers = pytest.importorskip("transformers")
from test_real_models import _train  # noqa: E402

AUTO = ("auto", {"ty": "kde"})
STEPS = 40


RESNET_GAP = pytest.mark.xfail(strict=True, reason="stage scale grows ~3x under a noise fixed at step 0: "
                               "34 % of I(X;T) estimates at the cap (issue 13, open)")


@pytest.mark.parametrize("name", [pytest.param("resnet", marks=RESNET_GAP), "bert", "vit"])
def test_auto_instrument_gives_an_informative_plane(name, tmp_path):
    _, mon, records = _train(name, tmp_path, "probe", steps=STEPS, estimators=[AUTO])
    layers, chains = list(mon.layer_names), mon.chains
    assert [r.step for r in records] == [0, 10, 20, 30, 40]
    assert not any(r.errors for r in records), [r.errors[:2] for r in records if r.errors]
    xt = [[r.estimate(layer, Quantity.I_XT, "auto") for layer in layers] for r in records]
    flat = [e for row in xt for e in row]
    assert all(e is not None and e.estimator.startswith("auto:") for e in flat)
    at_cap = sum(e.saturated for e in flat) / len(flat)
    assert at_cap <= 0.25, f"{name}: {at_cap:.0%} of I(X;T) estimates at the cap"
    spread = max(max(e.value for e in row) - min(e.value for e in row) for row in xt)
    assert spread >= 1.0, f"{name}: I(X;T) spread across layers only {spread:.2f} bits"
    assert max(len(c.layers) for c in chains) >= 3, chains
    rises = {}
    for layer in layers[-2:]:
        ty = [r.estimate(layer, Quantity.I_TY, "auto").value for r in records]
        rises[layer] = max(ty[2:]) - ty[0]
    assert max(rises.values()) >= 0.2, f"{name}: I(T;Y) of the last layers did not rise: {rises}"
