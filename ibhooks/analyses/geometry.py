"""Geometry beside information: how clustered each layer's representation is, logged next to I(X;T).

Goldfeld et al. (ICML 2019) showed that "compression" of a noisy network, and of a binned or KDE
estimate of a deterministic one, is mostly geometric: same-class representations move together
until the (analysis or network) noise can no longer tell them apart. This analysis measures that
geometry directly, per layer and measurement, from the probe's activations T (n, D) and labels Y:

* ``within_between_ratio``: mean Euclidean distance between rows of the same class over the mean
  distance between rows of different classes (ordered pairs, i != j). 1 for labels unrelated to the
  geometry, -> 0 as the classes shrink to separated points.
* ``silhouette``: the mean silhouette (Rousseeuw 1987) with the classes as clusters:
  s_i = (b_i - a_i) / max(a_i, b_i), a_i the mean distance to the other rows of its class, b_i the
  smallest mean distance to another class (s_i = 0 for a class of one row). In [-1, 1].
* ``merged_fraction``: the fraction of rows that have another row closer than ``merge_radius`` x
  sigma (default 2 sigma), sigma the standard deviation of the Gaussian noise of the run's noise-based
  estimator (KDE, noisy channel, sample propagation) for that layer. Two Gaussians N(t_i, sigma^2 I)
  and N(t_j, sigma^2 I) differ only along t_i - t_j, whatever D is; at |t_i - t_j| = 2 sigma their
  Bhattacharyya coefficient is exp(-1/2) ~ 0.61, so such rows are largely confused by the noise.
  ``merged_pair_fraction`` is the fraction of row pairs that close.

sigma comes from the layer's Estimate in the Record: the first estimator (or the one named by
``estimator=``) whose I(X;T) Estimate adds noise or has noise in the network and records
``params["noise_var"]`` (the sigma^2 actually used, also for a relative noise level). Without one, sigma^2 =
``relative_noise`` x the layer's mean per-unit variance, fixed per layer at its first measurement (the
rule of the estimators' ``relative_noise``, :mod:`ibhooks.estimators._noise`), so the threshold does not
follow the layer's scale during training. Each result says where its sigma came from.

Rows beyond ``max_rows`` (default 2048) are subsampled with a generator seeded from the monitor's
seed: the same rows at every measurement. Distances are computed on the activations' device in
float64, in row blocks (wide layers through their Gram matrix), O(n^2 D) time, O(block x n) memory.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional

import torch

from ..estimators._common import require_number
from ..estimators._noise import LayerNoise, noise_spec
from ..estimators._pairwise import DEFAULT_MAX_BLOCK_BYTES, RowDistances, block_rows, blocks, flat_rows
from .base import Analysis, AnalysisContext

#: Default multiple of sigma below which two rows count as merged by the noise.
MERGE_RADIUS = 2.0
#: Default relative noise level (sigma^2 = beta x mean per-unit variance) when no noise estimator ran.
RELATIVE_NOISE = 0.1
#: Default largest number of rows used (a seeded subsample beyond it).
MAX_ROWS = 2048


def subsample_rows(n: int, max_rows: int, seed: int, device: torch.device) -> Optional[torch.Tensor]:
    """Sorted indices of ``max_rows`` of ``n`` rows from a generator seeded with ``seed`` (None: all)."""
    if n <= max_rows:
        return None
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=gen)[:max_rows].sort().values.to(device)


def geometry_statistics(
    t: torch.Tensor,
    y: Optional[torch.Tensor] = None,
    *,
    sigma: float,
    merge_radius: float = MERGE_RADIUS,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
) -> Dict[str, Any]:
    """Clustering statistics of the rows of ``t`` (n, ...) with labels ``y`` (n,) (see the module).

    Returns ``n``, ``sigma``, ``merge_distance``, ``merged_fraction``, ``merged_pair_fraction``,
    ``mean_distance`` and, with labels of at least two classes, ``within_mean``, ``between_mean``,
    ``within_between_ratio`` and ``silhouette`` (``None`` where undefined, e.g. no class with two rows).
    """
    if not isinstance(t, torch.Tensor) or t.dim() < 2 or t.shape[0] < 2:
        raise ValueError(f"t must be an (n, ...) tensor with n >= 2 rows, got "
                         f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
    sigma = require_number("sigma", sigma)
    merge_radius = require_number("merge_radius", merge_radius)
    dist = RowDistances(flat_rows(t), max_block_bytes=max_block_bytes)
    n, device = dist.n, dist.sq.device
    threshold = merge_radius * sigma
    onehot = counts = codes = None
    if y is not None:
        if y.shape[0] != n:
            raise ValueError(f"y has {y.shape[0]} labels but t has {n} rows; pass one label per row")
        codes = torch.unique(y.to(device), return_inverse=True)[1]
        counts = torch.bincount(codes).to(torch.float64)
        onehot = torch.nn.functional.one_hot(codes, len(counts)).to(torch.float64)
    class_sums = torch.zeros(n, 1 if onehot is None else onehot.shape[1], dtype=torch.float64, device=device)
    near = torch.zeros(n, dtype=torch.float64, device=device)
    rows = block_rows(n, max_bytes=max_block_bytes, copies=3)
    for sl in blocks(n, rows):  # a loop over row blocks, not samples
        d = dist.rows(sl)
        own = torch.arange(sl.stop - sl.start, device=device)
        d[own, own + sl.start] = 0.0  # exact zeros on the diagonal (the Gram route leaves rounding)
        d = d.sqrt_()
        close = d < threshold
        close[own, own + sl.start] = False
        near[sl] = close.sum(1, dtype=torch.float64)
        class_sums[sl] = d.sum(1, keepdim=True) if onehot is None else d @ onehot
    total = float(class_sums.sum())
    out: Dict[str, Any] = {
        "n": n,
        "sigma": float(sigma),
        "merge_distance": float(threshold),
        "merged_fraction": float((near > 0).to(torch.float64).mean()),
        "merged_pair_fraction": float(near.sum()) / (n * (n - 1)),
        "mean_distance": total / (n * (n - 1)),
    }
    if onehot is None or len(counts) < 2:
        return out
    out.update(_class_statistics(class_sums, codes, counts, total, n))
    return out


def _class_statistics(class_sums: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor, total: float,
                      n: int) -> Dict[str, Any]:
    """Within / between means, their ratio and the silhouette from per-row sums of distances by class."""
    own_sum = class_sums.gather(1, codes.unsqueeze(1)).squeeze(1)
    within_pairs = float((counts * (counts - 1)).sum())
    between_pairs = float(n * n - (counts * counts).sum())
    within_sum = float(own_sum.sum())
    within = within_sum / within_pairs if within_pairs > 0 else None
    between = (total - within_sum) / between_pairs
    ratio = within / between if within is not None and between > 0 else None
    own_n = counts[codes]
    a = own_sum / (own_n - 1).clamp_min(1.0)
    means = class_sums / counts.unsqueeze(0)
    b = means.scatter(1, codes.unsqueeze(1), math.inf).min(1).values
    top = torch.maximum(a, b)
    s = torch.where((own_n > 1) & (top > 0), (b - a) / top.clamp_min(1e-300), torch.zeros_like(a))
    return {
        "within_mean": within,
        "between_mean": between,
        "within_between_ratio": ratio,
        "silhouette": float(s.mean()),
    }


class GeometryAnalysis(Analysis):
    """Per-layer clustering statistics beside I(X;T): ``record.analyses["geometry"][layer]`` holds the
    keys of :func:`geometry_statistics` plus ``sigma_source`` (the estimator key whose noise was used,
    or ``"relative"``).

    Args:
        merge_radius: Rows closer than ``merge_radius`` x sigma count as merged (default 2).
        estimator: Monitor key of the estimator whose noise sigma to use (default: the first noise-based
            one that measured the layer; none: the relative level).
        relative_noise: beta of the fallback sigma^2 = beta x the layer's mean per-unit variance.
        relative_to: ``"unit"`` (default) or ``"total"`` variance, as for the estimators.
        max_rows: Largest number of probe rows used (seeded subsample beyond it).
        max_block_bytes: Memory budget of one block of distances.
    """

    name = "geometry"

    def __init__(self, merge_radius: float = MERGE_RADIUS, estimator: Optional[str] = None,
                 relative_noise: float = RELATIVE_NOISE, relative_to: str = "unit", max_rows: int = MAX_ROWS,
                 max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES) -> None:
        self.merge_radius = require_number("merge_radius", merge_radius)
        self.spec = noise_spec(None, relative_noise, relative_to)
        if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 2:
            raise ValueError(f"max_rows must be an integer >= 2, got {max_rows!r}")
        if estimator is not None and not isinstance(estimator, str):
            raise ValueError(f"estimator must be a monitor estimator key (a str) or None, got {estimator!r}")
        self.estimator = estimator
        self.max_rows = max_rows
        self.max_block_bytes = int(max_block_bytes)
        self._noise = LayerNoise(self.spec)
        self.seed = 0

    def bind(self, context: AnalysisContext) -> None:
        super().bind(context)
        if self.estimator is not None and self.estimator not in context.estimators:
            raise ValueError(
                f"geometry: estimator={self.estimator!r} is not one of the run's estimators "
                f"({', '.join(context.estimators)}); pass one of those keys or None")
        self.seed = int(context.seed)

    def params(self) -> Dict[str, Any]:
        return {"merge_radius": self.merge_radius, "estimator": self.estimator, **self.spec.params(),
                "max_rows": self.max_rows}

    def state_dict(self) -> Dict[str, Any]:
        return self._noise.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._noise.load_state_dict(dict(state))

    def _noise_of(self, record: Any, layer: str) -> Optional[tuple]:
        """``(sigma, estimator key)`` from the layer's noise-based Estimate in ``record``, or None."""
        for key, res in record.layers.get(layer, {}).items():
            if self.estimator is not None and key != self.estimator:
                continue
            est = res.i_xt
            if est is None or not (est.traits.adds_noise or est.traits.noise_in_network):
                continue
            var = est.params.get("noise_var")
            if isinstance(var, (int, float)) and math.isfinite(var) and var > 0:
                return math.sqrt(float(var)), key
        return None

    def analyse(self, snapshot: Any, record: Any) -> Optional[Dict[str, Any]]:
        out: Dict[str, Any] = {}
        for layer, t in snapshot.activations.items():
            idx = subsample_rows(int(t.shape[0]), self.max_rows, self.seed, t.device)
            rows = t if idx is None else t[idx]
            y = snapshot.labels
            if y is not None and idx is not None:
                y = y.to(t.device)[idx]
            found = self._noise_of(record, layer)
            if found is None:
                flat = flat_rows(rows).to(torch.float64)
                unit_var = float(flat.var(0, unbiased=True).mean()) if flat.shape[1] else 0.0
                sigma2, _ = self._noise.resolve(layer, unit_var, int(flat.shape[1]))
                found = (math.sqrt(sigma2), "relative")
            stats = geometry_statistics(rows, y, sigma=found[0], merge_radius=self.merge_radius,
                                        max_block_bytes=self.max_block_bytes)
            stats["sigma_source"] = found[1]
            out[layer] = stats
        return out or None
