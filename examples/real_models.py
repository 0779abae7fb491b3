"""The README one-liner on four Hugging Face models (random weights from small configs, no downloads),
each trained for a minute or two on CPU on a generated task.

* ``ResNetForImageClassification`` (basic blocks, 4 stages) and ``ViTForImageClassification`` (4
  blocks, 8x8 patches of 4 pixels) on 32x32 noise images whose class comes from channel statistics:
  ``(mean(R) > mean(G)) + (mean(B) > 0)``, 3 classes.
* ``BertForSequenceClassification`` (4 encoder layers) on random token sequences whose class is the
  first token mod 3. The probe is given as a dict: ``({"input_ids": ..., "attention_mask": ...}, y)``.
* ``GPT2LMHeadModel`` (4 blocks) trained as a causal LM on the same sequences (its loss is the next
  token's); the class (first token mod 3) is only the probe's label, never taught.

The monitor keeps every default except ``probe``, ``schedule`` and ``log_dir``: the default estimator
``"auto"`` measures wide layers by a scale-aware noisy channel (I(X;T)) and a cross-fitted classifier
probe (I(T;Y)), and layers of a few units by binning (``--smoke`` swaps the probe for the KDE's
I(T;Y)). Per model it prints the layers monitored, the chains found from the data flow, the fraction of
(layer, measurement) I(X;T) estimates at their cap, the spread of I(X;T) across layers (bits) at the
first and last measurement, and I(T;Y) of the last layers at the first and last measurement; it writes
the run logs and every figure.

    python examples/real_models.py --out runs/real_models          # a few minutes on 2 CPU cores
    python examples/real_models.py --smoke --out /tmp/real_smoke    # seconds (needs transformers)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ibhooks  # noqa: E402
from _summary import errors, format_dpi, layer_table, save_figures  # noqa: E402
from ibhooks.schema import Quantity, Record  # noqa: E402

IMAGE, VOCAB, SEQ, CLASSES = 32, 64, 16, 3
Batch = Tuple[Any, torch.Tensor]


# ----------------------------------------------------------------------------------------------
# Tasks (generated: learnable, no downloads)
# ----------------------------------------------------------------------------------------------
def image_task(n: int, seed: int) -> Batch:
    """Noise images; the class is (mean red > mean green) + (mean blue > 0), one of 3."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, IMAGE, IMAGE, generator=g)
    y = (x[:, 0].mean((1, 2)) > x[:, 1].mean((1, 2))).long() + (x[:, 2].mean((1, 2)) > 0).long()
    return x, y


def text_task(n: int, seed: int) -> Batch:
    """Random token sequences as a HF dict; the class is the first token mod 3."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (n, SEQ), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, ids[:, 0] % CLASSES


def rows(x: Any, idx: torch.Tensor) -> Any:
    return {k: v[idx] for k, v in x.items()} if isinstance(x, dict) else x[idx]


def logits(model: nn.Module, x: Any) -> torch.Tensor:
    return (model(**x) if isinstance(x, dict) else model(x)).logits  # a HF ModelOutput


# ----------------------------------------------------------------------------------------------
# Models (small configs, random weights)
# ----------------------------------------------------------------------------------------------
def hf_resnet(smoke: bool) -> nn.Module:
    from transformers import ResNetConfig, ResNetForImageClassification

    sizes = [8, 16, 32, 64] if smoke else [16, 32, 64, 128]
    cfg = ResNetConfig(num_channels=3, embedding_size=sizes[0], hidden_sizes=sizes, depths=[1, 1, 1, 1],
                       layer_type="basic", num_labels=CLASSES)
    return ResNetForImageClassification(cfg)


def hf_bert(smoke: bool) -> nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=VOCAB, hidden_size=16 if smoke else 32, num_hidden_layers=2 if smoke else 4,
                     num_attention_heads=2, intermediate_size=32 if smoke else 64,
                     max_position_embeddings=2 * SEQ, num_labels=CLASSES)
    return BertForSequenceClassification(cfg)


def hf_vit(smoke: bool) -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    cfg = ViTConfig(image_size=IMAGE, patch_size=8 if smoke else 4, hidden_size=16,
                    num_hidden_layers=2 if smoke else 4, num_attention_heads=2, intermediate_size=32,
                    num_labels=CLASSES)
    return ViTForImageClassification(cfg)


def hf_gpt2(smoke: bool) -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=VOCAB, n_embd=16 if smoke else 32, n_layer=2 if smoke else 4, n_head=2,
                     n_positions=2 * SEQ)
    return GPT2LMHeadModel(cfg)


def class_loss(model: nn.Module, x: Any, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits(model, x), y)


def lm_loss(model: nn.Module, x: Any, y: torch.Tensor) -> torch.Tensor:
    """A causal LM's own loss (next token); the class label is only the probe's Y."""
    ids = x["input_ids"]
    return F.cross_entropy(logits(model, x)[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))


Loss = Callable[[nn.Module, Any, torch.Tensor], torch.Tensor]
#: name -> (builder, task, learning rate, training loss)
MODELS: Dict[str, Tuple[Callable[[bool], nn.Module], Callable[[int, int], Batch], float, Loss]] = {
    "resnet": (hf_resnet, image_task, 1e-3, class_loss),
    "bert": (hf_bert, text_task, 1e-3, class_loss),
    "vit": (hf_vit, image_task, 1e-3, class_loss),
    "gpt2": (hf_gpt2, text_task, 1e-3, lm_loss),
}


def estimator_choice(smoke: bool) -> Tuple[List[Any], str]:
    """The default, ``["auto"]``; ``smoke``: auto with the KDE's I(T;Y) instead of the classifier probe,
    which takes a second or more per wide layer on a CPU."""
    if smoke:
        return [("auto", {"ty": "kde"})], 'estimators=[("auto", {"ty": "kde"})] (smoke: no classifier probe)'
    return ["auto"], 'the default estimator ("auto")'


# ----------------------------------------------------------------------------------------------
# What the run shows
# ----------------------------------------------------------------------------------------------
def summarize(history: List[Record], layers: List[str], n_last: int = 2) -> Dict[str, Any]:
    """Fraction of (layer, measurement) I(X;T) estimates at their cap, spread of I(X;T) across layers
    at the first and last measurement (bits), and I(T;Y) of the last ``n_last`` layers then."""
    est = history[-1].estimators[0]
    xt = [[r.estimate(layer, Quantity.I_XT, est) for layer in layers if layer in r.layers] for r in history]
    flat = [e for row in xt for e in row if e is not None]
    spread = [max(e.value for e in row) - min(e.value for e in row) for row in (xt[0], xt[-1])]

    def ty(rec: Record) -> Dict[str, float]:
        out = {}
        for layer in layers[-n_last:]:
            e = rec.estimate(layer, Quantity.I_TY, est) if layer in rec.layers else None
            out[layer] = float("nan") if e is None else e.value
        return out

    chosen = {layer: history[-1].estimate(layer, Quantity.I_XT, est).estimator for layer in layers
              if layer in history[-1].layers}
    return {"estimator": est, "at_cap": sum(e.saturated for e in flat) / max(len(flat), 1),
            "spread_first": spread[0], "spread_last": spread[1],
            "ty_first": ty(history[0]), "ty_last": ty(history[-1]), "chosen": chosen,
            "mean_xt_last": statistics.fmean(e.value for e in xt[-1])}


def accuracy(model: nn.Module, x: Any, y: torch.Tensor) -> float:
    """Held-out accuracy on the class (a causal LM: on its next tokens)."""
    model.eval()
    with torch.no_grad():
        out = logits(model, x)
    if out.dim() == 3:  # (n, tokens, vocab)
        ids = x["input_ids"]
        return (out[:, :-1].argmax(2) == ids[:, 1:]).float().mean().item()
    return (out.argmax(1) == y).float().mean().item()


def train_one(name: str, args: argparse.Namespace, out: Path, estimators: List[Any]) -> Dict[str, Any]:
    build, task, lr, loss_fn = MODELS[name]
    torch.manual_seed(args.seed)
    model = build(args.smoke)
    x_train, y_train = task(args.train, args.seed + 1)
    x_probe, y_probe = task(args.probe, args.seed + 2)  # held out; for BERT a dict of input tensors
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    monitor = ibhooks.IBMonitor(                       # the README one-liner
        model,
        probe=(x_probe, y_probe),
        schedule=ibhooks.log_spaced(args.measurements, args.steps),
        estimators=estimators,
        log_dir=out,
        run_name=f"real_models_{name}",
    )
    t0 = time.time()
    gen = torch.Generator().manual_seed(args.seed + 3)
    for step in range(args.steps):
        idx = torch.randint(0, args.train, (args.batch_size,), generator=gen)
        model.train()
        loss = loss_fn(model, rows(x_train, idx), y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        monitor.step()
    monitor.close()
    runtime = time.time() - t0
    acc = accuracy(model, x_probe, y_probe)
    history = monitor.history
    layers = list(monitor.layer_names)
    summary = summarize(history, layers)
    chains = [c.layers for c in monitor.chains]

    print(f"\n=== {type(model).__name__}: {args.steps} steps, held-out accuracy {acc:.3f}"
          f"{' (next token)' if loss_fn is lm_loss else ''}, "
          f"{len(history)} measurements on {args.probe} probe rows, {runtime:.0f}s ===")
    print(monitor.coverage_table())
    print(f"layers monitored ({len(layers)}): {layers}")
    print(f"chains: {chains}")
    print(f"estimator per layer: {summary['chosen']}")
    print(f"I(X;T) at the cap: {100 * summary['at_cap']:.0f}% of (layer, measurement) estimates")
    print(f"spread of I(X;T) across layers: {summary['spread_first']:.2f} bits at the first measurement, "
          f"{summary['spread_last']:.2f} at the last")
    for layer in summary["ty_first"]:
        print(f"I(T;Y) {layer}: {summary['ty_first'][layer]:.2f} -> {summary['ty_last'][layer]:.2f} bits "
              f"(H(Y) = {history[-1].h_y:.2f})")
    print(layer_table(history))
    print(format_dpi(history))
    print(f"estimator errors: {len(errors(history))}; run log: {monitor.log_path}")
    figures = save_figures(monitor.log_path, out / f"figures_{name}", smoke=True)  # no GIF: slow
    return {"run_log": monitor.log_path, "figures": figures, "accuracy": acc, "history": history,
            "layers": layers, "chains": chains, **summary}


def main(argv=None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/real_models", help="output folder (run logs, figures)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--train", type=int, default=4096, help="training rows (generated)")
    p.add_argument("--probe", type=int, default=256, help="held-out probe rows")
    p.add_argument("--measurements", type=int, default=5, help="log-spaced measurement points")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny models, a few steps (for the tests)")
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.train, args.probe, args.measurements = 8, 256, 96, 2
    try:
        import transformers  # noqa: F401
    except ImportError as exc:
        raise SystemExit("examples/real_models.py needs Hugging Face transformers: "
                         "pip install transformers") from exc
    torch.set_num_threads(min(2, torch.get_num_threads()))
    estimators, said = estimator_choice(args.smoke)
    print(f"estimators: {said}")
    out = Path(args.out)
    return {"estimators": said, **{name: train_one(name, args, out, estimators) for name in args.models}}


if __name__ == "__main__":
    main()
