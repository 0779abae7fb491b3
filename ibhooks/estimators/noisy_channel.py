"""The noisy channel itself: I(X; T+N(0, sigma^2 I)) for X uniform over the n rows, by Monte Carlo.

T + N is a mixture of n Gaussians N(t_i, sigma^2 I) with equal weights (the sample-propagation
view of Goldfeld et al., ICML 2019). Its mutual information with X is

    I(X; T+N) = h(T+N) - h(T+N | X)
              = E_{i, z ~ N(t_i, sigma^2 I)} [ log n + log K(z, t_i) - log sum_j K(z, t_j) ]

with K(z, t) = exp(-|z - t|^2 / (2 sigma^2)). Each per-sample term is <= log n, so the estimate never
exceeds the cap. Samples are stratified: ``m`` draws per row, from the estimator's own seeded
generator (the same draws at every call: common random numbers make successive measurements
comparable). The Monte-Carlo standard error (stratified) gives ``ci`` = value +- 1.96 se.

With labels, I(T+N; Y) = E[ log sum_{j: y_j = y_i} K(z, t_j) - log n_{y_i} - log sum_j K(z, t_j) + log n ],
each term <= log(n / n_{y_i}), so the estimate is <= H(Y). These are the values the KDE bounds
bracket (``kde``: lower <= this <= upper, up to Monte-Carlo error).

``noise_in_network=True`` says the noise is part of the network (a noisy layer whose noise-free
output ``t`` is given, Goldfeld et al.'s sample propagation): the same numbers then describe the
network itself, and the Estimates carry ``noise_in_network=True, adds_noise=False``, so the DPI is
expected to hold along a chain.

Noise: ``noise_var`` is an absolute sigma^2; ``relative_noise=beta`` sets sigma^2 = beta x the layer's
mean per-unit variance, fixed per layer at its first measurement (see :mod:`._noise`); ``params``
records the sigma^2 used and the quantity names the rule, e.g. ``I(X; T+N(0,0.1*var(T)))``. An
(n, ...) activation is taken whole. When D > n the draws are made on an n x n factor L of the
centred Gram matrix (L L^T = G, accumulated over column blocks): the terms depend on the noise only
through eps . (t_i - t_j), whose joint law is the same for isotropic noise on L's rows as on the full
rows, so the estimate has the same distribution at O(n^2 D) cost instead of O(n m D) draws.

Kernels (plain functions of tensors): :func:`noisy_channel_log_ratios`,
:func:`noisy_channel_layer_information`, :func:`noisy_channel_mutual_information`;
:class:`NoisyChannel` holds the settings.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Dict, NamedTuple, Optional, Tuple, Union

import torch

from ..schema.estimate import Estimate, EstimatorTraits
from ._common import (Provenance, check_labels, check_samples, discrete_entropy, nats_to_bits, require_int,
                      require_seed)
from ._noise import LayerNoise, NoiseSpec, noise_spec
from ._pairwise import (DEFAULT_MAX_BLOCK_BYTES, RowDistances, block_rows, blocks, centred64, flat_rows,
                        sq_dists)
from .base import Estimator, LayerInformation

#: Noise added at analysis time (not propagated through the network); I(X;T) <= log2 n. With
#: ``noise_in_network=True`` the Estimates carry ``noise_in_network=True, adds_noise=False`` instead.
NOISY_CHANNEL_TRAITS = EstimatorTraits(adds_noise=True, cap="log2_n")


def noisy_channel_params(noise_var: Optional[float] = None, mc_samples: int = 16384,
                         samples_per_row: Optional[int] = None, seed: int = 0,
                         block_size: Optional[int] = None,
                         max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
                         noise_in_network: bool = False, relative_noise: Optional[float] = None,
                         relative_to: str = "unit") -> Dict[str, Any]:
    """Validate noisy-channel settings (one ValueError naming the fix); return them as recorded.

    ``noise_var`` (absolute, default 0.1) and ``relative_noise`` exclude each other."""
    spec = noise_spec(noise_var, relative_noise, relative_to)
    if not isinstance(noise_in_network, bool):
        raise ValueError(f"noise_in_network must be True or False, got {noise_in_network!r}")
    block_rows(1, max_bytes=max_block_bytes, block_size=block_size)
    per_row = None if samples_per_row is None else require_int("samples_per_row", samples_per_row, 1)
    p: Dict[str, Any] = {
        **spec.params(),
        "mc_samples": require_int("mc_samples", mc_samples, 1),
        "samples_per_row": per_row, "seed": require_seed(seed), "block_size": block_size,
        "max_block_bytes": int(max_block_bytes),
    }
    if noise_in_network:  # recorded only when set, so default settings keep their old fingerprint
        p["noise_in_network"] = True
    return p


#: Rows whose noise comes from one generator; the draws depend only on (seed, row), not on blocking.
_NOISE_CHUNK = 16


def _noise(sl: slice, m: int, d: int, seed: int, device: torch.device) -> torch.Tensor:
    """Standard-normal draws (rows in ``sl``, m, d), float64, from per-chunk seeded generators."""
    out = []
    for c0 in range(sl.start - sl.start % _NOISE_CHUNK, sl.stop, _NOISE_CHUNK):  # loop over chunks of rows
        gen = torch.Generator(device=device)
        gen.manual_seed(seed * 1_000_003 + c0 // _NOISE_CHUNK)
        z = torch.randn(_NOISE_CHUNK, m, d, generator=gen, device=device, dtype=torch.float64)
        lo, hi = max(sl.start, c0) - c0, min(sl.stop, c0 + _NOISE_CHUNK) - c0
        out.append(z[lo:hi])
    return torch.cat(out)


def noisy_channel_log_ratios(
    t: Union[torch.Tensor, RowDistances], y: Optional[torch.Tensor], *, noise_var: float,
    samples_per_row: int, seed: int = 0, block_size: Optional[int] = None,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
) -> Dict[str, torch.Tensor]:
    """Per-draw log-ratios (n, m) in nats: ``"x"`` for I(X;T+N), ``"y"`` for I(T+N;Y) with label codes ``y``.

    ``t`` is a validated (n, d) sample matrix or its :class:`RowDistances` (then the draws are made on
    its :meth:`~RowDistances.points`); the draws come from generators seeded by ``seed`` and the row.
    """
    c = t.points() if isinstance(t, RowDistances) else centred64(t)
    n, d = c.shape
    m = samples_per_row
    sigma = math.sqrt(noise_var)
    c_sq = (c * c).sum(1)
    log_n = math.log(n)
    if y is not None:
        log_ny = torch.log(torch.bincount(y).to(torch.float64))[y]
    rx = torch.empty(n, m, dtype=torch.float64, device=c.device)
    ry = torch.empty_like(rx) if y is not None else None
    per_block = block_rows(n, max_bytes=max_block_bytes, copies=4, block_size=block_size) // m
    centres_per_block = max(1, per_block // _NOISE_CHUNK) * _NOISE_CHUNK
    for sl in blocks(n, centres_per_block):
        b = sl.stop - sl.start
        eps = _noise(sl, m, d, seed, c.device)
        z = (c[sl].unsqueeze(1) + sigma * eps).reshape(b * m, d)
        a = sq_dists(z, c, c_sq).mul_(-1.0 / (2.0 * noise_var))  # log K(z, t_j)
        own = torch.arange(sl.start, sl.stop, device=c.device).repeat_interleave(m)
        own_term = a.gather(1, own.unsqueeze(1)).squeeze(1)
        lse = torch.logsumexp(a, dim=1)
        rx[sl] = (log_n + own_term - lse).reshape(b, m)
        if ry is not None:
            other = y[own].unsqueeze(1) != y.unsqueeze(0)
            lse_y = torch.logsumexp(a.masked_fill_(other, -math.inf), dim=1)
            ry[sl] = (lse_y - log_ny[own] + log_n - lse).reshape(b, m)
    out = {"x": rx}
    if ry is not None:
        out["y"] = ry
    return out


def _mean_se(r: torch.Tensor) -> Tuple[float, float]:
    """Mean and stratified standard error (nats) of per-draw terms (n rows, m draws each)."""
    n, m = r.shape
    mean = float(r.mean())
    if m >= 2:
        se = math.sqrt(float(r.var(dim=1, unbiased=True).sum()) / m) / n
    else:  # one draw per row: the i.i.d. formula, conservative for stratified draws
        se = float(r.std(unbiased=True)) / math.sqrt(n) if n > 1 else float("nan")
    return mean, se


def _estimate(prov: Provenance, traits: EstimatorTraits, r: torch.Tensor, quantity: str, cap: Optional[float],
              n: int, d: int, diagnostics: Dict[str, Any]) -> Estimate:
    mean, se = _mean_se(r)
    v, s = nats_to_bits(mean), nats_to_bits(se)
    diagnostics = dict(diagnostics, mc_stderr=s, samples_per_row=r.shape[1])
    return prov.estimate(v, quantity, kind="estimate", ci=(v - 1.96 * s, v + 1.96 * s), cap=cap, n=n, dim=d,
                         diagnostics=diagnostics, traits=traits)


class _Call(NamedTuple):
    prov: Provenance
    traits: EstimatorTraits
    noise: str
    diag: Dict[str, Any]
    ratios: Dict[str, torch.Tensor]
    n: int
    d: int


def _channel(t: torch.Tensor, y: Optional[torch.Tensor], *, spec: NoiseSpec, mc_samples: int,
             samples_per_row: Optional[int], seed: int, noise_in_network: bool, block_size: Optional[int],
             max_block_bytes: int, prov: Provenance, noise: Optional[LayerNoise] = None,
             layer: Optional[str] = None, name: str = "t") -> "_Call":
    """One kernel call: the per-call provenance and traits, the noise's name, diagnostics and log-ratios."""
    dist = RowDistances(check_samples(flat_rows(t), name=name), max_block_bytes=max_block_bytes)
    y_codes = check_labels(y, dist.n, name="y" if name == "t" else "b") if y is not None else None
    sigma2, extra = (noise or LayerNoise(spec)).resolve(layer, dist.mean_unit_var, dist.dim)
    diag: Dict[str, Any] = {}
    if extra:
        prov = replace(prov, params={**prov.params, **extra})
        diag = {"mean_unit_var": dist.mean_unit_var}
    if dist.via_gram:
        diag["draws_on"] = "n x n Gram factor (D > n)"
    traits = prov.traits
    if noise_in_network:
        traits = replace(traits, noise_in_network=True, adds_noise=False)
    m = samples_per_row or max(1, math.ceil(mc_samples / dist.n))
    r = noisy_channel_log_ratios(dist, y_codes, noise_var=sigma2, samples_per_row=m, seed=seed,
                                 block_size=block_size, max_block_bytes=max_block_bytes)
    where = ", noise in the network" if noise_in_network else ""
    if y_codes is not None:
        diag["H_Y" if name == "t" else "H_B"] = discrete_entropy(y_codes)
    return _Call(prov, traits, f"{spec.label(identity=True)}{where}", diag, r, dist.n, dist.dim)


def noisy_channel_layer_information(
    t: torch.Tensor, y: Optional[torch.Tensor] = None, *, noise_var: Optional[float] = None,
    mc_samples: int = 16384, samples_per_row: Optional[int] = None, seed: int = 0,
    noise_in_network: bool = False, relative_noise: Optional[float] = None, relative_to: str = "unit",
    block_size: Optional[int] = None, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
    provenance: Optional[Provenance] = None,
) -> LayerInformation:
    """Monte-Carlo I(X; T+N(0, sigma^2 I)) and I(T+N; Y) (None without labels), in bits.

    sigma^2 is ``noise_var`` (default 0.1) or ``relative_noise`` x this ``t``'s mean per-unit variance
    (no state here: :class:`NoisyChannel` fixes it per layer). Each row gets ``samples_per_row`` draws
    (default ``ceil(mc_samples / n)``) from generators seeded by ``seed``. ``noise_in_network`` marks
    the noise as part of the network (see the module). ``t`` is (n, ...), taken whole.
    """
    prov = provenance or Provenance("noisy_channel", NOISY_CHANNEL_TRAITS, noisy_channel_params(
        noise_var, mc_samples, samples_per_row, seed, block_size, max_block_bytes, noise_in_network,
        relative_noise, relative_to))
    spec = noise_spec(noise_var, relative_noise, relative_to)
    return _layer(t, y, spec=spec, mc_samples=mc_samples, samples_per_row=samples_per_row, seed=seed,
                  noise_in_network=noise_in_network, block_size=block_size, max_block_bytes=max_block_bytes,
                  prov=prov)


def _layer(t: torch.Tensor, y: Optional[torch.Tensor], **kw: Any) -> LayerInformation:
    c = _channel(t, y, **kw)
    x_diag = {k: v for k, v in c.diag.items() if k != "H_Y"}
    i_xt = _estimate(c.prov, c.traits, c.ratios["x"],
                     f"I(X; T+{c.noise}), X uniform over rows (exact mixture, Monte Carlo)",
                     math.log2(c.n), c.n, c.d, x_diag)
    if "y" not in c.ratios:
        return i_xt, None
    i_ty = _estimate(c.prov, c.traits, c.ratios["y"], f"I(T+{c.noise}; Y) (exact mixture, Monte Carlo)", None,
                     c.n, c.d, c.diag)
    return i_xt, i_ty


def noisy_channel_mutual_information(
    a: torch.Tensor, b: torch.Tensor, *, noise_var: Optional[float] = None, mc_samples: int = 16384,
    samples_per_row: Optional[int] = None, seed: int = 0, noise_in_network: bool = False,
    relative_noise: Optional[float] = None, relative_to: str = "unit", block_size: Optional[int] = None,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES, provenance: Optional[Provenance] = None,
) -> Estimate:
    """Monte-Carlo I(A+N(0, sigma^2 I); B) in bits for class labels ``b`` (n,)."""
    prov = provenance or Provenance("noisy_channel", NOISY_CHANNEL_TRAITS, noisy_channel_params(
        noise_var, mc_samples, samples_per_row, seed, block_size, max_block_bytes, noise_in_network,
        relative_noise, relative_to))
    c = _channel(
        a, b, spec=noise_spec(noise_var, relative_noise, relative_to), mc_samples=mc_samples,
        samples_per_row=samples_per_row, seed=seed, noise_in_network=noise_in_network, block_size=block_size,
        max_block_bytes=max_block_bytes, prov=prov, name="a")
    return _estimate(c.prov, c.traits, c.ratios["y"], f"I(A+{c.noise}; B) (exact mixture, Monte Carlo)", None,
                     c.n, c.d, c.diag)


class NoisyChannel(Estimator):
    """Monte-Carlo value of I(X; T+N(0, sigma^2 I)) and I(T+N; Y) (exact mixture entropy); a thin
    wrapper of the kernels holding the settings and, for a relative noise, each layer's fixed scale.

    Args:
        noise_var: Absolute sigma^2 of the added noise (default 0.1 as in Saxe's KDE). Not together
            with ``relative_noise``.
        mc_samples: Target total number of Monte-Carlo draws; each row gets
            ``max(1, ceil(mc_samples / n))`` (ignored if ``samples_per_row`` is set).
        samples_per_row: Draws per row (stratified Monte Carlo).
        seed: Seed of the estimator's own generator (the global RNG is never touched).
        block_size: Draws per block (overrides ``max_block_bytes``); blocks hold a multiple of 16 rows.
        max_block_bytes: Memory budget of one block's temporaries (default 128 MiB).
        noise_in_network: The noise is part of the network (``t`` is a noisy layer's noise-free
            output): Estimates carry ``noise_in_network=True, adds_noise=False``.
        relative_noise: beta > 0: sigma^2 = beta x the layer's mean per-unit variance, fixed per layer at
            its first measurement (``state_dict`` keeps it); the quantity reads ``N(0,beta*var(T))``.
        relative_to: ``"unit"`` (mean per-unit variance, default) or ``"total"`` (summed over units).
    """

    name = "noisy_channel"
    whole_activations = True
    traits = NOISY_CHANNEL_TRAITS

    def __init__(self, noise_var: Optional[float] = None, mc_samples: int = 16384,
                 samples_per_row: Optional[int] = None, seed: int = 0, block_size: Optional[int] = None,
                 max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES, noise_in_network: bool = False,
                 relative_noise: Optional[float] = None, relative_to: str = "unit") -> None:
        p = noisy_channel_params(noise_var, mc_samples, samples_per_row, seed, block_size, max_block_bytes,
                                 noise_in_network, relative_noise, relative_to)
        self.spec = noise_spec(noise_var, relative_noise, relative_to)
        self.noise_var, self.relative_noise, self.relative_to = (self.spec.noise_var, self.spec.beta,
                                                                 self.spec.relative_to)
        self.mc_samples, self.samples_per_row = p["mc_samples"], p["samples_per_row"]
        self.seed, self.block_size, self.max_block_bytes = p["seed"], block_size, p["max_block_bytes"]
        self.noise_in_network = noise_in_network
        self._noise = LayerNoise(self.spec)

    def params(self) -> Dict[str, Any]:
        return noisy_channel_params(self.noise_var, self.mc_samples, self.samples_per_row, self.seed,
                                    self.block_size, self.max_block_bytes, self.noise_in_network,
                                    self.relative_noise, self.relative_to)

    def state_dict(self) -> Dict[str, Any]:
        return self._noise.state_dict() if self.spec.relative else {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._noise.load_state_dict(state)

    def _settings(self) -> Dict[str, Any]:
        return {"spec": self.spec, "mc_samples": self.mc_samples, "samples_per_row": self.samples_per_row,
                "seed": self.seed, "noise_in_network": self.noise_in_network, "block_size": self.block_size,
                "max_block_bytes": self.max_block_bytes, "prov": self.provenance()}

    def log_ratios(self, t: torch.Tensor, y: Optional[torch.Tensor], *,
                   layer: Optional[str] = None) -> Dict[str, torch.Tensor]:
        """Per-draw log-ratios (n, m) in nats: ``"x"`` for I(X;T+N), ``"y"`` for I(T+N;Y) with labels."""
        return _channel(t, y, **self._settings(), noise=self._noise, layer=layer).ratios

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        return _layer(t, y, **self._settings(), noise=self._noise, layer=layer)

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        """I(A+N; B) for class labels B; continuous B is not supported (use 'ksg')."""
        if not discrete_b:
            raise NotImplementedError(
                "noisy_channel computes I(A+N;B) only for class labels B (discrete_b=True); "
                "for two continuous variables use estimator='ksg'"
            )
        return noisy_channel_mutual_information(
            a, b, noise_var=self.noise_var, mc_samples=self.mc_samples, samples_per_row=self.samples_per_row,
            seed=self.seed, noise_in_network=self.noise_in_network, relative_noise=self.relative_noise,
            relative_to=self.relative_to, block_size=self.block_size, max_block_bytes=self.max_block_bytes,
            provenance=self.provenance())
