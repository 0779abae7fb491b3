"""Binning estimator (Shwartz-Ziv & Tishby 2017; Saxe et al. 2018; Chelombiev et al. 2019).

Every unit of T is cut into ``n_bins`` intervals and a row of T becomes the tuple of its bin
indices. With X uniform over the n rows (each row one input), T_binned is a function of X, so

    I(X;T) = H(T_binned)            (the plug-in entropy over the n rows)
    I(T;Y) = H(T_binned) + H(Y) - H(T_binned, Y)

and both are exact for the binned variable: the figure's ``quantity`` says so. They are capped at
log2 n (and I(T;Y) at H(Y)). Rows are packed into one integer per row and counted with
``torch.unique`` on the tensor's device; there is no Python loop over samples.

Range rules (``range=``):
    * ``(lo, hi)``: a fixed range, e.g. SZT's ``(-1, 1)`` for tanh. Values outside are clipped into
      the end bins and the clipped fraction is reported (the ReLU/[-1,1] trap).
    * ``{layer: (lo, hi)}``: a fixed range per layer, e.g. each layer's min..max over a whole run
      (Saxe et al. Fig. 1B), learned from a first pass with ``"running"``.
    * ``"layer"``: equal bins between the min and max of this layer at this measurement.
    * ``"running"``: equal bins between the min and max over *all measurements so far* of this layer
      (per-layer state, saved by ``state_dict``). Saxe et al. (Fig. 1B, App. C) used the min..max
      over the whole run, known only after training; the running range is its online
      approximation: early measurements use a narrower range than the final one, so the bin
      width can only grow over a run (the instrument changes while the range is still widening).
    * ``"adaptive"``: equal-mass bins (EBAB, Chelombiev et al. ICLR 2019): edges are quantiles of the
      sorted unique values U pooled over all units of the layer, interior edges U[floor(k|U|/B)],
      k = 1..B-1, so each bin holds about |U|/B distinct values. Chelombiev's code also pins an
      extra lowest edge (0 for ReLU, -1 for tanh), which gives ReLU's exact zeros a bin of their own;
      here all edges come from the data. The instrument changes at every measurement.

``n_boot > 0`` adds a bootstrap over rows (own seeded generator, the global RNG is untouched):
``ci`` = value +- 1.96 * bootstrap sd, clipped to [0, cap]. Resampling duplicates rows, so the
bootstrap distribution sits *below* the value (diagnostics ``bootstrap_mean``); the interval
describes sampling variability of the probe set, not uncertainty of the exact binned quantity.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch

from ..estimate import Estimate, make_estimate
from ._common import check_labels, check_samples, discrete_mi, row_codes
from .base import Estimator, LayerInformation

RangeSpec = Union[Tuple[float, float], str, Mapping[str, Tuple[float, float]]]
_RANGE_RULES = ("layer", "running", "adaptive")


def _fixed_range(r: Any) -> Tuple[float, float]:
    lo, hi = (float(v) for v in r)
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"a fixed binning range must be (lo, hi) with finite lo < hi, got {r!r}")
    return lo, hi


def _entropy_of_counts(counts: torch.Tensor, n: int) -> float:
    """Plug-in entropy in bits of a histogram with total n: log2 n - sum c log2 c / n (float64)."""
    c = counts.to(torch.float64)
    return max(math.log2(n) - float(torch.special.xlogy(c, c).sum()) / (n * math.log(2.0)), 0.0)


def _row_codes_counts(idx: torch.Tensor, radix: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Codes 0..U-1 of the distinct rows of an integer matrix and each distinct row's count.

    Rows are packed into one int64 (mixed radix) when ``radix**d`` fits, so one 1-D ``torch.unique``
    does the work; otherwise ``torch.unique(dim=0)``.
    """
    n, d = idx.shape
    bits = d * math.log2(max(radix, 2))
    if idx.is_floating_point() and bits < 52:  # exact integer arithmetic in float64: one matrix-vector product
        weights = float(radix) ** torch.arange(d - 1, -1, -1, device=idx.device, dtype=torch.float64)
        _, codes, counts = torch.unique(idx.to(torch.float64) @ weights, return_inverse=True, return_counts=True)
    elif bits < 62:
        weights = radix ** torch.arange(d - 1, -1, -1, device=idx.device, dtype=torch.int64)
        _, codes, counts = torch.unique((idx.to(torch.int64) * weights).sum(1), return_inverse=True,
                                        return_counts=True)
    else:
        _, codes, counts = torch.unique(idx.to(torch.int64), dim=0, return_inverse=True, return_counts=True)
    return codes, counts


def _row_entropy_bits(counts: torch.Tensor) -> torch.Tensor:
    """Plug-in entropy in bits of each row of a (B, U) count matrix (float64)."""
    c = counts.to(torch.float64)
    p = c / c.sum(1, keepdim=True)
    return -(torch.where(p > 0, p * torch.log2(p), torch.zeros_like(p))).sum(1)


def bootstrap_entropies(codes: torch.Tensor, y_codes: Optional[torch.Tensor], n_boot: int,
                        generator: torch.Generator, max_elems: int = 1 << 24) -> Dict[str, torch.Tensor]:
    """Bootstrap (rows resampled with replacement) of H(T) and, with labels, I(T;Y), in bits.

    Vectorised over resamples in chunks of at most ``max_elems`` counts; returns ``{"h_t", "i_ty"}``.
    """
    n = codes.shape[0]
    u = int(codes.max()) + 1
    if y_codes is not None:
        k = int(y_codes.max()) + 1
        joint = torch.unique(codes * k + y_codes, return_inverse=True)[1]
        uj = int(joint.max()) + 1
    per = n + u + (k + uj if y_codes is not None else 0)
    chunk = max(1, max_elems // per)
    h_t, i_ty = [], []
    for start in range(0, n_boot, chunk):  # a loop over chunks of resamples, not over samples
        b = min(chunk, n_boot - start)
        idx = torch.randint(n, (b, n), generator=generator, device=codes.device)
        off = torch.arange(b, device=codes.device).unsqueeze(1)

        def ent(c: torch.Tensor, size: int) -> torch.Tensor:
            counts = torch.bincount((c[idx] + off * size).flatten(), minlength=b * size).view(b, size)
            return _row_entropy_bits(counts)

        ht = ent(codes, u)
        h_t.append(ht)
        if y_codes is not None:
            i_ty.append((ht + ent(y_codes, k) - ent(joint, uj)).clamp_min(0.0))
    out = {"h_t": torch.cat(h_t)}
    if y_codes is not None:
        out["i_ty"] = torch.cat(i_ty)
    return out


class Binning(Estimator):
    """Binning of each unit; exact entropies of the binned layer.

    Args:
        n_bins: Number of intervals per unit (SZT used 30 on [-1, 1]; Saxe's ReLU runs 100 min..max).
        range: ``(lo, hi)`` fixed range, ``"layer"`` (this measurement's min..max), ``"running"``
            (min..max over all measurements of this layer so far) or ``"adaptive"`` (equal-mass EBAB).
        n_boot: Bootstrap resamples over rows for ``ci`` (0 = none, the default).
        seed: Seed of the bootstrap's own generator.
    """

    name = "binning"

    def __init__(self, n_bins: int = 30, range: RangeSpec = "layer", n_boot: int = 0, seed: int = 0) -> None:
        if not isinstance(n_bins, int) or n_bins < 2:
            raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
        if isinstance(range, str):
            if range not in _RANGE_RULES:
                raise ValueError(f"range must be (lo, hi) or one of {_RANGE_RULES}, got {range!r}")
        elif isinstance(range, Mapping):
            range = {str(layer): _fixed_range(r) for layer, r in range.items()}
        else:
            range = _fixed_range(range)
        if not isinstance(n_boot, int) or n_boot < 0:
            raise ValueError(f"n_boot must be an integer >= 0, got {n_boot!r}")
        self.n_bins = n_bins
        self.range = range
        self.n_boot = n_boot
        self.seed = int(seed)
        self._running: Dict[str, Tuple[float, float]] = {}

    def params(self) -> Dict[str, Any]:
        rng: Any = self.range
        if isinstance(rng, tuple):
            rng = list(rng)
        elif isinstance(rng, dict):
            rng = {k: list(v) for k, v in rng.items()}
        p: Dict[str, Any] = {"n_bins": self.n_bins, "range": rng}
        if self.n_boot:
            p.update(n_boot=self.n_boot, seed=self.seed)
        return p

    def state_dict(self) -> Dict[str, Any]:
        return {"running": {k: [lo, hi] for k, (lo, hi) in self._running.items()}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._running = {str(k): (float(v[0]), float(v[1])) for k, v in state.get("running", {}).items()}

    def _label(self, lo: float, hi: float) -> str:
        if isinstance(self.range, (tuple, dict)):
            return f"bin{self.n_bins}[{lo:.4g},{hi:.4g}]"
        if self.range == "running":
            return f"bin{self.n_bins}[running min-max {lo:.4g},{hi:.4g}]"
        if self.range == "adaptive":
            return f"bin{self.n_bins}[equal-mass, layer]"
        return f"bin{self.n_bins}[layer min-max]"

    def _adaptive_indices(self, t: torch.Tensor) -> torch.Tensor:
        uniq = torch.unique(t.to(torch.float64).flatten())  # sorted
        k = torch.arange(1, self.n_bins, device=t.device, dtype=torch.float64)
        edges = uniq[(k * (uniq.numel() / self.n_bins)).floor().to(torch.int64).clamp_(max=uniq.numel() - 1)]
        return torch.bucketize(t.to(torch.float64).contiguous(), edges, right=True)

    def bin_indices(
        self, t: torch.Tensor, layer: Optional[str] = None, *, update: bool = True, as_float: bool = False
    ) -> Tuple[torch.Tensor, float, float, Dict[str, Any]]:
        """Bin indices (n, d) int64 of ``t`` and the range used, with diagnostics.

        ``layer`` keys the running range; ``update=False`` reads it without widening it. ``as_float``
        returns the (integer-valued) indices as float64 for the equal-width rules, which saves a cast.
        """
        t_min, t_max = (float(v) for v in torch.aminmax(t))
        if self.range == "adaptive":
            idx = self._adaptive_indices(t)
            extreme = float(((idx == 0) | (idx == self.n_bins - 1)).float().mean())
            return idx, t_min, t_max, {"fraction_in_extreme_bins": extreme, "range_used": [t_min, t_max],
                                       "distinct_values": int(torch.unique(t).numel())}
        if isinstance(self.range, tuple):
            lo, hi = self.range
        elif isinstance(self.range, dict):
            if layer is None or str(layer) not in self.range:
                raise ValueError(
                    f"binning has fixed ranges for layers {sorted(self.range)} but none for {layer!r}; "
                    "add it to range={layer: (lo, hi)}"
                )
            lo, hi = self.range[str(layer)]
        elif self.range == "running":
            key = "" if layer is None else str(layer)
            lo, hi = self._running.get(key, (t_min, t_max))
            lo, hi = min(lo, t_min), max(hi, t_max)
            if update:
                self._running[key] = (lo, hi)
        else:
            lo, hi = t_min, t_max
        if hi <= lo:  # a constant layer: one bin
            hi = lo + 1.0
        scaled = (t.to(torch.float64) - lo).mul_(self.n_bins / (hi - lo))
        outside = 0.0 if (t_min >= lo and t_max <= hi) else float(((t < lo) | (t > hi)).sum()) / t.numel()
        idx = scaled.floor_().clamp_(0, self.n_bins - 1)
        extreme = float(((idx == 0) | (idx == self.n_bins - 1)).sum()) / idx.numel()
        if not as_float:
            idx = idx.to(torch.int64)
        diagnostics = {"fraction_outside_range": outside, "fraction_in_extreme_bins": extreme, "range_used": [lo, hi]}
        return idx, lo, hi, diagnostics

    def _bootstrap(self, codes: torch.Tensor, y_codes: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        gen = torch.Generator(device=codes.device)
        gen.manual_seed(self.seed)
        return bootstrap_entropies(codes, y_codes, self.n_boot, gen)

    @staticmethod
    def _ci(value: float, boot: torch.Tensor, hi: float, diag: Dict[str, Any]) -> Tuple[float, float]:
        sd, mean = float(boot.std(unbiased=True)), float(boot.mean())
        diag.update(bootstrap_mean=mean, bootstrap_sd=sd, ci_method=f"value +- 1.96 sd, {boot.numel()} row bootstraps")
        return max(0.0, value - 1.96 * sd), min(hi, value + 1.96 * sd)

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        t = check_samples(t, min_rows=1)
        n, d = t.shape
        y_codes = check_labels(y, n) if y is not None else None
        idx, lo, hi, diag = self.bin_indices(t, layer, as_float=True)
        codes, counts = _row_codes_counts(idx, self.n_bins)
        n_distinct = counts.numel()
        diag["distinct_rows"] = n_distinct
        diag["fraction_duplicate_rows"] = 1.0 - n_distinct / n
        label = self._label(lo, hi)
        cap = math.log2(n) if n > 1 else 0.0
        params = self.params()
        h_t = _entropy_of_counts(counts, n)
        boot = self._bootstrap(codes, y_codes) if self.n_boot > 1 else None
        ci = self._ci(h_t, boot["h_t"], cap, diag) if boot is not None else None
        i_xt = make_estimate(
            h_t, f"H({label}(T))", kind="exact", estimator=self.name, ci=ci, cap=cap, n=n, dim=d,
            params=params, diagnostics=diag,
        )
        if y_codes is None:
            return i_xt, None
        k = int(y_codes.max()) + 1
        h_y = _entropy_of_counts(torch.bincount(y_codes, minlength=k), n)
        joint = codes * k + y_codes
        n_cells = n_distinct * k
        joint_counts = (torch.bincount(joint, minlength=n_cells) if n_cells <= 8 * n
                        else torch.unique(joint, return_counts=True)[1])
        h_ty = _entropy_of_counts(joint_counts, n)
        mi = max(h_t + h_y - h_ty, 0.0)  # exact up to float rounding (~1e-12)
        diag_y: Dict[str, Any] = {"H_Y": h_y}
        ci_y = self._ci(mi, boot["i_ty"], min(h_y, h_t), diag_y) if boot is not None else None
        # I(T;Y) <= H(Y) is a property of Y, not a limit of the estimator: no `cap`, H(Y) is in diagnostics.
        i_ty = make_estimate(
            mi, f"I({label}(T); Y)", kind="exact", estimator=self.name, ci=ci_y, n=n, dim=d,
            params=params, diagnostics=diag_y,
        )
        return i_xt, i_ty

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        """I(bin(A); bin(B)) (or I(bin(A); B) for labels). The running range is per layer, so here
        ``"running"`` uses the current min..max of each argument without touching the state."""
        a = check_samples(a, name="a", min_rows=1)
        a_idx, lo, hi, _ = self.bin_indices(a, "\0mi:a", update=False)
        a_codes, _ = row_codes(a_idx, radix=self.n_bins)
        if discrete_b:
            b_codes = check_labels(b, a.shape[0], name="b")
        else:
            b = check_samples(b, name="b", min_rows=1)
            if b.shape[0] != a.shape[0]:
                raise ValueError(f"a has {a.shape[0]} rows but b has {b.shape[0]}; they must be paired")
            b_idx, _, _, _ = self.bin_indices(b, "\0mi:b", update=False)
            b_codes, _ = row_codes(b_idx, radix=self.n_bins)
        mi, h_a, h_b = discrete_mi(a_codes, b_codes)
        label = self._label(lo, hi)
        return make_estimate(
            mi, f"I({label}(A); {'B' if discrete_b else label + '(B)'})", kind="exact", estimator=self.name,
            cap=min(h_a, h_b), n=a.shape[0], dim=a.shape[1], params=self.params(),
        )


class AdaptiveBinning(Binning):
    """Equal-mass binning (EBAB, Chelombiev et al. 2019): :class:`Binning` with ``range="adaptive"``."""

    name = "binning_adaptive"

    def __init__(self, n_bins: int = 30, n_boot: int = 0, seed: int = 0) -> None:
        super().__init__(n_bins=n_bins, range="adaptive", n_boot=n_boot, seed=seed)
