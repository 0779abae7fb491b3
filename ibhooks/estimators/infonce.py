"""InfoNCE lower bound (van den Oord et al. 2018; Poole et al. ICML 2019) with a separable critic.

    I_NCE = E[ log( exp f(a_i, b_i) / ((1/K) sum_j exp f(a_i, b_j)) ) ] <= min(I(A;B), log K)

with f(a, b) = exp(s) g(a)^T h(b), g and h two small MLPs and s a learnable log-scale. The critic is trained for a bounded number of
Adam steps on minibatches of K pairs from a training split of the rows and evaluated on the
held-out rows (a critic scored on its own training pairs overfits and overestimates). Everything
random (split, minibatches, initialisation, noise) comes from the estimator's own seeded
``torch.Generator``; the global RNG is never touched. Training runs under ``torch.enable_grad()`` and
outside inference mode on clones of the inputs, so it works when the caller is under ``no_grad`` or
``inference_mode``. Per layer, the critic weights are kept and warm-start the next measurement
(``state_dict`` holds them as tensors).

The estimate is never above ``cap`` = log2 K; within ``saturation_tol`` of it, ``saturated`` is set and
the true value may be far higher (K = 256 caps at 8 bits). ``ci`` = value +- 1.96 sd/sqrt(m) of the
m held-out per-pair terms (the spread of the bound for this critic, not the gap to the truth).

``layer_information``: X uniform over rows makes I(X;T) = H(T) for a deterministic T, which InfoNCE
cannot reach (a critic on the row id saturates at log K). Instead it reports the lower bound on
I(X; T+N(0, sigma^2 I)) from a critic between T and a noisy copy T + N (fresh noise per step); for
deterministic T = f(X) this equals I(T; T+N) exactly, the same quantity the ``kde`` bounds bracket and
``noisy_channel`` computes. I(T;Y) uses a critic between T and one-hot Y.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

from ..estimate import Estimate, make_estimate
from ._common import LN2, check_labels, check_samples, discrete_entropy
from .base import Estimator, LayerInformation

Params = List[torch.Tensor]


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


class InfoNCE(Estimator):
    """InfoNCE lower bound with a separable MLP critic trained on the device.

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

    def __init__(self, batch_size: int = 256, steps: int = 300, lr: float = 3e-3, hidden: int = 64,
                 embed: int = 32, noise_var: float = 0.1, eval_fraction: float = 0.25, warm_start: bool = True,
                 seed: int = 0, saturation_tol: float = 0.1) -> None:
        for nm, v in (("batch_size", batch_size), ("hidden", hidden), ("embed", embed)):
            if not isinstance(v, int) or v < 2:
                raise ValueError(f"{nm} must be an integer >= 2, got {v!r}")
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
        if not (0 < eval_fraction < 1):
            raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction!r}")
        if not (noise_var > 0 and math.isfinite(noise_var)):
            raise ValueError(f"noise_var must be a finite number > 0, got {noise_var!r}")
        if not (lr > 0 and saturation_tol >= 0):
            raise ValueError("lr must be > 0 and saturation_tol >= 0")
        self.batch_size, self.steps, self.lr = batch_size, steps, float(lr)
        self.hidden, self.embed, self.noise_var = hidden, embed, float(noise_var)
        self.eval_fraction, self.warm_start, self.seed = float(eval_fraction), bool(warm_start), int(seed)
        self.saturation_tol = float(saturation_tol)
        self._critics: Dict[str, Dict[str, Params]] = {}

    def params(self) -> Dict[str, Any]:
        return {"batch_size": self.batch_size, "steps": self.steps, "lr": self.lr, "hidden": self.hidden,
                "embed": self.embed, "noise_var": self.noise_var, "eval_fraction": self.eval_fraction,
                "warm_start": self.warm_start, "seed": self.seed, "critic": "separable MLP g(a)^T h(b)"}

    def state_dict(self) -> Dict[str, Any]:
        return {"critics": {k: {s: [p.detach().clone() for p in ps] for s, ps in v.items()}
                            for k, v in self._critics.items()}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._critics = {k: {s: [torch.as_tensor(p).clone() for p in ps] for s, ps in v.items()}
                         for k, v in state.get("critics", {}).items()}

    def _critic(self, key: Optional[str], d_a: int, d_b: int, gen: torch.Generator,
                device: torch.device) -> Dict[str, Params]:
        old = self._critics.get(key) if (key is not None and self.warm_start) else None
        if old is not None and "log_scale" in old and old["g"][0].shape[1] == d_a and old["h"][0].shape[1] == d_b \
                and old["g"][0].shape[0] == self.hidden and old["g"][2].shape[0] == self.embed:
            return {s: [p.detach().to(device).clone() for p in ps] for s, ps in old.items()}
        return {"g": _init_mlp(d_a, self.hidden, self.embed, gen, device),
                "h": _init_mlp(d_b, self.hidden, self.embed, gen, device),
                "log_scale": [torch.zeros((), device=device)]}

    def _fit(self, a: torch.Tensor, pair: Callable[[torch.Tensor, bool], torch.Tensor], d_b: int,
             key: Optional[str]) -> Dict[str, Any]:
        """Train a critic on a split of the rows of ``a`` and evaluate the bound on the rest."""
        n = a.shape[0]
        gen = torch.Generator(device=a.device)
        gen.manual_seed(self.seed)
        perm = torch.randperm(n, generator=gen, device=a.device)
        n_eval = max(2, int(round(self.eval_fraction * n)))
        if n - n_eval < 2:
            raise ValueError(f"InfoNCE needs at least 4 samples (got {n})")
        train, held = perm[n_eval:], perm[:n_eval]
        k_train, k_eval = min(self.batch_size, train.numel()), min(self.batch_size, n_eval)
        critic = self._critic(key, a.shape[1], d_b, gen, a.device)
        params = [p.requires_grad_(True) for p in critic["g"] + critic["h"] + critic["log_scale"]]
        adam = _Adam(params, self.lr)
        for _ in range(self.steps):  # bounded training loop; each step is one vectorised batch
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
            terms = (scores.diagonal(dim1=1, dim2=2) - torch.logsumexp(scores, dim=2) + math.log(k_eval)).flatten()
        if key is not None:
            self._critics[key] = {s: [p.detach().clone() for p in ps] for s, ps in critic.items()}
        return {"terms": terms.double(), "k": k_eval, "n_train": int(train.numel()), "n_eval_pairs": terms.numel()}

    def _estimate(self, fit: Dict[str, Any], quantity: str, n: int, d: int, diag: Dict[str, Any]) -> Estimate:
        terms = fit["terms"]
        v = float(terms.mean()) / LN2
        se = float(terms.std()) / math.sqrt(terms.numel()) / LN2 if terms.numel() > 1 else float("nan")
        cap = math.log2(fit["k"])
        diag = dict(diag, K=fit["k"], n_train=fit["n_train"], n_eval_pairs=fit["n_eval_pairs"],
                    ci_method="value +- 1.96 sd/sqrt(m) of held-out per-pair terms")
        return make_estimate(v, quantity, kind="lower_bound", estimator=self.name, ci=(v - 1.96 * se, v + 1.96 * se),
                             cap=cap, n=n, dim=d, params=self.params(), diagnostics=diag,
                             saturation_tol=self.saturation_tol)

    @staticmethod
    def _clone(x: torch.Tensor) -> torch.Tensor:
        """A normal (non-inference, grad-free) float32 copy, so autograd can use it."""
        return x.detach().clone().float()

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        a = check_samples(a, name="a")
        n = a.shape[0]
        with torch.inference_mode(False), torch.enable_grad():
            a_s = _standardise(self._clone(a))
            if discrete_b:
                codes = check_labels(b, n, name="b")
                b_s = F.one_hot(codes.clone()).float()
                diag: Dict[str, Any] = {"H_B": discrete_entropy(codes)}
            else:
                b = check_samples(b, name="b")
                if b.shape[0] != n:
                    raise ValueError(f"a has {n} rows but b has {b.shape[0]}; they must be paired")
                b_s = _standardise(self._clone(b.to(a.device)))
                diag = {}
            fit = self._fit(a_s, lambda idx, _train: b_s[idx], b_s.shape[1], None)
        return self._estimate(fit, f"I(A;B) InfoNCE lower bound (separable MLP critic, K={fit['k']})", n,
                              a.shape[1], diag)

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        t = check_samples(t)
        n, d = t.shape
        y_codes = check_labels(y, n) if y is not None else None
        key = None if layer is None else str(layer)
        sigma = math.sqrt(self.noise_var)
        with torch.inference_mode(False), torch.enable_grad():
            t_raw = self._clone(t)
            mean, sd = t_raw.mean(0, keepdim=True), t_raw.std(0, keepdim=True)
            sd = torch.where(sd > 0, sd, torch.ones_like(sd))
            t_s = (t_raw - mean) / sd
            gen = torch.Generator(device=t.device)
            gen.manual_seed(self.seed + 1)

            def noisy(idx: torch.Tensor, _train: bool) -> torch.Tensor:  # fresh noise at every call
                z = t_raw[idx] + sigma * torch.randn(idx.numel(), d, generator=gen, device=t.device)
                return (z - mean) / sd

            fit_x = self._fit(t_s, noisy, d, None if key is None else key + "|xt")
            i_xt = self._estimate(fit_x, f"I(X; T+N(0,{self.noise_var:g}I)) InfoNCE lower bound "
                                         f"(critic T vs noisy copy, K={fit_x['k']}), X uniform over rows", n, d, {})
            if y_codes is None:
                return i_xt, None
            onehot = F.one_hot(y_codes.clone()).float()
            fit_y = self._fit(t_s, lambda idx, _train: onehot[idx], onehot.shape[1],
                              None if key is None else key + "|ty")
        i_ty = self._estimate(fit_y, f"I(T;Y) InfoNCE lower bound (separable MLP critic, K={fit_y['k']})", n, d,
                              {"H_Y": discrete_entropy(y_codes)})
        return i_xt, i_ty
