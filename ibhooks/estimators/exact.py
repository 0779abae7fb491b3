"""Exact information of a layer the network itself quantizes (Lorenzen, Igel & Nielsen, ICLR 2022).

When the network quantizes a layer's output in its forward pass (a fake-quantize module, a rounding
layer, a straight-through quantizer, integer outputs), T takes finitely many values and nothing has to
be estimated. With X uniform over the n probe rows (rows distinct) and T a function of X,

    I(X;T) = H(T)                        (plug-in entropy of T's distinct rows over the probe)
    I(T;Y) = H(T) + H(Y) - H(T, Y)       (plug-in over the probe's joint of T and the labels)

are exact for that distribution: no bins, no noise, no bandwidth. The values of T are counted as they
are; this estimator discretises nothing itself (``traits.discretises`` is False), so along a chain of
such layers the data-processing inequality holds exactly and a violation is a bug
(:mod:`ibhooks.interpret.dpi`). I(X;T) is at most log2 n (the probe); more probe rows may separate
more inputs.

A layer that is not discrete (:func:`~ibhooks.estimators._quantized.detect_grid`: more distinct values
per unit than ``max_levels``, or values on no evenly spaced grid) is refused with an error naming the
fix: bin it (``"binning"``) or let ``"auto"`` choose. Rows are coded with the binning estimator's
row coder (:func:`~ibhooks.estimators._bin_codes.row_codes_counts`), so the counting is the same code.

Sampling note: "exact" is about the probe distribution. As an estimate of the information over a
larger input population, the plug-in I(T;Y) has the usual positive bias, about
(|T| - 1)(|Y| - 1) / (2 n ln 2) bits for T independent of Y (Miller-Madow); it is not corrected.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import torch

from ..schema.estimate import Estimate, EstimatorTraits
from ._bin_codes import row_codes_counts
from ._common import Provenance, check_labels, check_samples, discrete_mi, entropy_from_counts, require_int
from ._pairwise import flat_rows
from ._quantized import Grid, detect_grid
from .base import Estimator, LayerInformation

#: Exact for its quantity (the network's own discrete values, X uniform over the probe); nothing is
#: discretised or added for analysis; I(X;T) = H(T) is at most log2 n.
EXACT_TRAITS = EstimatorTraits(exact=True, cap="log2_n")


def exact_params(bits: Optional[int] = None, max_levels: Optional[int] = None) -> Dict[str, Any]:
    """The settings of the exact estimator, as recorded in ``Estimate.params`` (JSON-ready)."""
    return {"bits": bits, "max_levels": _max_levels(bits, max_levels)}


def _max_levels(bits: Optional[int], max_levels: Optional[int]) -> int:
    if max_levels is not None:
        return max_levels
    return 2 ** bits if bits is not None else 256


def quantization_label(bits: Optional[int], max_levels: int, integer: bool = False) -> str:
    """How ``quantity`` names the network's quantization, e.g. ``"the layer's own 8-bit quantization"``."""
    if bits is not None:
        return f"the layer's own {bits}-bit quantization"
    if integer:
        return "the layer's own integer values"
    return f"the layer's own quantization (<= {max_levels} levels per unit)"


def refusal(why: str, max_levels: int) -> str:
    """The error for a layer that is not discrete: what is wrong and the fix."""
    return (
        f"the 'exact' estimator counts only layers whose values the network itself makes discrete (a "
        f"FakeQuantize, a rounding layer, a straight-through quantizer, integer outputs), and this layer is "
        f"not discrete: {why}. Use estimators=['binning'] (or 'auto') for a continuous layer; if the layer "
        f"is quantized more finely than {max_levels} levels per unit, raise max_levels= (or bits=)."
    )


def _rows(t: torch.Tensor, name: str) -> torch.Tensor:
    """``t`` as (n, D) rows in its own dtype, validated (shape, NaN/Inf) as every estimator does."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of layer outputs (n, ...), got {type(t).__name__}")
    if t.is_quantized:
        t = t.dequantize()
    t = t.unsqueeze(1) if t.dim() == 1 else flat_rows(t)
    if t.is_floating_point():
        check_samples(t, name=name, min_rows=1)
    elif t.dim() != 2 or t.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n, ...) with n >= 1; got {tuple(t.shape)}")
    return t


def _dense_ranks(idx: torch.Tensor) -> torch.Tensor:
    """Each column's values replaced by their rank among that column's distinct values (0..U_j-1)."""
    s, perm = idx.sort(0)
    new = torch.zeros_like(s, dtype=torch.int64)
    new[1:] = (s[1:] != s[:-1]).to(torch.int64)
    return torch.empty_like(new).scatter_(0, perm, new.cumsum(0))


def level_codes(
    t: torch.Tensor, max_levels: int = 256, *, name: str = "t"
) -> Tuple[torch.Tensor, torch.Tensor, Grid]:
    """Distinct-row codes (n,), the count of each distinct row, and the grid of a discrete layer ``t``.

    Raises ``ValueError`` (:func:`refusal`) when ``t`` is not discrete."""
    rows = _rows(t, name)
    grid, why = detect_grid(rows, max_levels)
    if grid is None:
        raise ValueError(refusal(why, max_levels))
    idx = grid.indices(rows)
    radix = grid.radix
    if radix > rows.shape[0]:  # wide integer ranges: code each column by rank so rows pack tightly
        idx = _dense_ranks(idx)
        radix = int(idx.max()) + 1
    codes, counts = row_codes_counts(idx, radix)
    return codes, counts, grid


def exact_layer_information(
    t: torch.Tensor, y: Optional[torch.Tensor] = None, *, bits: Optional[int] = None,
    max_levels: Optional[int] = None, provenance: Optional[Provenance] = None,
) -> LayerInformation:
    """Exact ``(I(X;T), I(T;Y))`` in bits of a discrete layer output ``t`` (n, ...), X uniform over the rows.

    Args:
        t: The layer's (quantized) output; y: integer class labels (n,) or None (then I(T;Y) is None).
        bits: The network's quantization width, named in ``quantity``; it also sets ``max_levels`` to
            2**bits unless that is given.
        max_levels: Most grid points per unit for a float layer to count as discrete (default 256).
        provenance: Name, settings and traits to stamp (default: ``"exact"`` and these arguments).
    """
    levels = _max_levels(bits, max_levels)
    prov = provenance or Provenance("exact", EXACT_TRAITS, exact_params(bits, max_levels))
    codes, counts, grid = level_codes(t, levels)
    n, d = codes.shape[0], int(grid.offset.numel())
    label = quantization_label(bits, levels, grid.integer)
    distinct = int(counts.numel())
    diag: Dict[str, Any] = {"distinct_rows": distinct, "fraction_merged_rows": 1.0 - distinct / n,
                            **grid.summary()}
    h_t = entropy_from_counts(counts) + 0.0  # a constant layer's -0.0 reads 0.0
    cap = math.log2(n) if n > 1 else 0.0
    i_xt = prov.estimate(min(h_t, cap), f"H(T) exact: {label}, X uniform over the probe",
                         kind="exact", cap=cap, n=n, dim=d, diagnostics=diag)
    if y is None:
        return i_xt, None
    y_codes = check_labels(y, n)
    mi, _, h_y = discrete_mi(codes, y_codes)
    mi += 0.0  # a constant layer's -0.0 reads 0.0
    # I(T;Y) <= H(Y) is a property of Y, not a limit of the estimator: no `cap`, H(Y) is in diagnostics.
    i_ty = prov.estimate(mi, f"H(T) + H(Y) - H(T,Y) exact (plug-in over the probe): {label}, X uniform over "
                         "the probe", kind="exact", n=n, dim=d, diagnostics={"H_Y": h_y})
    return i_xt, i_ty


def exact_mutual_information(
    a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False, bits: Optional[int] = None,
    max_levels: Optional[int] = None, provenance: Optional[Provenance] = None,
) -> Estimate:
    """Exact I(A;B) in bits of two paired discrete variables (or of A and class labels ``b`` when
    ``discrete_b``), plug-in over the rows taken as uniform: exact for that empirical joint."""
    levels = _max_levels(bits, max_levels)
    prov = provenance or Provenance("exact", EXACT_TRAITS, exact_params(bits, max_levels))
    a_codes, _, grid = level_codes(a, levels, name="a")
    n = a_codes.shape[0]
    if discrete_b:
        b_codes = check_labels(b, n, name="b")
    else:
        b_codes, _, _ = level_codes(b, levels, name="b")
        if b_codes.shape[0] != n:
            raise ValueError(f"a has {n} rows but b has {b_codes.shape[0]}; they must be paired")
    mi, h_a, h_b = discrete_mi(a_codes, b_codes)
    label = quantization_label(bits, levels, grid.integer)
    return prov.estimate(mi, f"H(A) + H(B) - H(A,B) exact (plug-in over the paired rows): {label}",
                         kind="exact", cap=min(h_a, h_b), n=n, dim=int(grid.offset.numel()))


class Exact(Estimator):
    """Exact I(X;T) = H(T) and plug-in I(T;Y) of layers the network itself quantizes (a thin wrapper of
    :func:`exact_layer_information`); refuses continuous layers with the fix.

    Args:
        bits: The network's quantization width (e.g. 8), named in every ``quantity``; sets ``max_levels``
            to 2**bits unless that is given. ``None``: the quantity says "<= max_levels levels per unit".
        max_levels: Most grid points per unit for a float layer to count as discrete (default 256, i.e.
            up to 8 bits). Integer-dtype outputs are discrete whatever their range.
    """

    name = "exact"
    traits = EXACT_TRAITS
    #: Counting needs the layer's own values: a pooling reduction would average them off the grid.
    whole_activations = True

    def __init__(self, bits: Optional[int] = None, max_levels: Optional[int] = None) -> None:
        self.bits = None if bits is None else require_int("bits", bits, 1)
        if self.bits is not None and self.bits > 32:
            raise ValueError(f"bits must be at most 32 (a grid of 2**bits levels), got {bits!r}")
        self.max_levels = None if max_levels is None else require_int("max_levels", max_levels, 2)

    def params(self) -> Dict[str, Any]:
        return exact_params(self.bits, self.max_levels)

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        del layer  # no per-layer state: the layer's values say everything
        return exact_layer_information(t, y, bits=self.bits, max_levels=self.max_levels,
                                       provenance=self.provenance())

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        return exact_mutual_information(a, b, discrete_b=discrete_b, bits=self.bits,
                                        max_levels=self.max_levels, provenance=self.provenance())


__all__ = ["EXACT_TRAITS", "Exact", "exact_layer_information", "exact_mutual_information", "level_codes",
           "quantization_label"]
