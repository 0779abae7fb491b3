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

from ..schema.estimate import Estimate, EstimatorTraits
from ._common import (Provenance, check_labels, check_samples, discrete_mi, generator, require_int,
                      require_seed, row_codes)
from ._bin_codes import equal_width_row_codes, extreme_bin_fraction, row_codes_counts
from ._bin_codes import refined_row_codes as _refined_row_codes  # noqa: F401 - the name tests import
from .base import Estimator, LayerInformation

_row_codes_counts = row_codes_counts  # the name used before _bin_codes

RangeSpec = Union[Tuple[float, float], str, Mapping[str, Tuple[float, float]]]
#: A range a kernel can apply by itself: fixed ``(lo, hi)``, ``"layer"`` or ``"adaptive"``.
KernelRange = Union[Tuple[float, float], str]
_RANGE_RULES = ("layer", "running", "adaptive")

#: Binning discretises the layer and is exact for the binned variable; I(X;T) is capped at log2 n.
BINNING_TRAITS = EstimatorTraits(discretises=True, exact=True, cap="log2_n")


def _fixed_range(r: Any) -> Tuple[float, float]:
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError):
        raise ValueError(f"a fixed binning range must be (lo, hi) with finite lo < hi, got {r!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"a fixed binning range must be (lo, hi) with finite lo < hi, got {r!r}")
    return lo, hi


def check_range(range: RangeSpec) -> Union[Tuple[float, float], str, Dict[str, Tuple[float, float]]]:
    """Validate a range spec: ``(lo, hi)``, ``{layer: (lo, hi)}`` or one of ``"layer"``, ``"running"``,
    ``"adaptive"``. Returns it normalised (floats, string layer keys)."""
    if isinstance(range, str):
        if range not in _RANGE_RULES:
            raise ValueError(
                f"range must be (lo, hi), {{layer: (lo, hi)}} or one of {_RANGE_RULES}, got {range!r}")
        return range
    if isinstance(range, Mapping):
        return {str(layer): _fixed_range(r) for layer, r in range.items()}
    return _fixed_range(range)


def binning_params(n_bins: int, range: RangeSpec, n_boot: int = 0, seed: int = 0) -> Dict[str, Any]:
    """The settings of a binning, as recorded in ``Estimate.params`` (JSON-ready)."""
    rng: Any = range
    if isinstance(rng, tuple):
        rng = list(rng)
    elif isinstance(rng, Mapping):
        rng = {k: list(v) for k, v in rng.items()}
    p: Dict[str, Any] = {"n_bins": n_bins, "range": rng}
    if n_boot:
        p.update(n_boot=n_boot, seed=seed)
    return p


def bin_label(n_bins: int, range: KernelRange, lo: float, hi: float) -> str:
    """Name of the binned variable in ``quantity``, e.g. ``bin30[-1,1]`` or ``bin30[layer min-max]``."""
    if range == "adaptive":
        return f"bin{n_bins}[equal-mass, layer]"
    if range == "layer":
        return f"bin{n_bins}[layer min-max]"
    return f"bin{n_bins}[{lo:.4g},{hi:.4g}]"


def _entropy_of_counts(counts: torch.Tensor, n: int) -> float:
    """Plug-in entropy in bits of a histogram with total n: log2 n - sum c log2 c / n (float64)."""
    c = counts.to(torch.float64)
    return max(math.log2(n) - float(torch.special.xlogy(c, c).sum()) / (n * math.log(2.0)), 0.0)


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


def _adaptive_indices(t: torch.Tensor, n_bins: int) -> torch.Tensor:
    uniq = torch.unique(t.to(torch.float64).flatten())  # sorted
    k = torch.arange(1, n_bins, device=t.device, dtype=torch.float64)
    edges = uniq[(k * (uniq.numel() / n_bins)).floor().to(torch.int64).clamp_(max=uniq.numel() - 1)]
    return torch.bucketize(t.to(torch.float64).contiguous(), edges, right=True)


def equal_width_range(
    t: torch.Tensor, n_bins: int, range: KernelRange
) -> Tuple[float, float, Dict[str, Any]]:
    """``(lo, hi, diagnostics)`` of equal-width binning of ``t`` (``range``: ``"layer"`` or ``(lo, hi)``),
    with the diagnostics of :func:`bin_indices` computed without binning the whole layer."""
    t_min, t_max = (float(v) for v in torch.aminmax(t))
    if range == "layer":
        lo, hi = t_min, t_max
    elif isinstance(range, str):
        raise ValueError(f"a kernel range must be (lo, hi), 'layer' or 'adaptive', got {range!r}")
    else:
        lo, hi = range
    if hi <= lo:  # a constant layer: one bin
        hi = lo + 1.0
    outside = 0.0 if (t_min >= lo and t_max <= hi) else float(((t < lo) | (t > hi)).sum()) / t.numel()
    diagnostics = {"fraction_outside_range": outside,
                   "fraction_in_extreme_bins": extreme_bin_fraction(t, lo, hi, n_bins), "range_used": [lo, hi]}
    return lo, hi, diagnostics


def bin_indices(
    t: torch.Tensor, *, n_bins: int = 30, range: KernelRange = "layer", as_float: bool = False
) -> Tuple[torch.Tensor, float, float, Dict[str, Any]]:
    """Bin indices (n, d) of a validated sample matrix ``t``, the range used and diagnostics.

    ``range`` is ``(lo, hi)`` (values outside go to the end bins; the clipped fraction is reported),
    ``"layer"`` (this tensor's min..max) or ``"adaptive"`` (equal-mass edges). ``as_float`` returns the
    (integer-valued) indices as float64 for the equal-width rules, which saves a cast.
    """
    if range == "adaptive":
        t_min, t_max = (float(v) for v in torch.aminmax(t))
        idx = _adaptive_indices(t, n_bins)
        extreme = float(((idx == 0) | (idx == n_bins - 1)).float().mean())
        return idx, t_min, t_max, {"fraction_in_extreme_bins": extreme, "range_used": [t_min, t_max],
                                   "distinct_values": int(torch.unique(t).numel())}
    lo, hi, diagnostics = equal_width_range(t, n_bins, range)
    idx = (t.to(torch.float64) - lo).mul_(n_bins / (hi - lo)).floor_().clamp_(0, n_bins - 1)
    if not as_float:
        idx = idx.to(torch.int64)
    return idx, lo, hi, diagnostics


def _ci(value: float, boot: torch.Tensor, hi: float, diag: Dict[str, Any]) -> Tuple[float, float]:
    sd, mean = float(boot.std(unbiased=True)), float(boot.mean())
    diag.update(bootstrap_mean=mean, bootstrap_sd=sd,
                ci_method=f"value +- 1.96 sd, {boot.numel()} row bootstraps")
    return max(0.0, value - 1.96 * sd), min(hi, value + 1.96 * sd)


def binned_layer_information(
    t: torch.Tensor, y: Optional[torch.Tensor] = None, *, n_bins: int = 30, range: KernelRange = "layer",
    n_boot: int = 0, seed: int = 0, label: Optional[str] = None, provenance: Optional[Provenance] = None,
) -> LayerInformation:
    """Exact ``(H(bin(T)), I(bin(T); Y))`` in bits for a layer output ``t`` (n, d), X uniform over rows.

    Args:
        t: Layer output (n, d); y: integer class labels (n,) or None (then I(T;Y) is None).
        n_bins: Intervals per unit. range: ``(lo, hi)``, ``"layer"`` or ``"adaptive"`` (see the module).
        n_boot: Bootstrap resamples over rows for ``ci`` (0: none); seed: the bootstrap generator's seed.
        label: Name of the binned variable in ``quantity`` (default from ``n_bins`` and ``range``).
        provenance: Name, settings and traits to stamp (default: ``"binning"`` and these arguments).
    """
    t = check_samples(t, min_rows=1)
    n, d = t.shape
    y_codes = check_labels(y, n) if y is not None else None
    prov = provenance or Provenance("binning", BINNING_TRAITS, binning_params(n_bins, range, n_boot, seed))
    if range == "adaptive":
        idx, lo, hi, diag = bin_indices(t, n_bins=n_bins, range=range, as_float=True)
        codes, counts = row_codes_counts(idx, n_bins)
    else:  # equal-width: no binned copy of the whole layer (same partition, see _bin_codes)
        lo, hi, diag = equal_width_range(t, n_bins, range)
        codes, counts = equal_width_row_codes(t, lo, hi, n_bins)
    n_distinct = counts.numel()
    diag["distinct_rows"] = n_distinct
    diag["fraction_duplicate_rows"] = 1.0 - n_distinct / n
    label = label or bin_label(n_bins, range, lo, hi)
    cap = math.log2(n) if n > 1 else 0.0
    h_t = _entropy_of_counts(counts, n)
    boot = bootstrap_entropies(codes, y_codes, n_boot, generator(seed, codes.device)) if n_boot > 1 else None
    ci = _ci(h_t, boot["h_t"], cap, diag) if boot is not None else None
    i_xt = prov.estimate(h_t, f"H({label}(T))", kind="exact", ci=ci, cap=cap, n=n, dim=d, diagnostics=diag)
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
    ci_y = _ci(mi, boot["i_ty"], min(h_y, h_t), diag_y) if boot is not None else None
    # I(T;Y) <= H(Y) is a property of Y, not a limit of the estimator: no `cap`, H(Y) is in diagnostics.
    i_ty = prov.estimate(mi, f"I({label}(T); Y)", kind="exact", ci=ci_y, n=n, dim=d, diagnostics=diag_y)
    return i_xt, i_ty


def binned_mutual_information(
    a: torch.Tensor, b: torch.Tensor, *, n_bins: int = 30, range: KernelRange = "layer",
    discrete_b: bool = False, provenance: Optional[Provenance] = None,
) -> Estimate:
    """Exact I(bin(A); bin(B)) in bits (or I(bin(A); B) for class labels ``b`` when ``discrete_b``)."""
    a = check_samples(a, name="a", min_rows=1)
    prov = provenance or Provenance("binning", BINNING_TRAITS, binning_params(n_bins, range))
    a_idx, lo, hi, _ = bin_indices(a, n_bins=n_bins, range=range)
    a_codes, _ = row_codes(a_idx, radix=n_bins)
    if discrete_b:
        b_codes = check_labels(b, a.shape[0], name="b")
    else:
        b = check_samples(b, name="b", min_rows=1)
        if b.shape[0] != a.shape[0]:
            raise ValueError(f"a has {a.shape[0]} rows but b has {b.shape[0]}; they must be paired")
        b_idx, _, _, _ = bin_indices(b, n_bins=n_bins, range=range)
        b_codes, _ = row_codes(b_idx, radix=n_bins)
    mi, h_a, h_b = discrete_mi(a_codes, b_codes)
    label = bin_label(n_bins, range, lo, hi)
    return prov.estimate(mi, f"I({label}(A); {'B' if discrete_b else label + '(B)'})", kind="exact",
                         cap=min(h_a, h_b), n=a.shape[0], dim=a.shape[1])


class Binning(Estimator):
    """Binning of each unit; exact entropies of the binned layer (a thin wrapper of
    :func:`binned_layer_information` holding the settings and the per-layer running ranges).

    Args:
        n_bins: Number of intervals per unit (SZT used 30 on [-1, 1]; Saxe's ReLU runs 100 min..max).
        range: ``(lo, hi)`` fixed range, ``{layer: (lo, hi)}``, ``"layer"`` (this measurement's
            min..max), ``"running"`` (min..max over all measurements of this layer so far) or
            ``"adaptive"`` (equal-mass EBAB).
        n_boot: Bootstrap resamples over rows for ``ci`` (0 = none, the default).
        seed: Seed of the bootstrap's own generator.
    """

    name = "binning"
    traits = BINNING_TRAITS

    def __init__(self, n_bins: int = 30, range: RangeSpec = "layer", n_boot: int = 0, seed: int = 0) -> None:
        self.n_bins = require_int("n_bins", n_bins, 2)
        self.range = check_range(range)
        self.n_boot = require_int("n_boot", n_boot, 0)
        self.seed = require_seed(seed)
        self._running: Dict[str, Tuple[float, float]] = {}

    def params(self) -> Dict[str, Any]:
        return binning_params(self.n_bins, self.range, self.n_boot, self.seed)

    def state_dict(self) -> Dict[str, Any]:
        return {"running": {k: [lo, hi] for k, (lo, hi) in self._running.items()}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._running = {str(k): (float(v[0]), float(v[1])) for k, v in state.get("running", {}).items()}

    def _kernel_range(self, t: torch.Tensor, layer: Optional[str],
                      update: bool) -> Tuple[KernelRange, Optional[str]]:
        """The range this layer gets now (fixed, per layer, running or a rule) and its label."""
        if isinstance(self.range, dict):
            if layer is None or str(layer) not in self.range:
                raise ValueError(
                    f"binning has fixed ranges for layers {sorted(self.range)} but none for {layer!r}; "
                    "add it to range={layer: (lo, hi)}"
                )
            return self.range[str(layer)], None
        if self.range != "running":
            return self.range, None
        key = "" if layer is None else str(layer)
        t_min, t_max = (float(v) for v in torch.aminmax(t))
        lo, hi = self._running.get(key, (t_min, t_max))
        lo, hi = min(lo, t_min), max(hi, t_max)
        if update:
            self._running[key] = (lo, hi)
        return (lo, hi), f"bin{self.n_bins}[running min-max {lo:.4g},{hi:.4g}]"

    def bin_indices(
        self, t: torch.Tensor, layer: Optional[str] = None, *, update: bool = True, as_float: bool = False
    ) -> Tuple[torch.Tensor, float, float, Dict[str, Any]]:
        """Bin indices (n, d) of ``t`` under this estimator's range for ``layer``, the range used and
        diagnostics (see :func:`bin_indices`). ``update=False`` reads a running range without widening it."""
        t = check_samples(t, min_rows=1)
        rng, _ = self._kernel_range(t, layer, update)
        return bin_indices(t, n_bins=self.n_bins, range=rng, as_float=as_float)

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        if self.range == "running" or isinstance(self.range, dict):
            t = check_samples(t, min_rows=1)
            rng, label = self._kernel_range(t, layer, update=True)
        else:
            rng, label = self.range, None
        return binned_layer_information(t, y, n_bins=self.n_bins, range=rng, n_boot=self.n_boot,
                                        seed=self.seed, label=label, provenance=self.provenance())

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        """I(bin(A); bin(B)) (or I(bin(A); B) for labels). A general pair has no layer, so ``"running"``
        bins each argument by its own min..max (``"layer"``) and leaves the running state alone."""
        if isinstance(self.range, dict):
            raise ValueError("binning with per-layer ranges {layer: (lo, hi)} cannot bin a general pair; use "
                             "Binning(range=(lo, hi)) or a rule ('layer', 'adaptive') for mutual_information")
        rng = "layer" if self.range == "running" else self.range
        return binned_mutual_information(a, b, n_bins=self.n_bins, range=rng, discrete_b=discrete_b,
                                         provenance=self.provenance())


class AdaptiveBinning(Binning):
    """Equal-mass binning (EBAB, Chelombiev et al. 2019): :class:`Binning` with ``range="adaptive"``."""

    name = "binning_adaptive"

    def __init__(self, n_bins: int = 30, n_boot: int = 0, seed: int = 0) -> None:
        super().__init__(n_bins=n_bins, range="adaptive", n_boot=n_boot, seed=seed)
