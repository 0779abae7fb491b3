"""A small transformer encoder on a synthetic sequence task, with the residual stream between its
blocks monitored in a plain training loop.

Task (generated here): sequences of 12 tokens over a vocabulary of 16. Tokens 0-3 occur exactly once
each, as two adjacent pairs: (0, 1) in this order or reversed, and (2, 3) in this order or reversed;
the other positions hold filler tokens 4-15. The label (4 classes) says which pairs are in order, so
the model must compare positions: a bag of tokens cannot solve it (every sequence holds the same
four key tokens).

Model: token + learned position embeddings, ``nn.TransformerEncoder`` with 3 post-norm blocks
(d_model 32, 4 heads), mean over tokens, linear head. ``layers="auto"`` monitors the embedding, each
block of ``encoder.layers`` (a ModuleList: its blocks form a Markov chain, the residual stream
X -> T1 -> T2 -> T3) and the head. The residual stream is (B, 12, 32) per block; by default it is
reduced by the mean over tokens (32 values), as sequence models are usually read out. That
reduction is lossy, so the coverage table takes the blocks off the chain and no DPI is checked;
``--reduction flatten`` keeps all 384 values (lossless: the chain is DPI-checked, but the KDE then
sits at its cap log2 n on 512 probe sequences) and ``--reduction project:16`` a fixed random
projection (lossy too). Estimators: the KDE upper bound (sigma^2 = 0.1; LayerNorm'd features) and
Ross's kNN estimator of I(T;Y), whose "I(X;T)" is the Kozachenko-Leonenko differential entropy h(T):
not a mutual information, and negative here.

What it shows: the loss sits at chance for a few hundred steps, then the model solves the task
(held-out accuracy 1.0). Ross's I(T;Y) of the token-means is ~0 everywhere before the transition
and stays ~0 for the embedding (a bag of tokens carries no label); at the transition it rises block
by block, up to H(Y) = 2 bits in the last block and the head. The KDE's I(T;Y) reads 1.6-1.9 bits
already at initialisation: it is a difference of two upper bounds that tends to H(Y) whenever the
points are far apart next to the noise, not a measurement of label information. After the
transition the KDE's I(X;T) of the deeper blocks falls (block 2: ~8.8 to ~4 bits) as their
token-means cluster by class.

    python examples/transformer_encoder.py --out runs/transformer     # ~1-2 min on 2 CPU cores
    python examples/transformer_encoder.py --smoke --out /tmp/tf_smoke
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ibhooks  # noqa: E402
from _summary import errors, format_dpi, layer_table, save_figures, warning_codes  # noqa: E402

SEQ_LEN, VOCAB, CLASSES = 12, 16, 4


def make_task(n: int, seed: int):
    """``(tokens (n, 12) long, labels (n,) long)``: label = 2 * [(0,1) in order] + [(2,3) in order]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(4, VOCAB, (n, SEQ_LEN), generator=g)
    order = torch.randint(0, 2, (n, 2), generator=g)  # 1 = the pair is in order
    # two non-overlapping slots of two adjacent positions: pick 2 of the 6 aligned pair slots, random shift
    for i in range(n):
        shift = int(torch.randint(0, 2, (1,), generator=g))
        slots = torch.randperm(SEQ_LEN // 2 - 1, generator=g)[:2] * 2 + shift
        for k, (a, b) in enumerate(((0, 1), (2, 3))):
            s = int(slots[k])
            x[i, s], x[i, s + 1] = (a, b) if order[i, k] else (b, a)
    y = 2 * order[:, 0] + order[:, 1]
    return x, y


class TinyEncoder(nn.Module):
    def __init__(self, d_model: int = 32, heads: int = 4, blocks: int = 3) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d_model)
        self.pos = nn.Parameter(0.1 * torch.randn(SEQ_LEN, d_model))
        block = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(block, blocks, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(tokens) + self.pos)
        return self.head(h.mean(dim=1))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/transformer", help="output folder (run log, figures)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--probe-size", type=int, default=512)
    p.add_argument("--measurements", type=int, default=30, help="log-spaced measurement points")
    p.add_argument("--reduction", default="mean",
                   help="reduction of the (B, 12, 32) outputs: mean | flatten | project:k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tensorboard", action="store_true", help="also write a TensorBoard run")
    p.add_argument("--smoke", action="store_true", help="a few steps and a small probe (for the tests)")
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.measurements, args.train_size, args.probe_size = 20, 4, 256, 96
    torch.set_num_threads(1)  # a tiny model: more threads only add overhead
    torch.manual_seed(args.seed)
    out = Path(args.out)
    x_train, y_train = make_task(args.train_size, seed=args.seed)
    x_probe, y_probe = make_task(args.probe_size, seed=10_000 + args.seed)  # held-out sequences
    model = TinyEncoder()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    blocks = [f"encoder.layers.{i}" for i in range(len(model.encoder.layers))]
    monitor = ibhooks.IBMonitor(
        model,
        layers="auto",                       # embed, encoder.layers.0-2 (a chain), head
        probe=(x_probe, y_probe),
        schedule=ibhooks.log_spaced(args.measurements, args.steps),
        estimators=[("kde", {"noise_var": 0.1}), ("ross", {"k": 3})],
        reduction={name: args.reduction for name in ["embed", *blocks]},
        log_dir=out,
        run_name="transformer_encoder",
        sinks=["tensorboard"] if args.tensorboard else [],
    )
    t0 = time.time()
    gen = torch.Generator().manual_seed(args.seed)
    step = 0
    while step < args.steps:
        order = torch.randperm(len(y_train), generator=gen)
        for start in range(0, len(order) - args.batch_size + 1, args.batch_size):
            idx = order[start:start + args.batch_size]
            model.train()
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            monitor.step()
            step += 1
            if not args.smoke and step % 500 == 0:
                model.eval()
                with torch.no_grad():
                    acc = (model(x_probe).argmax(1) == y_probe).float().mean().item()
                print(f"step {step:5d}  loss {loss.item():.3f}  held-out acc {acc:.3f}  "
                      f"[{time.time() - t0:.0f}s]")
            if step >= args.steps:
                break
    monitor.close()
    model.eval()
    with torch.no_grad():
        acc = (model(x_probe).argmax(1) == y_probe).float().mean().item()
    runtime = time.time() - t0
    figures = save_figures(monitor.log_path, out / "figures", smoke=args.smoke)
    history = monitor.history
    print(f"\nTransformer encoder: {args.steps} steps, held-out accuracy {acc:.3f} (chance 0.25), "
          f"{len(history)} measurements on {len(y_probe)} held-out sequences, {runtime:.0f}s")
    print(f"chains checked: {[c.layers for c in monitor.chains] or 'none (lossy reduction)'}")
    print(layer_table(history))
    print(format_dpi(history))
    print(f"warnings: {warning_codes(history)}; estimator errors: {len(errors(history))}")
    print(f"run log: {monitor.log_path}\nfigures: {out / 'figures'}")
    return {"run_log": monitor.log_path, "figures": figures, "accuracy": acc, "history": history}


if __name__ == "__main__":
    main()
