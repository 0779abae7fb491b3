"""Is a layer's output discrete: the network's own quantization, detected from its values or its module.

A network that quantizes a layer (a ``torch.ao.quantization`` FakeQuantize, a rounding layer, a custom
straight-through quantizer, integer outputs) makes that layer a discrete variable, and with X uniform
over the probe rows its I(X;T) = H(T) and I(T;Y) are exact by counting (Lorenzen, Igel & Nielsen,
ICLR 2022). This module says whether a tensor is such a layer and on which grid its values lie.

* :func:`quantization_grid` / :func:`is_quantized`: an integer (or bool) tensor is discrete by type;
  a float tensor is quantized when every unit (column) takes its values on an evenly spaced grid of at
  most ``max_levels`` points (offset + k * step, k = 0..L-1). The step of a unit is the smallest gap
  between its distinct values, or an integer fraction of it when the unit occupies the grid sparsely
  (levels {0, 2, 5} lie on the unit grid); gaps below float rounding count as no gap, so the common
  straight-through idiom ``x + (q - x).detach()``, whose values carry an ulp of noise, is recognised.
  A continuous layer has many distinct values per unit at irregular gaps and is refused.
* :func:`quantizing_module`: a module whose output is quantized by construction (FakeQuantize and
  its relatives, or a class whose name says it quantizes or rounds, e.g. ``QuantReLU``, ``RoundSTE``).

Everything is vectorised over rows and units; the only loop runs over candidate grid refinements.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

#: Gaps between values of a unit below this multiple of the unit's largest magnitude are float rounding
#: (64 float32 ulps), not distinct levels ...
_SAME_LEVEL_RTOL = 64 * torch.finfo(torch.float32).eps
#: ... and so are gaps below span / (this x max_levels), at most 1/40 of a grid step: the straight-through
#: idiom ``x + (q - x).detach()`` leaves an ulp of the *pre-quantization* value x, which for inputs far
#: outside the quantizer's range (a ReLU clamped at its top) is much more than an ulp of q.
_SAME_LEVEL_STEPS = 40
#: A value is on the grid when (value - offset) / step is within this of an integer (in steps).
_ON_GRID_ATOL = 0.05


@dataclass(frozen=True)
class Grid:
    """The grid of a discrete layer: unit j takes values ``offset[j] + k * step[j]``, k = 0..levels[j]-1.

    Attributes:
        offset: Lowest value of each unit (d,), float64.
        step: Grid step of each unit (d,), float64 (1 for a constant unit and for integer dtypes).
        levels: Grid points spanned by each unit (d,), int64: (max - min) / step + 1.
        distinct: Distinct values each unit takes (d,), int64.
        integer: The tensor had an integer (or bool) dtype.
    """

    offset: torch.Tensor
    step: torch.Tensor
    levels: torch.Tensor
    distinct: torch.Tensor
    integer: bool

    @property
    def radix(self) -> int:
        """The most grid points of any unit (the radix that packs a row of level indices)."""
        return max(int(self.levels.max()), 1) if self.levels.numel() else 1

    def indices(self, t: torch.Tensor) -> torch.Tensor:
        """Level index (n, d) int64 of every value of ``t`` (the tensor the grid was found on)."""
        k = (t.reshape(t.shape[0], -1).to(torch.float64) - self.offset) / self.step
        return k.round_().clamp_(min=0).to(torch.int64)

    def summary(self) -> dict:
        """Diagnostics for an Estimate: the grid's size and steps, JSON-ready."""
        steps = self.step
        return {
            "integer_dtype": self.integer,
            "grid_levels_max": int(self.levels.max()) if self.levels.numel() else 0,
            "distinct_values_per_unit_max": int(self.distinct.max()) if self.distinct.numel() else 0,
            "grid_step_min": float(steps.min()) if steps.numel() else 0.0,
            "grid_step_max": float(steps.max()) if steps.numel() else 0.0,
        }


def _as_rows(t: torch.Tensor) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of layer outputs, got {type(t).__name__}")
    if t.dim() == 0:
        return t.reshape(1, 1)
    return t.reshape(t.shape[0], -1) if t.dim() != 2 else t


def _integer_grid(x: torch.Tensor) -> Grid:
    """Integers are discrete by type: step 1, offset the minimum of each unit."""
    v = x.to(torch.int64)
    lo, hi = v.min(0).values, v.max(0).values
    s = v.sort(0).values
    distinct = (s[1:] != s[:-1]).sum(0) + 1 if v.shape[0] > 1 else torch.ones_like(lo)
    return Grid(offset=lo.to(torch.float64), step=torch.ones_like(lo, dtype=torch.float64),
                levels=hi - lo + 1, distinct=distinct, integer=True)


def detect_grid(t: torch.Tensor, max_levels: int = 256) -> Tuple[Optional[Grid], str]:
    """The grid of a layer output ``t`` (n, ...) and ``""``, or ``None`` and why it is not discrete.

    Integer and bool tensors always have a grid (``max_levels`` does not apply: their values are
    discrete by type). A float tensor has one when every unit's values lie within float rounding of a
    grid of at most ``max_levels`` evenly spaced points.
    """
    if isinstance(max_levels, bool) or not isinstance(max_levels, int) or max_levels < 2:
        raise ValueError(f"max_levels must be an integer >= 2, got {max_levels!r}")
    if isinstance(t, torch.Tensor) and t.is_quantized:  # a torch quantized tensor: its dequantized values
        t = t.dequantize()
    x = _as_rows(t)
    if x.shape[0] == 0 or x.shape[1] == 0:
        return None, f"the layer output has shape {tuple(t.shape)}: no rows or no units to measure"
    if not x.is_floating_point() and not x.is_complex():
        return _integer_grid(x), ""
    if x.is_complex():
        return None, "the layer output is complex; only real discrete values can be counted"
    if not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
        return None, "the layer output contains NaN/Inf values"
    s = x.sort(0).values.to(torch.float64)  # (n, d); the cast is exact
    gaps = s[1:] - s[:-1]
    lo, span = s[0], s[-1] - s[0]
    tol = torch.maximum(_SAME_LEVEL_RTOL * s.abs().amax(0), span / (_SAME_LEVEL_STEPS * max_levels))
    real = gaps > tol  # gaps between distinct levels
    distinct = real.sum(0) + 1
    if int(distinct.max()) > max_levels:
        j = int(distinct.argmax())
        return None, (f"unit {j} takes {int(distinct[j])} distinct values on the probe, more than "
                      f"max_levels={max_levels}")
    g = torch.where(real, gaps, torch.full_like(gaps, math.inf)).amin(0) if gaps.numel() else span
    const = ~torch.isfinite(g) | (distinct == 1)
    g = torch.where(const, torch.ones_like(g), g)
    # Refine the step to g / m (m = 1, 2, ...) until every value of the unit is on the grid, while the
    # grid keeps at most max_levels points: m <= (max_levels - 1) * g / span.
    m_top = ((max_levels - 1) * g / span.clamp_min(1e-300) + _ON_GRID_ATOL).floor()
    m_max = torch.where(const, torch.ones_like(g), m_top)
    step = torch.where(const, g, torch.full_like(g, math.nan))
    for m in range(1, int(m_max.max()) + 1 if m_max.numel() else 1):  # candidate refinements, not samples
        todo = torch.isnan(step) & (m_max >= m)
        if not bool(todo.any()):
            break
        # the whole span over its number of steps: one gap alone carries its float rounding into every level
        cand = span / (span * m / g).round().clamp_min(1)
        k = (s[:, todo] - lo[todo]) / cand[todo]
        ok = ((k - k.round()).abs() <= _ON_GRID_ATOL).all(0)
        idx = todo.nonzero().squeeze(1)[ok]
        step[idx] = cand[idx]
    if bool(torch.isnan(step).any()):
        j = int(torch.isnan(step).nonzero()[0])
        return None, (f"unit {j}'s {int(distinct[j])} distinct values lie on no evenly spaced grid of at "
                      f"most max_levels={max_levels} points (irregular gaps: continuous values)")
    levels = torch.where(const, torch.ones_like(span), (span / step).round() + 1).to(torch.int64)
    return Grid(offset=lo, step=step, levels=levels, distinct=distinct.to(torch.int64), integer=False), ""


def quantization_grid(t: torch.Tensor, max_levels: int = 256) -> Optional[Grid]:
    """The :class:`Grid` of a discrete layer output ``t``, or ``None`` when it is not discrete."""
    return detect_grid(t, max_levels)[0]


def is_quantized(t: torch.Tensor, max_levels: int = 256) -> bool:
    """Whether a layer output ``t`` (n, ...) is discrete: an integer/bool dtype, or every unit on an evenly
    spaced grid of at most ``max_levels`` values (outputs of ``torch.round``, fake quantization, a
    straight-through quantizer). ``max_levels=256`` accepts up to 8-bit quantization."""
    return detect_grid(t, max_levels)[0] is not None


_QUANT_WORD = re.compile(r"quant(?!ile)|round|binari[sz]e", re.IGNORECASE)


def quantizing_module(module: torch.nn.Module) -> bool:
    """Whether ``module``'s output is quantized by construction: a ``torch.ao.quantization`` fake-quantize
    module (FakeQuantize, FusedMovingAvgObsFakeQuantize, FixedQParamsFakeQuantize, ...) or a class whose
    name says it quantizes or rounds (``QuantReLU``, ``Quantizer``, ``RoundSTE``, ``Binarize``; not
    ``Quantile...``). A hint for choosing the exact estimator; the values decide (:func:`is_quantized`)."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"quantizing_module expects an nn.Module, got {type(module).__name__}")
    try:
        from torch.ao.quantization import FakeQuantizeBase
    except ImportError:  # pragma: no cover - very old torch
        FakeQuantizeBase = None  # type: ignore[assignment,misc]
    if FakeQuantizeBase is not None and isinstance(module, FakeQuantizeBase):
        return True
    names = [c.__name__ for c in type(module).__mro__ if not c.__module__.startswith("torch.nn.modules")]
    # QuantStub / DeQuantStub pass float values through until a model is converted
    return any(_QUANT_WORD.search(name) and not name.endswith("Stub") for name in names)


__all__ = ["Grid", "detect_grid", "is_quantized", "quantization_grid", "quantizing_module"]
