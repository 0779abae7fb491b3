"""Running a fixed probe set through the model without touching training state.

At a measurement the probe runs under ``no_grad``, in eval mode, with the CPU (and CUDA) RNG
forked and restored, and every module's ``training`` flag put back exactly as it was. BatchNorm
statistics, dropout streams, parameters, gradients and optimizer state are left alone.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, List, Optional, Tuple

import torch
import torch.nn as nn

from ..labels import as_labels

BatchToXY = Callable[[Any], Tuple[Any, Optional[torch.Tensor]]]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module that does the work: strips DDP/DataParallel ``.module`` and compile's ``._orig_mod``."""
    seen = set()
    while id(model) not in seen:
        seen.add(id(model))
        inner = getattr(model, "_orig_mod", None)
        if isinstance(inner, nn.Module):
            model = inner
            continue
        if type(model).__name__ in ("DistributedDataParallel", "DataParallel") and isinstance(
            getattr(model, "module", None), nn.Module
        ):
            model = model.module
    return model


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _cuda_devices(device: torch.device) -> List[int]:
    if device.type == "cuda" and torch.cuda.is_available():
        return [device.index if device.index is not None else torch.cuda.current_device()]
    return []


@contextlib.contextmanager
def isolated(model: nn.Module) -> Iterator[None]:
    """Eval mode + no_grad + forked RNG; restores every module's train flag on exit."""
    flags = [(m, m.training) for m in model.modules()]
    with torch.random.fork_rng(devices=_cuda_devices(model_device(model))):
        try:
            model.eval()
            with torch.no_grad():
                yield
        finally:
            for m, flag in flags:
                m.training = flag


def default_batch_to_xy(batch: Any) -> Tuple[Any, Optional[torch.Tensor]]:
    if isinstance(batch, (tuple, list)):
        if len(batch) >= 2:
            return batch[0], batch[1]
        return batch[0], None
    if isinstance(batch, torch.Tensor):
        return batch, None
    raise TypeError(
        f"cannot split a probe batch of type {type(batch).__name__} into (x, y); "
        "pass batch_to_xy=lambda batch: (inputs, labels)"
    )


def _num_rows(x: Any) -> int:
    if isinstance(x, torch.Tensor):
        return int(x.shape[0])
    if isinstance(x, (tuple, list)):
        return _num_rows(x[0])
    if isinstance(x, dict):
        return _num_rows(next(iter(x.values())))
    raise TypeError(f"probe inputs must be a tensor, a tuple/list of tensors or a dict of tensors; got {type(x).__name__}")


def _slice(x: Any, start: int, stop: int) -> Any:
    if isinstance(x, torch.Tensor):
        return x[start:stop]
    if isinstance(x, (tuple, list)):
        return type(x)(_slice(v, start, stop) for v in x)
    if isinstance(x, dict):
        return {k: _slice(v, start, stop) for k, v in x.items()}
    return x


def _to(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, (tuple, list)):
        return type(x)(_to(v, device) for v in x)
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    return x


def _cat(parts: List[Any]) -> Any:
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts, dim=0)
    if isinstance(first, (tuple, list)):
        return type(first)(_cat([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _cat([p[k] for p in parts]) for k in first}
    raise TypeError(f"cannot concatenate probe inputs of type {type(first).__name__}")


class ProbeForwardError(RuntimeError):
    """The model's forward failed on the probe (the message says it was the probe and how to fix it)."""


class Probe:
    """A fixed probe set: inputs ``x`` (tensor, tuple or dict of tensors) and optional labels ``y``.

    Build it from tensors or take the first ``max_samples`` rows of a DataLoader once (with the
    global RNG forked, so a shuffling loader does not shift the user's random stream).
    """

    def __init__(self, x: Any, y: Optional[torch.Tensor] = None) -> None:
        n = _num_rows(x)
        if n < 2:
            raise ValueError(f"the probe has {n} sample(s); information estimates need at least 2 (use hundreds)")
        if y is not None:
            y = as_labels(y, n, what="the probe labels y")
        self.x = x
        self.y = y
        self.n = n

    @classmethod
    def from_any(cls, probe: Any, *, max_samples: int, batch_to_xy: Optional[BatchToXY] = None) -> "Probe":
        if isinstance(probe, Probe):
            return probe
        if isinstance(probe, (str, bytes)) or (isinstance(probe, torch.Tensor) and probe.dim() == 0):
            raise TypeError(
                f"probe must be (x, y) tensors, an x tensor with a batch dimension, or a DataLoader; "
                f"got {type(probe).__name__} {probe!r:.40}"
            )
        if isinstance(probe, torch.Tensor):
            return cls(probe[:max_samples])
        if isinstance(probe, (tuple, list)) and len(probe) == 2 and not isinstance(probe[0], (int, float)):
            x, y = probe
            if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape[0] != y.shape[0]:
                raise ValueError(f"probe x has {x.shape[0]} samples but y has {y.shape[0]}; they must be the same length")
            if y is not None and not isinstance(y, torch.Tensor):
                y = torch.as_tensor(y)
            return cls(_slice(x, 0, max_samples), None if y is None else y[:max_samples])
        if isinstance(probe, torch.utils.data.DataLoader) or hasattr(probe, "__iter__"):
            return cls._from_loader(probe, max_samples=max_samples, batch_to_xy=batch_to_xy or default_batch_to_xy)
        raise TypeError(
            f"probe must be (x, y) tensors, an x tensor, or a DataLoader; got {type(probe).__name__}"
        )

    @classmethod
    def _from_loader(cls, loader: Any, *, max_samples: int, batch_to_xy: BatchToXY) -> "Probe":
        xs, ys, total = [], [], 0
        with torch.random.fork_rng(devices=[]):  # a shuffling loader draws its seed from the global RNG
            for batch in loader:
                x, y = batch_to_xy(batch)
                xs.append(x)
                ys.append(y)
                total += _num_rows(x)
                if total >= max_samples:
                    break
        if not xs:
            raise ValueError("the probe DataLoader yielded no batches")
        x = _slice(_cat(xs), 0, max_samples)
        y = None if any(v is None for v in ys) else torch.cat([torch.as_tensor(v) for v in ys])[:max_samples]
        return cls(x, y)

    def run(
        self, model: nn.Module, *, batch_size: int, begin_pass: Callable[[int], None],
        forward: Optional[Callable[[nn.Module, Any], Any]] = None, limit: Optional[int] = None,
    ) -> None:
        """Forward the probe in chunks of ``batch_size`` through ``model`` (eval, no_grad, forked RNG)."""
        device = model_device(model)
        n = self.n if limit is None else min(self.n, limit)
        with isolated(model):
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                begin_pass(stop - start)
                chunk = _to(_slice(self.x, start, stop), device)
                try:
                    if forward is not None:
                        forward(model, chunk)
                    elif isinstance(chunk, dict):
                        model(**chunk)
                    elif isinstance(chunk, (tuple, list)):
                        model(*chunk)
                    else:
                        model(chunk)
                except Exception as exc:
                    raise ProbeForwardError(
                        f"the probe's forward pass failed on rows {start}:{stop} ({type(exc).__name__}: {exc}). "
                        "Check that the probe's inputs match what the model expects (shape, dtype, device), "
                        "or pass probe_forward=lambda model, x: ... if the model is not called as model(x)"
                    ) from exc
