"""The instrument settings of a robustness sweep (:mod:`.robust`) and their estimates of one snapshot.

A *setting* is one estimator configuration with a label (``"binning(n_bins=10)"``). The default sweep
varies the run's own estimator along its one free knob, all other settings kept:

* a binning (``binning``, ``binning_adaptive``): ``n_bins`` in 10 / 30 / 100 (plus the run's own);
* a noise-based estimator (``kde``, ``noisy_channel``): the noise (``noise_var``, or ``relative_noise``
  when the run's noise is relative to the layer's scale) times 0.5 / 1 / 2;
* ``auto`` (the default estimator: binning for narrow layers, a relative noise for wide ones): both knobs
  in step, coarse to fine: 10 bins with the noise x2, 30 bins with x1, 100 bins with x0.5 (plus the
  run's own setting), so each layer's own instrument is swept whichever ``auto`` chose for it.

A setting equal to one of the run's estimators (same class, same ``params()``) is not recomputed: its
values are taken from ``record.layers``. KDE settings of one layer share one pairwise-distance matrix.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from ..estimators.base import Estimator
from ..estimators.registry import EstimatorSpec, make_estimator
from ..schema import LayerResult, Record

#: Default bin counts of a binning sweep and noise factors of a noise sweep.
DEFAULT_BINS: Tuple[int, ...] = (10, 30, 100)
DEFAULT_NOISE_FACTORS: Tuple[float, ...] = (0.5, 1.0, 2.0)

SettingsSpec = Union[Sequence[EstimatorSpec], Mapping[str, EstimatorSpec]]


@dataclass
class Setting:
    """One instrument setting: its label, its estimator, and the run's estimator key it equals (if any:
    its values are then read from the Record instead of recomputed)."""

    label: str
    estimator: Estimator
    reuse: Optional[str] = None

    def describe(self) -> Dict[str, Any]:
        return {"label": self.label, "estimator": self.estimator.name, "params": self.estimator.params(),
                "reused_from": self.reuse}


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _label(name: str, params: Mapping[str, Any]) -> str:
    return f"{name}({', '.join(f'{k}={_fmt(v)}' for k, v in params.items())})" if params else name


def rebuild(est: Estimator, **changes: Any) -> Estimator:
    """A new estimator of ``est``'s class with its constructor settings, ``changes`` applied."""
    sig = inspect.signature(type(est).__init__).parameters
    kwargs = {k: v for k, v in est.params().items() if k in sig}
    unknown = [k for k in changes if k not in sig]
    if unknown:
        raise ValueError(f"estimator {est.name!r} has no setting {unknown[0]!r} to sweep")
    kwargs.update(changes)
    return type(est)(**kwargs)


def same_instrument(a: Estimator, b: Estimator) -> bool:
    """Whether two estimators measure the same thing (same class, same settings)."""
    return type(a) is type(b) and a.params() == b.params()


def sweepable(est: Estimator) -> Optional[str]:
    """``"bins"`` for a binning, ``"noise"`` for a noise-based estimator, ``None`` otherwise."""
    sig = inspect.signature(type(est).__init__).parameters
    if est.name == "auto" and "n_bins" in sig and "relative_noise" in sig:
        return "auto"
    if "n_bins" in sig and est.name.startswith("binning"):
        return "bins"
    if "noise_var" in sig and "relative_noise" in sig:
        return "noise"
    return None


def default_settings(est: Estimator, bins: Sequence[int], noise_factors: Sequence[float]) -> List[Setting]:
    """The default sweep around the run's estimator ``est`` (see the module)."""
    kind = sweepable(est)
    if kind == "bins":
        own = int(est.params()["n_bins"])
        values = sorted({int(b) for b in bins} | {own})
        return [Setting(_label(est.name, {"n_bins": b}), est if b == own else rebuild(est, n_bins=b))
                for b in values]
    if kind == "noise":
        relative = getattr(est, "relative_noise", None)
        knob = "relative_noise" if relative is not None else "noise_var"
        base = float(relative if relative is not None else est.noise_var)  # type: ignore[attr-defined]
        factors = sorted({float(f) for f in noise_factors} | {1.0})
        out = []
        for f in factors:
            value = base * f
            swept = est if f == 1.0 else rebuild(est, **{knob: value})
            out.append(Setting(_label(est.name, {knob: value}), swept))
        return out
    if kind == "auto":
        own = (int(est.params()["n_bins"]), float(est.params()["relative_noise"]))
        pairs = [(int(b), own[1] * float(f)) for b, f in zip(sorted(bins), sorted(noise_factors, reverse=True))]
        if own not in pairs:
            pairs.append(own)
        return [Setting(_label(est.name, {"n_bins": b, "relative_noise": r}),
                        est if (b, r) == own else rebuild(est, n_bins=b, relative_noise=r)) for b, r in pairs]
    raise ValueError(f"the robust analysis has no default sweep for estimator {est.name!r}; pass "
                     "settings=[('binning', {'n_bins': 10}), ...] (two or more)")


def explicit_settings(settings: SettingsSpec) -> List[Setting]:
    """Settings from specs: a list of names / ``(name, params)`` / instances, or ``{label: spec}``."""
    items: List[Tuple[Optional[str], Any]]
    if isinstance(settings, Mapping):
        items = [(str(k), v) for k, v in settings.items()]
    elif isinstance(settings, (str, Estimator)) or not isinstance(settings, Sequence):
        raise ValueError(f"settings= must be a list of estimator specs or {{label: spec}}, got {settings!r} "
                         "(e.g. settings=[('binning', {'n_bins': 10}), ('binning', {'n_bins': 30})])")
    else:
        items = [(None, s) for s in settings]
    out = []
    for label, spec in items:
        est = make_estimator(spec)
        if label is None:
            if isinstance(spec, tuple):
                label = _label(spec[0], spec[1])
            elif isinstance(spec, str):
                label = spec
            else:
                label = _label(est.name, est.params())
        out.append(Setting(label, est))
    return out


def validate_settings(settings: List[Setting]) -> None:
    """At least two settings, distinct labels, distinct instruments; one ``ValueError`` naming the fix."""
    if len(settings) < 2:
        raise ValueError(f"a robustness sweep needs at least two instrument settings, got {len(settings)}; "
                         "pass settings=[...] with two or more, or a longer bins= / noise_factors=")
    labels = [s.label for s in settings]
    dup = next((x for x in labels if labels.count(x) > 1), None)
    if dup is not None:
        raise ValueError(f"setting label {dup!r} is given twice; give each setting once "
                         "(or name them: settings={'label': spec, ...})")
    for i, a in enumerate(settings):
        for b in settings[i + 1:]:
            if same_instrument(a.estimator, b.estimator):
                raise ValueError(f"settings {a.label!r} and {b.label!r} are the same instrument; drop one")


def mark_reuse(settings: List[Setting], run_estimators: Mapping[str, Estimator]) -> None:
    """Point each setting equal to one of the run's estimators at that estimator's key."""
    for s in settings:
        s.reuse = next((k for k, e in run_estimators.items()
                        if e is s.estimator or same_instrument(e, s.estimator)), None)


def _shared_distances(t: torch.Tensor, est: Estimator, cache: Dict[int, Any]) -> Any:
    """The layer's pairwise distances for a KDE setting (computed once per layer and block budget)."""
    from ..estimators._common import check_samples
    from ..estimators._pairwise import RowDistances, flat_rows

    key = int(est.max_block_bytes)  # type: ignore[attr-defined]
    if key not in cache:
        cache[key] = RowDistances(check_samples(flat_rows(t)), max_block_bytes=key)
    return cache[key]


def estimate_settings(
    settings: Sequence[Setting], layer: str, t: torch.Tensor, y: Optional[torch.Tensor], record: Record,
) -> Tuple[Dict[str, LayerResult], List[Tuple[str, str]]]:
    """Each setting's :class:`LayerResult` for ``layer`` (reused or computed) and ``(label, error)`` pairs."""
    from ..estimators.kde import KDE

    out: Dict[str, LayerResult] = {}
    errors: List[Tuple[str, str]] = []
    dist_cache: Dict[int, Any] = {}
    for s in settings:
        if s.reuse is not None:
            res = record.layers.get(layer, {}).get(s.reuse)
            if res is not None:
                out[s.label] = res
            continue
        try:
            # KDE's kernels take a precomputed RowDistances in place of the activation
            data = _shared_distances(t, s.estimator, dist_cache) if type(s.estimator) is KDE else t
            i_xt, i_ty = s.estimator.layer_information(data, y, layer=layer)
            for e in (i_xt, i_ty):
                if e is not None and not math.isfinite(e.value):
                    raise FloatingPointError(f"non-finite value ({e.value}) for {e.quantity}")
            out[s.label] = LayerResult(i_xt=i_xt, i_ty=i_ty)
        except Exception as exc:  # noqa: BLE001 - one setting failing leaves the others
            errors.append((s.label, f"{type(exc).__name__}: {exc}"))
    return out, errors
