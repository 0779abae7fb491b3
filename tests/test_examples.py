"""Every script in examples/ runs in its smoke mode and leaves what its docstring promises: a run log
that ``ibhooks.load_run`` reads back, with finite I(X;T) and I(T;Y) for every monitored layer at every
measurement and no estimator errors, and the figures as valid, non-trivial PNGs.

The examples are run in this process (``runpy``), so torch, matplotlib and Lightning are imported
once for all of them; each example sets its own seeds and thread count (the conftest puts the thread
count back after each test).
"""
import math
import runpy
import struct
from pathlib import Path

import pytest
import torch

import ibhooks
from ibhooks.schema import Quantity, WarningCode

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 5_000


@pytest.fixture(autouse=True)
def _restore_torch_flags():
    """Lightning's Trainer(deterministic=True) flips a process-wide flag; put it back."""
    flag = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(flag)


def example_main(name):
    """The ``main(argv)`` of ``examples/<name>.py`` (the module runs as a plain module, not __main__)."""
    return runpy.run_path(str(EXAMPLES / f"{name}.py"))["main"]


def check_run(path, *, labels=True):
    """The run log loads, has records, and every monitored layer has finite estimates everywhere."""
    run = ibhooks.load_run(path)
    assert not run.truncated
    assert run.records, f"{path}: no measurements"
    layers = run.header["config"]["layers"]
    assert layers and layers == [row["name"] for row in run.coverage if row.get("status") == "monitored"]
    estimators = list(run.header["config"]["estimators"])
    for rec in run.records:
        assert rec.errors == [], f"{path} step {rec.step}: {rec.errors}"
        assert list(rec.layers) == layers
        for layer in layers:
            assert sorted(rec.layers[layer]) == sorted(estimators)
            for est, res in rec.layers[layer].items():
                assert res.error is None
                assert math.isfinite(res.i_xt.value), (layer, est, res.i_xt)
                if labels:
                    assert res.i_ty is not None and math.isfinite(res.i_ty.value), (layer, est, res.i_ty)
    return run


def check_pngs(folder, names):
    """Each ``<name>.png`` in ``folder`` is a PNG (signature, sane IHDR size) of more than a few KB."""
    folder = Path(folder)
    for name in names:
        path = folder / f"{name}.png"
        assert path.is_file(), f"missing figure {path}"
        data = path.read_bytes()
        assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
        assert data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 200 and height >= 200, (path, width, height)
        assert len(data) > MIN_PNG_BYTES, f"{path} is only {len(data)} bytes"


def figure_names(estimators, *, dpi=True):
    """What ``save_all_figures`` writes: the plane, the curves and (``dpi``: two or more layers) the DPI
    panel of every estimator, suffixed ``_<estimator>`` when the run has several."""
    suffixes = [""] if len(estimators) == 1 else [f"_{e}" for e in estimators]
    kinds = ("information_plane", "layer_curves") + (("dpi",) if dpi else ())
    return [f"{kind}{s}" for s in suffixes for kind in kinds]


# ------------------------------------------------------------------------------------------------
# The architecture examples
# ------------------------------------------------------------------------------------------------


def test_cnn_digits_smoke(tmp_path):
    pytest.importorskip("sklearn")
    out = example_main("cnn_digits")(["--smoke", "--out", str(tmp_path)])
    run = check_run(out["run_log"])
    assert run.layers == ["conv1", "conv2", "fc", "out"]
    reductions = {row["name"]: row.get("reduction") for row in run.coverage
                  if row.get("status") == "monitored"}
    assert reductions["conv1"].startswith("mean") and reductions["conv2"].startswith("mean")
    assert [c["layers"] for c in run.header["chains"]] == [["fc", "out"]]  # pooled conv blocks: off the chain
    check_pngs(tmp_path / "figures", figure_names(["binning", "kde"]))


def test_transformer_encoder_smoke(tmp_path):
    out = example_main("transformer_encoder")(["--smoke", "--out", str(tmp_path)])
    run = check_run(out["run_log"])
    assert run.layers == ["embed", "encoder.layers.0", "encoder.layers.1", "encoder.layers.2", "head"]
    check_pngs(tmp_path / "figures", figure_names(["kde", "ross"]))
    # Ross reports the differential entropy h(T) as "I(X;T)": negative here. The plane must show it,
    # not cut its axis at 0 (the bug fixed in ibhooks.plotting along with this example).
    from ibhooks.plotting import close_figure, plot_information_plane

    lowest = min(rec.estimate(layer, "I_XT", "ross").value for rec in run.records for layer in run.layers)
    assert lowest < 0
    fig = plot_information_plane(run, estimator="ross")
    try:
        ax = next(a for a in fig.axes if a.get_xlabel().startswith("I(X;T)"))
        assert ax.get_xlim()[0] <= lowest
    finally:
        close_figure(fig)


def test_transformer_encoder_flatten_keeps_the_chain(tmp_path):
    out = example_main("transformer_encoder")(["--smoke", "--reduction", "flatten", "--measurements", "2",
                                               "--out", str(tmp_path)])
    run = check_run(out["run_log"])
    assert [c["layers"] for c in run.header["chains"]] == [["encoder.layers.0", "encoder.layers.1",
                                                            "encoder.layers.2"]]
    assert run.records[-1].checks.tally("kde", Quantity.I_XT).pairs_checked == 2


def test_resnet_blocks_smoke(tmp_path):
    pytest.importorskip("sklearn")
    out = example_main("resnet_blocks")(["--smoke", "--out", str(tmp_path)])
    run = check_run(out["run_log"])
    assert run.layers == ["stem", "block1", "block2", "block3", "head"]
    assert [c["layers"] for c in run.header["chains"]] == [run.layers]  # every block output is lossless
    # 2 estimators x 2 quantities x 4 adjacent pairs, at every measurement
    assert all(rec.checks.dpi_total().pairs_checked == 2 * 2 * 4 for rec in run.records)
    check_pngs(tmp_path / "figures", figure_names(["renyi", "kde"]))


def test_lightning_mlp_smoke(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("lightning.pytorch")
    pytest.importorskip("tensorboard")
    out = example_main("lightning_mlp")(["--smoke", "--out", str(tmp_path)])
    run = check_run(out["run_log"])
    assert run.layers == ["net.2", "net.4", "net.6"]
    assert [r.step for r in run.records][-1] == 10  # 2 epochs x limit_train_batches=5
    assert list(Path(out["tensorboard_dir"]).glob("events.out.tfevents.*")), "no TensorBoard events"
    check_pngs(tmp_path / "figures", figure_names(["binning", "kde"]))


def test_noisy_network_smoke(tmp_path):
    out = example_main("noisy_network")(["--smoke", "--out", str(tmp_path)])
    run = check_run(out["run_log"])
    assert run.layers == ["1", "4", "7", "10", "13"]
    check_pngs(tmp_path / "figures", figure_names(["goldfeld_sp", "binning"]))  # dpi_binning among them
    dpi = out["dpi"]
    # Sample propagation measures the noisy network itself (its Estimates say so): the DPI holds.
    sp_traits = {res["goldfeld_sp"].i_xt.traits for rec in run.records for res in rec.layers.values()}
    assert all(t.noise_in_network and not t.adds_noise for t in sp_traits)
    for q in ("I_XT", "I_TY"):
        assert dpi[f"goldfeld_sp/{q}"]["pairs_checked"] == 4 * len(run.records)
        assert dpi[f"goldfeld_sp/{q}"]["significant"] == 0
    # Binning takes T as a function of the probe row, so the upstream noise reads as information.
    assert dpi["binning/I_XT"]["violated"] >= 1


def test_sample_propagation_without_upstream_noise_is_the_noisy_channel():
    """Identical replicates (no noise before the layer): I(X;T) is the noisy channel of the distinct rows."""
    ns = runpy.run_path(str(EXAMPLES / "noisy_network.py"))
    from ibhooks.estimators.noisy_channel import NoisyChannel

    g = torch.Generator().manual_seed(0)
    s = torch.tanh(torch.randn(24, 3, generator=g))
    y = torch.randint(0, 2, (24,), generator=g)
    sp = ns["SamplePropagation"](beta=0.3, replicates=4, mc_samples=1 << 15)
    i_xt, i_ty = sp.layer_information(s.repeat_interleave(4, 0), y.repeat_interleave(4, 0))
    ref_xt, ref_ty = NoisyChannel(noise_var=0.09, mc_samples=1 << 15, seed=1).layer_information(s, y)
    se = lambda a, b: math.hypot(a.stderr, b.stderr)  # noqa: E731
    assert abs(i_xt.value - ref_xt.value) < 4 * se(i_xt, ref_xt) + 1e-3
    assert abs(i_ty.value - ref_ty.value) < 4 * se(i_ty, ref_ty) + 1e-3
    assert i_xt.cap == pytest.approx(math.log2(24))


# ------------------------------------------------------------------------------------------------
# The literature reproductions (examples/RESULTS.md)
# ------------------------------------------------------------------------------------------------


def test_demo_smoke(tmp_path):
    log_path = example_main("demo")(["--epochs", "3", "--measurements", "5", "--no-tensorboard",
                                     "--probe-samples", "512", "--out", str(tmp_path)])
    check_run(log_path)
    check_pngs(tmp_path / "figures", figure_names(["binning", "kde"]))


def test_szt_tanh_smoke(tmp_path):
    summary = example_main("szt_tanh")(["--smoke", "--out", str(tmp_path)])
    assert len(summary["run_logs"]) == 2
    for log in summary["run_logs"]:
        check_run(log)
    check_pngs(tmp_path / "figures", figure_names(["binning"]))
    check_pngs(tmp_path / "figures_seed0", figure_names(["binning"]))


def test_saxe_relu_smoke(tmp_path):
    summary = example_main("saxe_relu")(["--smoke", "--out", str(tmp_path)])
    for log in sorted(tmp_path.glob("relu_*_seed*.jsonl")):
        check_run(log)
    assert len(list(tmp_path.glob("relu_*_seed*.jsonl"))) == 4
    assert summary["clipped_range_warning_layers"]  # the [-1, 1] trap is flagged
    seed0 = ibhooks.load_run(tmp_path / "relu_pass1_seed0.jsonl").records[-1]  # binning_1: the fixed [-1, 1]
    flagged = {w.layer for w in seed0.warnings
               if w.code is WarningCode.OUTSIDE_RANGE and w.estimator == "binning_1"}
    assert flagged and flagged <= set(summary["clipped_range_warning_layers"])
    for folder in ("figures_run_range", "figures_fixed_range"):
        check_pngs(tmp_path / folder, figure_names(["binning"]))


def test_real_models_smoke(tmp_path):
    """HF ResNet and GPT-2 (tiny configs, random weights) with the README one-liner: the blocks are
    monitored on one data-flow chain, no position embedding is captured, the dict probe works, the causal
    LM trains on its own loss."""
    pytest.importorskip("transformers")
    out = example_main("real_models")(["--smoke", "--models", "resnet", "gpt2", "--out", str(tmp_path)])
    assert 0.0 <= out["gpt2"]["accuracy"] <= 1.0  # next-token accuracy of the LM
    ends = {"resnet": ("resnet.embedder", "classifier"), "gpt2": ("transformer.wte", "lm_head")}
    for name, (first, last) in ends.items():
        run = check_run(out[name]["run_log"])
        assert run.layers[0] == first and run.layers[-1] == last
        assert not any("position" in layer for layer in run.layers)
        longest = max(out[name]["chains"], key=len)
        assert len(longest) >= 3 and list(longest) == [n for n in run.layers if n in longest]
        assert 0.0 <= out[name]["at_cap"] <= 1.0 and out[name]["spread_last"] >= 0.0
        assert set(out[name]["ty_last"]) == set(run.layers[-2:])
        check_pngs(tmp_path / f"figures_{name}", figure_names([out[name]["estimator"]]))
