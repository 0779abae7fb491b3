"""Binning estimator (Shwartz-Ziv & Tishby 2017; Saxe et al. 2018).

Every unit of T is cut into ``n_bins`` equal intervals and a row of T becomes the tuple of its bin
indices. With X uniform over the n rows (each row one input), T_binned is a function of X, so

    I(X;T) = H(T_binned)            (the plug-in entropy over the n rows)
    I(T;Y) = H(T_binned) + H(Y) - H(T_binned, Y)

and both are exact for the binned variable: the figure's ``quantity`` says so. They are capped at
log2 n (and I(T;Y) at H(Y)). Rows are packed into one integer per row and counted with
``torch.unique`` on the tensor's device; there is no Python loop over samples.

Range rules:
    * ``(lo, hi)``: a fixed range, e.g. SZT's ``(-1, 1)`` for tanh. Values outside are clipped into
      the end bins and the clipped fraction is reported (the ReLU/[-1,1] trap).
    * ``"layer"``: between the min and max of this layer at this measurement.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple, Union

import torch

from ..estimate import Estimate, make_estimate
from ._common import check_labels, check_samples, discrete_entropy, discrete_mi, row_codes
from .base import Estimator, LayerInformation

RangeSpec = Union[Tuple[float, float], str]


class Binning(Estimator):
    """Equal-width binning of each unit; exact entropies of the binned layer.

    Args:
        n_bins: Number of equal intervals per unit (SZT used 30 on [-1, 1]).
        range: ``(lo, hi)`` fixed range, or ``"layer"`` for the layer's own min..max per measurement.
    """

    name = "binning"

    def __init__(self, n_bins: int = 30, range: RangeSpec = "layer") -> None:
        if not isinstance(n_bins, int) or n_bins < 2:
            raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
        if isinstance(range, str):
            if range not in ("layer",):
                raise ValueError(f"range must be (lo, hi) or 'layer', got {range!r}")
        else:
            lo, hi = (float(v) for v in range)
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                raise ValueError(f"range must be (lo, hi) with finite lo < hi, got {range!r}")
            range = (lo, hi)
        self.n_bins = n_bins
        self.range = range

    def params(self) -> Dict[str, Any]:
        return {"n_bins": self.n_bins, "range": list(self.range) if isinstance(self.range, tuple) else self.range}

    def _label(self, lo: float, hi: float) -> str:
        if isinstance(self.range, tuple):
            return f"bin{self.n_bins}[{lo:g},{hi:g}]"
        return f"bin{self.n_bins}[layer min-max]"

    def bin_indices(self, t: torch.Tensor) -> Tuple[torch.Tensor, float, float, Dict[str, Any]]:
        """Bin indices (n, d) int64 of ``t`` and the range used, with diagnostics."""
        if isinstance(self.range, tuple):
            lo, hi = self.range
        else:
            lo, hi = float(t.min()), float(t.max())
            if hi <= lo:  # a constant layer: one bin
                hi = lo + 1.0
        scaled = (t.to(torch.float64) - lo) * (self.n_bins / (hi - lo))
        outside = float(((t < lo) | (t > hi)).float().mean())
        idx = scaled.floor().clamp_(0, self.n_bins - 1).to(torch.int64)
        extreme = float(((idx == 0) | (idx == self.n_bins - 1)).float().mean())
        diagnostics = {"fraction_outside_range": outside, "fraction_in_extreme_bins": extreme, "range_used": [lo, hi]}
        return idx, lo, hi, diagnostics

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        t = check_samples(t, min_rows=1)
        n, d = t.shape
        idx, lo, hi, diag = self.bin_indices(t)
        codes, n_distinct = row_codes(idx, radix=self.n_bins)
        diag["distinct_rows"] = n_distinct
        diag["fraction_duplicate_rows"] = 1.0 - n_distinct / n
        label = self._label(lo, hi)
        cap = math.log2(n) if n > 1 else 0.0
        params = self.params()
        h_t = discrete_entropy(codes)
        i_xt = make_estimate(
            h_t, f"H({label}(T))", kind="exact", estimator=self.name, cap=cap, n=n, dim=d,
            params=params, diagnostics=diag,
        )
        if y is None:
            return i_xt, None
        y_codes = check_labels(y, n)
        mi, _, h_y = discrete_mi(codes, y_codes)
        # I(T;Y) <= H(Y) is a property of Y, not a limit of the estimator: no `cap`, H(Y) is in diagnostics.
        i_ty = make_estimate(
            mi, f"I({label}(T); Y)", kind="exact", estimator=self.name, n=n, dim=d,
            params=params, diagnostics={"H_Y": h_y},
        )
        return i_xt, i_ty

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        a = check_samples(a, name="a", min_rows=1)
        a_idx, lo, hi, _ = self.bin_indices(a)
        a_codes, _ = row_codes(a_idx, radix=self.n_bins)
        if discrete_b:
            b_codes = check_labels(b, a.shape[0], name="b")
        else:
            b = check_samples(b, name="b", min_rows=1)
            if b.shape[0] != a.shape[0]:
                raise ValueError(f"a has {a.shape[0]} rows but b has {b.shape[0]}; they must be paired")
            b_idx, _, _, _ = self.bin_indices(b)
            b_codes, _ = row_codes(b_idx, radix=self.n_bins)
        mi, h_a, h_b = discrete_mi(a_codes, b_codes)
        label = self._label(lo, hi)
        return make_estimate(
            mi, f"I({label}(A); {'B' if discrete_b else label + '(B)'})", kind="exact", estimator=self.name,
            cap=min(h_a, h_b), n=a.shape[0], dim=a.shape[1], params=self.params(),
        )
