"""Real architectures out of the box (issue 13): the README one-liner on tiny Hugging Face models built
from configs (random weights, no downloads) attaches, skips what is no per-sample representation, finds
the block chain from the data flow, fits the screen, leaves training bit-identical, and works in probe
and passive mode with HF-style dict inputs and ModelOutput outputs."""

import pytest
import torch
import torch.nn.functional as F

import ibhooks

transformers = pytest.importorskip("transformers")
from real_models import IMAGE, SEQ, VOCAB, hf_bert, hf_gpt2, hf_resnet, hf_vit  # noqa: E402

N_TRAIN, N_PROBE, BATCH, STEPS = 256, 128, 32, 30


def _image_task(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, IMAGE, IMAGE, generator=g)
    y = (x[:, 0].mean((1, 2)) > x[:, 1].mean((1, 2))).long() + (x[:, 2].mean((1, 2)) > 0).long()
    return x, y  # 3 classes from channel statistics: learnable in a few dozen steps


def _text_task(n, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (n, SEQ), generator=g)
    y = (ids[:, 0] % 3).long()  # the class is the first token mod 3
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, y


def _rows(x, idx):
    return {k: v[idx] for k, v in x.items()} if isinstance(x, dict) else x[idx]


def _call(model, x):
    out = model(**x) if isinstance(x, dict) else model(x)
    return out.logits


def _loss(name, model, x, y):
    logits = _call(model, x)
    if name == "gpt2":  # a causal LM: next-token loss on the sequence, plus the class at the last position
        ids = x["input_ids"]
        return F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
    return F.cross_entropy(logits, y)


MODELS = {
    "resnet": (lambda: hf_resnet(depth=1), _image_task),
    "vit": (lambda: hf_vit(depth=2), _image_task),
    "bert": (lambda: hf_bert(depth=3), _text_task),
    "gpt2": (lambda: hf_gpt2(depth=3), _text_task),
}

EXPECTED_CHAIN = {  # at least these, in this order, on one chain
    "resnet": ["resnet.encoder.stages.0", "resnet.encoder.stages.1", "resnet.encoder.stages.2",
               "resnet.encoder.stages.3"],
    "vit": ["vit.layers.0", "vit.layers.1"],  # blocks of 65 tokens x 16: pooled for binning, see below
    "bert": ["bert.encoder.layer.0", "bert.encoder.layer.1", "bert.encoder.layer.2"],
    "gpt2": ["transformer.h.0", "transformer.h.1", "transformer.h.2"],
}


def _train(name, tmp_path, mode=None, steps=STEPS, **monitor_kwargs):
    build, task = MODELS[name]
    torch.manual_seed(0)
    model = build()
    x, y = task(N_TRAIN, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    mon = None
    if mode is not None:
        probe = task(N_PROBE, seed=2) if mode == "probe" else None
        mon = ibhooks.IBMonitor(model, probe=probe, schedule=ibhooks.every_n(10), log_dir=tmp_path,
                                run_name=f"{name}-{mode}", verbose=False, **monitor_kwargs)
    g = torch.Generator().manual_seed(3)
    for _ in range(steps):
        idx = torch.randint(0, N_TRAIN, (BATCH,), generator=g)
        model.train()
        loss = _loss(name, model, _rows(x, idx), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if mon is not None:
            mon.step(y=y[idx])
    records = []
    if mon is not None:
        records = mon.history
        mon.close()
    return model, mon, records


@pytest.mark.parametrize("name", sorted(MODELS))
def test_one_liner_on_real_models_probe_mode(name, tmp_path):
    base, _, _ = _train(name, tmp_path)
    model, mon, records = _train(name, tmp_path, "probe")
    for (k, a), b in zip(base.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), f"{name}: {k} differs from training without the monitor"
    assert [r.step for r in records] == [0, 10, 20, 30]
    for r in records:
        assert not r.errors, r.errors[:3]
        assert r.n_samples == N_PROBE and len(r.layers) == len(mon.layer_names)
    # no position embeddings or other non-per-sample outputs in the capture
    assert not any("position" in n or n.endswith("wpe") for n in mon.layer_names)
    # the block sequence is one chain, found from the data flow (ViT's blocks are 1040 values wide: the
    # default binning pools them, which takes them off the chain; pairwise estimators keep them, below)
    if name != "vit":
        chain = max(mon.chains, key=lambda c: len(c.layers))
        pos = [chain.layers.index(n) for n in EXPECTED_CHAIN[name] if n in chain.layers]
        assert len(pos) == len(EXPECTED_CHAIN[name]) and pos == sorted(pos), (name, mon.chains)
    # the coverage table fits a screen: one line per monitored layer plus a title, header and summary
    lines = mon.coverage_table().splitlines()
    assert len(lines) <= len(mon.layer_names) + 3, "\n".join(lines)
    assert all(n in mon.coverage_table() for n in mon.layer_names), "a layer name was cut"
    assert len(mon.coverage_table(all=True).splitlines()) > len(lines)


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_passive_mode_on_hf_models(name, tmp_path):
    model, mon, records = _train(name, tmp_path, "passive")
    assert [r.step for r in records] == [10, 20, 30]
    for r in records:
        assert not r.errors, r.errors[:3]
        assert r.n_samples >= 8 * BATCH, "the passive window did not pool enough rows"
        assert r.h_y is not None and r.layers
    if name == "gpt2":
        assert "transformer.wpe" not in records[-1].layers


def test_pairwise_estimators_keep_wide_blocks_whole_and_on_their_chain(tmp_path):
    """ViT blocks output 65 x 16 = 1040 values per sample: mean-pooled (off the chain) for estimators that
    need vectors (binning), kept whole (on the chain) for estimators that work from pairwise distances
    (KDE here; the default ``auto`` too)."""
    build, task = MODELS["vit"]
    torch.manual_seed(0)
    probe = task(64, seed=2)
    pooled = ibhooks.IBMonitor(build(), probe=probe, estimators=["binning"], measure_initial=False,
                               log_dir=tmp_path, verbose=False)
    default = ibhooks.IBMonitor(build(), probe=probe, measure_initial=False, log_dir=tmp_path, verbose=False)
    assert {r["reduction"] for r in default.coverage if r["status"] == "monitored"} == {"flatten"}
    default.close()
    whole = ibhooks.IBMonitor(build(), probe=probe, estimators=[("kde", {"relative_noise": 0.1})],
                              measure_initial=False, log_dir=tmp_path, verbose=False)
    block = "vit.layers.0"
    red = {m: {r["name"]: r["reduction"] for r in m.coverage if r["status"] == "monitored"} for m in (pooled, whole)}
    assert red[pooled][block].startswith("mean") and red[whole][block] == "flatten"
    assert not any(block in c.layers for c in pooled.chains)
    assert any({block, "vit.layers.1"} <= set(c.layers) for c in whole.chains)
    rec = whole.measure()
    assert not rec.errors and rec.layers[block]["kde"].i_xt.dim == 65 * 16
    pooled.close()
    whole.close()
