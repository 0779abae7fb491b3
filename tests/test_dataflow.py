"""Chains from the observed data flow: real architectures, in-place activations, views, skip connections
and masks, storage reuse, repeated calls, and hooks that leave nothing behind."""
import weakref

import pytest
import torch
import torch.nn as nn

from ibhooks.dataflow import OUTSIDE, X, trace_chains
from ibhooks.layers import select_layers
from real_models import FAMILIES, HandResNet, hf_bert, run_forward, text_batch

pytest.importorskip("transformers")


def _trace(model, inputs, layers="auto"):
    model.eval()
    sel = select_layers(model, layers)
    return trace_chains(model, dict(sel.monitored), run_forward(model, inputs))


def _blocks(prefix, n):
    return tuple(f"{prefix}.{i}" for i in range(n))


EXPECTED_CHAINS = {
    # the stem's output feeds the blocks; flatten between avgpool and fc is a view of the same storage
    "hand_resnet": [("maxpool",) + tuple(f"layer{s}.{b}" for s in range(1, 5) for b in range(2))
                    + ("avgpool", "fc")],
    # patch_embed's output gets the cls token and position embeddings added outside any module
    "timm_vit": [("blocks.0", "blocks.1", "norm", "head")],
    # the head sees the mean over tokens, computed outside any module
    "torch_encoder": [("embed", "encoder.layers.0", "encoder.layers.1", "encoder.norm")],
    "hf_resnet": [("resnet.embedder", *_blocks("resnet.encoder.stages", 4), "resnet.pooler", "classifier")],
    # x[:, 0] before the classifier is a view of the final norm's output
    "hf_vit": [("vit.embeddings", "vit.layers.0", "vit.layers.1", "vit.layernorm", "classifier")],
    # the final layernorm sees a mean over the spatial dims: a second chain starts there
    "hf_convnext": [("convnext.embeddings",) + _blocks("convnext.encoder.stages", 4),
                    ("convnext.layernorm", "classifier")],
    "hf_bert": [("bert.embeddings", *_blocks("bert.encoder.layer", 2), "bert.pooler", "classifier")],
    # the blocks consume wte + wpe (a sum outside any module); wpe has no batch dimension
    "hf_gpt2": [("transformer.h.0", "transformer.h.1", "transformer.ln_f", "lm_head")],
}


@pytest.mark.parametrize("family", sorted(EXPECTED_CHAINS))
def test_chains_per_family(family):
    build, inputs, _ = FAMILIES[family]
    flow = _trace(build(), inputs(2))
    assert [c.layers for c in flow.chains] == EXPECTED_CHAINS[family]
    assert flow.n_rows == 2 and all(c.source.startswith("data flow") for c in flow.chains)
    assert list(flow.non_batch) == (["transformer.wpe"] if family == "hf_gpt2" else [])
    for a, b in zip(EXPECTED_CHAINS[family][0], EXPECTED_CHAINS[family][0][1:]):
        assert flow.follows[b] == a and b in flow.feeds[a]


def test_chains_at_real_depth():
    resnet18 = _trace(HandResNet(depth=2), FAMILIES["hand_resnet"][1](2))
    assert [len(c.layers) for c in resnet18.chains] == [11]
    bert12 = _trace(hf_bert(depth=12), text_batch(2))
    assert [c.layers for c in bert12.chains] == [("bert.embeddings",) + _blocks("bert.encoder.layer", 12)
                                                 + ("bert.pooler", "classifier")]


def test_explicit_selection_keeps_its_chain():
    flow = _trace(HandResNet(), FAMILIES["hand_resnet"][1](2), ["layer*", "avgpool", "fc"])
    assert [c.layers for c in flow.chains] == [("layer1", "layer2", "layer3", "layer4", "avgpool", "fc")]
    # fc reads avgpool's output, not layer4's
    no_pool = _trace(HandResNet(), FAMILIES["hand_resnet"][1](2), ["layer*", "fc"])
    assert [c.layers for c in no_pool.chains] == [("layer1", "layer2", "layer3", "layer4")]


def test_padding_mask_is_named_in_the_chain():
    flow = _trace(hf_bert(), text_batch(2, padded=True))
    (chain,) = flow.chains
    assert chain.layers == EXPECTED_CHAINS["hf_bert"][0]
    assert "attention_mask (Bx1x8x8) from outside the monitored layers into bert.encoder.layer.0 .. " \
           "bert.encoder.layer.1 (2 layers)" in chain.source
    side = flow.side_inputs["bert.encoder.layer.0"]
    assert [(s.where, s.source) for s in side] == [("attention_mask", OUTSIDE)]


# ----------------------------------------------------------------------------------------------
# Small models with a known data flow
# ----------------------------------------------------------------------------------------------
def test_inplace_relu_returns_the_tensor_it_received():
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(inplace=True), nn.Linear(6, 2))
    x = torch.randn(3, 4)
    flow = _trace(model, x, ["0", "1", "2"])
    assert [c.layers for c in flow.chains] == [("0", "1", "2")]
    # relu's output is linear 0's storage, modified in place: the next layer follows relu, not 0
    assert flow.follows == {"1": "0", "2": "1"} and flow.feeds["0"] == ["1"]
    skipped_relu = _trace(model, x, ["0", "2"])  # an unmonitored in-place op between them
    assert [c.layers for c in skipped_relu.chains] == [("0", "2")]


class _Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)

    def forward(self, h, mask=None, skip=None):
        out = self.fc(h)
        if mask is not None:
            out = out.masked_fill(mask, 0.0)
        return out if skip is None else out + skip


class _Net(nn.Module):
    """a -> b -> c, c also takes a skip from a; masks of either kind go to b."""

    def __init__(self, mask: str = "none", skip: bool = False) -> None:
        super().__init__()
        self.a, self.b, self.c = _Block(4), _Block(4), _Block(4)
        self.mask, self.skip = mask, skip

    def forward(self, x):
        ha = self.a(x)
        if self.mask == "causal":  # the same for every sample
            mask = torch.ones(1, 4, dtype=torch.bool).triu(1)
        elif self.mask == "causal_expanded":  # batch-sized, but broadcast: stride 0
            mask = torch.ones(1, 4, dtype=torch.bool).triu(1).expand(x.shape[0], 4)
        elif self.mask == "padding":  # from X
            mask = x < -1.0
        else:
            mask = None
        hb = self.b(ha, mask=mask)
        return self.c(hb, skip=ha if self.skip else None)


@pytest.mark.parametrize("mask", ["causal", "causal_expanded"])
def test_same_for_every_sample_inputs_keep_the_chain(mask):
    flow = _trace(_Net(mask=mask), torch.randn(3, 4), ["a", "b", "c"])
    assert [c.layers for c in flow.chains] == [("a", "b", "c")]
    assert flow.side_inputs == {} and "side inputs" not in flow.chains[0].source


def test_x_dependent_inputs_are_named():
    flow = _trace(_Net(mask="padding", skip=True), torch.randn(3, 4), ["a", "b", "c"])
    (chain,) = flow.chains
    assert chain.layers == ("a", "b", "c")
    assert "mask (Bx4) from outside the monitored layers into b" in chain.source
    assert "skip (Bx4) from a into c" in chain.source
    assert flow.feeds["a"] == ["b", "c"]


def test_model_input_starts_a_chain():
    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
    flow = _trace(model, torch.randn(3, 4), ["0", "1"])
    assert "0" not in flow.follows and flow.follows["1"] == "0"
    parallel = _trace(_TwoHeads(), torch.randn(3, 4))  # two layers that both read X: no chain
    assert parallel.chains == [] and parallel.follows == {}


class _TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.p, self.q = nn.Linear(4, 2), nn.Linear(4, 2)

    def forward(self, x):
        return self.p(x), self.q(x)


def test_branches_give_one_chain_each():
    class Fork(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk, self.left, self.right = nn.Linear(4, 4), nn.Linear(4, 2), nn.Linear(4, 3)

        def forward(self, x):
            h = self.trunk(x)
            return self.left(h), self.right(h)

    flow = _trace(Fork(), torch.randn(3, 4))
    assert [c.layers for c in flow.chains] == [("trunk", "left"), ("trunk", "right")]
    assert len({c.name for c in flow.chains}) == 2  # names made unique


def test_outputs_are_held_during_the_pass_and_released_after():
    """A freed output's memory could be handed to an unrelated tensor that would then look like the
    same storage (the CUDA caching allocator does this at once): the tracer holds every output it
    mapped until the pass ends, and lets go of them afterwards."""
    class Drop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)
            self.refs = []

        def forward(self, x):
            h = self.a(x)
            self.refs.append(weakref.ref(h))
            fresh = torch.tanh(h)
            del h  # the model lets go of a's output
            return self.b(fresh)

    model = Drop().eval()
    alive = []

    def forward():
        with torch.no_grad():
            model(torch.randn(2, 8))
        alive.append(model.refs[-1]() is not None)

    with torch.no_grad():
        model(torch.randn(2, 8))
    assert model.refs[-1]() is None  # untraced, a's output is freed inside the forward
    flow = trace_chains(model, {"a": model.a, "b": model.b}, forward)
    assert alive == [True] and model.refs[-1]() is None
    assert flow.chains == [] and flow.feeds == {"a": [], "b": []}


@pytest.mark.gpu
def test_cuda_reused_storage_is_not_a_link():
    """On CUDA the caching allocator hands a freed block to the next tensor of the same size at once:
    without the tracer holding a's output, b would seem to consume it."""
    class Reuse(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(64, 64), nn.Linear(64, 64)
            self.ptrs = []

        def forward(self, x):
            h = self.a(x)
            self.ptrs.append(h.untyped_storage().data_ptr())
            t = torch.tanh(h)
            del h
            fresh = torch.empty_like(t).copy_(t)  # a new tensor: here, in a's freed block
            self.ptrs.append(fresh.untyped_storage().data_ptr())
            return self.b(fresh)

    model = Reuse().cuda().eval()
    x = torch.randn(4, 64, device="cuda")
    with torch.no_grad():
        model(x)
    if model.ptrs[0] != model.ptrs[1]:
        pytest.skip("the caching allocator did not reuse the block; nothing to check")
    flow = trace_chains(model, {"a": model.a, "b": model.b}, run_forward(model, x))
    assert flow.chains == [] and "b" not in flow.follows


def test_repeated_calls_and_silent_modules():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.f, self.g, self.unused = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.g(self.f(self.f(x)))  # g consumes f's second call, which is not traced

    model = Twice()
    flow = _trace(model, torch.randn(3, 4), ["f", "g", "unused"])
    assert flow.calls == {"f": 2, "g": 1} and flow.silent({"f": 0, "g": 0, "unused": 0}) == ["unused"]
    assert flow.chains == [] and flow.order == ["f", "g"]


def test_hooks_are_removed_even_when_the_forward_fails():
    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh())

    def boom():
        model(torch.randn(2, 4))
        raise RuntimeError("probe forward failed")

    with pytest.raises(RuntimeError, match="probe forward failed"):
        trace_chains(model, {"0": model[0], "1": model[1]}, boom)
    for m in model.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks
    with pytest.raises(ValueError, match="at least one monitored module"):
        trace_chains(model, {}, boom)


def test_n_rows_is_taken_from_the_model_input_or_given():
    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
    flow = trace_chains(model, {"0": model[0], "1": model[1]}, lambda: model(torch.randn(5, 4)))
    assert flow.n_rows == 5 and flow.shapes == {"0": (5, 4), "1": (5, 4)}
    # called on a submodule only (the root never runs): the commonest leading size of the outputs
    flow = trace_chains(model, {"0": model[0], "1": model[1]}, lambda: model[1](model[0](torch.randn(5, 4))))
    assert flow.n_rows == 5 and flow.follows == {"1": "0"}
    assert X not in flow.follows.values()
