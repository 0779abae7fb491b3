"""Reductions of a layer output (batch, ...) to the (batch, d) matrix the estimators see.

The name of the reduction goes into every figure's ``quantity``; only ``flatten`` keeps a layer on
its DPI chain (the others lose information).
"""

from __future__ import annotations

import math
import zlib
from typing import List, Optional, Tuple, Union

import torch

ReductionSpec = Union[str, Tuple[str, int]]

AUTO_MAX_DIM = 1024
AUTO_PROJECT_DIM = 256
#: With estimators that work from the whole activation (pairwise distances), ``"auto"`` keeps up to this
#: many values per sample unreduced, so wide layers stay on their DPI chain.
WHOLE_MAX_DIM = 1 << 16

_SPEC_HELP = (
    "reduction must be 'auto', 'flatten', 'mean', 'project:k' or ('project', k) with an integer k >= 1"
)


def parse_reduction(spec: object) -> ReductionSpec:
    """Validate a reduction spec; ``"project:64"`` becomes ``("project", 64)``. One clear error otherwise."""
    if isinstance(spec, str) and spec.startswith("project:"):
        tail = spec.split(":", 1)[1]
        if not tail.isdigit() or int(tail) < 1:
            raise ValueError(f"{_SPEC_HELP}; got {spec!r}")
        return ("project", int(tail))
    if isinstance(spec, tuple):
        if (
            len(spec) != 2
            or spec[0] != "project"
            or not isinstance(spec[1], int)
            or isinstance(spec[1], bool)
            or spec[1] < 1
        ):
            raise ValueError(f"{_SPEC_HELP}; got {spec!r}")
        return (str(spec[0]), int(spec[1]))
    if spec in ("auto", "flatten", "mean"):
        return str(spec)
    raise ValueError(f"{_SPEC_HELP}; got {spec!r}")


class Reduction:
    """Maps a layer output (batch, ...) to (batch, d): flatten, mean-pool, or random projection.

    ``"auto"``: flatten if the output has at most 1024 values per sample; otherwise mean-pool over
    space (channels-first, >= 4-D) or tokens (3-D, batch-first), then project to 256 dims if still
    larger. The plan is fixed at the first output seen. The projection matrix comes from the
    monitor's own seeded generator (the user's RNG is untouched).
    """

    def __init__(
        self, spec: ReductionSpec = "auto", *, seed: int = 0, layer: str = "", whole: bool = False
    ) -> None:
        self.spec = parse_reduction(spec)
        self.whole = whole  # "auto" keeps the whole activation (up to WHOLE_MAX_DIM values per sample)
        self._seed = (int(seed) * 1_000_003 + zlib.crc32(layer.encode())) % (2**63)
        self._proj: Optional[torch.Tensor] = None
        self.resolved: Optional[List[str]] = None  # the steps actually applied, decided on first use

    @staticmethod
    def _pool(x: torch.Tensor) -> torch.Tensor:
        if x.dim() >= 4:
            return x.flatten(2).mean(dim=2)  # (B, C, *spatial) -> (B, C)
        if x.dim() == 3:
            return x.mean(dim=1)  # (B, L, D) -> (B, D)
        return x

    def plan(self, x: torch.Tensor) -> List[str]:
        per_sample = x[0].numel() if x.shape[0] else 0
        if self.spec == "flatten":
            return ["flatten"]
        if self.spec == "mean":
            return ["mean", "flatten"]
        if isinstance(self.spec, tuple):
            return ["flatten", f"project{self.spec[1]}"]
        if self.whole and per_sample <= WHOLE_MAX_DIM:
            return ["flatten"]
        if per_sample <= AUTO_MAX_DIM or x.dim() <= 2:
            return ["flatten"] + ([f"project{AUTO_PROJECT_DIM}"] if per_sample > AUTO_MAX_DIM else [])
        pooled = int(self._pool(x[:1]).numel())
        return ["mean", "flatten"] + ([f"project{AUTO_PROJECT_DIM}"] if pooled > AUTO_MAX_DIM else [])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.resolved is None:
            self.resolved = self.plan(x)
        out = x
        for step in self.resolved:
            if step == "mean":
                out = self._pool(out)
            elif step == "flatten":
                out = out.reshape(out.shape[0], -1)
            else:
                out = out @ self._projection(out.shape[1], int(step[len("project") :]), out.device)
        return out

    def _projection(self, d_in: int, k: int, device: torch.device) -> torch.Tensor:
        if self._proj is None or self._proj.shape[0] != d_in:
            gen = torch.Generator().manual_seed(self._seed)
            self._proj = (torch.randn(d_in, k, generator=gen) / math.sqrt(k)).to(device)
        elif self._proj.device != device:
            self._proj = self._proj.to(device)
        return self._proj

    def projection_bytes(self, d_in: int) -> int:
        """Memory a projection of a ``d_in``-wide output would hold (0 if this reduction does not project)."""
        steps = self.resolved or []
        k = next((int(s[len("project") :]) for s in steps if s.startswith("project")), 0)
        return 4 * d_in * k

    @property
    def held_bytes(self) -> int:
        """Bytes of the projection matrix held now (0 if none)."""
        return 0 if self._proj is None else self._proj.numel() * self._proj.element_size()

    def release(self) -> None:
        self._proj = None

    @property
    def name(self) -> str:
        """How the variable was changed, e.g. ``"flatten"`` or ``"mean>flatten>project256"``."""
        if self.resolved is None:
            return str(self.spec if not isinstance(self.spec, tuple) else f"project:{self.spec[1]}")
        return ">".join(self.resolved)

    @property
    def lossless(self) -> bool:
        """Whether T is the layer output itself (only reshaped): required for a DPI chain."""
        return self.resolved is not None and self.resolved == ["flatten"]
