"""Distinct-row codes of binned layers, the hot path of the binning estimator.

Two rows of a binned layer fall into the same cell iff they agree in every column's bin index. The
entropy needs only the partition of rows into cells (codes 0..U-1 and each cell's count), so:

- :func:`row_codes_counts` codes an integer matrix (one int64 per row when it fits, else by
  lexicographic refinement of packed column blocks that stops once every row is distinct);
- :func:`equal_width_row_codes` bins column blocks of a float layer on demand while refining, so a
  wide layer whose rows separate in the first columns is never binned as a whole;
- :func:`extreme_bin_fraction` counts values in the end bins by comparing the layer, in its own
  dtype, with the exact thresholds of the float64 binning rule, with no float64 copy of the layer.

All of them reproduce ``floor((float64(t) - lo) * n_bins / (hi - lo))`` clamped to ``0..n_bins-1``
exactly (the rule of :func:`ibhooks.estimators.binning.bin_indices`); tests compare them with it.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

_MAX_PACK_BITS = 61  # packed codes stay below 2**62 (int64, with room for the multiply-add)


def _bins64(t: torch.Tensor, lo: float, scale: float, n_bins: int) -> torch.Tensor:
    """The binning rule on a (small) block, as int64 bin indices."""
    return (t.to(torch.float64) - lo).mul_(scale).floor_().clamp_(0, n_bins - 1).to(torch.int64)


def _pack(cols: torch.Tensor, radix: int) -> torch.Tensor:
    weights = radix ** torch.arange(cols.shape[1] - 1, -1, -1, device=cols.device, dtype=torch.int64)
    return (cols * weights).sum(1)


def _refine(
    n: int, d: int, radix: int, block: "callable", start_codes: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Lexicographic refinement over column blocks ``block(start, stop) -> int64 (n, stop-start)``."""
    per_block = max(1, int(_MAX_PACK_BITS // math.log2(radix)))
    code_bits = max(1, int(n).bit_length())
    follow = max(1, int((_MAX_PACK_BITS - code_bits) // math.log2(radix)))  # columns beside a code
    codes, counts, start = start_codes, None, 0
    while start < d:
        width = min(per_block if codes is None else follow, d - start)
        packed = _pack(block(start, start + width), radix)
        if codes is not None:
            packed = codes * radix ** width + packed
        _, codes, counts = torch.unique(packed, return_inverse=True, return_counts=True)
        start += width
        if counts.shape[0] == n:
            break
    assert codes is not None and counts is not None
    return codes, counts


def row_codes_counts(idx: torch.Tensor, radix: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Codes 0..U-1 of the distinct rows of an integer-valued matrix (n, d) and each one's count.

    Rows are packed into one number (mixed radix) when ``radix**d`` fits, so one 1-D ``torch.unique``
    does the work; wider rows are refined block by block (:func:`refined_row_codes`).
    """
    n, d = idx.shape
    radix = max(radix, 2)
    bits = d * math.log2(radix)
    if idx.is_floating_point() and bits < 52:  # exact integers in float64: one matrix-vector product
        weights = float(radix) ** torch.arange(d - 1, -1, -1, device=idx.device, dtype=torch.float64)
        _, codes, counts = torch.unique(idx.to(torch.float64) @ weights, return_inverse=True,
                                        return_counts=True)
        return codes, counts
    if bits < 62:
        _, codes, counts = torch.unique(_pack(idx.to(torch.int64), radix), return_inverse=True,
                                        return_counts=True)
        return codes, counts
    return refined_row_codes(idx.to(torch.int64), radix)


def refined_row_codes(x: torch.Tensor, radix: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Exact distinct-row codes of a wide integer matrix by lexicographic refinement: the first columns
    packed into one int64 and coded with a 1-D ``torch.unique``, then block by block the current code
    (< n) and the next columns packed again and re-coded; stops once every row has its own code."""
    n, d = x.shape
    return _refine(n, d, max(radix, 2), lambda a, b: x[:, a:b])


def equal_width_row_codes(
    t: torch.Tensor, lo: float, hi: float, n_bins: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Codes and counts of the distinct binned rows of a float layer ``t`` (n, d) under equal-width bins
    on ``[lo, hi]``, binning column blocks only as far as the refinement needs them."""
    n, d = t.shape
    scale = n_bins / (hi - lo)
    radix = max(n_bins, 2)
    if d * math.log2(radix) < 62:
        return row_codes_counts(_bins64(t, lo, scale, n_bins), radix)
    return _refine(n, d, radix, lambda a, b: _bins64(t[:, a:b], lo, scale, n_bins))


def _first_at_least(value: torch.Tensor, rule: "callable", target: float) -> torch.Tensor:
    """The smallest representable value v of ``value``'s dtype near ``value`` with ``rule(v) >= target``
    (``rule`` monotone non-decreasing), found by stepping to neighbouring floats."""
    inf = torch.tensor(math.inf, dtype=value.dtype)
    v = value.clone()
    for _ in range(64):  # rounding puts the threshold within a few ulps of the real-number answer
        below = torch.nextafter(v, -inf)
        if rule(float(below)) >= target:
            v = below
        elif rule(float(v)) >= target:
            return v
        else:
            v = torch.nextafter(v, inf)
    return v


def extreme_bin_fraction(t: torch.Tensor, lo: float, hi: float, n_bins: int) -> float:
    """Fraction of the values of ``t`` in the first or last of ``n_bins`` equal-width bins on
    ``[lo, hi]``: exact for the float64 binning rule, computed in ``t``'s dtype (two comparisons)."""
    if t.numel() == 0:
        return 0.0
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    scale = n_bins / (hi - lo)

    def rule(v: float) -> float:
        return (v - lo) * scale  # float64, as in the binning rule

    def threshold(target: float) -> torch.Tensor:
        start = torch.tensor(lo + target / scale, dtype=torch.float64).to(t.dtype)
        return _first_at_least(start, rule, target)

    if n_bins == 1:
        return 1.0
    low = threshold(1.0).to(t.device)  # index 0  <=>  rule(v) < 1
    high = threshold(float(n_bins - 1)).to(t.device)  # last index  <=>  rule(v) >= n_bins - 1
    count = int(torch.count_nonzero(t < low)) + int(torch.count_nonzero(t >= high))
    return count / t.numel()
