"""Verdicts that survive the instrument: the phase tests re-run under a sweep of instrument settings.

A compression phase found with 30 bins but not with 10 or 100 says more about the bin width than
about the network (Geiger 2021; Chelombiev et al. 2019; Goldfeld et al. 2019). At each measurement
:class:`RobustVerdicts` estimates every monitored layer under each setting of a sweep (default: 10 /
30 / 100 bins around a binning run, noise x0.5 / x1 / x2 around a KDE or noisy-channel run; see
:mod:`.robust_sweep`), feeds one private :class:`~ibhooks.interpret.PhaseTracker` per setting (the
very tests of the run's own phases, with their Holm family = that setting's series), and stores per
layer and phase which settings find it (status ``detected``)::

    record.analyses["robust"]["layers"]["5"]["compression"]
    -> {"verdict": "contested", "robust": False, "contested": True,
        "found_by": ["binning(n_bins=30)"], "not_found_by": ["binning(n_bins=10)", ...], "settings": {...}}

Verdicts: ``robust`` (every setting finds the phase), ``contested`` (some do, some do not),
``absent`` (every setting has tested it and none finds it: the absence is robust), ``undecided`` (none
finds it and some setting has too few points yet). A candidate (significant at the latest decision
only) does not count as found. Artefact caveats of the run's tracker are not carried over.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..interpret import PhaseConfig, PhaseTracker
from ..schema import PhaseStatus, Record
from .base import Analysis, AnalysisContext
from .robust_sweep import (
    DEFAULT_BINS,
    DEFAULT_NOISE_FACTORS,
    Setting,
    SettingsSpec,
    default_settings,
    estimate_settings,
    explicit_settings,
    mark_reuse,
    sweepable,
    validate_settings,
)

if TYPE_CHECKING:  # pragma: no cover
    from ..capture.snapshot import Snapshot

_STATE_VERSION = 1


class Robustness(str, Enum):
    ROBUST = "robust"  # every setting finds the phase
    CONTESTED = "contested"  # some settings find it, some do not
    ABSENT = "absent"  # every setting tested it, none finds it
    UNDECIDED = "undecided"  # none finds it, some setting has too few points

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SettingVerdict:
    """One setting's latest decision about one phase of one layer."""

    status: PhaseStatus
    start_step: Optional[float] = None
    change_bits: Optional[float] = None

    @property
    def found(self) -> bool:
        return self.status is PhaseStatus.DETECTED

    def to_dict(self) -> Dict[str, Any]:
        return {"status": self.status.value, "start_step": self.start_step, "change_bits": self.change_bits}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SettingVerdict":
        status = PhaseStatus(d.get("status", "insufficient_data"))
        return cls(status, d.get("start_step"), d.get("change_bits"))


@dataclass(frozen=True)
class PhaseVerdict:
    """Which settings find one phase (``"fitting"`` / ``"compression"``) of one layer."""

    layer: str
    phase: str
    settings: Tuple[Tuple[str, SettingVerdict], ...]  # (label, verdict) in sweep order

    @property
    def found_by(self) -> List[str]:
        return [label for label, v in self.settings if v.found]

    @property
    def not_found_by(self) -> List[str]:
        return [label for label, v in self.settings if not v.found]

    @property
    def verdict(self) -> Robustness:
        found = self.found_by
        if found and len(found) == len(self.settings):
            return Robustness.ROBUST
        if found:
            return Robustness.CONTESTED
        if all(v.status in (PhaseStatus.NOT_DETECTED, PhaseStatus.CANDIDATE) for _, v in self.settings):
            return Robustness.ABSENT
        return Robustness.UNDECIDED

    @property
    def robust(self) -> bool:
        return self.verdict is Robustness.ROBUST

    @property
    def contested(self) -> bool:
        return self.verdict is Robustness.CONTESTED

    def to_dict(self) -> Dict[str, Any]:
        return {"verdict": self.verdict.value, "robust": self.robust, "contested": self.contested,
                "found_by": self.found_by, "not_found_by": self.not_found_by,
                "settings": {label: v.to_dict() for label, v in self.settings}}

    @classmethod
    def from_dict(cls, layer: str, phase: str, d: Mapping[str, Any]) -> "PhaseVerdict":
        per = d.get("settings") or {}
        settings = tuple((str(k), SettingVerdict.from_dict(v)) for k, v in per.items())
        return cls(str(layer), str(phase), settings)


def verdicts_of(result: Mapping[str, Any]) -> List[PhaseVerdict]:
    """The :class:`PhaseVerdict` s of one ``record.analyses["robust"]`` dict, layers in network order."""
    out = []
    for layer, per in (result.get("layers") or {}).items():
        for phase, d in (per or {}).items():
            if phase != "values" and isinstance(d, Mapping):
                out.append(PhaseVerdict.from_dict(layer, phase, d))
    return out


def latest_verdicts(records: Sequence[Record]) -> Tuple[Optional[int], List[str], List[PhaseVerdict]]:
    """``(step, setting labels, verdicts)`` of the latest record with a robust result (step ``None``:
    there is none)."""
    for rec in sorted(records, key=lambda r: r.step, reverse=True):
        result = rec.analyses.get(RobustVerdicts.name)
        if isinstance(result, Mapping) and result.get("layers"):
            return rec.step, [str(s) for s in result.get("settings") or []], verdicts_of(result)
    return None, [], []


class RobustVerdicts(Analysis):
    """Phase verdicts re-evaluated under a sweep of instrument settings (see the module).

    Args:
        settings: Explicit sweep: estimator specs (``[("binning", {"n_bins": 10}), ...]``), or
            ``{label: spec}``. Default: swept around the run's estimator.
        estimator: Key of the run's estimator to sweep around (default: its first binning, KDE or
            noisy-channel estimator).
        bins: Bin counts of the default binning sweep (the run's own is added).
        noise_factors: Factors on the run's noise of the default noise sweep (1 is added).
        phase_config: Settings of the phase tests (:class:`~ibhooks.interpret.PhaseConfig` or a dict of
            its fields); default as the monitor's.
    """

    name = "robust"

    def __init__(self, settings: Optional[SettingsSpec] = None, estimator: Optional[str] = None,
                 bins: Sequence[int] = DEFAULT_BINS, noise_factors: Sequence[float] = DEFAULT_NOISE_FACTORS,
                 phase_config: Union[PhaseConfig, Mapping[str, Any], None] = None) -> None:
        if isinstance(phase_config, Mapping):
            phase_config = PhaseConfig(**dict(phase_config))
        if phase_config is not None and not isinstance(phase_config, PhaseConfig):
            raise ValueError(
                f"phase_config must be a PhaseConfig or a dict of its fields, got {phase_config!r}")
        if any(not isinstance(b, int) or isinstance(b, bool) or b < 2 for b in bins):
            raise ValueError(f"bins must be integers >= 2, got {list(bins)!r}")
        if any(not isinstance(f, (int, float)) or not f > 0 for f in noise_factors):
            raise ValueError(f"noise_factors must be positive numbers, got {list(noise_factors)!r}")
        self.phase_config = phase_config or PhaseConfig()
        self._spec = settings
        self.estimator = estimator
        self.bins = tuple(int(b) for b in bins)
        self.noise_factors = tuple(float(f) for f in noise_factors)
        self.settings: List[Setting] = []
        self._trackers: Dict[str, PhaseTracker] = {}
        if settings is not None:  # validate now: bad input fails at construction, before any training
            self._set(explicit_settings(settings))

    def _set(self, settings: List[Setting]) -> None:
        validate_settings(settings)
        self.settings = settings
        self._trackers = {s.label: PhaseTracker(self.phase_config) for s in settings}

    def bind(self, context: AnalysisContext) -> None:
        super().bind(context)
        if self._spec is None:
            self._set(default_settings(self._base(context.estimators), self.bins, self.noise_factors))
        mark_reuse(self.settings, context.estimators)

    def _base(self, estimators: Mapping[str, Any]) -> Any:
        if self.estimator is not None:
            if self.estimator not in estimators:
                raise ValueError(f"robust: estimator={self.estimator!r} is not one of the run's estimators "
                                 f"({', '.join(estimators)}); pass one of these keys")
            return estimators[self.estimator]
        for est in estimators.values():
            if sweepable(est) is not None:
                return est
        raise ValueError(f"robust: none of the run's estimators ({', '.join(estimators)}) has a default "
                         "sweep (auto, binning, kde, noisy_channel); "
                         "pass settings=[('binning', {'n_bins': 10}), ...]")

    # ---- per measurement -------------------------------------------------------------------

    def analyse(self, snapshot: "Snapshot", record: Record) -> Optional[Dict[str, Any]]:
        if not self.settings:
            raise RuntimeError("the robust analysis was not bound to a monitor (bind() sets up its sweep)")
        per_setting: Dict[str, Dict[str, Any]] = {s.label: {} for s in self.settings}
        errors: List[Dict[str, str]] = []
        for layer in record.layers:
            t = snapshot.activations.get(layer)
            if t is None:
                continue
            results, errs = estimate_settings(self.settings, layer, t, snapshot.labels, record)
            errors += [{"layer": layer, "setting": label, "error": msg} for label, msg in errs]
            for label, res in results.items():
                per_setting[label][layer] = res
        for label, msg in {(e["setting"], e["error"]) for e in errors}:
            console = getattr(getattr(self, "context", None), "console", None)
            if console is not None:
                console.warn_once(("robust", label, msg.split(":")[0]),
                                  f"robust: setting {label!r} failed at step {record.step}: {msg} "
                                  "(recorded in record.analyses['robust']['errors']; "
                                  "the other settings go on)")
        for label, layers in per_setting.items():
            synthetic = Record(step=record.step, mode=record.mode, n_samples=record.n_samples, h_y=record.h_y,
                               layers={layer: {label: res} for layer, res in layers.items()})
            self._trackers[label].update(synthetic)
        out: Dict[str, Any] = {"settings": [s.label for s in self.settings], "layers": {}}
        for layer in record.layers:
            values = {label: _values(per_setting[label].get(layer)) for label in per_setting}
            entry: Dict[str, Any] = {"values": values}
            for phase in self.phase_config.phases:
                entry[phase] = self.verdict(layer, phase).to_dict()
            out["layers"][layer] = entry
        if errors:
            out["errors"] = errors
        return out

    def verdict(self, layer: str, phase: str) -> PhaseVerdict:
        """The latest verdict about ``phase`` of ``layer`` across the sweep."""
        per = []
        for s in self.settings:
            d = self._trackers[s.label].latest.get((layer, s.label, phase))
            per.append((s.label, SettingVerdict(PhaseStatus.INSUFFICIENT_DATA) if d is None
                        else SettingVerdict(d.status, d.start_step, d.change_bits)))
        return PhaseVerdict(layer, phase, tuple(per))

    def verdicts(self) -> List[PhaseVerdict]:
        """The latest verdict of every layer and phase seen so far."""
        layers: List[str] = []
        for tracker in self._trackers.values():
            for layer, _, _ in tracker.latest:
                if layer not in layers:
                    layers.append(layer)
        return [self.verdict(layer, phase) for layer in layers for phase in self.phase_config.phases]

    # ---- settings and state ----------------------------------------------------------------

    def params(self) -> Dict[str, Any]:
        p: Dict[str, Any] = {"phase_config": self.phase_config.to_dict()}
        if self.settings:
            p["settings"] = [s.describe() for s in self.settings]
        else:  # not bound yet: what was asked for
            p.update(estimator=self.estimator, bins=list(self.bins), noise_factors=list(self.noise_factors))
        return p

    def state_dict(self) -> Dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "settings": [s.label for s in self.settings],
            "trackers": {label: t.state_dict() for label, t in self._trackers.items()},
            "estimators": {s.label: s.estimator.state_dict() for s in self.settings if s.reuse is None},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not isinstance(state, Mapping) or state.get("version") != _STATE_VERSION:
            raise ValueError("robust: pass the dict from RobustVerdicts.state_dict() of this ibhooks "
                             f"(version {_STATE_VERSION}), got {type(state).__name__}")
        labels = [s.label for s in self.settings]
        if list(state.get("settings") or []) != labels:
            raise ValueError(f"robust: the state was saved with settings {state.get('settings')!r}, this "
                             f"analysis has {labels!r}; construct it with the same sweep")
        for label, tracker_state in (state.get("trackers") or {}).items():
            self._trackers[label].load_state_dict(tracker_state)
        for s in self.settings:
            if s.reuse is None and s.label in (state.get("estimators") or {}):
                s.estimator.load_state_dict(state["estimators"][s.label])


def _values(res: Any) -> Dict[str, Optional[float]]:
    if res is None:
        return {"I_XT": None, "I_TY": None}
    return {"I_XT": None if res.i_xt is None else float(res.i_xt.value),
            "I_TY": None if res.i_ty is None else float(res.i_ty.value)}
