"""k-nearest-neighbour estimators: KSG (Kraskov, Stoegbauer & Grassberger 2004), Ross (2014) and
Kozachenko-Leonenko (KL) entropy. All distances are max-norm (Chebyshev). Neighbour search
(``neighbors``): ``"kdtree"`` is the CPU path of :mod:`._knn_tree` (the compiled k-d tree of
:mod:`._knn_compiled` where it was built at install time, else scipy's cKDTree; O(n log n) at low
dimension, with exact sorted searches for 1-D data, :mod:`._knn_sorted`); ``"brute"`` the blocked brute
force on the input's device (O(n^2 d) work, O(block * n) memory, no Python loop over samples: the
accelerator path); ``"auto"`` (default) takes the tree on CPU when the kernel or scipy is there and the
searched space has at most ``TREE_MAX_DIM`` dimensions, else brute force. Both give identical values
(see ``_knn_tree`` for the one tie case of KSG-2).

    KSG-1:  I = psi(k) + psi(n) - < psi(n_x + 1) + psi(n_y + 1) >,  n_x = #{j != i: |x_i - x_j| < eps_i}
    KSG-2:  I = psi(k) - 1/k + psi(n) - < psi(n_x) + psi(n_y) >,    n_x = #{j != i: |x_i - x_j| <= eps_x,i}
    Ross:   I(T;Y) = psi(n) - < psi(N_{y_i}) > + < psi(k_i) > - < psi(m_i) >
            (d_i = k-th neighbour distance among same-label rows; m_i = #{j: |t_i - t_j| < d_i} incl. i,
            the scikit-learn counting; k_i = min(k, N_{y_i} - 1); rows alone in their class are dropped)
    KL:     h(T) = psi(n) - psi(k) + d log 2 + (d/n) sum_i log r_i     (r_i: k-th neighbour max-norm distance)

Ties: duplicate rows make distances 0 and the counts ambiguous. Before estimating, every column
gets a deterministic jitter of ``jitter * max(1, mean|column|)`` standard-normal noise from the
estimator's own seeded generator (the scikit-learn recipe; 1e-10 in float64 by default). This breaks
ties without changing continuous data, but it does not make KSG right for genuinely discrete or
saturated variables: their MI with anything continuous is then driven by the jitter scale.
``diagnostics["fraction_duplicate_rows"]`` reports how much that applies.

Biases: KSG underestimates high MI (it needs n ~ exp(I) samples, Gao et al. 2015); the estimate
can never exceed ``cap`` = psi(n) - psi(k+1) (KSG-1) or psi(n) - psi(k) - 1/k (KSG-2), and it can
be slightly negative near independence (reported, not clamped). ``ci`` = value +- 1.96 sd/sqrt(n)
of the per-sample terms, which ignores their dependence and the bias: a rough guide only.

``layer_information``: X uniform over the rows of a continuous T makes I(X;T) = H(T) infinite for
distinct rows, so kNN cannot estimate it. The first element returned is the KL *differential*
entropy h(T) in bits (Saxe et al. 2018, Fig. 12: "I(X;T) up to a constant" under small homoscedastic
noise); its quantity says so, it is not a mutual information, has no cap and may be negative
(``diagnostics["not_mutual_information"] = True``). The second element, I(T;Y), is the proper Ross
estimate. That first Estimate carries ``traits.xt_is_entropy = True``: no MI bound or DPI applies to it.

Kernels (plain functions of tensors): :func:`kl_entropy`, :func:`ksg_mi`, :func:`ross_mi`,
:func:`knn_layer_information`; :class:`KSG` and :class:`Ross` hold the settings.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Dict, Optional, Tuple

import torch

from ..schema.estimate import Estimate, EstimatorTraits
from ._common import (LN2, Provenance, check_labels, check_samples, discrete_entropy, generator, require_int,
                      require_number, require_seed)
from . import _knn_compiled, _knn_tree
from ._pairwise import DEFAULT_MAX_BLOCK_BYTES, block_rows, blocks, max_dists
from .base import Estimator, LayerInformation

#: kNN estimates are neither exact nor capped in general; per call, the h(T) slot of
#: ``layer_information`` adds ``xt_is_entropy=True`` and KSG's I(A;B) the sample-size cap ``"log2_n"``.
KNN_TRAITS = EstimatorTraits()

#: ``neighbors="auto"`` uses the KD-tree on CPU up to this many dimensions of the searched space
#: (KSG: the joint space of A and B). Above it a KD-tree prunes little and the blocked brute force
#: is as fast (measured in benchmarks/estimators.py).
TREE_MAX_DIM = 10

NEIGHBOR_SEARCHES = ("auto", "kdtree", "brute")


def knn_params(k: int = 3, algorithm: int = 1, standardize: bool = True, jitter: float = 1e-10, seed: int = 0,
               block_size: Optional[int] = None,
               max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES, neighbors: str = "auto") -> Dict[str, Any]:
    """Validate kNN settings (one ValueError naming the fix) and return them as recorded in ``params``."""
    if algorithm not in (1, 2) or isinstance(algorithm, bool):
        raise ValueError(f"algorithm must be 1 or 2 (KSG's two estimators), got {algorithm!r}")
    if neighbors not in NEIGHBOR_SEARCHES:
        raise ValueError(f"neighbors must be one of {NEIGHBOR_SEARCHES}, got {neighbors!r}")
    k = require_int("k", k, 1)
    if neighbors == "kdtree" and not _knn_tree.tree_available(k):
        raise ValueError("neighbors='kdtree' needs scipy (pip install 'ibhooks[stats]') or the compiled "
                         f"kernel (built at install with a C compiler; k <= {_knn_compiled.MAX_K}); "
                         "or pass neighbors='auto' / 'brute'")
    block_rows(1, max_bytes=max_block_bytes, block_size=block_size)
    return {"k": k, "algorithm": int(algorithm), "standardize": bool(standardize),
            "jitter": require_number("jitter", jitter, strict=False), "seed": require_seed(seed),
            "block_size": block_size, "max_block_bytes": int(max_block_bytes), "neighbors": neighbors}


def use_tree(neighbors: str, device: torch.device, dim: int, k: int) -> bool:
    """Whether a search for ``k`` neighbours over ``dim`` dimensions on ``device`` takes the KD-tree path."""
    if neighbors == "brute" or not _knn_tree.tree_available(k):
        return False
    return neighbors == "kdtree" or (device.type == "cpu" and dim <= TREE_MAX_DIM)


#: Odd 64-bit multipliers (as signed int64) that hash a row's float64 bit patterns into one int64.
_HASH = 0x9E3779B97F4A7C15 - 2 ** 64


def _distinct_rows(x: torch.Tensor) -> int:
    """Number of distinct rows of a float64 matrix: ``unique`` of one int64 per row (the bit pattern
    for one column, a wrapping multiply-add hash of the bit patterns otherwise; a collision, chance
    ~n^2/2^64, can only undercount). ``torch.unique(dim=0)`` took 40 ms at n = 2,000."""
    bits = (x + 0.0).contiguous().view(torch.int64)  # + 0.0 maps -0.0 to 0.0
    if x.shape[1] > 1:
        w = (torch.arange(x.shape[1], device=x.device, dtype=torch.int64) * 2 + 1) * _HASH
        bits = ((bits ^ (bits >> 29)) * w).sum(1)
    return int(torch.unique(bits.flatten()).shape[0])


def _prepare(t: torch.Tensor, jitter: float, generator: Optional[torch.Generator],
             standardize: bool) -> Tuple[torch.Tensor, Dict[str, Any]]:
    """float64 copy, optionally scaled to unit std per column, plus the deterministic tie-breaking jitter."""
    x = t.to(torch.float64)
    n_distinct = _distinct_rows(x)
    if standardize:
        sd = x.std(0, keepdim=True)
        x = (x - x.mean(0, keepdim=True)) / torch.where(sd > 0, sd, torch.ones_like(sd))
    if jitter > 0:
        scale = x.abs().mean(0, keepdim=True).clamp_min(1.0) * jitter
        x = x + scale * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x, {"distinct_rows": n_distinct, "fraction_duplicate_rows": 1.0 - n_distinct / x.shape[0]}


def _no_self(d: torch.Tensor, sl: slice) -> torch.Tensor:
    """Set the self-distance entries of a (block, n) distance matrix to +inf, in place."""
    r = torch.arange(sl.stop - sl.start, device=d.device)
    d[r, r + sl.start] = math.inf
    return d


def _ksg_terms(x: torch.Tensor, y: torch.Tensor, k: int, algorithm: int, rows: int, tree: bool = False
               ) -> torch.Tensor:
    """Per-sample psi(n_x [+1]) + psi(n_y [+1]) terms of KSG (float64, nats)."""
    n = x.shape[0]
    if tree:
        c = _knn_tree.ksg_counts(x, y, k, algorithm)
        nx, ny = c["nx"].to(x.device).double(), c["ny"].to(x.device).double()
        return torch.digamma(nx + 1) + torch.digamma(ny + 1) if algorithm == 1 \
            else torch.digamma(nx) + torch.digamma(ny)
    out = torch.empty(n, dtype=torch.float64, device=x.device)
    for sl in blocks(n, rows):
        dx = _no_self(max_dists(x[sl], x), sl)
        dy = _no_self(max_dists(y[sl], y), sl)
        dz = torch.maximum(dx, dy)
        if algorithm == 1:
            eps = dz.topk(k, dim=1, largest=False).values[:, -1:]
            nx, ny = (dx < eps).sum(1), (dy < eps).sum(1)
            out[sl] = torch.digamma((nx + 1).double()) + torch.digamma((ny + 1).double())
        else:
            ind = dz.topk(k, dim=1, largest=False).indices
            ex = dx.gather(1, ind).amax(1, keepdim=True)
            ey = dy.gather(1, ind).amax(1, keepdim=True)
            nx, ny = (dx <= ex).sum(1), (dy <= ey).sum(1)
            out[sl] = torch.digamma(nx.double()) + torch.digamma(ny.double())
    return out


def _kth_distance(x: torch.Tensor, k: int, rows: int, tree: bool = False) -> torch.Tensor:
    """Max-norm distance of each row to its k-th nearest other row (float64)."""
    n = x.shape[0]
    if tree:
        return _knn_tree.kth_distance(x, k).to(x.device)
    out = torch.empty(n, dtype=torch.float64, device=x.device)
    for sl in blocks(n, rows):
        out[sl] = _no_self(max_dists(x[sl], x), sl).topk(k, dim=1, largest=False).values[:, -1]
    return out


def _ross_terms(x: torch.Tensor, y: torch.Tensor, k: int, rows: int, tree: bool = False
                ) -> Dict[str, torch.Tensor]:
    """Per-row Ross quantities: k_i, N_{y_i}, m_i and the keep mask (rows whose class has >= 2 rows)."""
    n = x.shape[0]
    counts = torch.bincount(y)[y]
    k_i = torch.clamp(counts - 1, max=k)
    k_max = int(k_i.max())
    if k_max < 1:
        raise ValueError("Ross needs at least one class with 2 or more samples")
    if tree:
        m = _knn_tree.ross_counts(x, y, k_i).to(x.device)
        return {"k": k_i, "N": counts, "m": m, "keep": counts > 1}
    m = torch.zeros(n, dtype=torch.int64, device=x.device)
    for sl in blocks(n, rows):
        d = _no_self(max_dists(x[sl], x), sl)
        same = d.masked_fill(y[sl].unsqueeze(1) != y.unsqueeze(0), math.inf)
        kth = same.topk(k_max, dim=1, largest=False).values
        d_i = kth.gather(1, (k_i[sl].clamp_min(1) - 1).unsqueeze(1))
        m[sl] = (d < d_i).sum(1) + 1
    return {"k": k_i, "N": counts, "m": m, "keep": counts > 1}


def _check(t: torch.Tensor, name: str, k: int) -> torch.Tensor:
    t = check_samples(t, name=name, min_rows=2)
    if t.shape[0] <= k:
        raise ValueError(f"{name} has {t.shape[0]} samples but k={k} needs at least k+1; "
                         "use more samples or a smaller k")
    return t


def _search(tree: bool, k: int) -> Dict[str, str]:
    """The search's diagnostics: ``neighbor_search`` and, on the tree path, the engine that ran it."""
    if not tree:
        return {"neighbor_search": "brute"}
    return {"neighbor_search": "kdtree", "tree_engine": "compiled" if _knn_tree.uses_kernel(k) else "scipy"}


def _rows(n: int, copies: int, block_size: Optional[int], max_block_bytes: int) -> int:
    return block_rows(n, max_bytes=max_block_bytes, copies=copies, block_size=block_size)


def kl_entropy(
    t: torch.Tensor, k: int = 3, *, jitter: float = 1e-10, seed: int = 0, block_size: Optional[int] = None,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES, neighbors: str = "auto",
    provenance: Optional[Provenance] = None,
) -> Estimate:
    """Kozachenko-Leonenko differential entropy h(T) of the rows of ``t`` in bits (max-norm, no
    standardisation). Not a mutual information: its traits say ``xt_is_entropy``."""
    prov = provenance or Provenance("ksg", KNN_TRAITS, knn_params(k, 1, True, jitter, seed, block_size,
                                                                   max_block_bytes, neighbors))
    t = _check(t, "t", k)
    n, d = t.shape
    x, diag = _prepare(t, jitter, generator(seed, t.device), standardize=False)
    tree = use_tree(neighbors, x.device, d, k)
    r = _kth_distance(x, k, _rows(n, 3, block_size, max_block_bytes), tree)
    terms = d * torch.log(r)
    nats = float(torch.digamma(torch.tensor(float(n))) - torch.digamma(torch.tensor(float(k)))) \
        + d * math.log(2.0) + float(terms.mean())
    se = float(terms.std()) / math.sqrt(n) / LN2
    v = nats / LN2
    diag.update(not_mutual_information=True, ci_method="value +- 1.96 sd/sqrt(n) of per-row terms",
                **_search(tree, k))
    return prov.estimate(
        v, f"h_KL(T) differential entropy, bits (Kozachenko-Leonenko, k={k}, max-norm); "
           "not I(X;T): equals it only up to a constant under small homoscedastic noise",
        kind="estimate", ci=(v - 1.96 * se, v + 1.96 * se), n=n, dim=d, diagnostics=diag,
        traits=replace(prov.traits, xt_is_entropy=True),
    )


def ross_mi(
    t: torch.Tensor, y: torch.Tensor, *, k: int = 3, standardize: bool = True, jitter: float = 1e-10,
    seed: int = 0, block_size: Optional[int] = None, max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES,
    neighbors: str = "auto", quantity: Optional[str] = None, provenance: Optional[Provenance] = None,
) -> Estimate:
    """Ross (2014) kNN estimate of I(T;Y) in bits for continuous ``t`` (n, d) and class labels ``y`` (n,)."""
    prov = provenance or Provenance("ross", KNN_TRAITS,
                                    knn_params(k, 1, standardize, jitter, seed, block_size, max_block_bytes,
                                               neighbors))
    t = _check(t, "a", k)
    n, d = t.shape
    y_codes = check_labels(y, n, name="b")
    x, diag = _prepare(t, jitter, generator(seed, t.device), standardize)
    tree = use_tree(neighbors, x.device, d, k)
    r = _ross_terms(x, y_codes, k, _rows(n, 4, block_size, max_block_bytes), tree)
    keep = r["keep"]
    n_kept = int(keep.sum())
    if n_kept <= 1:
        raise ValueError("Ross needs at least one class with 2 or more samples")
    dg = torch.digamma
    terms = dg(r["k"][keep].double()) - dg(r["N"][keep].double()) - dg(r["m"][keep].double())
    nats = float(dg(torch.tensor(float(n_kept), dtype=torch.float64))) + float(terms.mean())
    v, se = nats / LN2, float(terms.std()) / math.sqrt(n_kept) / LN2
    diag.update(H_Y=discrete_entropy(y_codes), rows_dropped_singleton_class=n - n_kept,
                negative=v < 0, ci_method="value +- 1.96 sd/sqrt(n) of per-row terms", **_search(tree, k))
    return prov.estimate(
        v, quantity or f"I(A;B) Ross kNN (k={k}, max-norm), B discrete", kind="estimate",
        ci=(v - 1.96 * se, v + 1.96 * se), n=n, dim=d, diagnostics=diag,
    )


def ksg_mi(
    a: torch.Tensor, b: torch.Tensor, *, k: int = 3, algorithm: int = 1, standardize: bool = True,
    jitter: float = 1e-10, seed: int = 0, block_size: Optional[int] = None,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES, neighbors: str = "auto",
    provenance: Optional[Provenance] = None,
) -> Estimate:
    """KSG estimate (algorithm 1 or 2, max-norm) of I(A;B) in bits for paired continuous rows."""
    prov = provenance or Provenance("ksg", KNN_TRAITS, knn_params(k, algorithm, standardize, jitter, seed,
                                                                   block_size, max_block_bytes, neighbors))
    a, b = _check(a, "a", k), _check(b, "b", k)
    n = a.shape[0]
    if b.shape[0] != n:
        raise ValueError(f"a has {n} rows but b has {b.shape[0]}; they must be paired")
    g = generator(seed, a.device)
    x, diag = _prepare(a, jitter, g, standardize)
    y, diag_b = _prepare(b.to(a.device), jitter, g, standardize)
    tree = use_tree(neighbors, x.device, x.shape[1] + y.shape[1], k)
    terms = _ksg_terms(x, y, k, algorithm, _rows(n, 6, block_size, max_block_bytes), tree)
    dg = lambda v: float(torch.digamma(torch.tensor(float(v), dtype=torch.float64)))  # noqa: E731
    const = dg(k) + dg(n) - (1.0 / k if algorithm == 2 else 0.0)
    v = (const - float(terms.mean())) / LN2
    se = float(terms.std()) / math.sqrt(n) / LN2
    cap = (dg(n) - dg(k + 1)) / LN2 if algorithm == 1 else (dg(n) - dg(k) - 1 / k) / LN2
    diag = {"fraction_duplicate_rows_a": diag["fraction_duplicate_rows"],
            "fraction_duplicate_rows_b": diag_b["fraction_duplicate_rows"], "negative": v < 0,
            **_search(tree, k),
            "ci_method": "value +- 1.96 sd/sqrt(n) of per-row terms"}
    return prov.estimate(
        v, f"I(A;B) KSG-{algorithm} (k={k}, max-norm)", kind="estimate", ci=(v - 1.96 * se, v + 1.96 * se),
        cap=cap, n=n, dim=a.shape[1] + b.shape[1], diagnostics=diag,
        traits=replace(prov.traits, cap="log2_n"),
    )


def knn_layer_information(
    t: torch.Tensor, y: Optional[torch.Tensor] = None, *, k: int = 3, standardize: bool = True,
    jitter: float = 1e-10, seed: int = 0, block_size: Optional[int] = None,
    max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES, neighbors: str = "auto",
    provenance: Optional[Provenance] = None,
) -> LayerInformation:
    """``(h_KL(T), I_Ross(T;Y))`` in bits: the differential entropy in the I(X;T) slot (traits
    ``xt_is_entropy``; a kNN estimator cannot reach I(X;T) = H(T) of a deterministic layer) and the
    Ross estimate of I(T;Y) (None without labels)."""
    prov = provenance or Provenance("ksg", KNN_TRAITS, knn_params(k, 1, standardize, jitter, seed, block_size,
                                                                   max_block_bytes, neighbors))
    t = _check(t, "t", k)
    y_codes = check_labels(y, t.shape[0]) if y is not None else None
    blocking = {"jitter": jitter, "seed": seed, "block_size": block_size, "max_block_bytes": max_block_bytes,
                "neighbors": neighbors}
    h = kl_entropy(t, k, **blocking, provenance=prov)
    if y_codes is None:
        return h, None
    return h, ross_mi(t, y_codes, k=k, standardize=standardize, **blocking, provenance=prov,
                      quantity=f"I(T;Y) Ross kNN (k={k}, max-norm)")


class KSG(Estimator):
    """KSG mutual information (max-norm) for continuous pairs; Ross for discrete ``b`` / labels. A thin
    wrapper of :func:`ksg_mi`, :func:`ross_mi` and :func:`knn_layer_information` holding the settings.

    Args:
        k: Number of neighbours (KSG suggest 2-4; scikit-learn uses 3).
        algorithm: 1 or 2 (KSG's two estimators).
        standardize: Scale each column to unit std before estimating MI (not for the entropy).
        jitter: Relative size of the tie-breaking noise (0 disables it).
        seed: Seed of the jitter's own generator.
        block_size: Rows per block (overrides ``max_block_bytes``).
        max_block_bytes: Memory budget of one block's temporaries (default 128 MiB).
        neighbors: ``"auto"`` (KD-tree on CPU up to ``TREE_MAX_DIM`` dimensions when scipy is
            installed, else brute force), ``"kdtree"`` or ``"brute"``; the values are the same.
    """

    name = "ksg"
    traits = KNN_TRAITS

    def __init__(self, k: int = 3, algorithm: int = 1, standardize: bool = True, jitter: float = 1e-10,
                 seed: int = 0, block_size: Optional[int] = None,
                 max_block_bytes: int = DEFAULT_MAX_BLOCK_BYTES, neighbors: str = "auto") -> None:
        p = knn_params(k, algorithm, standardize, jitter, seed, block_size, max_block_bytes, neighbors)
        self.k, self.algorithm, self.standardize = p["k"], p["algorithm"], p["standardize"]
        self.jitter, self.seed = p["jitter"], p["seed"]
        self.block_size, self.max_block_bytes = block_size, p["max_block_bytes"]
        self.neighbors = p["neighbors"]

    def params(self) -> Dict[str, Any]:
        return knn_params(self.k, self.algorithm, self.standardize, self.jitter, self.seed, self.block_size,
                          self.max_block_bytes, self.neighbors)

    def _common(self) -> Dict[str, Any]:
        return {"k": self.k, "jitter": self.jitter, "seed": self.seed, "block_size": self.block_size,
                "max_block_bytes": self.max_block_bytes, "neighbors": self.neighbors,
                "provenance": self.provenance()}

    def entropy(self, t: torch.Tensor) -> Estimate:
        """Kozachenko-Leonenko differential entropy h(T) in bits (max-norm, no standardisation)."""
        c = self._common()
        return kl_entropy(t, c.pop("k"), **c)

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        """KSG for continuous ``b``; with ``discrete_b=True`` (class labels) the Ross estimator."""
        if discrete_b:
            return ross_mi(a, b, standardize=self.standardize, **self._common())
        return ksg_mi(a, b, algorithm=self.algorithm, standardize=self.standardize, **self._common())

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        return knn_layer_information(t, y, standardize=self.standardize, **self._common())

    def check_sample_size(self, n: int) -> None:
        """Refuse ``k >= n``: every kNN estimate needs ``k`` neighbours besides the row itself."""
        if int(n) <= self.k:
            raise ValueError(f"estimator {self.name!r} has k={self.k} but the probe has {int(n)} samples; "
                             f"kNN needs at least k+1 = {self.k + 1}: use a smaller k (e.g. "
                             f"({self.name!r}, {{'k': {max(1, int(n) - 1)}}})) or a larger probe")


class Ross(KSG):
    """Ross (2014) kNN estimator of I(T;Y) for continuous (multivariate) T and class labels Y.

    ``mutual_information(a, b)`` always treats ``b`` as class labels. Same arguments as :class:`KSG`
    (``algorithm`` is unused).
    """

    name = "ross"

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = True) -> Estimate:
        return super().mutual_information(a, b, discrete_b=True)
