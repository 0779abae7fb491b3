"""``estimators="auto"``: a per-layer choice of instrument, fixed at each layer's first measurement.

For ``layer_information(t, y, layer=...)`` (X uniform over the probe rows):

* **layers the network quantizes itself** (integer outputs, or every unit on an evenly spaced grid of at
  most ``quantized_max_levels`` values: a fake-quantize or rounding layer): the ``exact`` estimator,
  I(X;T) = H(T) and plug-in I(T;Y) with X uniform over the probe, no binning (:mod:`.exact`).
* **narrow layers** (D <= ``narrow_max_dim``, default 12: the Shwartz-Ziv & Tishby networks): binning,
  ``n_bins`` (30) equal bins over the layer's running min..max, for both I(X;T) = H(bin(T)) and
  I(bin(T);Y). There the binned variable keeps few enough cells to be informative, and it is the
  instrument of the literature being reproduced.
* **wide layers**: I(X;T) from a scale-aware noise, I(X; T+N(0, sigma^2 I)) with sigma^2 = beta x the
  layer's *total* variance (the sum over its units, beta = 0.3), fixed at the layer's first measurement
  (:mod:`._noise`), by the Monte-Carlo noisy channel (``xt="noisy_channel"``, default: the value of that
  quantity itself, with its Monte-Carlo interval) or the KDE pairwise upper bound (``xt="kde"``: the
  Saxe et al. bound, deterministic and 3-4x cheaper, but about 2 bits above the noisy channel's value on
  wide layers, so it reaches the log2 n cap much sooner). The full activation is used (through its Gram
  matrix when D > n), so no projection takes the layer off its chain. I(T;Y) from the cross-fitted
  classifier probe, a lower bound that stays informative where every pairwise estimate of I(T;Y) sits
  at H(Y) (``ty="classifier_probe"``, default; ``ty="kde"`` takes the KDE difference of bounds instead:
  much faster, but a reading of class clustering at the noise scale, far below I(T;Y) when classes are
  separable but not tight).

  Why total variance and 0.3, measured: noise relative to one unit's variance separates rows whose whole
  squared distance exceeds a fraction of one unit's variance, so in D dimensions every row stays apart
  and wide layers read the log2 n cap (BERT and ResNet blocks of examples/real_models.py: 63-71 % of
  estimates at the cap with beta = 0.1 of the total variance, all of them per unit). With sigma^2 =
  0.3 x the total variance, two rows merge when their distance is comparable to the layer's own spread:
  no estimate at the cap, 2 bits of spread across the layers at initialisation, and the last layers'
  I(X;T) and I(T;Y) move as the model learns (beta = 1 and 3 read 0.5-1.5 bits everywhere at
  initialisation: too coarse). Set ``relative_to="unit"`` / ``relative_noise`` for the other readings.
  Why the noisy channel: on the tiny HF ResNet of tests/test_real_models_plane.py the stages' scale
  grows about threefold in 40 training steps under the noise fixed at step 0; the KDE upper bound then
  put 34 % of the estimates at the cap, the noisy channel 14 %.

The choice is kept per layer (``state_dict``), so a layer keeps its instrument for the whole run. Every
Estimate names it: ``estimator`` is ``"auto:<choice>"`` (``auto:binning``, ``auto:kde_rel``,
``auto:noisy_channel_rel``, ``auto:classifier_probe``), ``params`` holds ``chosen`` beside the chosen
estimator's own settings, and ``quantity`` and ``traits`` are the chosen estimator's.

For a general pair, ``mutual_information(a, b)`` estimates the true I(A;B): with class labels
(``discrete_b``) the classifier probe when A is wide, Ross's kNN estimator when it is narrow. For two
continuous variables up to ``narrow_max_dim`` columns in all, the larger of KSG and the Gaussian-copula
estimate: both err low where they fail (KSG at high MI and in higher dimension; the copula estimate is a
lower bound whenever the copula is not Gaussian, Ince et al. 2017), so the larger is the closer one.
Measured on the BMI task families (benchmarks/accuracy.py): within 0.11 bit of the best library
estimator in every family, where KSG alone was 1.5 bits off at high MI. Wider pairs: the copula
estimate alone.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, Dict, Optional

import torch

from ..schema.estimate import Estimate, EstimatorTraits
from ._common import check_samples, require_int, require_number, require_seed
from ._pairwise import flat_rows
from .base import Estimator, LayerInformation
from ._quantized import is_quantized
from .binning import Binning
from .exact import Exact
from .kde import KDE
from .noisy_channel import NoisyChannel

_XT = ("kde", "noisy_channel")
_TY = ("classifier_probe", "kde")


def _stamp(e: Optional[Estimate], choice: str, params: Dict[str, Any]) -> Optional[Estimate]:
    """``e`` as made by ``auto`` choosing ``choice``: its name, ``params["chosen"]``, its own traits."""
    if e is None:
        return None
    return replace(e, estimator=f"auto:{choice}", params={"chosen": choice, **params, **e.params})


class Auto(Estimator):
    """Per-layer automatic choice: binning for narrow layers, scale-aware noise and the classifier probe
    for wide ones (see the module).

    Args:
        narrow_max_dim: Layers with at most this many units (after flattening) are binned.
        n_bins: Bins per unit for narrow layers (over the layer's running min..max).
        relative_noise: beta of the scale-aware noise for wide layers (sigma^2 = beta x the variance below).
        relative_to: ``"total"`` (summed over units, default) or ``"unit"`` (mean per-unit variance).
        xt: I(X;T) of wide layers: ``"noisy_channel"`` (Monte Carlo, default) or ``"kde"`` (upper bound).
        ty: I(T;Y) of wide layers: ``"classifier_probe"`` (default) or ``"kde"``.
        seed: Seed of the chosen estimators' own generators.
        quantized_max_levels: A layer whose units all sit on an evenly spaced grid of at most this many
            values (or with an integer dtype) is measured exactly (``auto:exact``).
    """

    name = "auto"
    whole_activations = True
    #: The class itself promises nothing; every Estimate carries the traits of the estimator chosen.
    traits: ClassVar[EstimatorTraits] = EstimatorTraits()

    def __init__(self, narrow_max_dim: int = 12, n_bins: int = 30, relative_noise: float = 0.3,
                 relative_to: str = "total", xt: str = "noisy_channel", ty: str = "classifier_probe",
                 seed: int = 0, quantized_max_levels: int = 256) -> None:
        self.narrow_max_dim = require_int("narrow_max_dim", narrow_max_dim, 0)
        self.n_bins = require_int("n_bins", n_bins, 2)
        self.relative_noise = require_number("relative_noise", relative_noise)
        if xt not in _XT:
            raise ValueError(f"xt must be one of {_XT}, got {xt!r}")
        if ty not in _TY:
            raise ValueError(f"ty must be one of {_TY}, got {ty!r}")
        self.relative_to, self.xt, self.ty, self.seed = relative_to, xt, ty, require_seed(seed)
        self._binning = Binning(n_bins=self.n_bins, range="running")
        self.quantized_max_levels = require_int("quantized_max_levels", quantized_max_levels, 2)
        self._exact = Exact(max_levels=self.quantized_max_levels)
        self._wide_xt: Estimator = (
            KDE(relative_noise=self.relative_noise, relative_to=relative_to) if xt == "kde"
            else NoisyChannel(relative_noise=self.relative_noise, relative_to=relative_to, seed=self.seed))
        self._probe: Optional[Estimator] = None
        if ty == "classifier_probe":
            from .classifier_probe import ClassifierProbe

            self._probe = ClassifierProbe(seed=self.seed)
        self._choice: Dict[str, str] = {}

    def params(self) -> Dict[str, Any]:
        return {"narrow_max_dim": self.narrow_max_dim, "n_bins": self.n_bins,
                "relative_noise": self.relative_noise, "relative_to": self.relative_to, "xt": self.xt,
                "ty": self.ty, "seed": self.seed, "quantized_max_levels": self.quantized_max_levels}

    def choose(self, dim: int) -> str:
        """The I(X;T) instrument for a layer of ``dim`` units: ``"binning"`` or ``"<xt>_rel"``."""
        return "binning" if dim <= self.narrow_max_dim else f"{self.xt}_rel"

    def instrument_for(self, layer: str, dim: Optional[int]) -> str:
        """``auto:<choice>`` for the coverage table: the choice fixed for ``layer``, or the one its width
        will get (a quantized layer is recognised only from its values, at its first measurement)."""
        choice = self._choice.get(str(layer))
        if choice is None:
            if dim is None:
                return self.name
            choice = self.choose(int(dim))
        wide = choice not in ("binning", "exact")
        return f"auto:{choice}" + (f"+{self.ty}" if wide and self.ty == "classifier_probe" else "")

    def choices(self) -> Dict[str, str]:
        """The instrument fixed for each layer measured so far."""
        return dict(self._choice)

    def layer_information(
        self, t: torch.Tensor, y: Optional[torch.Tensor] = None, *, layer: Optional[str] = None
    ) -> LayerInformation:
        raw = flat_rows(t)  # before check_samples: an integer dtype is seen as such
        t = check_samples(raw)
        key = None if layer is None else str(layer)
        choice = self._choice.get(key) if key is not None else None
        if choice is None:
            quantized = is_quantized(raw, max_levels=self.quantized_max_levels)
            choice = "exact" if quantized else self.choose(int(t.shape[1]))
            if key is not None:
                self._choice[key] = choice
        mine = self.params()
        if choice == "exact":
            i_xt, i_ty = self._exact.layer_information(raw, y, layer=layer)
            return _stamp(i_xt, choice, mine), _stamp(i_ty, choice, mine)  # type: ignore[return-value]
        if choice == "binning":
            i_xt, i_ty = self._binning.layer_information(t, y, layer=layer)
            return _stamp(i_xt, choice, mine), _stamp(i_ty, choice, mine)  # type: ignore[return-value]
        use_kde_ty = y is not None and self._probe is None and self.xt == "kde"
        i_xt, i_ty = self._wide_xt.layer_information(t, y if use_kde_ty else None, layer=layer)
        if y is not None and self._probe is not None:
            i_ty = _stamp(self._probe.label_information(t, y, layer=layer),  # type: ignore[attr-defined]
                          "classifier_probe", mine)
        elif y is not None and i_ty is None:  # ty="kde" beside a noisy-channel I(X;T)
            i_ty = _stamp(KDE(relative_noise=self.relative_noise, relative_to=self.relative_to)
                          .mutual_information(t, y, discrete_b=True), "kde_rel", mine)
        else:
            i_ty = _stamp(i_ty, choice, mine)
        return _stamp(i_xt, choice, mine), i_ty  # type: ignore[return-value]

    def mutual_information(self, a: torch.Tensor, b: torch.Tensor, *, discrete_b: bool = False) -> Estimate:
        """The true I(A;B), by an estimator chosen from the widths (see the module)."""
        from .registry import make_estimator

        a = check_samples(flat_rows(a), name="a")
        wide = a.shape[1] > self.narrow_max_dim
        if discrete_b:
            choice = "classifier_probe" if wide else "ross"
        else:
            b = check_samples(flat_rows(b), name="b")
            copula = make_estimator("gcmi").mutual_information(a, b)
            if a.shape[1] + b.shape[1] > self.narrow_max_dim:
                return _stamp(copula, "gcmi", self.params())  # type: ignore[return-value]
            knn = make_estimator(("ksg", {"seed": self.seed})).mutual_information(a, b)
            best, choice = (knn, "ksg") if knn.value >= copula.value else (copula, "gcmi")
            candidates = {"ksg": knn.value, "gcmi": copula.value}
            return _stamp(best, choice, {**self.params(), "candidates": candidates})  # type: ignore[return-value]
        seeded = {"seed": self.seed}
        est = make_estimator((choice, seeded))
        return _stamp(est.mutual_information(a, b, discrete_b=discrete_b), choice,  # type: ignore[return-value]
                      self.params())

    def state_dict(self) -> Dict[str, Any]:
        return {"choice": dict(self._choice), "binning": self._binning.state_dict(),
                "noise": self._wide_xt.state_dict(),
                "probe": self._probe.state_dict() if self._probe is not None else {}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self._choice = {str(k): str(v) for k, v in (state.get("choice") or {}).items()}
        self._binning.load_state_dict(state.get("binning") or {})
        self._wide_xt.load_state_dict(state.get("noise") or {})
        if self._probe is not None:
            self._probe.load_state_dict(state.get("probe") or {})
