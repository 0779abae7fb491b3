"""Estimation stage: every estimator on every captured layer of a Snapshot. Estimators see tensors
only; a failure or a non-finite value is recorded for that (layer, estimator) and the rest goes on.
On the training thread, a measurement that runs over a second shows a progress bar
(:meth:`Console.progress`)."""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..capture.snapshot import Snapshot
from ..estimators._common import discrete_entropy
from ..estimators.base import Estimator
from ..estimators.registry import make_estimator
from ..schema import LayerResult, RecordError
from .console import Console

Layers = Dict[str, Dict[str, LayerResult]]


def label_entropy(y: Optional[torch.Tensor]) -> Optional[float]:
    """Plug-in H(Y) in bits of integer labels (the ceiling of I(T;Y)), or ``None``."""
    if y is None:
        return None
    return discrete_entropy(torch.unique(y, return_inverse=True)[1])


def run_estimators(
    snapshot: Snapshot,
    estimators: Mapping[str, Estimator],
    layer_order: Sequence[str],
    console: Console,
    progress: Optional[bool] = None,
) -> Tuple[Layers, List[RecordError]]:
    """``layers[layer][estimator_key]`` for every captured layer, in network order, and the errors.

    ``progress``: show :meth:`Console.progress` over the (layer, estimator) pairs; default: when running
    on the main thread (the synchronous pipeline; never on the background worker, whose bar would
    interleave with the user's)."""
    layers: Layers = {}
    errors: List[RecordError] = []
    y = snapshot.labels
    if progress is None:
        progress = threading.current_thread() is threading.main_thread()
    captured = [layer for layer in layer_order if snapshot.activations.get(layer) is not None]
    bar = console.progress(len(captured) * len(estimators), step=snapshot.step) if progress else None
    # A finished unit is counted when the next one starts, so the bar (drawn at an update) names the
    # unit now running.
    done = 0
    try:
        for layer in layer_order:
            t = snapshot.activations.get(layer)
            if t is None:
                if layer in snapshot.layer_errors:
                    errors.append(RecordError(snapshot.layer_errors[layer], layer=layer, stage="capture"))
                continue
            layers[layer] = {}
            for key, est in estimators.items():
                if bar is not None:
                    bar.set_postfix_str(layer if len(estimators) == 1 else f"{layer} {key}", refresh=False)
                    bar.update(done)
                layers[layer][key] = _one(key, est, layer, t, y, snapshot.step, errors, console)
                done = 1
        if bar is not None:
            bar.set_postfix_str("done", refresh=False)
            bar.update(done)
    finally:
        if bar is not None:
            bar.close()
    return layers, errors


def _one(
    key: str,
    est: Estimator,
    layer: str,
    t: torch.Tensor,
    y: Optional[torch.Tensor],
    step: int,
    errors: List[RecordError],
    console: Console,
) -> LayerResult:
    t0 = time.perf_counter()
    try:
        i_xt, i_ty = est.layer_information(t, y, layer=layer)
        for e in (i_xt, i_ty):
            if e is not None and not math.isfinite(e.value):
                raise FloatingPointError(
                    f"estimator returned a non-finite value ({e.value}) for {e.quantity}"
                )
    except Exception as exc:  # noqa: BLE001 - recorded, warned once, training goes on
        msg = f"{type(exc).__name__}: {exc}"
        errors.append(RecordError(msg, layer=layer, estimator=key, stage="estimate"))
        console.warn_once(
            ("estimator", key, type(exc).__name__),
            f"estimator {key!r} failed on layer {layer!r} at step {step}: {msg} "
            "(recorded in the run log; training continues)",
        )
        return LayerResult(error=msg)
    seconds = time.perf_counter() - t0
    return LayerResult(i_xt=i_xt.with_timing(seconds), i_ty=i_ty.with_timing(seconds) if i_ty else None)


def build_estimators(estimators: Any) -> Dict[str, Estimator]:
    """Estimator specs (a name, ``(name, params)``, an instance, or a list of these) -> key -> estimator.
    A name used twice gets ``_1``, ``_2``, ... keys."""
    if estimators is None or isinstance(estimators, (bytes, int, float)):
        raise ValueError(
            f"estimators= must name at least one estimator, e.g. estimators=['binning']; got {estimators!r}"
        )
    if isinstance(estimators, (str, Estimator)) or (
        isinstance(estimators, tuple) and len(estimators) == 2 and isinstance(estimators[1], Mapping)
    ):
        estimators = [estimators]  # a single spec
    out: Dict[str, Estimator] = {}
    for spec in estimators:
        est = make_estimator(spec)
        key = est.name if est.name not in out else f"{est.name}_{len(out)}"
        out[key] = est
    if not out:
        raise ValueError("estimators= is empty; pass at least one, e.g. estimators=['binning']")
    return out
