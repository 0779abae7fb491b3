"""Batched L-BFGS: minimise P independent smooth objectives at once, each with its own history and step.

Used by the classifier probe to fit one softmax probe per cross-fitting fold in one vectorised run.
Each problem keeps its own curvature pairs (the two-loop recursion is batched over problems), its own
Armijo backtracking step and its own stopping test, so a sum of independent problems converges as
each would alone. Plain tensor code (no ``torch.optim``), on the device of ``x0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Tuple

import torch

Objective = Callable[[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]


@dataclass
class LbfgsResult:
    """Solution ``x`` (P, m), objective ``f`` (P,), iterations run, and which problems met the tolerance."""

    x: torch.Tensor
    f: torch.Tensor
    iterations: int
    converged: torch.Tensor


def autograd_objective(loss: Callable[[torch.Tensor], torch.Tensor]) -> Objective:
    """Wrap ``loss(x) -> (P,)`` into ``x -> (loss, gradient)`` (problems are independent, so the
    gradient of the sum is each problem's gradient)."""

    def fun(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            f = loss(x)
            (g,) = torch.autograd.grad(f.sum(), x)
        return f.detach(), g.detach()

    return fun


def batched_lbfgs(
    fun: Objective,
    x0: torch.Tensor,
    *,
    max_iter: int = 200,
    history: int = 10,
    gtol: float = 1e-5,
    ftol: float = 1e-9,
    max_backtracks: int = 30,
) -> LbfgsResult:
    """Minimise ``fun`` (x (P, m) -> (f (P,), grad (P, m))) from ``x0``.

    A problem stops when its largest gradient entry is <= ``gtol`` or its objective improves by less
    than ``ftol * max(1, |f|)`` in an iteration; the loop ends when all have stopped or at ``max_iter``.
    """
    x = x0.detach().clone()
    p_count, m = x.shape
    f, g = fun(x)
    s_hist = x.new_zeros(history, p_count, m)
    y_hist = x.new_zeros(history, p_count, m)
    rho = x.new_zeros(history, p_count)  # 0 marks an empty or rejected pair: it then has no effect
    gamma = x.new_ones(p_count)
    done = g.abs().amax(1) <= gtol
    first = True
    it = 0
    for it in range(1, max_iter + 1):  # iterations of the solver, not a loop over samples
        q = g.clone()
        alphas = []
        order = [(it - 2 - j) % history for j in range(history)]  # newest pair first
        for j in order:
            a = rho[j] * (s_hist[j] * q).sum(1)
            q -= a[:, None] * y_hist[j]
            alphas.append(a)
        r = gamma[:, None] * q
        for j, a in zip(reversed(order), reversed(alphas)):
            b = rho[j] * (y_hist[j] * r).sum(1)
            r += s_hist[j] * (a - b)[:, None]
        d = -r
        gd = (g * d).sum(1)
        not_descent = ~(gd < 0)
        d = torch.where(not_descent[:, None], -g, d)
        gd = torch.where(not_descent, -(g * g).sum(1), gd)
        d = torch.where(done[:, None], torch.zeros_like(d), d)
        gd = torch.where(done, torch.zeros_like(gd), gd)
        step = x.new_ones(p_count)
        if first:  # no curvature yet: a first step of unit length in the max norm
            step = torch.clamp(1.0 / d.abs().amax(1).clamp_min(1e-12), max=1.0)
            first = False
        ok = done.clone()
        for _ in range(max_backtracks):  # Armijo backtracking, per problem
            x_new = x + step[:, None] * d
            f_new, g_new = fun(x_new)
            ok = done | (torch.isfinite(f_new) & (f_new <= f + 1e-4 * step * gd))
            if bool(ok.all()):
                break
            step = torch.where(ok, step, step * 0.5)
        accept = ok & ~done
        s = torch.where(accept[:, None], x_new - x, torch.zeros_like(x))
        yv = torch.where(accept[:, None], g_new - g, torch.zeros_like(g))
        f_old = f
        x = torch.where(accept[:, None], x_new, x)
        f = torch.where(accept, f_new, f)
        g = torch.where(accept[:, None], g_new, g)
        sy = (s * yv).sum(1)
        valid = accept & (sy > 1e-10 * (s * s).sum(1).clamp_min(1e-30).sqrt() * (yv * yv).sum(1).sqrt())
        slot = (it - 1) % history
        s_hist[slot], y_hist[slot] = s, yv
        rho[slot] = torch.where(
            valid, 1.0 / torch.where(valid, sy, torch.ones_like(sy)), torch.zeros_like(sy)
        )
        gamma = torch.where(valid, sy / (yv * yv).sum(1).clamp_min(1e-30), gamma)
        small_gain = accept & ((f_old - f) <= ftol * f.abs().clamp_min(1.0))
        stuck = ~ok  # no acceptable step: at the precision limit
        done = done | (g.abs().amax(1) <= gtol) | small_gain | stuck
        if bool(done.all()):
            break
    return LbfgsResult(x=x, f=f, iterations=it, converged=done)
