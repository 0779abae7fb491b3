"""Fitting and compression phases, decided incrementally by :class:`PhaseTracker`.

* **fitting**: I(T;Y) rising, up to its peak.
* **compression**: I(X;T) falling after its peak.

Each :meth:`PhaseTracker.update` is one *decision*: every series (layer x estimator x phase) is
tested on its buffered points (:class:`~.trend.SeriesTest`: peak, held-out segment, one-sided
Mann-Kendall, ramp size against the estimates' uncertainty), the p-values of all series tested at
this decision are adjusted together (Holm by default, or Benjamini-Hochberg), and a series is
*significant* when its adjusted p-value is at most ``alpha`` and its ramp exceeds the uncertainty.
**Persistence**: a phase is ``detected`` when it was significant at each of the last ``persistence``
decisions, ``candidate`` when at the latest only (so decisions do not flap).

The cost of a decision does not grow with the history, because each series keeps bounded state:

* **Point buffer** (capacity ``PhaseConfig.max_points``), thinned evenly in log(step + 1), the
  time axis of the information plane: a grid of ``2**level`` cells per doubling of ``step + 1``
  (``level`` 6 at first) keeps the first point that falls in each cell, plus the latest point (kept
  until the next one arrives). When the buffer exceeds its capacity, ``level`` drops by one (cells
  twice as wide) and each cell keeps its first point again (as :func:`~.trend.thin_log` does for a
  whole series). The first and the latest point are always
  kept; a log-spaced schedule is kept whole as long as it fits, and a linear one keeps its early,
  fast part (where fitting happens) instead of thinning it away.
* **Recent outcomes**: (step, significant) of the last ``persistence`` decisions, so persistence
  needs no recomputation of earlier decisions (``consecutive`` is therefore at most ``persistence``).
* **Caveats**: for each artefact-warning code seen on a layer / estimator / quantity, the first and
  last step it was seen at; a phase's caveats are the codes seen from its start on.

Only records of one mode are used (``config.mode``, else the first record's mode). A record whose
step is at most the last step seen is a re-measurement (a resumed run repeating the steps after its
checkpoint): the points, outcomes and caveats from that step on are dropped before it is added (a
thinned-away measurement cannot be restored, so after such a rollback the thinning is approximate).
The state (:meth:`PhaseTracker.state_dict`) is plain lists, numbers and strings; a tracker loaded
from it reaches exactly the decisions of the uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..schema.findings import WarningCode
from ..schema.phases import PHASE_QUANTITY, PhaseDecision, PhaseStatus, SeriesKey
from ..schema.record import Record
from .statistics import adjust_pvalues
from .series_buffer import SeriesBuffer as _Series
from .series_buffer import _float
from .trend import PhaseConfig, SeriesAnalysis

#: Warning codes that can fake or hide a phase, carried into its decision as caveats.
CAVEAT_CODES: Tuple[WarningCode, ...] = (
    WarningCode.SATURATING_UNITS,
    WarningCode.OUTSIDE_RANGE,
    WarningCode.DUPLICATE_ROWS,
    WarningCode.AT_CAP,
    WarningCode.TOO_FEW_SAMPLES,
    WarningCode.BOUND_VIOLATION,
)
_CAVEAT_ORDER = {c.value: i for i, c in enumerate(CAVEAT_CODES)}
_STATE_VERSION = 1
CaveatKey = Tuple[str, Optional[str], Optional[str]]  # (layer, estimator or None, quantity or None)


class PhaseTracker:
    """Incremental phase decisions over a run: feed each Record once with :meth:`update`.

    Example::

        tracker = PhaseTracker()
        for record in records:
            record.phase_changes = tracker.update(record)
        tracker.latest[("fc3", "binning", "compression")].status
    """

    def __init__(self, config: Optional[PhaseConfig] = None) -> None:
        if config is not None and not isinstance(config, PhaseConfig):
            raise TypeError(f"config must be a PhaseConfig, got {type(config).__name__}")
        self.config = config if config is not None else PhaseConfig()
        self._mode: Optional[str] = self.config.mode
        self._last_step: Optional[int] = None
        self._series: Dict[SeriesKey, _Series] = {}
        self._caveats: Dict[CaveatKey, Dict[str, List[float]]] = {}
        self._latest: Dict[SeriesKey, PhaseDecision] = {}

    @property
    def latest(self) -> Dict[SeriesKey, PhaseDecision]:
        """The most recent decision of every series, keyed ``(layer, estimator, phase)``."""
        return dict(self._latest)

    @property
    def mode(self) -> Optional[str]:
        return self._mode

    def update(self, record: Record) -> List[PhaseDecision]:
        """Add ``record`` and decide every series; returns the decisions whose outcome changed."""
        if not self._ingest(record):
            return []
        return self._decide(int(record.step))

    # ---- state -----------------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        """Plain lists, numbers and strings (safe for ``torch.save`` / ``weights_only`` and JSON)."""
        return {
            "version": _STATE_VERSION,
            "config": self.config.to_dict(),
            "mode": self._mode,
            "last_step": self._last_step,
            "series": [{"key": list(k), **s.to_state()} for k, s in self._series.items()],
            "caveats": [
                [k[0], k[1], k[2], code, fl[0], fl[1]]
                for k, codes in self._caveats.items()
                for code, fl in codes.items()
            ],
            "latest": [d.to_dict() for d in self._latest.values()],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; ``ValueError`` naming the problem if it is malformed."""
        if not isinstance(state, Mapping):
            raise ValueError(
                f"PhaseTracker state must be a dict from PhaseTracker.state_dict(), got "
                f"{type(state).__name__}"
            )
        if state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"PhaseTracker state has version {state.get('version')!r}, expected {_STATE_VERSION}; "
                "pass a dict from PhaseTracker.state_dict() of this ibhooks"
            )
        saved_cfg = state.get("config")
        if saved_cfg != self.config.to_dict():
            raise ValueError(
                f"PhaseTracker state was saved with config {saved_cfg!r}, this tracker has "
                f"{self.config.to_dict()!r}; construct the tracker with the same PhaseConfig"
            )
        try:
            series = {_key(s["key"]): _Series.from_state(s) for s in state["series"]}
            caveats: Dict[CaveatKey, Dict[str, List[float]]] = {}
            for layer, est, qty, code, first, last in state["caveats"]:
                WarningCode(code)
                caveats.setdefault((str(layer), est, qty), {})[str(code)] = [float(first), float(last)]
            latest = {d.key: d for d in (PhaseDecision.from_dict(x) for x in state["latest"])}
            mode = state["mode"]
            last_step = None if state["last_step"] is None else int(state["last_step"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"malformed PhaseTracker state ({type(exc).__name__}: {exc}); pass the dict "
                "returned by PhaseTracker.state_dict()"
            ) from exc
        self._series, self._caveats, self._latest = series, caveats, latest
        self._mode, self._last_step = mode, last_step

    # ---- internals -------------------------------------------------------------------------

    def _ingest(self, record: Record) -> bool:
        """Add the record's points and caveats without deciding; ``False`` for a record of another mode."""
        if self._mode is None:
            self._mode = record.mode
        if record.mode != self._mode:
            return False
        step = int(record.step)
        if self._last_step is not None and step <= self._last_step:
            self._rollback(step)
        self._last_step = step
        self._add_points(record)
        self._add_caveats(record)
        return True

    def _rollback(self, step: int) -> None:
        for s in self._series.values():
            s.truncate(step)
        for codes in self._caveats.values():
            for code in list(codes):
                first, last = codes[code]
                if first >= step:
                    del codes[code]
                elif last >= step:  # seen before and after `step`: keep it, as of the last earlier point
                    codes[code][1] = first

    def _add_points(self, record: Record) -> None:
        cap = int(self.config.max_points)
        for layer, per_est in record.layers.items():
            for est, res in per_est.items():
                if res is None:
                    continue
                for phase in self.config.phases:
                    e = res.get(PHASE_QUANTITY[phase])
                    if e is None or e.value is None or not math.isfinite(e.value):
                        continue
                    key = (layer, est, phase)
                    series = self._series.get(key)
                    if series is None:
                        series = self._series[key] = _Series()
                    series.append(float(record.step), float(e.value), _float(e.stderr), cap)

    def _add_caveats(self, record: Record) -> None:
        for w in record.warnings or ():
            code = w.code.value
            if code not in _CAVEAT_ORDER or w.layer is None:
                continue
            key = (w.layer, w.estimator, None if w.quantity is None else w.quantity.value)
            fl = self._caveats.setdefault(key, {}).setdefault(code, [float(record.step), float(record.step)])
            fl[1] = float(record.step)

    def _caveats_of(self, layer: str, est: str, phase: str, start: Optional[float]) -> Tuple[str, ...]:
        qty = PHASE_QUANTITY[phase].value
        found: Dict[str, float] = {}
        for key in ((layer, est, qty), (layer, None, qty), (layer, est, None), (layer, None, None)):
            for code, (first, last) in self._caveats.get(key, {}).items():
                if start is None or last >= start:
                    found[code] = min(first, found.get(code, math.inf))
        return tuple(sorted(found, key=lambda c: (found[c], _CAVEAT_ORDER[c])))

    def _decide(self, step: int) -> List[PhaseDecision]:
        cfg = self.config
        tests = {k: s.test(k[2], cfg) for k, s in self._series.items()}
        tested = [k for k, t in tests.items() if t.tested.tested]
        adjusted = dict(
            zip(tested, adjust_pvalues([tests[k].tested.p_value for k in tested], cfg.correction))
        )
        changed: List[PhaseDecision] = []
        for key, test in tests.items():
            series = self._series[key]
            p_adj = adjusted.get(key)
            a = test.tested
            # The adjusted p is never below the raw one: a ramp is fitted only where the raw p can pass,
            # slopes are described only for the phases that are shown (candidate or detected).
            if a.p_value is not None and a.p_value <= cfg.alpha:
                a = test.with_ramp()
            significant = bool(p_adj is not None and p_adj <= cfg.alpha and a.exceeds_uncertainty)
            if significant:
                a = test.with_slopes(per_step=False)  # decisions carry the slope per decade
            series.recent = (series.recent + [(float(step), significant)])[-int(cfg.persistence) :]
            decision = self._decision(
                key, step, series.report(a), p_adj, significant, series.consecutive(), len(tested)
            )
            if not decision.same_outcome(self._latest.get(key)):
                changed.append(decision)
            self._latest[key] = decision
        return changed

    def _decision(
        self,
        key: SeriesKey,
        step: int,
        a: SeriesAnalysis,
        p_adj: Optional[float],
        significant: bool,
        consecutive: int,
        family: int,
    ) -> PhaseDecision:
        cfg = self.config
        reason = a.reason
        if not a.tested:
            status = PhaseStatus.INSUFFICIENT_DATA
        elif consecutive >= cfg.persistence:
            status = PhaseStatus.DETECTED
        elif significant:
            status = PhaseStatus.CANDIDATE
            reason = f"significant at the latest {consecutive} decision(s); needs {cfg.persistence} in a row"
        else:
            status = PhaseStatus.NOT_DETECTED
            if reason is None and p_adj is not None and p_adj > cfg.alpha:
                reason = f"adjusted p = {p_adj:.3g} > alpha = {cfg.alpha:g}"
            elif reason is None and a.exceeds_uncertainty is False:
                unc = a.uncertainty_bits
                reason = (
                    f"change {a.change_bits:.3g} bits does not exceed "
                    + (f"{cfg.z:g} x the combined uncertainty {unc:.3g} bits + " if unc is not None else "")
                    + f"min_change_bits = {cfg.min_change_bits:g}"
                )
        return PhaseDecision(
            layer=key[0],
            estimator=key[1],
            phase=key[2],
            step=step,
            status=status,
            start_step=a.start_step,
            end_step=a.end_step,
            peak_step=a.peak_step,
            ongoing=a.ongoing,
            change_bits=a.change_bits,
            uncertainty_bits=a.uncertainty_bits,
            p_value=a.p_value,
            p_adjusted=p_adj,
            family_size=family,
            consecutive=consecutive,
            slope_bits_per_decade=_finite(a.slope_bits_per_decade),
            slope_ci_per_decade=_finite_pair(a.slope_ci_per_decade),
            n_points=a.n_points,
            test=a.test,
            reason=reason,
            caveats=self._caveats_of(key[0], key[1], key[2], a.start_step),
        )

    def series_sizes(self) -> Dict[SeriesKey, int]:
        """Points buffered per series (bounded by ``config.max_points``)."""
        return {k: len(s.steps) for k, s in self._series.items()}


def _key(k: Sequence[Any]) -> SeriesKey:
    layer, est, phase = k
    if phase not in PHASE_QUANTITY:
        raise ValueError(f"unknown phase {phase!r}")
    return (str(layer), str(est), str(phase))


def _finite(x: Optional[float]) -> Optional[float]:
    return None if x is None or not math.isfinite(x) else float(x)


def _finite_pair(p: Optional[Tuple[float, float]]) -> Optional[Tuple[float, float]]:
    if p is None or not all(math.isfinite(v) for v in p):
        return None
    return (float(p[0]), float(p[1]))


def detect_phases(
    records: Iterable[Record], config: Optional[PhaseConfig] = None, **overrides: Any
) -> Dict[SeriesKey, PhaseDecision]:
    """The latest decision of every series after replaying ``records`` through a :class:`PhaseTracker`.

    Order-free: records are taken in step order, a step measured twice keeps its last Record, and
    only records of one mode are used (``config.mode``, else the mode of the latest record).
    Keyword ``overrides`` (e.g. ``persistence=1``) replace fields of ``config``.
    """
    cfg = config if config is not None else PhaseConfig()
    if overrides:
        cfg = PhaseConfig(**{**asdict(cfg), **overrides})
    recs = list(records)
    if not recs:
        return {}
    if cfg.mode is None:
        cfg = replace(cfg, mode=max(recs, key=lambda r: r.step).mode)
    by_step: Dict[int, Record] = {}
    for r in recs:
        if r.mode == cfg.mode:
            by_step[int(r.step)] = r
    tracker = PhaseTracker(cfg)
    ordered = [by_step[s] for s in sorted(by_step)]
    # Only the last `persistence` decisions reach the latest ones (earlier outcomes leave the
    # persistence window), so the records before them are ingested without deciding.
    first_decided = max(len(ordered) - int(cfg.persistence), 0)
    for i, rec in enumerate(ordered):
        if i < first_decided:
            tracker._ingest(rec)
        else:
            tracker.update(rec)
    return tracker.latest


__all__ = ["CAVEAT_CODES", "PhaseConfig", "PhaseTracker", "detect_phases"]
