"""Tiny versions of real architectures, built from configs with random weights (no downloads), with
inputs for each: HF ResNet, ViT, ConvNeXt, BERT and GPT-2, a torchvision-style ResNet written by
hand (torchvision itself is kept out of the test dependencies), a timm-style ViT and
``nn.TransformerEncoder``.

Every builder takes ``depth`` (blocks per stage, or transformer blocks) so tests can build both a
small model and a model of the real size (ResNet-18's 2-2-2-2, BERT-base's 12 blocks) cheaply."""
from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

import torch
import torch.nn as nn

VOCAB, SEQ, IMAGE, CLASSES = 50, 8, 32, 3


# ----------------------------------------------------------------------------------------------
# Hand-written models (no optional dependency)
# ----------------------------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """torchvision's ResNet BasicBlock: two 3x3 convs, a residual add, inplace ReLUs."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class HandResNet(nn.Module):
    """torchvision-style ResNet: ``conv1/bn1/relu/maxpool/layer1..4/avgpool/fc`` called in order."""

    def __init__(self, depth: int = 2, width: int = 8, classes: int = CLASSES) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        widths = [width, 2 * width, 4 * width, 8 * width]
        c_in = width
        for i, c in enumerate(widths):
            first = BasicBlock(c_in, c, stride=1 if i == 0 else 2)
            blocks = [first] + [BasicBlock(c, c) for _ in range(depth - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            c_in = c
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TimmBlock(nn.Module):
    """A pre-norm transformer block as timm writes it (attention + MLP on the residual stream)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, d: int, patch: int = 4) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, d, patch, stride=patch)
        self.norm = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class TimmViT(nn.Module):
    """timm's VisionTransformer layout: patch_embed, cls_token/pos_embed parameters, blocks, norm, head."""

    def __init__(self, depth: int = 2, d: int = 16, classes: int = CLASSES) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, (IMAGE // 4) ** 2 + 1, d) * 0.02)
        self.pos_drop = nn.Dropout(0.1)
        self.blocks = nn.Sequential(*[TimmBlock(d) for _ in range(depth)])
        self.norm = nn.LayerNorm(d)
        self.head_drop = nn.Dropout(0.0)
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(self.pos_drop(x)))
        return self.head(self.head_drop(x[:, 0]))


class TorchEncoder(nn.Module):
    """Token embedding -> ``nn.TransformerEncoder`` (with a final norm) -> mean over tokens -> head."""

    def __init__(self, depth: int = 2, d: int = 16, classes: int = CLASSES) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d)
        layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=depth, norm=nn.LayerNorm(d),
                                             enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens)).mean(dim=1))


# ----------------------------------------------------------------------------------------------
# Hugging Face models from tiny configs (transformers is a test dependency)
# ----------------------------------------------------------------------------------------------
def hf_resnet(depth: int = 2) -> nn.Module:
    from transformers import ResNetConfig, ResNetForImageClassification

    cfg = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[depth] * 4,
                       layer_type="basic", num_labels=CLASSES)
    return ResNetForImageClassification(cfg)


def hf_vit(depth: int = 2) -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    cfg = ViTConfig(image_size=IMAGE, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=depth,
                    num_attention_heads=2, intermediate_size=32, num_labels=CLASSES)
    return ViTForImageClassification(cfg)


def hf_convnext(depth: int = 1) -> nn.Module:
    from transformers import ConvNextConfig, ConvNextForImageClassification

    cfg = ConvNextConfig(num_channels=3, hidden_sizes=[8, 16, 32, 64], depths=[depth] * 4, num_labels=CLASSES)
    return ConvNextForImageClassification(cfg)


def hf_bert(depth: int = 2) -> nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=depth, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=4 * SEQ, num_labels=CLASSES)
    return BertForSequenceClassification(cfg)


def hf_gpt2(depth: int = 2) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=VOCAB, n_embd=16, n_layer=depth, n_head=2, n_positions=4 * SEQ,
                     bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg)


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------
def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(seed))


def tokens(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, SEQ), generator=torch.Generator().manual_seed(seed))


def text_batch(n: int, seed: int = 0, padded: bool = False) -> Dict[str, torch.Tensor]:
    """HF-style dict input; ``padded`` masks the last two tokens of every other row."""
    ids = tokens(n, seed)
    mask = torch.ones_like(ids)
    if padded:
        mask[::2, -2:] = 0
    return {"input_ids": ids, "attention_mask": mask}


# name -> (builder(depth), input(n), does the forward take a dict of keyword arguments)
FAMILIES: Dict[str, Tuple[Callable[..., nn.Module], Callable[[int], Any], bool]] = {
    "hand_resnet": (HandResNet, images, False),
    "timm_vit": (TimmViT, images, False),
    "torch_encoder": (TorchEncoder, tokens, False),
    "hf_resnet": (hf_resnet, images, False),
    "hf_vit": (hf_vit, lambda n: {"pixel_values": images(n)}, True),
    "hf_convnext": (hf_convnext, lambda n: {"pixel_values": images(n)}, True),
    "hf_bert": (hf_bert, text_batch, True),
    "hf_gpt2": (hf_gpt2, text_batch, True),
}


def run_forward(model: nn.Module, inputs: Any) -> Callable[[], None]:
    """A zero-argument forward of ``model`` on ``inputs`` (a dict is passed as keyword arguments)."""

    def go() -> None:
        with torch.no_grad():
            if isinstance(inputs, dict):
                model(**inputs)
            else:
                model(inputs)

    return go
