"""torch.distributed helpers: who writes, and the opt-in all-gather of a passive-mode reservoir.

The monitor measures on rank 0 only, through the unwrapped module, so no rank ever runs a
collective alone. The one collective ibhooks itself issues is :func:`gather_reservoir`
(``IBMonitor(gather_passive=True)``): it is called by *every* rank at the same scheduled step,
and its sequence of ``all_gather`` calls depends only on data all ranks have agreed on first.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import torch

if TYPE_CHECKING:  # pragma: no cover
    from .capture.reservoir import PassiveReservoir


def is_distributed() -> bool:
    """True when a default process group is initialised."""
    dist = torch.distributed
    return bool(dist.is_available() and dist.is_initialized())


def rank() -> int:
    """Global rank (0 without a process group)."""
    return torch.distributed.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of ranks (1 without a process group)."""
    return torch.distributed.get_world_size() if is_distributed() else 1


def comm_device() -> torch.device:
    """The device collectives of the default group run on: the current CUDA device for NCCL, else CPU."""
    backend = str(torch.distributed.get_backend()).lower() if is_distributed() else ""
    if "nccl" in backend and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _all_gather(t: torch.Tensor) -> List[torch.Tensor]:
    out = [torch.empty_like(t) for _ in range(world_size())]
    torch.distributed.all_gather(out, t.contiguous())
    return out


def all_gather_rows(
    tensors: Dict[str, torch.Tensor], y: Optional[torch.Tensor], names: List[str]
) -> Tuple[Dict[str, torch.Tensor], Optional[torch.Tensor], int]:
    """Concatenate per-rank row blocks across all ranks (a collective: every rank must call it).

    Args:
        tensors: This rank's ``(n, d_layer)`` float tensors, all with the same ``n`` (may be empty).
        y: This rank's ``(n,)`` integer labels, or ``None``.
        names: The layer order, identical on every rank (e.g. ``monitor.layer_names``).

    Returns:
        ``(tensors, y, ranks)``: rows of every rank in rank order, on this rank's original devices.
        A layer is kept only if every rank that has rows has it with the same width, and labels only
        if every such rank has them. ``ranks`` is the number of ranks that contributed rows.
    """
    dev = comm_device()
    n = next(iter(tensors.values())).shape[0] if tensors else 0
    meta = torch.tensor(
        [n, int(y is not None)] + [int(tensors[k].shape[1]) if k in tensors else -1 for k in names],
        dtype=torch.int64, device=dev,
    )
    metas = torch.stack(_all_gather(meta)).cpu()  # (world, 2 + L): the same table on every rank
    counts = metas[:, 0].tolist()
    active = [r for r, c in enumerate(counts) if c > 0]
    max_n = max(counts) if counts else 0
    if max_n == 0:
        return {}, None, 0
    out: Dict[str, torch.Tensor] = {}
    for i, name in enumerate(names):
        dims = {int(metas[r, 2 + i]) for r in active}
        if len(dims) != 1 or -1 in dims:
            continue  # not captured on every contributing rank: dropped everywhere, rows stay aligned
        d = dims.pop()
        home = tensors[name].device if name in tensors else dev
        local = torch.zeros(max_n, d, dtype=torch.float32, device=dev)
        if name in tensors and n:
            local[:n] = tensors[name].to(dev, torch.float32)
        parts = _all_gather(local)
        out[name] = torch.cat([parts[r][: counts[r]] for r in active]).to(home)
    y_out = None
    if all(int(metas[r, 1]) == 1 for r in active):
        home = y.device if y is not None else dev
        local_y = torch.zeros(max_n, dtype=torch.int64, device=dev)
        if y is not None and n:
            local_y[:n] = y.to(dev, torch.int64)
        parts = _all_gather(local_y)
        y_out = torch.cat([parts[r][: counts[r]] for r in active]).to(home)
    return out, y_out, len(active)


def gather_reservoir(reservoir: "PassiveReservoir", layer_names: List[str]) -> None:
    """All-gather the passive reservoir of every rank into rank 0's (a collective on every rank).

    ``layer_names``: the monitored layers in network order, identical on every rank. Rank 0 keeps a
    uniform random subset of at most ``max_rows`` rows (the reservoir's own generator, same rows for
    every layer); other ranks empty their reservoir.
    """
    if reservoir is None or not is_distributed() or world_size() == 1:
        return
    acts, y = reservoir.contents()
    steps = list(reservoir.steps)
    acts, y, _ = all_gather_rows(acts, y, list(layer_names))
    if rank() != 0:
        reservoir.clear()
        return
    reservoir.replace(acts, y)
    reservoir.steps = steps
