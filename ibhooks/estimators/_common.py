"""Small utilities shared by the estimators: input and parameter checks, units, discrete entropies,
and :class:`Provenance` (what a kernel stamps on each Estimate it makes)."""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Tuple

import torch

from ..labels import as_labels

from ..schema.estimate import Estimate, EstimatorTraits, make_estimate

LN2 = math.log(2.0)

#: Seeds must fit every generator the estimators use (``torch.Generator.manual_seed`` takes 64 bits;
#: some kernels derive further seeds from it).
MAX_SEED = 2 ** 32


@dataclass(frozen=True)
class Provenance:
    """Who made an Estimate: the registry name, the settings and the traits a kernel stamps on it.

    Kernels build a default one from their own arguments; an :class:`~ibhooks.estimators.base.Estimator`
    passes its own (``Estimator.provenance()``), so a subclass registered under another name or with
    other traits is recorded as what it is.
    """

    estimator: str
    traits: EstimatorTraits
    params: Mapping[str, Any] = field(default_factory=dict)

    def estimate(self, value: float, quantity: str, *, traits: Optional[EstimatorTraits] = None,
                 **kwargs: Any) -> Estimate:
        """:func:`~ibhooks.schema.estimate.make_estimate` with this name, settings and traits
        (``traits`` overrides them for a per-call variant)."""
        return make_estimate(value, quantity, estimator=self.estimator, params=dict(self.params),
                             traits=self.traits if traits is None else traits, **kwargs)


def require_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, or one ValueError naming the parameter and what it must be."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def require_number(name: str, value: Any, minimum: float = 0.0, *, strict: bool = True) -> float:
    """``value`` as a finite float above ``minimum`` (``>=`` when not ``strict``), or one ValueError."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > minimum if strict else value >= minimum)
    if not ok:
        relation = ">" if strict else ">="
        raise ValueError(f"{name} must be a finite number {relation} {minimum:g}, got {value!r}")
    return float(value)


def require_seed(seed: Any) -> int:
    """A seed for the estimator's own ``torch.Generator``: an integer in [0, 2**32)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return int(seed)


def generator(seed: int, device: torch.device) -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded with ``seed``: estimators never use the global RNG."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def nats_to_bits(x: float) -> float:
    return float(x) / LN2


def check_samples(t: torch.Tensor, *, name: str = "t", min_rows: int = 2) -> torch.Tensor:
    """Validate a sample matrix and return it as a 2-D float tensor (n, d) on its own device.

    1-D input is taken as (n, 1). Raises ``ValueError`` naming the problem and the fix.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (n, d), got {type(t).__name__}")
    if t.dim() == 1:
        t = t.unsqueeze(1)
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (n, d); got {tuple(t.shape)}. Flatten or reduce it first.")
    if t.shape[0] < min_rows:
        raise ValueError(
            f"{name} has {t.shape[0]} samples but this estimator needs at least {min_rows}; "
            "use more probe samples (or smaller k)."
        )
    if not t.is_floating_point():
        t = t.float()
    # One reduction first: a NaN/Inf anywhere makes the sum non-finite; only then (or on overflow) look
    # closer.
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(
            f"{name} contains {bad} NaN/Inf values; estimators need finite activations "
            "(check for a diverged layer, or filter those samples out)."
        )
    return t


def check_labels(y: torch.Tensor, n: int, *, name: str = "y") -> torch.Tensor:
    """Validate class labels (:func:`ibhooks.labels.as_labels`, the one label validator) and return them
    as int64 codes 0..K-1 (shape (n,), same device)."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer class labels, got {type(y).__name__}")
    y = as_labels(y, n, what=name)
    return torch.unique(y, return_inverse=True)[1]


def entropy_from_counts(counts: torch.Tensor) -> float:
    """Plug-in Shannon entropy in bits of a histogram of counts (float64 accumulation)."""
    c = counts[counts > 0].to(torch.float64)
    p = c / c.sum()
    return float(-(p * torch.log2(p)).sum())


def discrete_entropy(codes: torch.Tensor) -> float:
    """Plug-in entropy in bits of integer codes (n,)."""
    return entropy_from_counts(torch.bincount(codes))


def row_codes(idx: torch.Tensor, radix: Optional[int] = None) -> Tuple[torch.Tensor, int]:
    """Map each row of an integer matrix (n, d) to a code 0..U-1 identifying its distinct value.

    Rows are packed into one int64 per row (mixed radix) when ``radix**d`` fits, so the distinct
    rows come from a 1-D ``torch.unique`` on the device; otherwise ``torch.unique(dim=0)``.
    Returns ``(codes, number_of_distinct_rows)``.
    """
    n, d = idx.shape
    if radix is None:
        radix = int(idx.max()) + 1 if idx.numel() else 1
    radix = max(int(radix), 1)
    if d == 0:
        return torch.zeros(n, dtype=torch.long, device=idx.device), 1
    if d * math.log2(max(radix, 2)) < 62:
        weights = radix ** torch.arange(d - 1, -1, -1, device=idx.device, dtype=torch.int64)
        packed = (idx.to(torch.int64) * weights).sum(dim=1)
        uniq, codes = torch.unique(packed, return_inverse=True)
    else:
        uniq, codes = torch.unique(idx, dim=0, return_inverse=True)
    return codes, int(uniq.shape[0])


def discrete_mi(codes_a: torch.Tensor, codes_b: torch.Tensor) -> Tuple[float, float, float]:
    """I(A;B) = H(A) + H(B) - H(A,B) in bits for paired integer codes. Returns (I, H(A), H(B))."""
    h_a = discrete_entropy(codes_a)
    h_b = discrete_entropy(codes_b)
    kb = int(codes_b.max()) + 1
    h_ab = discrete_entropy(codes_a.to(torch.int64) * kb + codes_b.to(torch.int64))
    mi = max(h_a + h_b - h_ab, 0.0)  # exact up to float rounding (~1e-12)
    return mi, h_a, h_b
