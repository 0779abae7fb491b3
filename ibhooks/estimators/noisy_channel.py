"""The noisy channel itself: I(X; T+N(0, sigma^2 I)) for X uniform over the n rows, by Monte Carlo.

T + N is a mixture of n Gaussians N(t_i, sigma^2 I) with equal weights (the sample-propagation
view of Goldfeld et al., ICML 2019). Its mutual information with X is

    I(X; T+N) = h(T+N) - h(T+N | X) = E_{i, z ~ N(t_i, sigma^2 I)} [ log n + log K(z, t_i) - log sum_j K(z, t_j) ]

with K(z, t) = exp(-|z - t|^2 / (2 sigma^2)). Each per-sample term is <= log n, so the estimate never
exceeds the cap. Samples are stratified: ``m`` draws per row, from the estimator's own seeded
generator (the same draws at every call: common random numbers make successive measurements
comparable). The Monte-Carlo standard error (stratified) gives ``ci`` = value +- 1.96 se.

With labels, I(T+N; Y) = E[ log sum_{j: y_j = y_i} K(z, t_j) - log n_{y_i} - log sum_j K(z, t_j) + log n ],
each term <= log(n / n_{y_i}), so the estimate is <= H(Y). These are the values the KDE bounds
bracket (``kde``: lower <= this <= upper, up to Monte-Carlo error).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional

import torch

from ..estimate import Estimate, make_estimate
from ._common import check_labels, check_samples, discrete_entropy, nats_to_bits
from ._pairwise import DEFAULT_MAX_BLOCK_BYTES, block_rows, blocks, centred64, sq_dists
from .base import Estimator, LayerInformation


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


class NoisyChannel(Estimator):
    """Monte-Carlo value of I(X; T+N(0, sigma^2 I)) and I(T+N; Y) (exact mixture entropy).

    Args:
        noise_var: sigma^2 of the added noise (0.1 as in Saxe's KDE).
        mc_samples: Target total number of Monte-Carlo draws; each row gets
            ``max(1, ceil(mc_samples / n))`` (ignored if ``samples_per_row`` is set).
        samples_per_row: Draws per row (stratified Monte Carlo).
        seed: Seed of the estimator's own generator (the global RNG is never touched).
        block_size: Draws per block (overrides ``max_block_bytes``); blocks hold a multiple of 16 rows.
        max_block_bytes: Memory budget of one block's temporaries (default 128 MiB).
    """

    name = "noisy_channel"

    def __init__(self, noise_var: float = 0.1, mc_samples: int = 16384, samples_per_row: Optional[int] = None,
                 seed: int = 0, block_size: Optional[int] = None,
                 max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES) -> None:
        if not (isinstance(noise_var, (int, float)) and math.isfinite(noise_var) and noise_var > 0):
            raise ValueError(f"noise_var must be a finite number > 0, got {noise_var!r}")
        if int(mc_samples) < 1:
            raise ValueError(f"mc_samples must be >= 1, got {mc_samples}")
        if samples_per_row is not None and int(samples_per_row) < 1:
            raise ValueError(f"samples_per_row must be >= 1, got {samples_per_row}")
        block_rows(1, max_bytes=max_block_bytes, block_size=block_size)
        self.noise_var = float(noise_var)
        self.mc_samples = int(mc_samples)
        self.samples_per_row = None if samples_per_row is None else int(samples_per_row)
        self.seed = int(seed)
        self.block_size = block_size
        self.max_block_bytes = int(max_block_bytes)

    def params(self) -> Dict[str, Any]:
        return {"noise_var": self.noise_var, "mc_samples": self.mc_samples,
                "samples_per_row": self.samples_per_row, "seed": self.seed,
                "block_size": self.block_size, "max_block_bytes": self.max_block_bytes}

    def _per_row(self, n: int) -> int:
        return self.samples_per_row or max(1, math.ceil(self.mc_samples / n))

    def log_ratios(self, t: torch.Tensor, y: Optional[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Per-draw log-ratios (n, m) in nats: ``"x"`` for I(X;T+N), ``"y"`` for I(T+N;Y) with labels."""
        c = centred64(t)
        n, d = c.shape
        m = self._per_row(n)
        sigma = math.sqrt(self.noise_var)
        c_sq = (c * c).sum(1)
        log_n = math.log(n)
        if y is not None:
            log_ny = torch.log(torch.bincount(y).to(torch.float64))[y]
        rx = torch.empty(n, m, dtype=torch.float64, device=c.device)
        ry = torch.empty_like(rx) if y is not None else None
        per_block = block_rows(n, max_bytes=self.max_block_bytes, copies=4, block_size=self.block_size) // m
        centres_per_block = max(1, per_block // _NOISE_CHUNK) * _NOISE_CHUNK
        for sl in blocks(n, centres_per_block):
            b = sl.stop - sl.start
            eps = _noise(sl, m, d, self.seed, c.device)
            z = (c[sl].unsqueeze(1) + sigma * eps).reshape(b * m, d)
            a = sq_dists(z, c, c_sq).mul_(-1.0 / (2.0 * self.noise_var))  # log K(z, t_j)
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

    @staticmethod
    def _mean_se(r: torch.Tensor) -> tuple:
        """Mean and stratified standard error (nats) of per-draw terms (n rows, m draws each)."""
        n, m = r.shape
        mean = float(r.mean())
        if m >= 2:
            se = math.sqrt(float(r.var(dim=1, unbiased=True).sum()) / m) / n
        else:  # one draw per row: the i.i.d. formula, conservative for stratified draws
            se = float(r.std(unbiased=True)) / math.sqrt(n) if n > 1 else float("nan")
        return mean, se

    def _estimate(self, r: torch.Tensor, quantity: str, cap: Optional[float], n: int, d: int,
                  diagnostics: Dict[str, Any]) -> Estimate:
        mean, se = self._mean_se(r)
        v, s = nats_to_bits(mean), nats_to_bits(se)
        diagnostics = dict(diagnostics, mc_stderr=s, samples_per_row=r.shape[1])
        return make_estimate(v, quantity, kind="estimate", estimator=self.name, ci=(v - 1.96 * s, v + 1.96 * s),
                             cap=cap, n=n, dim=d, params=self.params(), diagnostics=diagnostics)

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        t = check_samples(t)
        n, d = t.shape
        y_codes = check_labels(y, n) if y is not None else None
        r = self.log_ratios(t, y_codes)
        noise = f"N(0,{self.noise_var:g}I)"
        i_xt = self._estimate(r["x"], f"I(X; T+{noise}), X uniform over rows (exact mixture, Monte Carlo)",
                              math.log2(n), n, d, {})
        if y_codes is None:
            return i_xt, None
        i_ty = self._estimate(r["y"], f"I(T+{noise}; Y) (exact mixture, Monte Carlo)", None, n, d,
                              {"H_Y": discrete_entropy(y_codes)})
        return i_xt, i_ty

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        """I(A+N; B) for class labels B; continuous B is not supported (use 'ksg')."""
        if not discrete_b:
            raise NotImplementedError(
                "noisy_channel computes I(A+N;B) only for class labels B (discrete_b=True); "
                "for two continuous variables use estimator='ksg'"
            )
        a = check_samples(a, name="a")
        b_codes = check_labels(b, a.shape[0], name="b")
        r = self.log_ratios(a, b_codes)
        return self._estimate(r["y"], f"I(A+N(0,{self.noise_var:g}I); B) (exact mixture, Monte Carlo)",
                              None, a.shape[0], a.shape[1], {"H_B": discrete_entropy(b_codes)})
