"""Gaussian-copula mutual information (GCMI; Ince et al. 2017, Human Brain Mapping 38:1541).

Each column is replaced by its normal score Phi^-1(rank / (n + 1)) (ties get their average rank, so
equal values, such as the zeros of a ReLU, keep one score), then the Gaussian formula of
:mod:`.gaussian` applies (bias correction and shrinkage as there). MI is invariant to monotone maps of
each coordinate, so GCMI is exact for any monotone transform of each coordinate of a Gaussian.

For one-dimensional A and B it is a lower bound on I(A;B) (up to estimation error): the marginals are
exactly standard normal and the Gaussian copula has the least MI for its normal-score correlation
(``kind="lower_bound"``). For multivariate A or B that argument does not hold: an approximation
(``kind="estimate"``). Against class labels it is the class-conditional Gaussian model on the normal
scores of T (Ince's ``gcmi_model_cd``): an estimate.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from .gaussian import GaussianMI


def copula_normal_scores(x: torch.Tensor) -> torch.Tensor:
    """Column-wise normal scores Phi^-1(rank / (n + 1)) of ``x`` (n, d), float64; ties get average ranks."""
    x = x.to(torch.float64)
    n, d = x.shape
    vals, order = torch.sort(x, dim=0, stable=True)
    new_run = torch.ones_like(vals, dtype=torch.bool)
    new_run[1:] = vals[1:] != vals[:-1]
    run = torch.cumsum(new_run.to(torch.int64), dim=0) - 1  # run index within each column
    run = run + torch.arange(d, device=x.device) * n  # unique across columns
    pos = torch.arange(1, n + 1, dtype=torch.float64, device=x.device)[:, None].expand(n, d).reshape(-1)
    total = torch.zeros(n * d, dtype=torch.float64, device=x.device).index_add_(0, run.reshape(-1), pos)
    count = torch.zeros(n * d, dtype=torch.float64, device=x.device).index_add_(
        0, run.reshape(-1), torch.ones_like(pos)
    )
    avg = (total / count.clamp_min(1.0))[run]  # average rank of each sorted entry
    ranks = torch.empty_like(x).scatter_(0, order, avg)
    return torch.special.ndtri(ranks / (n + 1.0))


class GaussianCopulaMI(GaussianMI):
    """Gaussian-copula MI: normal scores per column, then the Gaussian formula (see :class:`GaussianMI`)."""

    name = "gcmi"
    _model: ClassVar[str] = "Gaussian copula"

    def _transform(self, x: torch.Tensor) -> torch.Tensor:
        return copula_normal_scores(x)

    def _kind(self, da: int, db: int) -> str:
        return "lower_bound" if da == 1 and db == 1 else "estimate"
