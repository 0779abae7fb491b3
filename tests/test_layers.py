"""Layer selection: globs as users read them, the automatic choice on real architectures (and unchanged
on Sequential-built models), skips with reasons, and the coverage table's size."""
import math
import sys
from pathlib import Path

import pytest
import torch.nn as nn

from ibhooks.coverage import render_coverage
from ibhooks.dataflow import trace_chains
from ibhooks.layers import glob_to_regex, non_batch_reason, select_layers
from models import MODELS
from real_models import FAMILIES, HandResNet, TorchEncoder, hf_bert, run_forward

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from _szt import szt_network  # noqa: E402

pytest.importorskip("transformers")


# ----------------------------------------------------------------------------------------------
# Globs
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern, name, hit", [
    ("encoder.layers.*", "encoder.layers.0", True),
    ("encoder.layers.*", "encoder.layers.0.self_attn", False),
    ("encoder.layers.*", "encoder.layers", False),
    ("layer?.0", "layer1.0", True),
    ("layer?.0", "layer10.0", False),
    ("layer[12].*", "layer2.1", True),
    ("layer[!12].*", "layer2.1", False),
    ("**.fc", "fc", True),
    ("**.fc", "head.mlp.fc", True),
    ("**.fc", "head.mlp.fc2", False),
    ("a.**.b", "a.b", True),
    ("a.**.b", "a.x.y.b", True),
    ("a.**.b", "ab.b", False),
    ("encoder.**", "encoder.layers.0.norm1", True),
    ("encoder.**", "encoder", False),
    ("**", "anything.at.all", True),
    ("h.*.attn*", "h.3.attn", True),
    ("h.*.attn*", "h.3.attn.c_proj", False),
    ("layer**.conv1", "layer1.0.conv1", True),
])
def test_glob_segments(pattern, name, hit):
    assert bool(glob_to_regex(pattern).match(name)) is hit


def test_glob_selects_the_blocks_only():
    sel = select_layers(TorchEncoder(depth=3), ["encoder.layers.*"])
    assert sel.names == ["encoder.layers.0", "encoder.layers.1", "encoder.layers.2"]
    assert all(r.startswith("not selected") for r in sel.skipped.values())
    assert len(select_layers(TorchEncoder(depth=3), ["encoder.layers.**"]).names) > 3 * 3  # their insides


def test_pattern_matching_nothing_names_close_matches():
    with pytest.raises(ValueError, match=r"matches no module.*'layer1\.0\.conv1'.*'layer\*\*\.conv1'"):
        select_layers(HandResNet(), ["layer*.conv1"])
    with pytest.raises(ValueError, match=r"matches no module.*Did you mean 'encoder\.layers\.\*'\?"):
        select_layers(TorchEncoder(), ["encoder.layer.*"])
    with pytest.raises(ValueError, match=r"layer name 'layer1\.0\.conv'.*Did you mean .*'layer1\.0\.conv1'"):
        select_layers(HandResNet(), ["layer1.0.conv"])
    with pytest.raises(ValueError, match="module type GRU in layers= matches no module"):
        select_layers(HandResNet(), [nn.GRU])


# ----------------------------------------------------------------------------------------------
# Automatic selection
# ----------------------------------------------------------------------------------------------
def _blocks(prefix, n):
    return [f"{prefix}.{i}" for i in range(n)]


EXPECTED = {
    "hand_resnet": ["maxpool"] + [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)] + ["avgpool", "fc"],
    "timm_vit": ["patch_embed", "blocks.0", "blocks.1", "norm", "head"],
    "torch_encoder": ["embed", "encoder.layers.0", "encoder.layers.1", "encoder.norm", "head"],
    "hf_resnet": ["resnet.embedder"] + _blocks("resnet.encoder.stages", 4) + ["resnet.pooler", "classifier"],
    "hf_vit": ["vit.embeddings", "vit.layers.0", "vit.layers.1", "vit.layernorm", "classifier"],
    "hf_convnext": ["convnext.embeddings"] + _blocks("convnext.encoder.stages", 4)
                   + ["convnext.layernorm", "classifier"],
    "hf_bert": ["bert.embeddings"] + _blocks("bert.encoder.layer", 2) + ["bert.pooler", "classifier"],
    # wpe returns (1, L, d): only its output shape tells (see test_position_embeddings_are_skipped)
    "hf_gpt2": ["transformer.wte", "transformer.wpe", *_blocks("transformer.h", 2), "transformer.ln_f",
                "lm_head"],
}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_auto_selection_per_family(family):
    model = FAMILIES[family][0]()
    sel = select_layers(model, "auto")
    assert sel.names == EXPECTED[family]
    named = [n for n, _ in model.named_modules() if n]
    # every module is accounted for once: monitored, or skipped with a "<kind>: <detail>" reason
    assert set(sel.names).isdisjoint(sel.skipped) and set(sel.names) | set(sel.skipped) == set(named)
    assert all(":" in r for r in sel.skipped.values())
    assert not any("position" in n or "dropout" in n.lower() or n.endswith("drop") for n in sel.names)


def test_auto_selection_at_real_depth():
    resnet18 = select_layers(HandResNet(depth=2), "auto")
    assert len(resnet18.names) == 1 + 8 + 2  # stem, 8 BasicBlocks, pool, head
    bert12 = select_layers(hf_bert(depth=12), "auto")
    blocks = _blocks("bert.encoder.layer", 12)
    assert bert12.names == ["bert.embeddings", *blocks, "bert.pooler", "classifier"]
    assert [c.layers for c in bert12.chains] == [tuple(blocks)]


def test_stem_is_one_layer_named_in_the_reasons():
    sel = select_layers(HandResNet(), "auto")
    for part in ("conv1", "bn1", "relu"):
        assert sel.skipped[part] == "stem: monitored at its last module maxpool"
    assert sel.skipped["layer1.0.conv1"] == "inside monitored unit: layer1.0"
    assert sel.skipped["layer1"] == "container: its blocks are monitored"


def test_position_embeddings_are_skipped():
    assert non_batch_reason((2, 8, 16), 2) is None
    assert "first dimension 1 on an input of 2 rows" in non_batch_reason((1, 8, 16), 2)
    assert non_batch_reason((), 2).startswith("no batch dimension")
    for family in ("hf_gpt2", "hf_bert", "hf_vit"):
        build, inputs, _ = FAMILIES[family]
        model = build().eval()
        sel = select_layers(model, "auto")
        flow = trace_chains(model, dict(sel.monitored), run_forward(model, inputs(2)))
        kept = sel.drop(flow.non_batch)
        assert list(flow.non_batch) == (["transformer.wpe"] if family == "hf_gpt2" else [])
        assert not any("wpe" in n or "position" in n for n in kept.names)
        if family == "hf_gpt2":
            assert kept.skipped["transformer.wpe"].startswith("no batch dimension: output 1x8x16")
            assert kept.names == [n for n in EXPECTED["hf_gpt2"] if n != "transformer.wpe"]


def test_selection_drop_rejects_unknown_layers():
    sel = select_layers(TorchEncoder(), "auto")
    with pytest.raises(ValueError, match="not monitored"):
        sel.drop({"encoder.layers.0.linear1": "x: y"})
    assert sel.drop({"encoder.layers.1": "x: y"}).chains == []  # the two-block chain lost a layer


def test_sequential_models_select_as_before():
    szt = select_layers(szt_network("tanh"), "auto")
    assert szt.names == [str(i) for i in range(12)]  # 6 Linear + 5 Tanh + Softmax
    assert [(c.name, c.layers) for c in szt.chains] == [("model", tuple(str(i) for i in range(12)))]
    mlp = select_layers(MODELS["mlp"](), "auto")
    assert mlp.names == ["0", "1", "2", "4", "5", "7"] and mlp.skipped["3"].startswith("pass-through")
    cnn = select_layers(MODELS["cnn"](), "auto")
    assert cnn.names == [f"features.{i}" for i in range(6)] + ["head"]
    tr = select_layers(MODELS["transformer"](), "auto")
    assert tr.names == ["embed", "encoder.layers.0", "encoder.layers.1", "head"]
    assert [c.layers for c in tr.chains] == [("encoder.layers.0", "encoder.layers.1")]


# ----------------------------------------------------------------------------------------------
# Coverage table
# ----------------------------------------------------------------------------------------------
def _coverage_rows(model, sel, flow):
    """The rows IBMonitor.coverage builds, from a selection and a traced pass (flatten reduction)."""
    chain_of = {n: c.name for c in flow.chains for n in c.layers}
    rows = []
    for name, module in model.named_modules():
        if not name:
            continue
        row = {"name": name, "type": type(module).__name__}
        if name in dict(sel.monitored):
            shape = flow.shapes[name]
            row.update(status="monitored", reason="", shape=["B", *shape[1:]], reduction="flatten",
                       dim=math.prod(shape[1:]), activation=None, chain=chain_of.get(name), estimator="kde")
        else:
            row.update(status="skipped", reason=sel.skipped[name])
        rows.append(row)
    return rows


@pytest.mark.parametrize("family, depth", [("hand_resnet", 2), ("hf_bert", 12)])
def test_coverage_table_fits_a_screen(family, depth):
    build, inputs, _ = FAMILIES[family]
    model = build(depth=depth).eval()
    sel = select_layers(model, "auto")
    flow = trace_chains(model, dict(sel.monitored), run_forward(model, inputs(2)))
    rows = _coverage_rows(model, sel, flow)
    table = render_coverage(rows)
    lines = table.splitlines()
    assert len(lines) <= len(sel.names) + 3
    assert len(lines) == len(sel.names) + 2  # column header, one line per layer, the skipped summary
    for name in sel.names:  # full names, each on its own line, never cut
        assert any(line.split()[0] == name for line in lines[1:-1])
    n_skipped = sum(r["status"] == "skipped" for r in rows)
    assert lines[-1].startswith(f"  skipped {n_skipped} modules: ") and "inside monitored unit" in lines[-1]
    assert "chain " in lines[2] and " kde " in lines[2] and "flatten -> " in lines[2]
    full = render_coverage(rows, all=True).splitlines()
    assert len(full) == len(rows) + 1
    assert sum("skipped: inside monitored unit" in x for x in full) > len(sel.names)


def test_coverage_table_shows_errors_and_rejects_bad_rows():
    rows = [{"name": "a.very.long.module.name.that.is.never.cut", "type": "Linear", "status": "error",
             "reason": "never fired during a forward pass of the probe"},
            {"name": "b", "type": "Dropout", "status": "skipped", "reason": "pass-through: dropout"}]
    lines = render_coverage(rows).splitlines()
    assert lines[1].split()[0] == rows[0]["name"] and "error: never fired" in lines[1]
    assert lines[-1].startswith("  skipped 1 modules: 1 pass-through")
    with pytest.raises(TypeError, match="list of row dicts"):
        render_coverage("not rows")
    with pytest.raises(ValueError, match="row 0 must be a dict with 'name' and a 'status'"):
        render_coverage([{"name": "x", "status": "fine"}])
