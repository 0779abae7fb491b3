"""InfoNCE lower bound (van den Oord et al. 2018; Poole et al. ICML 2019) with a separable critic.

    I_NCE = E[ log( exp f(a_i, b_i) / ((1/K) sum_j exp f(a_i, b_j)) ) ] <= min(I(A;B), log K)

with f(a, b) = exp(s) g(a)^T h(b), g and h two small MLPs and s a learnable log-scale. The critic is
trained for a bounded number of Adam steps on minibatches of K pairs from a training split of the rows
and evaluated on the held-out rows (a critic scored on its own training pairs overfits and
overestimates). Everything random (split, minibatches, initialisation, noise) comes from the
estimator's own seeded
``torch.Generator``; the global RNG is never touched. Training runs under ``torch.enable_grad()`` and
outside inference mode on clones of the inputs, so it works when the caller is under ``no_grad`` or
``inference_mode``. Per layer, the critic weights are kept and warm-start the next measurement
(``state_dict`` holds them as tensors).

The estimate is never above ``cap`` = log2 K; within ``saturation_tol`` of it, ``saturated`` is set and
the true value may be far higher (K = 256 caps at 8 bits). ``ci`` = value +- 1.96 sd/sqrt(m) of the
m held-out per-pair terms (the spread of the bound for this critic, not the gap to the truth).

Overfitting control: the held-out rows are scored with the critic ``lambda * f``, ``lambda`` (0 to 2) chosen
on the other half of the held-out rows (cross-fitted, :func:`_cross_fitted_terms`); a critic that
memorised its training pairs gets a small ``lambda`` instead of a bound of -1.4 nats. If the held-out
bound is still significantly below 0 (its interval's top < 0), the constant critic (bound exactly 0)
is reported: value 0, ci (0, 0), ``diagnostics["critic_rejected"]`` with the rejected value. A value
below 0 therefore always comes with an interval that contains 0.

``layer_information``: X uniform over rows makes I(X;T) = H(T) for a deterministic T, which InfoNCE
cannot reach (a critic on the row id saturates at log K). Instead it reports the lower bound on
I(X; T+N(0, sigma^2 I)) from a critic between T and a noisy copy T + N (fresh noise per step); for
deterministic T = f(X) this equals I(T; T+N) exactly, the same quantity the ``kde`` bounds bracket and
``noisy_channel`` computes. I(T;Y) uses a critic between T and one-hot Y.

Kernels (plain functions of tensors): :func:`infonce_fit`, :func:`infonce_mi`,
:func:`infonce_layer_information` (which takes warm-start critics and returns the trained ones);
:class:`InfoNCE` holds the settings and the per-layer critics.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F

from ..schema.estimate import Estimate, EstimatorTraits
from ._common import (LN2, Provenance, check_labels, check_samples, discrete_entropy, generator, require_int,
                      require_number, require_seed)
from .base import Estimator, LayerInformation

Params = List[torch.Tensor]
#: A separable critic: ``{"g": MLP params, "h": MLP params, "log_scale": [scalar]}``.
Critic = Dict[str, Params]
#: ``pair(idx, train)``: the B rows paired with the A rows ``idx`` (fresh noise at every call allowed).
PairFn = Callable[[torch.Tensor, bool], torch.Tensor]

#: A lower bound capped at log2 K (the contrastive batch size).
INFONCE_TRAITS = EstimatorTraits(cap="log2_k")


def infonce_params(batch_size: int = 256, steps: int = 300, lr: float = 3e-3, hidden: int = 64,
                   embed: int = 32, noise_var: float = 0.1, eval_fraction: float = 0.25,
                   warm_start: bool = True, seed: int = 0, saturation_tol: float = 0.1) -> Dict[str, Any]:
    """Validate InfoNCE settings (one ValueError naming the fix) and return them as recorded in ``params``
    (``saturation_tol`` is validated but not recorded, as before)."""
    eval_fraction = require_number("eval_fraction", eval_fraction)
    if not eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction!r}")
    if not isinstance(warm_start, bool):
        raise ValueError(f"warm_start must be True or False, got {warm_start!r}")
    require_number("saturation_tol", saturation_tol, strict=False)
    return {"batch_size": require_int("batch_size", batch_size, 2), "steps": require_int("steps", steps, 0),
            "lr": require_number("lr", lr), "hidden": require_int("hidden", hidden, 2),
            "embed": require_int("embed", embed, 2), "noise_var": require_number("noise_var", noise_var),
            "eval_fraction": eval_fraction, "warm_start": warm_start, "seed": require_seed(seed),
            "critic": "separable MLP g(a)^T h(b)"}


def _init_mlp(d_in: int, hidden: int, d_out: int, gen: torch.Generator, device: torch.device) -> Params:
    """He-initialised weights of a 2-layer MLP from ``gen`` (never the global RNG)."""
    w1 = torch.randn(hidden, d_in, generator=gen, device=device) * math.sqrt(2.0 / d_in)
    w2 = torch.randn(d_out, hidden, generator=gen, device=device) * math.sqrt(1.0 / hidden)
    return [w1, torch.zeros(hidden, device=device), w2, torch.zeros(d_out, device=device)]


def _mlp(p: Params, x: torch.Tensor) -> torch.Tensor:
    return F.linear(F.relu(F.linear(x, p[0], p[1])), p[2], p[3])


class _Adam:
    """Plain Adam (Kingma & Ba) on a list of tensors; avoids torch.optim's lazy torch._dynamo import."""

    def __init__(self, params: Params, lr: float, betas: tuple = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, eps, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self, grads: tuple) -> None:
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            p.addcdiv_(m, (v / c2).sqrt_().add_(self.eps), value=-self.lr / c1)


def _scores(critic: Dict[str, Params], a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """K x K critic matrix exp(s) * g(a_i)^T h(b_j) (s: a learnable log-scale)."""
    return critic["log_scale"][0].exp() * (_mlp(critic["g"], a) @ _mlp(critic["h"], b).T)


def _standardise(x: torch.Tensor) -> torch.Tensor:
    sd = x.std(0, keepdim=True)
    return (x - x.mean(0, keepdim=True)) / torch.where(sd > 0, sd, torch.ones_like(sd))


def _nce_terms(scores: torch.Tensor) -> torch.Tensor:
    """Per-pair InfoNCE terms in nats: f(a_i,b_i) - logsumexp_j f(a_i,b_j) + log K."""
    return scores.diagonal() - torch.logsumexp(scores, dim=1) + math.log(scores.shape[0])


def _fits(critic: Optional[Critic], d_a: int, d_b: int, hidden: int, embed: int) -> bool:
    return (critic is not None and "log_scale" in critic and critic["g"][0].shape[1] == d_a
            and critic["h"][0].shape[1] == d_b and critic["g"][0].shape[0] == hidden
            and critic["g"][2].shape[0] == embed)


def infonce_fit(
    a: torch.Tensor, pair: PairFn, d_b: int, *, batch_size: int = 256, steps: int = 300, lr: float = 3e-3,
    hidden: int = 64, embed: int = 32, eval_fraction: float = 0.25, seed: int = 0,
    init: Optional[Critic] = None,
) -> Tuple[Dict[str, Any], Critic]:
    """Train a critic between the rows of ``a`` (grad-enabled, float32) and ``pair(rows)`` on a split of
    the rows, evaluate the bound on the held-out rest; start from ``init`` when its shapes fit.

    Returns ``({"terms", "k", "n_train", "n_eval_pairs"}, trained critic)``; the terms are in nats.
    """
    n = a.shape[0]
    gen = generator(seed, a.device)
    perm = torch.randperm(n, generator=gen, device=a.device)
    n_eval = max(2, int(round(eval_fraction * n)))
    if n - n_eval < 2:
        raise ValueError(f"InfoNCE needs at least 4 samples (got {n})")
    train, held = perm[n_eval:], perm[:n_eval]
    k_train, k_eval = min(batch_size, train.numel()), min(batch_size, n_eval)
    if _fits(init, a.shape[1], d_b, hidden, embed):
        critic = {s: [p.detach().to(a.device).clone() for p in ps] for s, ps in init.items()}
    else:
        critic = {"g": _init_mlp(a.shape[1], hidden, embed, gen, a.device),
                  "h": _init_mlp(d_b, hidden, embed, gen, a.device),
                  "log_scale": [torch.zeros((), device=a.device)]}
    params = [p.requires_grad_(True) for p in critic["g"] + critic["h"] + critic["log_scale"]]
    adam = _Adam(params, lr)
    for _ in range(steps):  # bounded training loop; each step is one vectorised batch
        idx = train[torch.randperm(train.numel(), generator=gen, device=a.device)[:k_train]]
        scores = _scores(critic, a[idx], pair(idx, True))
        grads = torch.autograd.grad(-_nce_terms(scores).mean(), params)
        adam.step(grads)
    n_batches = max(1, n_eval // k_eval)
    with torch.no_grad():
        idx = held[: n_batches * k_eval].view(n_batches, k_eval)
        ga = _mlp(critic["g"], a[idx.flatten()]).view(n_batches, k_eval, -1)
        hb = _mlp(critic["h"], pair(idx.flatten(), False)).view(n_batches, k_eval, -1)
        scores = critic["log_scale"][0].exp() * (ga @ hb.transpose(1, 2))
        terms, scales = _cross_fitted_terms(scores)
    trained = {s: [p.detach().clone() for p in ps] for s, ps in critic.items()}
    fit = {"terms": terms.double(), "k": k_eval, "n_train": int(train.numel()), "n_eval_pairs": terms.numel(),
           "critic_scale": scales}
    return fit, trained


#: Scales tried for the held-out critic (0 = the constant critic, whose bound is exactly 0).
SCALE_GRID = (0.0,) + tuple(2.0 ** (e / 4) for e in range(-24, 5))


def _cross_fitted_terms(scores: torch.Tensor) -> Tuple[torch.Tensor, Tuple[float, float]]:
    """Held-out per-pair terms of the critic ``lambda * f`` with ``lambda`` chosen out of sample.

    ``scores`` (batches, K, K) are the held-out critic matrices. A critic that overfits its training
    split is overconfident: its held-out bound can be far below 0 (measured -1.4 nats at 25-50
    dimensions). The bound is concave in ``lambda`` and 0 at ``lambda = 0``, so each half of the held-out
    rows (alternate positions in each batch) is scored with the ``lambda`` from ``SCALE_GRID`` that
    maximises the other half's mean: cross-fitting, so no row's term chose its own scale.
    Returns the (batches * K,) terms in nats and the two scales.
    """
    k = scores.shape[-1]
    diag = scores.diagonal(dim1=1, dim2=2)
    half = (torch.arange(k, device=scores.device) % 2 == 0).expand_as(diag)
    per_scale = torch.stack([lam * diag - torch.logsumexp(lam * scores, dim=2) + math.log(k)
                             for lam in SCALE_GRID])  # (scales, batches, K): a loop over the grid
    mean_a = per_scale[:, half].mean(1)
    mean_b = per_scale[:, ~half].mean(1)
    best_a, best_b = int(mean_a.argmax()), int(mean_b.argmax())
    terms = torch.where(half, per_scale[best_b], per_scale[best_a])  # each half scored with the other's scale
    return terms.flatten(), (SCALE_GRID[best_b], SCALE_GRID[best_a])


def _estimate(prov: Provenance, fit: Dict[str, Any], quantity: str, n: int, d: int, diag: Dict[str, Any],
              saturation_tol: float) -> Estimate:
    terms = fit["terms"]
    v = float(terms.mean()) / LN2
    se = float(terms.std()) / math.sqrt(terms.numel()) / LN2 if terms.numel() > 1 else float("nan")
    diag = dict(diag, K=fit["k"], n_train=fit["n_train"], n_eval_pairs=fit["n_eval_pairs"],
                critic_scale=list(fit["critic_scale"]), critic_rejected=False,
                ci_method="value +- 1.96 sd/sqrt(m) of held-out per-pair terms (cross-fitted critic scale)")
    ci = (v - 1.96 * se, v + 1.96 * se)
    if not ci[1] >= 0:  # significantly below 0: this critic bounds nothing; the constant critic gives 0
        diag.update(critic_rejected=True, held_out_value=v, held_out_ci=list(ci))
        v, ci = 0.0, (0.0, 0.0)
    return prov.estimate(v, quantity, kind="lower_bound", ci=ci,
                         cap=math.log2(fit["k"]), n=n, dim=d, diagnostics=diag, saturation_tol=saturation_tol)


def _clone(x: torch.Tensor) -> torch.Tensor:
    """A normal (non-inference, grad-free) float32 copy, so autograd can use it."""
    return x.detach().clone().float()


def _fit_settings(p: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: p[k] for k in ("batch_size", "steps", "lr", "hidden", "embed", "eval_fraction", "seed")}


def infonce_mi(
    a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False, batch_size: int = 256, steps: int = 300,
    lr: float = 3e-3, hidden: int = 64, embed: int = 32, eval_fraction: float = 0.25, seed: int = 0,
    saturation_tol: float = 0.1, provenance: Optional[Provenance] = None,
) -> Estimate:
    """InfoNCE lower bound on I(A;B) in bits (B one-hot class labels when ``discrete_b``), cold-started."""
    settings = {"batch_size": batch_size, "steps": steps, "lr": lr, "hidden": hidden, "embed": embed,
                "eval_fraction": eval_fraction, "seed": seed}
    prov = provenance or Provenance("infonce", INFONCE_TRAITS,
                                    infonce_params(**settings, saturation_tol=saturation_tol))
    a = check_samples(a, name="a")
    n = a.shape[0]
    with torch.inference_mode(False), torch.enable_grad():
        a_s = _standardise(_clone(a))
        if discrete_b:
            codes = check_labels(b, n, name="b")
            b_s = F.one_hot(codes.clone()).float()
            diag: Dict[str, Any] = {"H_B": discrete_entropy(codes)}
        else:
            b = check_samples(b, name="b")
            if b.shape[0] != n:
                raise ValueError(f"a has {n} rows but b has {b.shape[0]}; they must be paired")
            b_s = _standardise(_clone(b.to(a.device)))
            diag = {}
        fit, _ = infonce_fit(a_s, lambda idx, _train: b_s[idx], b_s.shape[1], **settings)
    return _estimate(prov, fit, f"I(A;B) InfoNCE lower bound (separable MLP critic, K={fit['k']})", n,
                     a.shape[1], diag, saturation_tol)


class InfoNCELayer(NamedTuple):
    """What :func:`infonce_layer_information` returns: the two Estimates and the trained critics
    (keys ``"xt"`` and, with labels, ``"ty"``) to warm-start the next call."""

    i_xt: Estimate
    i_ty: Optional[Estimate]
    critics: Dict[str, Critic]


def infonce_layer_information(
    t: torch.Tensor, y: Optional[torch.Tensor] = None, *, batch_size: int = 256, steps: int = 300,
    lr: float = 3e-3, hidden: int = 64, embed: int = 32, noise_var: float = 0.1, eval_fraction: float = 0.25,
    seed: int = 0, saturation_tol: float = 0.1, warm: Optional[Mapping[str, Critic]] = None,
    provenance: Optional[Provenance] = None,
) -> InfoNCELayer:
    """InfoNCE lower bounds on I(X; T+N(0, noise_var I)) (critic T vs a noisy copy) and on I(T;Y).

    ``warm`` holds critics (keys ``"xt"``, ``"ty"``) to start from; the trained ones come back in the result.
    """
    settings = {"batch_size": batch_size, "steps": steps, "lr": lr, "hidden": hidden, "embed": embed,
                "eval_fraction": eval_fraction, "seed": seed}
    prov = provenance or Provenance("infonce", INFONCE_TRAITS, infonce_params(
        **settings, noise_var=noise_var, saturation_tol=saturation_tol))
    warm = warm or {}
    t = check_samples(t)
    n, d = t.shape
    y_codes = check_labels(y, n) if y is not None else None
    sigma = math.sqrt(noise_var)
    critics: Dict[str, Critic] = {}
    with torch.inference_mode(False), torch.enable_grad():
        t_raw = _clone(t)
        mean, sd = t_raw.mean(0, keepdim=True), t_raw.std(0, keepdim=True)
        sd = torch.where(sd > 0, sd, torch.ones_like(sd))
        t_s = (t_raw - mean) / sd
        gen = generator(seed + 1, t.device)

        def noisy(idx: torch.Tensor, _train: bool) -> torch.Tensor:  # fresh noise at every call
            z = t_raw[idx] + sigma * torch.randn(idx.numel(), d, generator=gen, device=t.device)
            return (z - mean) / sd

        fit_x, critics["xt"] = infonce_fit(t_s, noisy, d, **settings, init=warm.get("xt"))
        i_xt = _estimate(prov, fit_x, f"I(X; T+N(0,{noise_var:g}I)) InfoNCE lower bound "
                                      f"(critic T vs noisy copy, K={fit_x['k']}), X uniform over rows",
                         n, d, {}, saturation_tol)
        if y_codes is None:
            return InfoNCELayer(i_xt, None, critics)
        onehot = F.one_hot(y_codes.clone()).float()
        fit_y, critics["ty"] = infonce_fit(t_s, lambda idx, _train: onehot[idx], onehot.shape[1], **settings,
                                           init=warm.get("ty"))
    i_ty = _estimate(prov, fit_y, f"I(T;Y) InfoNCE lower bound (separable MLP critic, K={fit_y['k']})", n, d,
                     {"H_Y": discrete_entropy(y_codes)}, saturation_tol)
    return InfoNCELayer(i_xt, i_ty, critics)


class InfoNCE(Estimator):
    """InfoNCE lower bound with a separable MLP critic trained on the device; a thin wrapper of
    :func:`infonce_layer_information` holding the settings and each layer's critics (warm starts).

    Args:
        batch_size: K, the number of pairs per batch (the cap is log2 K).
        steps: Adam steps per measurement (per critic).
        lr: Adam learning rate.
        hidden: Hidden width of each MLP. embed: Output width (the critic is g(a)^T h(b)).
        noise_var: sigma^2 of the noise defining I(X; T+N) in ``layer_information``.
        eval_fraction: Share of rows held out to evaluate the bound.
        warm_start: Reuse each layer's critic from the previous measurement.
        seed: Seed of the estimator's own generator.
        saturation_tol: Bits below log2 K at which the value counts as saturated.
    """

    name = "infonce"
    traits = INFONCE_TRAITS

    def __init__(self, batch_size: int = 256, steps: int = 300, lr: float = 3e-3, hidden: int = 64,
                 embed: int = 32, noise_var: float = 0.1, eval_fraction: float = 0.25,
                 warm_start: bool = True, seed: int = 0, saturation_tol: float = 0.1) -> None:
        p = infonce_params(batch_size, steps, lr, hidden, embed, noise_var, eval_fraction, warm_start, seed,
                           saturation_tol)
        self.batch_size, self.steps, self.lr = p["batch_size"], p["steps"], p["lr"]
        self.hidden, self.embed, self.noise_var = p["hidden"], p["embed"], p["noise_var"]
        self.eval_fraction, self.warm_start, self.seed = p["eval_fraction"], p["warm_start"], p["seed"]
        self.saturation_tol = float(saturation_tol)
        self._critics: Dict[str, Critic] = {}

    def params(self) -> Dict[str, Any]:
        return infonce_params(self.batch_size, self.steps, self.lr, self.hidden, self.embed, self.noise_var,
                              self.eval_fraction, self.warm_start, self.seed, self.saturation_tol)

    def state_dict(self) -> Dict[str, Any]:
        return {"critics": {k: {s: [p.detach().clone() for p in ps] for s, ps in v.items()}
                            for k, v in self._critics.items()}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._critics = {k: {s: [torch.as_tensor(p).clone() for p in ps] for s, ps in v.items()}
                         for k, v in state.get("critics", {}).items()}

    def _settings(self) -> Dict[str, Any]:
        return dict(_fit_settings(self.params()), saturation_tol=self.saturation_tol,
                    provenance=self.provenance())

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        return infonce_mi(a, b, discrete_b=discrete_b, **self._settings())

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        keys = None if layer is None else {"xt": f"{layer}|xt", "ty": f"{layer}|ty"}
        warm = {s: self._critics[k] for s, k in keys.items() if k in self._critics} \
            if (keys is not None and self.warm_start) else None
        out = infonce_layer_information(t, y, noise_var=self.noise_var, warm=warm, **self._settings())
        if keys is not None:
            self._critics.update({keys[s]: c for s, c in out.critics.items()})
        return out.i_xt, out.i_ty
