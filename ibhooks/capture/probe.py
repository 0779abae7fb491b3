"""Running a fixed probe set through the model without touching training state.

At a measurement the probe runs under ``no_grad``, in eval mode, with the CPU (and CUDA) RNG
forked and restored, and every module's ``training`` flag put back exactly as it was. BatchNorm
statistics, dropout streams, parameters, gradients and optimizer state are left alone.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn as nn

from ..labels import as_labels
from .subset import subset_rows

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


#: What a probe can be; every probe TypeError ends with it.
PROBE_FORMS = (
    "a probe can be (x, y) (x a tensor, a tuple of tensors or a dict of tensors with a batch dimension; "
    "y integer class labels), an x tensor of shape (n, ...), a dict of input tensors, or a DataLoader / "
    "list of batches"
)


def _num_rows(x: Any) -> int:
    if isinstance(x, torch.Tensor):
        if x.dim() == 0:
            raise TypeError(f"probe inputs are a 0-dim tensor, which has no batch dimension; {PROBE_FORMS}")
        return int(x.shape[0])
    if isinstance(x, (tuple, list)) and x:
        return _num_rows(x[0])
    if isinstance(x, dict):
        tensors = [v for v in x.values() if isinstance(v, torch.Tensor)]
        if not tensors:
            kinds = sorted({type(v).__name__ for v in x.values()}) or ["nothing"]
            raise TypeError(
                f"a dict probe holds the model's keyword inputs and needs tensors; its values are "
                f"{', '.join(kinds)}; {PROBE_FORMS}"
            )
        return _num_rows(tensors[0])
    raise TypeError(
        f"probe inputs must be a tensor, a tuple/list of tensors or a dict of tensors; got "
        f"{type(x).__name__}; {PROBE_FORMS}"
    )


def _index(x: Any, idx: torch.Tensor) -> Any:
    """Rows ``idx`` of every tensor in ``x`` (other values are kept as they are)."""
    if isinstance(x, torch.Tensor):
        return x[idx.to(x.device)]
    if isinstance(x, (tuple, list)):
        return type(x)(_index(v, idx) for v in x)
    if isinstance(x, dict):
        return {k: _index(v, idx) for k, v in x.items()}
    return x


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


def _map_style_len(dataset: Any) -> int:
    """Rows of a map-style dataset (``__getitem__`` and ``__len__``), or -1."""
    if dataset is None or isinstance(dataset, torch.utils.data.IterableDataset):
        return -1
    try:
        return int(len(dataset))
    except TypeError:
        return -1


def _dataset_targets(dataset: Any, n: int) -> Optional[torch.Tensor]:
    """The dataset's integer ``targets`` (torchvision style) when it has them for every row, else None."""
    targets = getattr(dataset, "targets", None)
    if targets is None:
        return None
    try:
        t = torch.as_tensor(targets)
    except Exception:  # noqa: BLE001 - targets of another kind: uniform subset
        return None
    if t.dim() != 1 or t.shape[0] != n or t.is_floating_point() or t.dtype == torch.bool:
        return None
    return t


def _read_batches(
    loader: Any, limit: Optional[int], batch_to_xy: BatchToXY
) -> Tuple[Any, Optional[torch.Tensor]]:
    """Concatenated ``(x, y)`` of the loader's batches (up to ``limit`` rows when given)."""
    xs, ys, total = [], [], 0
    for batch in loader:
        x, y = batch_to_xy(batch)
        xs.append(x)
        ys.append(y)
        total += _num_rows(x)
        if limit is not None and total >= limit:
            break
    if not xs:
        raise ValueError("the probe DataLoader yielded no batches")
    y = None if any(v is None for v in ys) else torch.cat([torch.as_tensor(v) for v in ys])
    return _cat(xs), y


class ProbeForwardError(RuntimeError):
    """The model's forward failed on the probe (the message says it was the probe and how to fix it)."""


class Probe:
    """A fixed probe set: inputs ``x`` (tensor, tuple or dict of tensors) and optional labels ``y``.

    A probe larger than ``max_samples`` keeps a seeded random subset of its rows (stratified by label when
    labels are given), never its first rows; :attr:`info` says what was taken. A DataLoader over a
    map-style dataset is subsampled by index (stratified when the dataset has ``targets``); an iterable
    loader without a length gives its first ``max_samples`` rows (with the global RNG forked, so a
    shuffling loader does not shift the user's random stream), and :attr:`info` says so.

    Attributes:
        x, y, n: Inputs, labels (or None) and the number of rows kept.
        info: ``rows_given``, ``rows_used``, ``subset`` (``"all"``, ``"random"``, ``"stratified"`` or
            ``"first"``) and ``seed``: for the run-log header and the coverage line.
    """

    def __init__(
        self, x: Any, y: Optional[torch.Tensor] = None, info: Optional[Dict[str, Any]] = None
    ) -> None:
        n = _num_rows(x)
        if n < 2:
            raise ValueError(
                f"the probe has {n} sample(s); information estimates need at least 2 (use hundreds)"
            )
        if y is not None:
            y = as_labels(y, n, what="the probe labels y")
        self.x = x
        self.y = y
        self.n = n
        self.info: Dict[str, Any] = dict(info) if info else {"rows_given": n, "rows_used": n, "subset": "all"}

    @classmethod
    def from_any(
        cls, probe: Any, *, max_samples: int, batch_to_xy: Optional[BatchToXY] = None, seed: int = 0
    ) -> "Probe":
        """A Probe from what the user passed (see :data:`PROBE_FORMS`); one ``TypeError`` naming the
        accepted forms for anything else. ``seed`` draws the subset of a probe over ``max_samples``."""
        if isinstance(probe, Probe):
            return probe
        if isinstance(probe, (str, bytes)):
            raise TypeError(f"probe is a {type(probe).__name__} ({probe!r:.40}), not data; {PROBE_FORMS}")
        if isinstance(probe, torch.Tensor):
            _num_rows(probe)  # a 0-dim tensor: the TypeError
            return cls._subset(probe, None, max_samples, seed)
        if isinstance(probe, dict):
            _num_rows(probe)  # a dict without tensors: the TypeError
            return cls._subset(probe, None, max_samples, seed)
        if isinstance(probe, tuple) and len(probe) != 2:
            raise TypeError(
                f"probe is a {len(probe)}-tuple; a tuple probe must be (x, y). For a model with "
                f"several inputs pass ((x1, x2, ...), y) or a dict of inputs; {PROBE_FORMS}"
            )
        is_batches = isinstance(probe, list) and all(isinstance(b, (tuple, list, dict)) for b in probe)
        if isinstance(probe, (tuple, list)) and not is_batches:
            if len(probe) != 2:
                raise TypeError(f"probe is a list of {len(probe)} items that are not batches; {PROBE_FORMS}")
            x, y = probe
            rows = _num_rows(x)
            if y is not None and not isinstance(y, torch.Tensor):
                y = torch.as_tensor(y)
            if y is not None and (y.dim() == 0 or y.shape[0] != rows):
                raise ValueError(
                    f"probe x has {rows} samples but y has "
                    f"{y.shape[0] if y.dim() else 'no batch dimension'}; they must be the same length"
                )
            return cls._subset(
                x, None if y is None else as_labels(y, rows, what="the probe labels y"), max_samples, seed
            )
        if isinstance(probe, torch.utils.data.DataLoader) or hasattr(probe, "__iter__"):
            return cls._from_loader(
                probe, max_samples=max_samples, batch_to_xy=batch_to_xy or default_batch_to_xy, seed=seed
            )
        raise TypeError(f"probe is a {type(probe).__name__}; {PROBE_FORMS}")

    @classmethod
    def _subset(cls, x: Any, y: Optional[torch.Tensor], max_samples: int, seed: int) -> "Probe":
        n = _num_rows(x)
        if n <= max_samples:
            return cls(x, y, {"rows_given": n, "rows_used": n, "subset": "all"})
        idx = subset_rows(n, max_samples, seed, y)
        info = {
            "rows_given": n,
            "rows_used": max_samples,
            "subset": "random" if y is None else "stratified",
            "seed": int(seed),
        }
        return cls(_index(x, idx), None if y is None else y[idx.to(y.device)], info)

    @classmethod
    def _from_loader(cls, loader: Any, *, max_samples: int, batch_to_xy: BatchToXY, seed: int) -> "Probe":
        dataset = getattr(loader, "dataset", None)
        with torch.random.fork_rng(devices=[]):  # a shuffling loader draws its seed from the global RNG
            if isinstance(loader, torch.utils.data.DataLoader) and _map_style_len(dataset) > max_samples:
                n = _map_style_len(dataset)
                targets = _dataset_targets(dataset, n)
                idx = subset_rows(n, max_samples, seed, targets)
                sub = torch.utils.data.DataLoader(
                    torch.utils.data.Subset(dataset, idx.tolist()),
                    batch_size=loader.batch_size or 256,
                    shuffle=False,
                    collate_fn=loader.collate_fn,
                )
                x, y = _read_batches(sub, None, batch_to_xy)
                info = {
                    "rows_given": n,
                    "rows_used": _num_rows(x),
                    "seed": int(seed),
                    "subset": "random" if targets is None else "stratified",
                }
                return cls(x, y, info)
            finite = isinstance(loader, (list, tuple)) or (
                isinstance(loader, torch.utils.data.DataLoader) and _map_style_len(dataset) >= 0
            )
            x, y = _read_batches(loader, None if finite else max_samples, batch_to_xy)
        if finite:
            return cls._subset(x, y, max_samples, seed)
        n = _num_rows(x)
        if n <= max_samples:
            return cls(x, y, {"rows_given": n, "rows_used": n, "subset": "all"})
        info = {
            "rows_given": None,
            "rows_used": max_samples,
            "subset": "first",
            "note": "an iterable loader without a length: its first rows were taken (shuffle it, or pass "
            "tensors, for a random subset)",
        }
        return cls(_slice(x, 0, max_samples), None if y is None else y[:max_samples], info)

    def run(
        self,
        model: nn.Module,
        *,
        batch_size: int,
        begin_pass: Callable[[int], None],
        forward: Optional[Callable[[nn.Module, Any], Any]] = None,
        limit: Optional[int] = None,
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
                        f"the probe's forward pass failed on rows {start}:{stop} "
                        f"({type(exc).__name__}: {exc}). "
                        "Check that the probe's inputs match what the model expects (shape, dtype, device), "
                        "or pass probe_forward=lambda model, x: ... if the model is not called as model(x)"
                    ) from exc
