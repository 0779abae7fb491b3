"""The information-bottleneck bound of the information plane.

For a discrete joint p(x, y), the IB curve F(r) = max {I(T;Y) : T - X - Y, I(X;T) <= r} is the most a
representation T of X can say about Y for a given I(X;T) (Tishby, Pereira & Bialek 2000). It is
concave and non-decreasing, from (0, 0) to (H(X), I(X;Y)). A layer's point in the plane lies on or
below it; the vertical distance is how far the layer is from the best trade-off.

* :func:`information_bottleneck_curve` computes it in bits: iterative IB updates over a beta sweep
  (annealed chains, :mod:`ibhooks._ib_solver`), then the upper concave hull of every point reached.
* When Y is a deterministic function of X the curve is exactly min(I(X;T), H(Y)) (Kolchinsky, Tracey &
  Van Kuyk, ICLR 2019): returned analytically, with ``deterministic=True``. Every probe with one label
  per row gives this trivial bound; a stochastic p(y|x) (:func:`szt_conditional`, :func:`label_noise`)
  gives a non-trivial one.
* X values with the same p(y|x) are merged first (exact: the merged curve is the same, then flat up
  to H(X)), so the 4096 patterns of the SZT task under a rule of their active-bit count are 13 symbols.

X is usually uniform over the probe rows (:func:`joint_from_labels`, :func:`joint_from_conditional`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ._ib_solver import entropy_bits, ib_points, mutual_information_bits, thin_concave, upper_concave_hull

__all__ = [
    "IBCurve",
    "fit_sigmoid_rule",
    "information_bottleneck_curve",
    "joint_from_conditional",
    "joint_from_labels",
    "label_noise",
    "szt_conditional",
]

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[Sequence[float]]]
DEFAULT_BETAS = (1.0, 1e4, 32)  # geometric sweep: first, last, count


@dataclass(eq=False)
class IBCurve:
    """The IB curve as the vertices of a concave, non-decreasing piecewise-linear function (bits).

    Attributes:
        points: (m, 2) float64 array of (I(X;T), I(T;Y)) vertices, I(X;T) increasing, from (0, 0) to
            (h_x, i_xy).
        h_x, h_y, i_xy: H(X), H(Y) and I(X;Y) of the joint, in bits.
        deterministic: Y is a function of X, so the curve is the trivial min(I(X;T), H(Y)).
        source: Which p(y|x) the curve is for (free text, shown in figures).
        info: How it was computed (symbols, merged symbols, betas, restarts, iterations, seconds).
    """

    points: np.ndarray
    h_x: float
    h_y: float
    i_xy: float
    deterministic: bool
    source: str = ""
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def i_xt(self) -> np.ndarray:
        return self.points[:, 0]

    @property
    def i_ty(self) -> np.ndarray:
        return self.points[:, 1]

    def at(self, i_xt: Union[float, np.ndarray]) -> Union[float, np.ndarray]:
        """The bound's I(T;Y) at ``i_xt`` (linear between vertices; I(X;Y) beyond H(X), 0 below 0)."""
        x = np.clip(np.asarray(i_xt, dtype=np.float64), 0.0, None)
        y = np.interp(x, self.i_xt, self.i_ty)
        return float(y) if y.ndim == 0 else y

    def gap(self, i_xt: Union[float, np.ndarray], i_ty: Union[float, np.ndarray]) -> Union[float, np.ndarray]:
        """Vertical gap in bits from a point to the bound: ``at(i_xt) - i_ty``. Positive below the bound;
        a negative gap is a point above it, which true quantities cannot reach (an estimate's bias, or a
        bound for another p(y|x) than the one measured)."""
        y = np.asarray(self.at(i_xt)) - np.asarray(i_ty, dtype=np.float64)
        return float(y) if y.ndim == 0 else y

    def to_dict(self) -> Dict[str, Any]:
        return {
            "points": [[round(float(a), 9), round(float(b), 9)] for a, b in self.points],
            "h_x": self.h_x,
            "h_y": self.h_y,
            "i_xy": self.i_xy,
            "deterministic": self.deterministic,
            "source": self.source,
            "info": dict(self.info),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "IBCurve":
        pts = np.asarray(d["points"], dtype=np.float64).reshape(-1, 2)
        return cls(
            pts,
            float(d["h_x"]),
            float(d["h_y"]),
            float(d["i_xy"]),
            bool(d["deterministic"]),
            str(d.get("source", "")),
            dict(d.get("info") or {}),
        )


def _as_float64(a: ArrayLike, name: str) -> torch.Tensor:
    t = torch.as_tensor(
        a.detach().cpu() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64),
        dtype=torch.float64,
    )
    if t.dim() != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D table (rows: x, columns: y), got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise ValueError(f"{name} must hold finite non-negative probabilities (or counts); clean it first")
    return t


def joint_from_conditional(p_y_given_x: ArrayLike, p_x: Optional[ArrayLike] = None) -> torch.Tensor:
    """p(x, y) = p(x) p(y|x) from a conditional (n, K) whose rows sum to 1, X uniform unless ``p_x``."""
    c = _as_float64(p_y_given_x, "p_y_given_x")
    rows = c.sum(1)
    if bool(((rows - 1).abs() > 1e-6).any()):
        raise ValueError(
            "every row of p_y_given_x must sum to 1 (it is p(y|x) for one x); normalise the rows"
        )
    n = c.shape[0]
    px = (
        torch.full((n,), 1.0 / n, dtype=torch.float64)
        if p_x is None
        else torch.as_tensor(
            np.asarray(p_x, dtype=np.float64) if not isinstance(p_x, torch.Tensor) else p_x.detach().cpu(),
            dtype=torch.float64,
        ).reshape(-1)
    )
    if px.numel() != n or bool((px < 0).any()) or float(px.sum()) <= 0:
        raise ValueError(f"p_x must hold {n} non-negative weights (one per row of p_y_given_x)")
    return (px / px.sum())[:, None] * (c / rows[:, None])


def joint_from_labels(y: ArrayLike, num_classes: Optional[int] = None) -> torch.Tensor:
    """p(x, y) with X uniform over the rows and Y the row's integer label: (n, K), one 1/n per row."""
    lab = torch.as_tensor(y).reshape(-1).cpu()
    if lab.is_floating_point() or lab.numel() < 1 or bool((lab < 0).any()):
        raise ValueError("labels must be non-negative integers, one per row")
    k = int(num_classes) if num_classes is not None else int(lab.max()) + 1
    return torch.nn.functional.one_hot(lab.long(), k).to(torch.float64) / lab.numel()


def label_noise(p_y_given_x: ArrayLike, eps: float, num_classes: Optional[int] = None) -> torch.Tensor:
    """Symmetric label noise: with probability ``eps`` the label becomes one of the other K-1 classes,
    uniformly: p'(y|x) = (1 - eps) p(y|x) + eps (1 - p(y|x)) / (K - 1). Takes a conditional (n, K) or
    integer labels (n,) (then one-hot). For K = 2 this is a binary symmetric channel with flip ``eps``."""
    if not 0.0 <= float(eps) <= 1.0:
        raise ValueError(f"label_noise eps must be a probability in [0, 1], got {eps}")
    t = torch.as_tensor(p_y_given_x) if not isinstance(p_y_given_x, torch.Tensor) else p_y_given_x
    if t.dim() == 1:
        c = joint_from_labels(t, num_classes) * t.numel()
    else:
        c = _as_float64(t, "p_y_given_x")
    k = c.shape[1]
    if k < 2:
        raise ValueError("label noise needs at least 2 classes (pass num_classes=)")
    return (1.0 - eps) * c + eps * (1.0 - c) / (k - 1)


def fit_sigmoid_rule(score: ArrayLike, y: ArrayLike, *, iters: int = 50) -> Tuple[float, float]:
    """Maximum-likelihood ``(gain, theta)`` of p(y=1|x) = sigmoid(gain (score(x) - theta)) for binary
    labels (Newton steps on the logistic log-likelihood, a small ridge keeping separable data finite)."""
    s = torch.as_tensor(score, dtype=torch.float64).reshape(-1)
    t = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
    if s.numel() != t.numel() or not bool(((t == 0) | (t == 1)).all()):
        raise ValueError("fit_sigmoid_rule needs one binary label (0/1) per score")
    feats = torch.stack([s, torch.ones_like(s)], 1)
    w = torch.zeros(2, dtype=torch.float64)
    ridge = 1e-6 * s.numel()
    for _ in range(iters):
        p = torch.sigmoid(feats @ w)
        grad = feats.T @ (p - t) + ridge * w
        hess = feats.T @ (feats * (p * (1 - p))[:, None]) + ridge * torch.eye(2, dtype=torch.float64)
        step = torch.linalg.solve(hess, grad)
        w = w - step
        if float(step.abs().max()) < 1e-10:
            break
    gain = float(w[0])
    if gain == 0.0:
        raise ValueError("the labels do not depend on the score (gain 0): no sigmoid rule to fit")
    return gain, -float(w[1]) / gain


def szt_conditional(
    x: ArrayLike,
    y: Optional[ArrayLike] = None,
    *,
    gain: Optional[float] = None,
    theta: Optional[float] = None,
    score: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
) -> torch.Tensor:
    """Shwartz-Ziv & Tishby's stochastic rule p(y=1|x) = sigmoid(gain (f(x) - theta)) as a (n, 2)
    conditional (column 1 is y = 1). SZT's f is spherically symmetric and unpublished; the default f is
    the number of active inputs (``x.sum(1)``), which orders the 12-bit task's labels almost perfectly
    (data note). Without ``gain``/``theta`` they are fitted to the labels ``y`` by maximum likelihood."""
    xt = torch.as_tensor(x).detach().cpu().to(torch.float64)
    f = (score(xt) if score is not None else xt.reshape(xt.shape[0], -1).sum(1)).to(torch.float64).reshape(-1)
    if gain is None or theta is None:
        if y is None:
            raise ValueError("szt_conditional needs gain= and theta=, or labels y to fit them to")
        fit_gain, fit_theta = fit_sigmoid_rule(f, y)
        gain = fit_gain if gain is None else gain
        theta = fit_theta if theta is None else theta
    p1 = torch.sigmoid(float(gain) * (f - float(theta)))
    return torch.stack([1.0 - p1, p1], 1)


def _merge_symbols(p_x: np.ndarray, p_y_x: np.ndarray, decimals: int = 12) -> Tuple[np.ndarray, np.ndarray]:
    """X values with the same p(y|x) (to ``decimals``) as one symbol: (p(x'), p(y|x'))."""
    _, inverse = np.unique(np.round(p_y_x, decimals), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    m = int(inverse.max()) + 1
    p_m = np.bincount(inverse, weights=p_x, minlength=m)
    c = np.stack(
        [np.bincount(inverse, weights=p_x * p_y_x[:, k], minlength=m) for k in range(p_y_x.shape[1])], 1
    )
    return p_m, c / p_m[:, None]


def _group_symbols(
    p_x: np.ndarray, p_y_x: np.ndarray, groups: int, seed: int
) -> Tuple[np.ndarray, np.ndarray]:
    """Too many distinct conditionals: weighted k-means of p(y|x) into ``groups`` symbols (a coarser X,
    so the curve stays achievable; its shortfall is recorded)."""
    rng = np.random.default_rng(int(seed))
    centres = p_y_x[rng.choice(p_x.size, size=groups, replace=False, p=p_x)]
    for _ in range(50):
        assign = ((p_y_x[:, None, :] - centres[None]) ** 2).sum(2).argmin(1)
        w = np.bincount(assign, weights=p_x, minlength=groups)
        sums = np.stack(
            [np.bincount(assign, weights=p_x * p_y_x[:, k], minlength=groups) for k in range(p_y_x.shape[1])],
            1,
        )
        centres = np.where(w[:, None] > 0, sums / np.maximum(w, 1e-300)[:, None], centres)
    assign = ((p_y_x[:, None, :] - centres[None]) ** 2).sum(2).argmin(1)
    w = np.bincount(assign, weights=p_x, minlength=groups)
    sums = np.stack(
        [np.bincount(assign, weights=p_x * p_y_x[:, k], minlength=groups) for k in range(p_y_x.shape[1])], 1
    )
    keep = w > 0
    return w[keep], sums[keep] / w[keep][:, None]


def information_bottleneck_curve(
    p_xy: ArrayLike,
    *,
    betas: Optional[Sequence[float]] = None,
    restarts: int = 4,
    max_iter: int = 100,
    tol: float = 1e-8,
    resolution: Optional[float] = None,
    refine: int = 6,
    max_symbols: int = 64,
    analytic: bool = True,
    seed: int = 0,
    source: str = "",
) -> IBCurve:
    """The IB curve (I(X;T), I(T;Y)) in bits of a discrete joint ``p_xy`` (rows x, columns y; counts
    are normalised).

    Args:
        p_xy: (|X|, |Y|) table (tensor, array or nested lists).
        betas: The beta sweep (> 0; default 48 values from 1 to 1e4, geometric). Below beta = 1 the
            optimum is trivial; the last point is joined to (H(X), I(X;Y)) by the hull.
        restarts: Chains annealed upward from random encoders (one more anneals down from the identity).
        max_iter, tol: Iterations per beta and the convergence threshold on the encoder.
        resolution, refine: Up to ``refine`` rounds add betas between neighbouring optima more than
            ``resolution`` bits apart (default: 1/200 of H(X) + I(X;Y) of the merged symbols).
        max_symbols: After merging equal conditionals, more distinct x than this are grouped by weighted
            k-means of p(y|x) (the curve stays achievable; ``info["grouping_loss_bits"]`` says what the
            grouping gives up at the right end).
        analytic: Return the exact min(I(X;T), H(Y)) when Y is a function of X (False: always iterate).
        seed: Seed of the chains' own generator. source: Which p(y|x) this is, for figures.

    Returns:
        An :class:`IBCurve`.
    """
    t0 = time.perf_counter()
    joint = _as_float64(p_xy, "p_xy").numpy()
    total = float(joint.sum())
    if total <= 0:
        raise ValueError("p_xy sums to 0; pass probabilities or counts")
    joint = joint / total
    p_x_all = joint.sum(1)
    joint = joint[p_x_all > 0]
    p_x = joint.sum(1)
    p_y_x = joint / p_x[:, None]
    h_x, h_y = float(entropy_bits(p_x)), float(entropy_bits(joint.sum(0)))
    i_xy = min(mutual_information_bits(joint), h_x, h_y)
    info: Dict[str, Any] = {"n_x": int(p_x.size), "n_y": int(joint.shape[1])}
    deterministic = bool((p_y_x.max(1) >= 1.0 - 1e-12).all())
    if deterministic and analytic:
        pts = np.array([[0.0, 0.0], [h_y, h_y], [h_x, h_y]])
        pts = pts[np.concatenate([[True], np.diff(pts[:, 0]) > 1e-12])]
        info.update(
            method="analytic: Y = f(X), min(I(X;T), H(Y))", seconds=round(time.perf_counter() - t0, 4)
        )
        return IBCurve(pts, h_x, h_y, h_y, True, source, info)
    m_x, m_y_x = _merge_symbols(p_x, p_y_x)
    info["n_x_merged"] = int(m_x.size)
    if m_x.size > max_symbols:
        m_x, m_y_x = _group_symbols(m_x, m_y_x, int(max_symbols), seed)
        info["n_x_grouped"] = int(m_x.size)
        info["grouping_loss_bits"] = round(i_xy - mutual_information_bits(m_x[:, None] * m_y_x), 9)
    if betas is None:
        first, last, count = DEFAULT_BETAS
        beta_t = np.geomspace(first, last, int(count))
    else:
        beta_t = np.sort(np.asarray(list(betas), dtype=np.float64).reshape(-1))
        if beta_t.size < 1 or not bool((beta_t > 0).all()) or not bool(np.isfinite(beta_t).all()):
            raise ValueError("betas must be finite positive numbers, e.g. numpy.geomspace(1, 1e4, 48)")
    if restarts < 1 or max_iter < 1:
        raise ValueError("restarts and max_iter must be at least 1")
    if resolution is None:
        resolution = (float(entropy_bits(m_x)) + mutual_information_bits(m_x[:, None] * m_y_x)) / 200
    if m_x.size == 1:  # every x has the same p(y|x): Y is independent of X
        reached, iters = np.zeros((1, 2)), 0
    else:
        reached, iters = ib_points(
            m_x,
            m_y_x,
            beta_t,
            restarts=int(restarts),
            max_iter=int(max_iter),
            tol=float(tol),
            noise=0.1,
            seed=seed,
            resolution=float(resolution),
            refine=int(refine),
        )
    h_m = float(entropy_bits(m_x))
    i_m = mutual_information_bits(m_x[:, None] * m_y_x)
    ends = np.array([[0.0, 0.0], [h_m, i_m], [h_x, i_xy]])  # trivial T, identity on merged X, identity on X
    pts = np.concatenate([reached, ends])
    pts[:, 0] = np.clip(pts[:, 0], 0.0, h_x)
    pts[:, 1] = np.clip(pts[:, 1], 0.0, np.minimum(pts[:, 0], i_xy))
    hull = thin_concave(upper_concave_hull(pts), 1e-6)
    top = int(np.argmax(hull[:, 1] >= hull[:, 1].max() - 1e-12))  # first vertex at the top: flat after it
    hull = hull[: top + 1]
    if hull[-1, 0] < h_x - 1e-12:
        hull = np.vstack([hull, [h_x, hull[-1, 1]]])
    info.update(
        method="iterative IB, annealed chains, upper concave hull",
        betas=[float(beta_t[0]), float(beta_t[-1]), int(beta_t.size)],
        restarts=int(restarts),
        iterations=int(iters),
        seconds=round(time.perf_counter() - t0, 4),
    )
    return IBCurve(hull, h_x, h_y, i_xy, deterministic, source, info)
