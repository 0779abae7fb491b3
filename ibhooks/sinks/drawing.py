"""What a sink that draws figures keeps between measurements: :class:`FigureHistory`, a compact copy of
the run (not its Records), and :func:`draw_figures`, the figures the TensorBoard and W&B sinks log.

A Record carries diagnostics, parameters, messages and every check (tens of KB on a deep model); the
figures read only each estimate's value, interval, cap, saturation and a few labels, the DPI tallies
and violations, and the latest phase decisions. ``FigureHistory`` stores those as per-series arrays
(about 50 bytes per estimate) and rebuilds slim Records for the plotting functions when a figure is
drawn, so a sink's memory grows by a few hundred bytes per measurement, not by a Record.
"""
from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, replace
from typing import Any, Dict, Hashable, List, Mapping, Optional, Sequence, Tuple

from ..schema import QUANTITIES, Checks, Estimate, LayerResult, PhaseDecision, Quantity, Record
from ..schema.phases import SeriesKey, fold_phase_changes

__all__ = ["FigureHistory", "draw_figures", "figure_tag"]

_MAX_TEMPLATES = 8  # distinct measured-quantity labels kept per series (figures show two at most)
_MAX_INTERNED = 4096  # distinct chain / tally tuples shared between records


@dataclass(frozen=True)
class _Meta:
    """Per measurement: what figure titles, the step colour scale and the DPI figure read."""

    step: int
    epoch: Optional[int]
    mode: str
    n_samples: int
    h_y: Optional[float]
    checks: Optional[Checks]


class _Series:
    """One (layer, estimator, quantity): record index, value, interval, cap, saturation per point, and
    the labels (quantity, kind, estimator, params, traits) as a few shared template Estimates."""

    __slots__ = ("rec", "value", "lo", "hi", "cap", "saturated", "template", "templates", "_index")

    def __init__(self) -> None:
        self.rec = array("l")
        self.value, self.lo, self.hi, self.cap = array("d"), array("d"), array("d"), array("d")
        self.saturated = array("b")
        self.template = array("B")
        self.templates: List[Estimate] = []
        self._index: Dict[Hashable, int] = {}

    def append(self, rec_idx: int, e: Estimate) -> None:
        key = (e.quantity, e.kind, e.estimator, e.n, e.dim, e.traits, repr(sorted(e.params.items())))
        idx = self._index.get(key)
        if idx is None:
            if len(self.templates) < _MAX_TEMPLATES:
                idx = self._index[key] = len(self.templates)
                self.templates.append(replace(e, value=math.nan, ci=None, cap=None, saturated=False,
                                              seconds=0.0, diagnostics={}))
            else:
                idx = len(self.templates) - 1
        lo, hi = e.ci if e.ci is not None else (math.nan, math.nan)
        self.rec.append(rec_idx)
        self.value.append(float(e.value))
        self.lo.append(float(lo))
        self.hi.append(float(hi))
        self.cap.append(math.nan if e.cap is None else float(e.cap))
        self.saturated.append(int(bool(e.saturated)))
        self.template.append(idx)

    def estimate(self, i: int) -> Estimate:
        lo, hi, cap = self.lo[i], self.hi[i], self.cap[i]
        return replace(self.templates[self.template[i]], value=self.value[i],
                       ci=None if math.isnan(lo) and math.isnan(hi) else (lo, hi),
                       cap=None if math.isnan(cap) else cap, saturated=bool(self.saturated[i]))

    def nbytes(self) -> int:
        cols = (self.rec, self.value, self.lo, self.hi, self.cap, self.saturated, self.template)
        return sum(c.itemsize * len(c) for c in cols)


class FigureHistory:
    """A compact copy of the run for drawing: per-series arrays, slim checks, the latest phase decisions.

    ``append(record)`` takes what figures need; :meth:`records` rebuilds slim Records (estimates without
    diagnostics, checks with DPI tallies and violations only, no warnings or errors) that
    :func:`ibhooks.plotting.plot_information_plane`, ``plot_layer_curves`` and ``plot_dpi`` draw exactly
    as they would the full ones; :attr:`phases` is the fold of every record's ``phase_changes``.
    """

    def __init__(self) -> None:
        self._meta: List[_Meta] = []
        self._series: Dict[Tuple[str, str, Quantity], _Series] = {}
        self._interned: Dict[Any, Any] = {}
        self.phases: Dict[SeriesKey, PhaseDecision] = {}
        self._analyses: Dict[int, Dict[str, Any]] = {}  # record index -> what figures draw of its analyses

    def __len__(self) -> int:
        return len(self._meta)

    @property
    def last_step(self) -> Optional[int]:
        return self._meta[-1].step if self._meta else None

    @property
    def estimators(self) -> List[str]:
        """Estimator keys in order of first appearance."""
        return list(dict.fromkeys(est for (_, est, _) in self._series))

    @property
    def layers(self) -> List[str]:
        return list(dict.fromkeys(layer for (layer, _, _) in self._series))

    def has_plane(self, estimator: str) -> bool:
        """Whether some layer has both I(X;T) and I(T;Y) under ``estimator`` at a common measurement."""
        for layer in self.layers:
            sx, sy = self._series.get((layer, estimator, Quantity.I_XT)), self._series.get(
                (layer, estimator, Quantity.I_TY))
            if sx is not None and sy is not None and set(sx.rec) & set(sy.rec):
                return True
        return False

    def append(self, record: Record) -> None:
        idx = len(self._meta)
        h_y = record.h_y
        for layer, per_est in record.layers.items():
            for est, res in per_est.items():
                if h_y is None and res.i_ty is not None and res.i_ty.diagnostics.get("H_Y") is not None:
                    h_y = float(res.i_ty.diagnostics["H_Y"])  # the figures' ceiling of I(T;Y)
                for q in QUANTITIES:
                    e = res.get(q)
                    if e is not None:
                        self._series.setdefault((layer, est, q), _Series()).append(idx, e)
        self._meta.append(_Meta(int(record.step), record.epoch, self._intern(record.mode),
                                int(record.n_samples), h_y, self._slim_checks(record.checks)))
        fold_phase_changes(record.phase_changes, into=self.phases)
        slim = self._slim_analyses(record.analyses)
        if slim:
            self._analyses[idx] = slim

    @staticmethod
    def _slim_analyses(analyses: Mapping[str, Any]) -> Dict[str, Any]:
        """Of ``record.analyses``, what each analysis says its figures draw (``Analysis.figure_view``)."""
        from ..analyses.registry import analysis_class

        out: Dict[str, Any] = {}
        for name, result in (analyses.items() if isinstance(analyses, Mapping) else ()):
            cls = analysis_class(name) if isinstance(result, Mapping) else None
            view = cls.figure_view(result) if cls is not None else None
            if view:
                out[name] = view
        return out

    def records(self) -> List[Record]:
        """Slim Records, one per measurement in the order appended."""
        recs = [Record(step=m.step, mode=m.mode, n_samples=m.n_samples, h_y=m.h_y, epoch=m.epoch,
                       checks=m.checks) for m in self._meta]
        for (layer, est, q), s in self._series.items():
            for i, rec_idx in enumerate(s.rec):
                res = recs[rec_idx].layers.setdefault(layer, {}).setdefault(est, LayerResult())
                if q is Quantity.I_XT:
                    res.i_xt = s.estimate(i)
                else:
                    res.i_ty = s.estimate(i)
        for rec_idx, slim in self._analyses.items():
            recs[rec_idx].analyses = {k: dict(v) for k, v in slim.items()}
        return recs

    def last(self, layer: str, estimator: str, quantity: Quantity) -> Optional[float]:
        """The latest value of ``quantity`` for ``layer`` under ``estimator`` (None if never measured)."""
        s = self._series.get((layer, estimator, Quantity.parse(quantity)))
        return float(s.value[-1]) if s is not None and len(s.value) else None

    def peak(self, layer: str, estimator: str, quantity: Quantity) -> Optional[float]:
        """The largest finite value of ``quantity`` for ``layer`` under ``estimator`` (None if none)."""
        s = self._series.get((layer, estimator, Quantity.parse(quantity)))
        vals = [v for v in (s.value if s is not None else ()) if math.isfinite(v)]
        return max(vals) if vals else None

    def plane_rows(self, estimator: str) -> List[List[Any]]:
        """``[step, epoch, layer, estimator, I_XT, I_TY, I_XT_lo, I_XT_hi, I_TY_lo, I_TY_hi]`` of every
        measurement where a layer has both quantities under ``estimator`` (None for a missing interval)."""
        rows: List[Tuple[int, int, List[Any]]] = []
        order = {layer: k for k, layer in enumerate(self.layers)}
        for layer in self.layers:
            sx, sy = self._series.get((layer, estimator, Quantity.I_XT)), self._series.get(
                (layer, estimator, Quantity.I_TY))
            if sx is None or sy is None:
                continue
            at_y = {r: i for i, r in enumerate(sy.rec)}
            for i, r in enumerate(sx.rec):
                j = at_y.get(r)
                if j is None:
                    continue
                m = self._meta[r]
                ci = [_none(c) for c in (sx.lo[i], sx.hi[i], sy.lo[j], sy.hi[j])]
                row = [m.step, m.epoch, layer, estimator, sx.value[i], sy.value[j], *ci]
                rows.append((r, order[layer], row))
        rows.sort(key=lambda t: (t[0], t[1]))
        return [row for _, _, row in rows]

    def nbytes(self) -> int:
        """Bytes held in the per-series arrays (not counting the per-measurement metadata objects)."""
        return sum(s.nbytes() for s in self._series.values())

    def _intern(self, obj: Any) -> Any:
        hit = self._interned.get(obj)
        if hit is not None:
            return hit
        if len(self._interned) < _MAX_INTERNED:
            self._interned[obj] = obj
        return obj

    def _slim_checks(self, checks: Optional[Checks]) -> Optional[Checks]:
        """What the DPI figure reads: chains, tallies and violations (without their messages)."""
        if checks is None:
            return None
        return Checks(
            bounds_checked=checks.bounds_checked,
            dpi_pairs=self._intern(checks.dpi_pairs),
            chains=self._intern(tuple(checks.chains)),
            dpi=self._intern(tuple(checks.dpi)),
            dpi_violations=tuple(replace(v, message="") for v in checks.dpi_violations),
            tol_bits=checks.tol_bits,
            z=checks.z,
        )


def _none(x: float) -> Optional[float]:
    return None if math.isnan(x) else x


def figure_tag(name: str, estimator: str, *, with_estimator: bool, prefix: str = "ib") -> str:
    """``ib/<name>`` with one estimator, ``ib/<estimator>/<name>`` with several."""
    return f"{prefix}/{estimator}/{name}" if with_estimator else f"{prefix}/{name}"


def draw_figures(history: FigureHistory, header: Optional[Mapping[str, Any]], names: Sequence[str]
                 ) -> List[Tuple[str, str, Any]]:
    """Draw the figures ``names`` (of ``"plane"``, ``"curves"``, ``"dpi"``) of every estimator in
    ``history`` as ``[(name, estimator, Figure)]``. The plane is left out for an estimator with no layer
    holding both quantities (no labels); the DPI figure when fewer than two layers were measured. The
    caller closes each figure (:func:`ibhooks.plotting.close_figure`)."""
    from .. import plotting

    if not len(history):
        return []
    recs = history.records()
    out: List[Tuple[str, str, Any]] = []
    for est in history.estimators:
        for name in names:
            if name == "plane" and history.has_plane(est):
                out.append((name, est, plotting.plot_information_plane(recs, estimator=est, header=header)))
            elif name == "curves":
                out.append((name, est, plotting.plot_layer_curves(recs, estimator=est, header=header,
                                                                  phases=history.phases)))
            elif name == "dpi" and len(history.layers) >= 2:
                out.append((name, est, plotting.plot_dpi(recs, estimator=est, header=header)))
    return out
