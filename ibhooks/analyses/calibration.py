"""Calibration beside each figure: the same estimator run on a synthetic twin of the layer whose truth
is known, so every I(T;Y) reading carries the error its instrument makes on a look-alike problem of
the same n, D, class counts and separation.

At a measurement (every ``every``-th one), for each layer with labels:

1. fit the layer's Gaussian twin (:mod:`._twin`): its class means (debiased by default), a shared
   Ledoit-Wolf-shrunk within-class covariance, the labels' proportions; draw n rows from it for the
   probe's own labels (a seeded generator on the tensor's device, the same stream at every measurement);
2. its truth I(T;Y) by Monte Carlo over the exact posterior (``mc_samples`` draws; the standard error
   is recorded); for a noise-based instrument (its Estimate adds noise or has it in the network) the
   truth of what it measures, I(T + N(0, s2 I); Y) with its s2;
3. every estimator of the run (a copy of the monitor's instance: same settings and per-layer state, so
   the same fixed noise scale, bin range or per-layer ``auto`` choice) on the twin rows;
4. ``error = twin estimate - truth`` (bits), flagged ``large`` when ``|error| > max(large_bits,
   large_fraction x |truth|)``.

I(X;T). X is uniform over the n probe rows, so what an instrument's I(X;T) means is a function of the
rows themselves, and no twin is needed where a truth exists:

* noise-based instruments (KDE bounds, noisy channel): I(X; T + N(0, s2 I)) of the *real* rows by a
  separate Monte Carlo over the exact n-component mixture (``xt_mc_samples`` draws, another seed):
  ``method="direct"``, the error is the real one (the KDE's bound gap, the noisy channel's MC error);
* exact instruments (binning: H of the binned rows): no estimation error, ``method="exact"``;
* others (kNN's h(T), matrix Renyi, InfoNCE): no truth for the quantity, ``method="none"``.

Result, in ``record.analyses["calibration"]``::

    {"layers": {layer: {estimator: {"I_TY": {"truth", "twin_estimate", "error", "mc_se", "large",
                                              "quantity"},
                                     "I_XT": {"method", ...}}}},
     "twins": {layer: {"n", "dim", "classes", "shrinkage", "means", "seconds"}},
     "flagged": ["layer/estimator/I_TY", ...]}

The twin matches the layer's first two moments per class, not its shape: a saturated tanh layer or a
sparse ReLU layer is not Gaussian, and the twin's error is then a guide to the instrument's error at
that n, D and separation, not a measurement of it (benchmarks/calibration.py measures how well it
predicts; docs/CALIBRATION.md).
"""

from __future__ import annotations

import copy
import math
import numbers
import time
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..estimators._common import generator, nats_to_bits
from ..estimators._pairwise import RowDistances, flat_rows
from ..estimators.base import Estimator
from ..schema.estimate import Estimate
from ._twin import MEANS, GaussianTwin, fit_twin
from .base import Analysis, AnalysisContext

if TYPE_CHECKING:  # pragma: no cover
    from ..capture.snapshot import Snapshot
    from ..schema import Record


def fresh_copy(est: Estimator) -> Estimator:
    """An independent estimator with ``est``'s settings and per-layer state (``deepcopy``; else rebuilt
    from ``params()`` and ``state_dict()``)."""
    try:
        return copy.deepcopy(est)
    except Exception:  # noqa: BLE001 - e.g. an estimator holding a lock or a handle
        new = type(est)(**est.params())
        new.load_state_dict(est.state_dict())
        return new


def label_estimate(est: Estimator, t: torch.Tensor, y: torch.Tensor,
                   layer: Optional[str]) -> Optional[Estimate]:
    """The I(T;Y) estimate of ``est`` (``label_information`` where it only measures I(T;Y))."""
    if not getattr(est, "measures_xt", True):
        return est.label_information(t, y, layer=layer)  # type: ignore[attr-defined]
    return est.layer_information(t, y, layer=layer)[1]


def noise_of(e: Estimate) -> float:
    """The analysis (or in-network) noise variance an Estimate measured with; 0 for none."""
    if not (e.traits.adds_noise or e.traits.noise_in_network):
        return 0.0
    s2 = e.params.get("noise_var")
    return float(s2) if isinstance(s2, numbers.Real) else 0.0


def is_large(error: float, truth: float, large_bits: float, large_fraction: float) -> bool:
    """``|error| > max(large_bits, large_fraction x |truth|)``."""
    return bool(abs(error) > max(large_bits, large_fraction * abs(truth)))


def direct_xt(t: torch.Tensor, noise_var: float, samples: int, seed: int) -> Tuple[float, float]:
    """I(X; T + N(0, noise_var I)) of the rows of ``t`` (X uniform over them) in bits, with its Monte
    Carlo standard error: the noisy-channel kernel with ``samples`` draws in all."""
    from ..estimators.noisy_channel import noisy_channel_log_ratios

    dist = RowDistances(t)
    per_row = max(2, math.ceil(samples / dist.n))
    r = noisy_channel_log_ratios(dist, None, noise_var=noise_var, samples_per_row=per_row, seed=seed)["x"]
    se = math.sqrt(float(r.var(dim=1).sum()) / per_row) / dist.n  # stratified: per_row draws per row
    return nats_to_bits(float(r.mean())), nats_to_bits(se)


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"calibration: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < math.inf:
        raise ValueError(f"calibration: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


class CalibrationTwin(Analysis):
    """Each estimate's error on a Gaussian twin of its layer with known truth (see the module).

    Args:
        every: Calibrate every k-th measurement (it costs one estimator run per layer and estimator).
        mc_samples: Monte Carlo draws of the twin's true I(T;Y) (K-dimensional, cheap).
        xt_mc_samples: Draws of the direct reference of a noise-based I(X;T) (0: skip it).
        shrinkage: Shrinkage of the twin's covariance in [0, 1]; ``None``: Ledoit-Wolf.
        means: ``"debiased"`` (default: the layer's class means pulled in by their expected sampling
            spread, see :mod:`._twin`; it predicted the real error better in benchmarks/calibration.py)
            or ``"sample"`` (the class means as they are).
        large_bits, large_fraction: Flag ``|error| > max(large_bits, large_fraction x |truth|)``.
        estimators: Monitor keys of the estimators to calibrate (default: all).
        layers: Layers to calibrate (default: all).
        seed: Seed of the twin's generators (default: the monitor's).
    """

    name = "calibration"

    def __init__(self, every: int = 1, mc_samples: int = 50_000, xt_mc_samples: int = 32_768,
                 shrinkage: Optional[float] = None, means: str = "debiased", large_bits: float = 0.1,
                 large_fraction: float = 0.1, estimators: Optional[Sequence[str]] = None,
                 layers: Optional[Sequence[str]] = None, seed: Optional[int] = None) -> None:
        self.every = _positive_int("every", every)
        self.mc_samples = _positive_int("mc_samples", mc_samples, 100)
        self.xt_mc_samples = _positive_int("xt_mc_samples", xt_mc_samples, 0)
        if shrinkage is not None and not (isinstance(shrinkage, numbers.Real) and 0 <= shrinkage <= 1):
            raise ValueError(
                f"calibration: shrinkage must be None (Ledoit-Wolf) or in [0, 1], got {shrinkage!r}")
        if means not in MEANS:
            raise ValueError(f"calibration: means must be one of {MEANS}, got {means!r}")
        self.shrinkage, self.means = shrinkage, means
        self.large_bits = _non_negative("large_bits", large_bits)
        self.large_fraction = _non_negative("large_fraction", large_fraction)
        self.estimators = None if estimators is None else [str(k) for k in estimators]
        self.layers = None if layers is None else [str(k) for k in layers]
        if seed is not None:
            _positive_int("seed", seed, 0)
        self.seed = seed
        self._measurements = 0

    def bind(self, context: AnalysisContext) -> None:
        super().bind(context)
        for what, given, known in (("estimators", self.estimators, list(context.estimators)),
                                   ("layers", self.layers, list(context.layer_names))):
            unknown = [k for k in given or () if k not in known]
            if unknown:
                raise ValueError(f"calibration: unknown {what} {unknown}; the run has {known}")


    @classmethod
    def figure_view(cls, result: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        """Each (layer, estimator, quantity)'s error and flag: what the band in the layer curves draws."""
        layers = result.get("layers")
        if not isinstance(layers, Mapping):
            return None
        kept = {
            layer: {est: {q: {"error": e.get("error"), "large": bool(e.get("large"))}
                          for q, e in per_q.items() if isinstance(e, Mapping) and "error" in e}
                    for est, per_q in per_est.items() if isinstance(per_q, Mapping)}
            for layer, per_est in layers.items() if isinstance(per_est, Mapping)
        }
        return {"layers": kept}
    def params(self) -> Dict[str, Any]:
        return {"every": self.every, "mc_samples": self.mc_samples, "xt_mc_samples": self.xt_mc_samples,
                "shrinkage": self.shrinkage, "means": self.means, "large_bits": self.large_bits,
                "large_fraction": self.large_fraction, "estimators": self.estimators, "layers": self.layers,
                "seed": self.seed}

    def state_dict(self) -> Dict[str, Any]:
        return {"measurements": self._measurements}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._measurements = int(state.get("measurements", 0))

    def _seed(self) -> int:
        return int(self.context.seed if self.seed is None else self.seed)

    def analyse(self, snapshot: "Snapshot", record: "Record") -> Optional[Dict[str, Any]]:
        due = self._measurements % self.every == 0
        self._measurements += 1
        if not due:
            return None
        if snapshot.labels is None:
            return {"layers": {}, "twins": {}, "flagged": [],
                    "skipped": "no labels at this measurement: the twin's I(T;Y) needs class labels"}
        layers: Dict[str, Any] = {}
        twins: Dict[str, Any] = {}
        flagged: List[str] = []
        for index, layer in enumerate(self.context.layer_names):
            t = snapshot.activations.get(layer)
            per_est = record.layers.get(layer) or {}
            if t is None or not per_est or (self.layers is not None and layer not in self.layers):
                continue
            keys = [k for k in per_est if k in self.context.estimators
                    and (self.estimators is None or k in self.estimators)]
            layers[layer], twins[layer] = self._layer(layer, index, flat_rows(t), snapshot.labels, per_est,
                                                      keys)
            flagged += [f"{layer}/{key}/{q}" for key, entry in layers[layer].items()
                        for q, cal in entry.items() if cal.get("large")]
        return {"layers": layers, "twins": twins, "flagged": flagged}

    def _layer(self, layer: str, index: int, t: torch.Tensor, labels: torch.Tensor,
               per_est: Mapping[str, Any], keys: Sequence[str]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        t0 = time.perf_counter()
        codes = torch.unique(labels.to(t.device), return_inverse=True)[1]
        gen = generator(self._seed() * 1_000_003 + index, t.device)  # the same stream at every measurement
        twin = fit_twin(t, codes, shrinkage=self.shrinkage, means=self.means)
        rows = twin.sample(codes, gen)
        truths: Dict[float, Tuple[float, float]] = {}
        out: Dict[str, Any] = {}
        for key in keys:
            res, entry = per_est[key], {}
            if res.i_ty is not None:
                entry["I_TY"] = self._guarded(self._ty, key, layer, twin, rows, codes, truths, gen)
            if res.i_xt is not None:
                entry["I_XT"] = self._guarded(self._xt, res.i_xt, t, index)
            out[key] = entry
        info = {"n": int(t.shape[0]), "dim": int(t.shape[1]), "classes": twin.classes,
                "shrinkage": twin.shrinkage, "means": self.means, "seconds": time.perf_counter() - t0}
        return out, info

    @staticmethod
    def _guarded(fn: Any, *args: Any) -> Dict[str, Any]:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - one failed calibration does not hide the others
            return {"error": f"{type(exc).__name__}: {exc}"}

    def _ty(self, key: str, layer: str, twin: GaussianTwin, rows: torch.Tensor, codes: torch.Tensor,
            truths: Dict[float, Tuple[float, float]], gen: torch.Generator) -> Dict[str, Any]:
        est = label_estimate(fresh_copy(self.context.estimators[key]), rows, codes, layer)
        if est is None:
            return {"error": "the estimator gave no I(T;Y) on the twin"}
        s2 = noise_of(est)
        if s2 not in truths:
            truths[s2] = twin.label_information(gen, samples=self.mc_samples, noise_var=s2)
        truth, se = truths[s2]
        error = est.value - truth
        return {"truth": truth, "twin_estimate": est.value, "error": error, "mc_se": se,
                "large": is_large(error, truth, self.large_bits, self.large_fraction),
                "quantity": f"I(T+N(0,{s2:.4g}I);Y)" if s2 > 0 else "I(T;Y)"}

    def _xt(self, e: Estimate, t: torch.Tensor, index: int) -> Dict[str, Any]:
        if e.traits.exact:
            return {"method": "exact",
                    "note": f"exact for its stated quantity {e.quantity} (X uniform over the probe rows)"}
        s2 = noise_of(e)
        if s2 <= 0 or self.xt_mc_samples == 0:
            return {"method": "none", "note": f"no truth computed for {e.quantity}"}
        truth, se = direct_xt(t, s2, self.xt_mc_samples, self._seed() * 1_000_003 + index + 7_919)
        error = e.value - truth
        return {"method": "direct", "truth": truth, "estimate": e.value, "error": error, "mc_se": se,
                "large": is_large(error, truth, self.large_bits, self.large_fraction),
                "quantity": f"I(X;T+N(0,{s2:.4g}I))"}
