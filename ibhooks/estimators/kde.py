"""Kernel (KDE) pairwise-distance bounds: Kolchinsky & Tracey (Entropy 19:361, 2017), as used by
Saxe et al. (ICLR 2018) with noise variance sigma^2 = 0.1.

The measured variable is T + N(0, sigma^2 I), X uniform over the n rows of T (a mixture of n
Gaussians). With D_ij = |t_i - t_j|^2, all in nats before the conversion to bits:

    I_up(X; T+N)  = -(1/n) sum_i log[(1/n) sum_j exp(-D_ij / (2 sigma^2))]    (pairwise KL: upper bound)
    I_low(X; T+N) = -(1/n) sum_i log[(1/n) sum_j exp(-D_ij / (8 sigma^2))]    (Bhattacharyya: lower bound)

Both lie in [0, log n] (the j = i term) and I_low <= I_up. For labels Y the Saxe counterpart is

    I(T;Y) ~= H_up(T+N) - sum_l p_l H_up(T+N | Y=l) = H(Y) + mean_i[lse_{j: y_j = y_i} - lse_j]

a *difference of two upper bounds*, hence neither a bound nor guaranteed >= 0; it is <= H(Y).
The work is O(n^2 d) in row blocks in float64, memory O(block * n). The log-sum-exps need no
max shift: all exponents are <= 0 and the self term contributes exactly 1.

Noise: ``noise_var`` is an absolute sigma^2; ``relative_noise=beta`` sets sigma^2 = beta x the layer's mean
per-unit variance, fixed per layer at its first measurement (see :mod:`._noise`); the sigma^2 used is in
``params["noise_var"]`` and the quantity names the rule, e.g. ``I(X; T+N(0,0.1*var(T)))``. Distances
come from :class:`._pairwise.RowDistances`: an (n, ...) activation is taken whole (flattened), and
when D > n through its n x n Gram matrix accumulated over column blocks, so wide layers need no
projection.

Kernels (plain functions of tensors): :func:`kde_log_sums`, :func:`kde_bounds`,
:func:`kde_layer_information`, :func:`kde_mutual_information`; :class:`KDE` holds the settings.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Dict, Optional, Tuple, Union

import torch

from ..schema.estimate import Estimate, EstimatorTraits
from ._common import Provenance, check_labels, check_samples, discrete_entropy, nats_to_bits
from ._noise import LayerNoise, NoiseSpec, noise_spec
from ._pairwise import DEFAULT_MAX_BLOCK_BYTES, RowDistances, block_rows, blocks, flat_rows
from .base import Estimator, LayerInformation

#: Noise is added at analysis time; the bounds work from pairwise distances; I(X;T) <= log2 n.
KDE_TRAITS = EstimatorTraits(adds_noise=True, pairwise=True, cap="log2_n")


def kde_params(noise_var: Optional[float] = None, bound: str = "upper", block_size: Optional[int] = None,
               max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES, relative_noise: Optional[float] = None,
               relative_to: str = "unit") -> Dict[str, Any]:
    """Validate KDE settings (one ValueError naming the fix) and return them as recorded in ``params``.

    ``noise_var`` (absolute, default 0.1) and ``relative_noise`` exclude each other."""
    spec = noise_spec(noise_var, relative_noise, relative_to)
    if bound not in ("upper", "lower"):
        raise ValueError(f"bound must be 'upper' or 'lower', got {bound!r}")
    block_rows(1, max_bytes=max_block_bytes, block_size=block_size)  # validates both
    return {**spec.params(), "bound": bound, "block_size": block_size,
            "max_block_bytes": int(max_block_bytes)}


def _distances(t: Union[torch.Tensor, RowDistances], max_block_bytes: int, name: str = "t") -> RowDistances:
    if isinstance(t, RowDistances):
        return t
    return RowDistances(check_samples(flat_rows(t), name=name), max_block_bytes=max_block_bytes)


def kde_log_sums(
    t: Union[torch.Tensor, RowDistances], y: Optional[torch.Tensor], noise_var: float, *,
    block_size: Optional[int] = None, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
) -> Dict[str, torch.Tensor]:
    """Per-row log-sum-exp of the KL (2 sigma^2) and Bhattacharyya (8 sigma^2) kernels, float64.

    ``t`` is an activation (n, ...) or its :class:`RowDistances`. Returns ``{"up", "low"}`` (n,) over
    all rows and, with label codes ``y``, ``{"up_y", "low_y"}`` over the rows of the same label.
    """
    dist = _distances(t, max_block_bytes)
    n, device = dist.n, dist.sq.device
    out = {k: torch.empty(n, dtype=torch.float64, device=device) for k in ("up", "low")}
    if y is not None:
        out.update({k: torch.empty(n, dtype=torch.float64, device=device) for k in ("up_y", "low_y")})
    rows = block_rows(n, max_bytes=max_block_bytes, copies=3, block_size=block_size)
    for sl in blocks(n, rows):
        # Every exponent is <= 0 and the self term (D_ii = 0) contributes exp(0) = 1, so the plain
        # log(sum(exp)) can neither overflow nor underflow to log(0): no max-shift pass is needed.
        a = dist.rows(sl).mul_(-1.0 / (2.0 * noise_var))  # -D/(2 sigma^2)
        k = torch.exp(a)
        out["up"][sl] = k.sum(1).log_()
        other = (y[sl].unsqueeze(1) != y.unsqueeze(0)) if y is not None else None
        if other is not None:
            out["up_y"][sl] = k.masked_fill_(other, 0.0).sum(1).log_()
        k = a.mul_(0.25).exp_()  # exp(-D/(8 sigma^2)), in place
        out["low"][sl] = k.sum(1).log_()
        if other is not None:
            out["low_y"][sl] = k.masked_fill_(other, 0.0).sum(1).log_()
    return out


def _ty(s: Dict[str, torch.Tensor], y_codes: torch.Tensor, n: int, d: int, noise: str,
        prov: Provenance, diagnostics: Dict[str, Any]) -> Estimate:
    h_y = discrete_entropy(y_codes)
    up = h_y + nats_to_bits(float((s["up_y"] - s["up"]).mean()))
    low = h_y + nats_to_bits(float((s["low_y"] - s["low"]).mean()))
    return prov.estimate(
        up, f"H_KLup(T+{noise}) - sum_y p(y) H_KLup(T+{noise}|Y=y) "
            "(difference of upper bounds, not a bound, on I(T+N;Y))",
        kind="estimate", n=n, dim=d,
        diagnostics={**diagnostics, "H_Y": h_y, "bhattacharyya_difference": low, "negative": up < 0},
    )


def _resolved(prov: Provenance, spec: NoiseSpec, dist: RowDistances, noise: Optional[LayerNoise],
              layer: Optional[str]) -> Tuple[Provenance, float, Dict[str, Any]]:
    """sigma^2 for this call, the provenance recording it, and diagnostics about the layer's scale."""
    sigma2, extra = (noise or LayerNoise(spec)).resolve(layer, dist.mean_unit_var, dist.dim)
    if not extra:
        return prov, sigma2, {}
    diag = {"mean_unit_var": dist.mean_unit_var, "distances_from": "gram" if dist.via_gram else "rows"}
    return replace(prov, params={**prov.params, **extra}), sigma2, diag


def _kde(t: Union[torch.Tensor, RowDistances], y: Optional[torch.Tensor], spec: NoiseSpec, bound: str,
         block_size: Optional[int], max_block_bytes: int, prov: Provenance,
         noise: Optional[LayerNoise] = None, layer: Optional[str] = None) -> LayerInformation:
    dist = _distances(t, max_block_bytes)
    n, d = dist.n, dist.dim
    y_codes = check_labels(y, n) if y is not None else None
    prov, sigma2, diag = _resolved(prov, spec, dist, noise, layer)
    s = kde_log_sums(dist, y_codes, sigma2, block_size=block_size, max_block_bytes=max_block_bytes)
    log_n = math.log(n)
    upper = nats_to_bits(log_n - float(s["up"].mean()))
    lower = nats_to_bits(log_n - float(s["low"].mean()))
    label = spec.label()
    value = upper if bound == "upper" else lower
    i_xt = prov.estimate(
        value, f"I(X; T+{label}) {bound} bound (pairwise "
               f"{'KL' if bound == 'upper' else 'Bhattacharyya'}), X uniform over rows",
        kind=f"{bound}_bound", cap=math.log2(n), n=n, dim=d,
        diagnostics={**diag, "lower_bound": lower, "upper_bound": upper},
    )
    if y_codes is None:
        return i_xt, None
    return i_xt, _ty(s, y_codes, n, d, label, prov, diag)


def kde_bounds(t: torch.Tensor, *, noise_var: Optional[float] = None, relative_noise: Optional[float] = None,
               relative_to: str = "unit", block_size: Optional[int] = None,
               max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES) -> Tuple[float, float]:
    """``(lower, upper)`` bounds on I(X; T+N(0, sigma^2 I)) in bits, X uniform over the rows of ``t``."""
    spec = noise_spec(noise_var, relative_noise, relative_to)
    dist = _distances(t, max_block_bytes)
    sigma2, _ = LayerNoise(spec).resolve(None, dist.mean_unit_var, dist.dim)
    s = kde_log_sums(dist, None, sigma2, block_size=block_size, max_block_bytes=max_block_bytes)
    log_n = math.log(dist.n)
    return nats_to_bits(log_n - float(s["low"].mean())), nats_to_bits(log_n - float(s["up"].mean()))


def kde_layer_information(
    t: torch.Tensor, y: Optional[torch.Tensor] = None, *, noise_var: Optional[float] = None,
    bound: str = "upper", relative_noise: Optional[float] = None, relative_to: str = "unit",
    block_size: Optional[int] = None, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
    provenance: Optional[Provenance] = None,
) -> LayerInformation:
    """Pairwise ``bound`` on I(X; T+N(0, sigma^2 I)) (the other bound in diagnostics) and the Saxe
    I(T;Y) difference of upper bounds (None without labels), in bits.

    sigma^2 is ``noise_var`` (default 0.1) or ``relative_noise`` x this ``t``'s mean per-unit variance
    (no state: the class :class:`KDE` fixes it per layer). ``t`` is (n, ...), taken whole."""
    p = kde_params(noise_var, bound, block_size, max_block_bytes, relative_noise, relative_to)
    prov = provenance or Provenance("kde", KDE_TRAITS, p)
    return _kde(t, y, noise_spec(noise_var, relative_noise, relative_to), bound, block_size, max_block_bytes,
                prov)


def kde_mutual_information(
    a: torch.Tensor, b: torch.Tensor, *, noise_var: Optional[float] = None,
    relative_noise: Optional[float] = None, relative_to: str = "unit", block_size: Optional[int] = None,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES, provenance: Optional[Provenance] = None,
) -> Estimate:
    """The Saxe I(A+N; B) difference of upper bounds for class labels ``b`` (n,), in bits."""
    p = kde_params(noise_var, "upper", block_size, max_block_bytes, relative_noise, relative_to)
    prov = provenance or Provenance("kde", KDE_TRAITS, p)
    spec = noise_spec(noise_var, relative_noise, relative_to)
    dist = _distances(a, max_block_bytes, name="a")
    b_codes = check_labels(b, dist.n, name="b")
    prov, sigma2, diag = _resolved(prov, spec, dist, None, None)
    s = kde_log_sums(dist, b_codes, sigma2, block_size=block_size, max_block_bytes=max_block_bytes)
    return _ty(s, b_codes, dist.n, dist.dim, spec.label(), prov, diag)


class KDE(Estimator):
    """Pairwise-distance bounds on I(X; T+N(0, sigma^2 I)) and the Saxe I(T;Y) counterpart (a thin
    wrapper of the kernels holding the settings and, for a relative noise, each layer's fixed scale).

    Args:
        noise_var: Absolute sigma^2 of the added Gaussian noise (default 0.1 as Saxe; the IBnet
            notebook: 1e-3). Not together with ``relative_noise``.
        bound: Which bound ``layer_information`` returns as I(X;T): ``"upper"`` (pairwise KL, Saxe's
            default) or ``"lower"`` (Bhattacharyya). The other one goes to ``diagnostics``.
        relative_noise: beta > 0: sigma^2 = beta x the layer's mean per-unit variance, fixed per layer at
            its first measurement (``state_dict`` keeps it); the quantity reads ``N(0,beta*var(T))``.
        relative_to: ``"unit"`` (mean per-unit variance, default) or ``"total"`` (summed over units).
        block_size: Rows per block (overrides ``max_block_bytes``).
        max_block_bytes: Memory budget of one block's temporaries (default 128 MiB).
    """

    name = "kde"
    whole_activations = True
    traits = KDE_TRAITS

    def __init__(self, noise_var: Optional[float] = None, bound: str = "upper",
                 block_size: Optional[int] = None, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
                 relative_noise: Optional[float] = None, relative_to: str = "unit") -> None:
        p = kde_params(noise_var, bound, block_size, max_block_bytes, relative_noise, relative_to)
        self.spec = noise_spec(noise_var, relative_noise, relative_to)
        self.noise_var, self.relative_noise = self.spec.noise_var, self.spec.beta
        self.relative_to, self.bound = self.spec.relative_to, p["bound"]
        self.block_size, self.max_block_bytes = block_size, p["max_block_bytes"]
        self._noise = LayerNoise(self.spec)

    def params(self) -> Dict[str, Any]:
        return kde_params(self.noise_var, self.bound, self.block_size, self.max_block_bytes,
                          self.relative_noise, self.relative_to)

    def state_dict(self) -> Dict[str, Any]:
        return self._noise.state_dict() if self.spec.relative else {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._noise.load_state_dict(state)

    def _blocking(self) -> Dict[str, Any]:
        return {"block_size": self.block_size, "max_block_bytes": self.max_block_bytes}

    def bounds(self, t: torch.Tensor) -> Tuple[float, float]:
        """``(lower, upper)`` bounds on I(X; T+N(0, sigma^2 I)) in bits, X uniform over rows (sigma^2
        from this ``t`` for a relative noise)."""
        return kde_bounds(t, noise_var=self.noise_var, relative_noise=self.relative_noise,
                          relative_to=self.relative_to, **self._blocking())

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        return _kde(t, y, self.spec, self.bound, self.block_size, self.max_block_bytes, self.provenance(),
                    self._noise, layer)

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        """I(A+N; B) for class labels B (the Saxe difference of upper bounds); continuous B unsupported."""
        if not discrete_b:
            raise NotImplementedError(
                "kde estimates I(A+N;B) only for class labels B (discrete_b=True); "
                "for two continuous variables use estimator='ksg'"
            )
        return kde_mutual_information(a, b, noise_var=self.noise_var, relative_noise=self.relative_noise,
                                      relative_to=self.relative_to, **self._blocking(),
                                      provenance=self.provenance())
