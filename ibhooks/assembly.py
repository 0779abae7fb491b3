"""How IBMonitor's constructor resolves what the user asked for into the parts it wires together:
the monitored layers (selection, data-flow trace, skips), the chains, and the sinks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch.nn as nn

from .capture.probe import Probe
from .capture.taker import trace_probe_dataflow
from .chains import Chain, as_chains, validate_chains
from .config import CaptureConfig, RunLogConfig
from .layers import LayerSpec, Selection, select_layers
from .pipeline.console import Console
from .sinks.base import Sink
from .sinks.jsonl import JsonlSink
from .sinks.registry import make_sink


def resolve_layers(
    model: nn.Module,
    layers: LayerSpec,
    probe: Optional[Probe],
    cc: CaptureConfig,
    console: Console,
    probe_forward: Any = None,
) -> Tuple[Selection, Any]:
    """The selection and (probe mode) the traced data flow: outputs without a batch dimension leave
    the selection with their reason; modules that never run on the probe are named in one warning."""
    selection = select_layers(model, layers)
    flow = None
    if probe is not None:
        flow = trace_probe_dataflow(model, probe, dict(selection.monitored), probe_forward)
        if flow.non_batch and len(flow.non_batch) < len(selection.monitored):
            selection = selection.drop(flow.non_batch)
        silent = flow.silent(dict(selection.monitored))
        if silent:
            console.warn_once(
                ("silent",),
                f"selected module(s) {silent} never ran on the probe's forward pass: "
                "they are not measured (unused modules, or another input path?)",
            )
    names = [n for n, _ in selection.monitored]
    for what, mapping in (("selectors", cc.selectors), ("reduction", cc.reduction)):
        if isinstance(mapping, dict):
            unknown = [k for k in mapping if k not in names]
            if unknown:
                raise ValueError(
                    f"{what}= names layers that are not monitored: {unknown}; monitored: {names}"
                )
    return selection, flow


def resolve_chains(chains: Any, flow: Any, selection: Selection) -> List[Chain]:
    """``chains="auto"``: the data-flow chains, plus structural ones (children of one nn.Sequential,
    applied in order: Markov by construction, also with unmonitored modules between the layers) over the
    layers no traced chain covers; ``None``: none; else the user's declarations, validated."""
    if chains is None:
        return []
    if not (isinstance(chains, str) and chains == "auto"):
        return list(validate_chains(chains, [n for n, _ in selection.monitored], min_layers=2))
    out = list(as_chains(list(flow.chains) if flow is not None else []))
    covered = {n for c in out for n in c.layers}
    for c in as_chains(list(selection.chains)):
        rest = c.restricted(n for n in c.layers if n not in covered)
        if rest is not None:
            out.append(rest)
    return list(as_chains(out))


def lossless_chains(candidates: Sequence[Chain], capture: Any) -> List[Chain]:
    """The chains the DPI is checked along: candidates minus layers whose reduction loses information
    (pooling, projection); a chain the user declared is kept as declared."""
    out = []
    for chain in candidates:
        if chain.source == "declared":
            out.append(chain)
            continue
        kept = chain.restricted(n for n in chain.layers if capture.slots[n].reduction.lossless)
        if kept is not None:
            out.append(kept)
    return out


def build_sinks(
    specs: Union[str, Sink, Sequence[Union[str, Sink]]], log_path: Path, run_dir: Path, rl: RunLogConfig
) -> List[Any]:
    """The JSONL run log first, then the user's sinks (a name or an instance; one, or a sequence)."""
    out: List[Any] = [JsonlSink(log_path, resume=rl.resume, overwrite=rl.overwrite)]
    if isinstance(specs, (str, Sink)):
        specs = [specs]  # one sink, not a sequence of letters
    for spec in specs:
        if spec == "tensorboard":
            out.append(make_sink(spec, log_dir=str(run_dir), figure_every=rl.figure_every))
        elif spec == "wandb":
            out.append(make_sink(spec, figure_every=rl.figure_every))
        else:
            out.append(make_sink(spec))
    return out
