"""Figures from Records: the information plane, per-layer curves with phases, the DPI along chains,
and an animation of the plane over training.

Everything here reads :class:`~ibhooks.Record` objects (or a run log) only, so the live run and
``ibhooks plot RUN.jsonl`` draw the same figures. matplotlib is imported lazily and only through
:class:`matplotlib.figure.Figure` and the Agg canvas: pyplot is never imported, so the user's
backend and pyplot state are left alone. Returned figures can be saved with ``fig.savefig(...)``.

The data helpers at the top (:func:`layer_series`, :func:`metric_items`, :func:`phase_spans`,
:func:`dpi_violations`, ...) need only numpy; the TensorBoard and W&B sinks use them for their keys.
"""

from __future__ import annotations

import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._optional import require
from .estimate import Estimate, Record

# --------------------------------------------------------------------------------------------------
# Loading and data extraction (no matplotlib)
# --------------------------------------------------------------------------------------------------

QUANTITIES = ("I_XT", "I_TY")
GENERIC_LABELS = {"I_XT": "I(X;T)", "I_TY": "I(T;Y)"}

RunLike = Union[str, "os.PathLike[str]", Any, Sequence[Union[Record, Dict[str, Any]]]]


def as_records(
    run_or_records: RunLike, header: Optional[Dict[str, Any]] = None
) -> Tuple[List[Record], Dict[str, Any]]:
    """Normalise a run log path, a :class:`~ibhooks.runlog.Run`, or a list of Records / record dicts
    into ``(records sorted by step, header)``. The sort is stable, so a resumed run keeps its order."""
    if isinstance(run_or_records, (str, os.PathLike)):
        from .runlog import load_run

        run_or_records = load_run(run_or_records)
    if hasattr(run_or_records, "records") and hasattr(run_or_records, "header"):
        hdr = dict(run_or_records.header)
        if header:
            hdr.update(header)
        recs = list(run_or_records.records)
    else:
        hdr = dict(header or {})
        recs = [r if isinstance(r, Record) else Record.from_dict(r) for r in run_or_records]
    recs.sort(key=lambda r: r.step)
    return recs, hdr


def layer_names(records: Sequence[Record]) -> List[str]:
    """Layers in network order (order of first appearance)."""
    names: List[str] = []
    for rec in records:
        for layer in rec.layers:
            if layer not in names:
                names.append(layer)
    return names


def estimator_names(records: Sequence[Record]) -> List[str]:
    """Estimators in order of first appearance."""
    names: List[str] = []
    for rec in records:
        for name in rec.estimators:
            if name not in names:
                names.append(name)
    return names


def _get(rec: Record, layer: str, estimator: str, quantity: str) -> Optional[Estimate]:
    res = rec.layers.get(layer, {}).get(estimator)
    if res is None:
        return None
    return res.i_xt if quantity == "I_XT" else res.i_ty


@dataclass
class Series:
    """One layer's history of one quantity under one estimator. Arrays are aligned; ``lo``/``hi``
    are NaN where the estimate had no interval."""

    steps: np.ndarray
    value: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    saturated: np.ndarray
    estimates: List[Estimate] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def has_ci(self) -> bool:
        return bool(np.isfinite(self.lo).any())


def layer_series(records: Sequence[Record], layer: str, estimator: str, quantity: str) -> Series:
    """The values of ``quantity`` ("I_XT" / "I_TY") for ``layer`` over the Records (missing ones skipped)."""
    steps, vals, lo, hi, sat, ests = [], [], [], [], [], []
    for rec in records:
        est = _get(rec, layer, estimator, quantity)
        if est is None or est.value is None or not math.isfinite(est.value):
            continue
        steps.append(rec.step)
        vals.append(est.value)
        lo.append(est.ci[0] if est.ci else np.nan)
        hi.append(est.ci[1] if est.ci else np.nan)
        sat.append(bool(est.saturated))
        ests.append(est)
    f = lambda x: np.asarray(x, dtype=float)  # noqa: E731
    return Series(f(steps), f(vals), f(lo), f(hi), np.asarray(sat, dtype=bool), ests)


def _bottom(series: Sequence[Series], top: float, pad: float) -> float:
    """Lower axis limit: 0, or below the lowest value (and interval end) when some are negative (kNN
    estimates near independence, differential entropies such as ``ross``/``ksg``'s h(T))."""
    lows = [float(np.nanmin(np.concatenate([s.value, s.lo[np.isfinite(s.lo)]]))) for s in series if len(s)]
    low = min(lows, default=0.0)
    return 0.0 if low >= 0 else low - pad * max(top - low, 1e-9)


def default_estimator(records: Sequence[Record], estimator: Optional[str] = None) -> str:
    names = estimator_names(records)
    if estimator is None:
        if not names:
            raise ValueError("the records hold no estimates to plot (no layer was measured)")
        return names[0]
    if estimator not in names:
        raise ValueError(
            f"estimator {estimator!r} is not in these records; they hold: {', '.join(names) or 'none'}"
        )
    return estimator


def quantity_label(records: Sequence[Record], estimator: str, quantity: str) -> str:
    """What was actually measured for ``quantity``, from :attr:`Estimate.quantity` (e.g.
    ``"H(bin30[-1,1](T))"``). Several distinct quantities (per-layer reductions) are joined."""
    seen: List[str] = []
    kinds: List[str] = []
    for rec in records:
        for layer in rec.layers:
            est = _get(rec, layer, estimator, quantity)
            if est is not None:
                if est.quantity not in seen:
                    seen.append(est.quantity)
                if est.kind not in kinds:
                    kinds.append(est.kind)
    if not seen:
        return ""
    if len(seen) > 1:  # e.g. the same binning with a range per layer: say so once
        generic = list(dict.fromkeys(re.sub(r"\[[^\]]*\]", "[range per layer]", q) for q in seen))
        if len(generic) == 1:
            seen = generic
    text = seen[0] if len(seen) == 1 else (" | ".join(seen[:2]) + (" | ..." if len(seen) > 2 else ""))
    bounds = [k for k in kinds if k in ("upper_bound", "lower_bound")]
    if bounds and "bound" not in text:
        text += f" ({bounds[0].replace('_', ' ')})"
    return text


def has_plane(records: Sequence[Record], estimator: Optional[str] = None) -> bool:
    """Whether some layer has both I(X;T) and I(T;Y) (under ``estimator``, or any) in some record."""
    for rec in records:
        for per_est in rec.layers.values():
            for name, res in per_est.items():
                if (estimator is None or name == estimator) and res.i_xt is not None and res.i_ty is not None:
                    return True
    return False


def caps(records: Sequence[Record], estimator: str) -> Tuple[Optional[float], Optional[float]]:
    """``(cap of I(X;T), H(Y))``: the largest ``cap`` the estimator reported for I(X;T) (e.g. log2 n),
    and the label entropy (``Record.h_y``, else the I(T;Y) estimates' ``diagnostics["H_Y"]`` or cap)."""
    cx: Optional[float] = None
    hy: Optional[float] = None
    for rec in records:
        if rec.h_y is not None:
            hy = max(hy or 0.0, float(rec.h_y))
        for layer in rec.layers:
            ex = _get(rec, layer, estimator, "I_XT")
            if ex is not None and ex.cap is not None:
                cx = max(cx or 0.0, float(ex.cap))
            if rec.h_y is None:
                ey = _get(rec, layer, estimator, "I_TY")
                if ey is not None:
                    cand = ey.diagnostics.get("H_Y", ey.cap)
                    if cand is not None:
                        hy = max(hy or 0.0, float(cand))
    return cx, hy


def multi_estimator(records: Sequence[Record], header: Optional[Dict[str, Any]] = None) -> bool:
    """Whether metric keys must name the estimator: the header's config lists several, or a record does."""
    cfg = (header or {}).get("config") or {}
    ests = cfg.get("estimators") if isinstance(cfg, dict) else None
    if isinstance(ests, (list, tuple, dict)) and len(ests) > 1:
        return True
    return any(len(rec.estimators) > 1 for rec in records)


def metric_prefix(layer: str, estimator: str, *, with_estimator: bool, prefix: str = "ib") -> str:
    """``ib/<layer>`` with one estimator, ``ib/<estimator>/<layer>`` with several."""
    return f"{prefix}/{estimator}/{layer}" if with_estimator else f"{prefix}/{layer}"


def metric_items(record: Record, *, with_estimator: bool = False, prefix: str = "ib") -> Dict[str, float]:
    """The flat scalars of one Record, the key scheme shared by the TensorBoard and W&B sinks:

    * ``ib/<layer>/I_XT`` and ``ib/<layer>/I_TY`` (bits), ``ib/<estimator>/<layer>/...`` when the run
      uses several estimators;
    * ``.../I_XT_lo`` and ``.../I_XT_hi`` (and for I_TY) where the estimate has an interval;
    * ``ib/H_Y`` (label entropy) and ``ib/seconds`` (wall time of the measurement).
    """
    out: Dict[str, float] = {}
    for layer, per_est in record.layers.items():
        for est_name, res in per_est.items():
            base = metric_prefix(layer, est_name, with_estimator=with_estimator, prefix=prefix)
            for q, est in (("I_XT", res.i_xt), ("I_TY", res.i_ty)):
                if est is None or est.value is None or not math.isfinite(est.value):
                    continue
                out[f"{base}/{q}"] = float(est.value)
                if est.ci is not None:
                    out[f"{base}/{q}_lo"] = float(est.ci[0])
                    out[f"{base}/{q}_hi"] = float(est.ci[1])
    if record.h_y is not None:
        out[f"{prefix}/H_Y"] = float(record.h_y)
    out[f"{prefix}/seconds"] = float(record.seconds)
    return out


# ---- phases ------------------------------------------------------------------------------------

PHASES = ("fitting", "compression")
_PHASE_ALIASES = {
    "fit": "fitting",
    "fitting": "fitting",
    "expansion": "fitting",
    "expanding": "fitting",
    "compression": "compression",
    "compressing": "compression",
    "compress": "compression",
}
#: Phase statuses (from :mod:`ibhooks.phases`) that are drawn; others mean "no phase".
SHOWN_STATUSES = ("detected", "candidate")


@dataclass(frozen=True)
class PhaseSpan:
    """A phase of one layer: ``start``..``end`` in steps (``end`` = last measured step while ongoing)."""

    phase: str
    start: float
    end: float
    status: str = "detected"
    ongoing: bool = False
    info: Dict[str, Any] = field(default_factory=dict, compare=False)


def _norm_phase(label: Any) -> Optional[str]:
    if not isinstance(label, str):
        return None
    label = label.strip().lower()
    return _PHASE_ALIASES.get(label, label)


def _looks_like_phase(d: Dict[str, Any]) -> bool:
    return any(k in d for k in ("status", "start_step", "detected", "label", "state")) or (
        isinstance(d.get("phase"), str)
    )


def phase_entries(rec: Record, layer: str, estimator: Optional[str]) -> List[Any]:
    """The phase entries of ``layer`` in ``rec.phases``: the :func:`ibhooks.phases.detect_phases`
    layout ``{"layers": {layer: {estimator: {phase: {...}}}}}`` and simpler ones
    (``{layer: "fitting"}``, ``{layer: {"phase": ...}}``, without the estimator level) are read."""
    ph = rec.phases or {}
    if not isinstance(ph, dict):
        return []
    table = ph["layers"] if isinstance(ph.get("layers"), dict) else ph
    entry = table.get(layer)
    if entry is None:
        return []
    if isinstance(entry, dict) and not _looks_like_phase(entry):
        keys = set(entry)
        if not keys & set(PHASES) and not keys & set(_PHASE_ALIASES):  # an estimator level
            if estimator is not None and estimator in entry:
                entry = entry[estimator]
            elif estimator is None and entry:
                entry = next(iter(entry.values()))
            else:
                return []
    if isinstance(entry, dict) and not _looks_like_phase(entry):
        return [
            ({**v, "phase": v.get("phase", k)} if isinstance(v, dict) else {"phase": k, "status": v})
            for k, v in entry.items()
        ]
    return [entry]


def phase_at(rec: Record, layer: str, estimator: Optional[str] = None) -> List[str]:
    """The phases (``"fitting"``, ``"compression"``) detected or candidate for ``layer`` at ``rec``."""
    out = []
    for e in phase_entries(rec, layer, estimator):
        if isinstance(e, str):
            label, status = _norm_phase(e), "detected"
        elif isinstance(e, dict):
            label = _norm_phase(e.get("phase") or e.get("label") or e.get("state"))
            status = e.get("status") or ("detected" if e.get("detected", True) else "not_detected")
        else:
            continue
        if label in PHASES and status in SHOWN_STATUSES:
            out.append(label)
    return out


def phase_spans(records: Sequence[Record], layer: str, estimator: Optional[str] = None) -> List[PhaseSpan]:
    """The fitting / compression spans of ``layer``.

    With the :mod:`ibhooks.phases` layout (entries carry ``start_step``/``end_step``/``status``) the
    latest record's decisions are used: they are made over the whole history. Otherwise a span runs
    over consecutive records that carry the same phase label.
    """
    if not records:
        return []
    last_step = float(records[-1].step)
    for rec in reversed(records):
        entries = [e for e in phase_entries(rec, layer, estimator) if isinstance(e, dict)]
        if any("start_step" in e for e in entries):
            spans = []
            for e in entries:
                label = _norm_phase(e.get("phase"))
                status = str(e.get("status") or ("detected" if e.get("detected") else "not_detected"))
                if label not in PHASES or status not in SHOWN_STATUSES or e.get("start_step") is None:
                    continue
                end = e.get("end_step")
                spans.append(
                    PhaseSpan(
                        label,
                        float(e["start_step"]),
                        last_step if end is None else float(end),
                        status,
                        end is None,
                        e,
                    )
                )
            return spans
        if rec.phases:
            break
    spans = []
    open_: Dict[str, float] = {}
    prev_step = None
    for rec in records:
        now = set(phase_at(rec, layer, estimator))
        for label in list(open_):
            if label not in now:
                spans.append(
                    PhaseSpan(
                        label, open_.pop(label), float(prev_step if prev_step is not None else rec.step)
                    )
                )
        for label in now:
            open_.setdefault(label, float(rec.step))
        prev_step = rec.step
    for label, start in open_.items():
        spans.append(PhaseSpan(label, start, last_step, "detected", True))
    return spans


# ---- checks: chains and DPI ----------------------------------------------------------------------


def chains_of(header: Dict[str, Any], records: Sequence[Record] = ()) -> List[Tuple[str, List[str]]]:
    """``[(chain name, [layers in order])]`` from the header's ``"chains"`` (a list of lists, a list of
    ``{"name", "layers"}`` dicts, or a ``{name: layers}`` dict), else from the latest record's
    ``checks["dpi"]["chains"]``. Only measured layers are kept."""
    measured = set(layer_names(records)) if records else None
    raw = header.get("chains") if header else None
    if not raw:
        for rec in reversed(list(records)):
            dpi = (rec.checks or {}).get("dpi") if isinstance(rec.checks, dict) else None
            if isinstance(dpi, dict) and dpi.get("chains"):
                raw = dpi["chains"]
                break
    out: List[Tuple[str, List[str]]] = []
    items: Iterable[Tuple[str, Any]]
    if isinstance(raw, dict):
        items = raw.items()
    elif isinstance(raw, (list, tuple)):
        items = []
        for i, c in enumerate(raw):
            if isinstance(c, dict):
                items.append(
                    (
                        str(c.get("name") or c.get("id") or f"chain {i}"),
                        c.get("layers") or c.get("members") or [],
                    )
                )
            else:
                items.append((f"chain {i}", c))
    else:
        items = []
    for name, layers in items:
        if not isinstance(layers, (list, tuple)):
            continue
        names = [
            lyr if isinstance(lyr, str) else str(lyr.get("name")) if isinstance(lyr, dict) else str(lyr)
            for lyr in layers
        ]
        if measured is not None:
            names = [n for n in names if n in measured]
        if len(names) >= 2:
            out.append((name, names))
    return out


def dpi_violations(record: Record) -> List[Dict[str, Any]]:
    """Cross-layer DPI violations in ``Record.checks["dpi"]["violations"]`` (the layout of
    :func:`ibhooks.checks.check_record`), each a dict with ``chain``, ``estimator``, ``quantity``,
    ``upstream``, ``downstream``, ``size_bits``, ``significant`` (True / False / None = unknown
    uncertainty), ``kind`` and ``message``. Records without checks give an empty list."""
    checks = record.checks if isinstance(record.checks, dict) else {}
    dpi = checks.get("dpi") if isinstance(checks.get("dpi"), dict) else {}
    out = []
    for v in dpi.get("violations") or []:
        if (
            isinstance(v, dict)
            and isinstance(v.get("upstream"), str)
            and isinstance(v.get("downstream"), str)
        ):
            out.append(v)
    return out


def bound_violations(record: Record) -> List[Dict[str, Any]]:
    """Within-layer bound violations in ``Record.checks["bounds"]["violations"]`` (may be empty)."""
    checks = record.checks if isinstance(record.checks, dict) else {}
    bounds = checks.get("bounds") if isinstance(checks.get("bounds"), dict) else {}
    return [v for v in bounds.get("violations") or [] if isinstance(v, dict)]


def dpi_totals(records: Sequence[Record]) -> Dict[Tuple[str, str], Dict[str, int]]:
    """Over the run, per ``(estimator, quantity)``: measurements checked, pairs checked, pairs violated
    (and beyond the uncertainty), measurements with at least one violation."""
    out: Dict[Tuple[str, str], Dict[str, int]] = {}
    for rec in records:
        checks = rec.checks if isinstance(rec.checks, dict) else {}
        dpi = checks.get("dpi") if isinstance(checks.get("dpi"), dict) else {}
        summary = dpi.get("summary") if isinstance(dpi.get("summary"), dict) else {}
        for est, per_q in summary.items():
            for q, cell in (per_q or {}).items():
                if not isinstance(cell, dict) or not cell.get("pairs_checked"):
                    continue
                t = out.setdefault(
                    (est, q),
                    {
                        "measurements": 0,
                        "pairs_checked": 0,
                        "violated": 0,
                        "significant": 0,
                        "measurements_violated": 0,
                    },
                )
                t["measurements"] += 1
                t["pairs_checked"] += int(cell.get("pairs_checked", 0))
                t["violated"] += int(cell.get("violated", 0))
                t["significant"] += int(cell.get("significant", 0))
                t["measurements_violated"] += int(cell.get("violated", 0) > 0)
    return out


def warnings_summary(records: Sequence[Record]) -> List[Dict[str, Any]]:
    """Artefact warnings deduplicated by (layer, code): message, count, first and last step."""
    seen: Dict[Tuple[Any, ...], Dict[str, Any]] = {}
    for rec in records:
        for w in rec.warnings or []:
            if not isinstance(w, dict):
                w = {"message": str(w)}
            key = (w.get("layer"), w.get("code"), w.get("estimator"), w.get("quantity"))
            if key not in seen:
                seen[key] = {**w, "count": 0, "first_step": rec.step, "last_step": rec.step}
            ent = seen[key]
            ent["count"] += 1
            ent["last_step"] = rec.step
            ent["message"] = w.get("message", ent.get("message"))
    return list(seen.values())


# --------------------------------------------------------------------------------------------------
# matplotlib plumbing
# --------------------------------------------------------------------------------------------------

#: Okabe–Ito colours (distinguishable under the common colour-vision deficiencies).
LAYER_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
LAYER_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "h", "<", ">", "p", "*"]
PHASE_COLORS = {"fitting": "#9ecae1", "compression": "#fdae6b"}
STEP_CMAP = "viridis"
_STEP_CMAP_RANGE = (0.0, 0.9)  # viridis without its palest yellows, which vanish on white

_RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9.5,
    "legend.fontsize": 8,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.6,
    "axes.linewidth": 0.8,
    "lines.linewidth": 1.4,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
}


def _mpl() -> Any:
    return require("matplotlib", purpose="ibhooks figures")


@contextmanager
def _style() -> Iterator[None]:
    mpl = _mpl()
    with mpl.rc_context(_RC):
        yield


def _new_figure(figsize: Tuple[float, float]) -> Any:
    """A Figure on an Agg canvas, never registered with pyplot."""
    _mpl()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def close_figure(fig: Any) -> None:
    """Release a figure: clear it and, if pyplot happens to manage it, close it there too."""
    import sys

    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            plt.close(fig)
        except Exception:  # pragma: no cover - pyplot without a usable backend
            pass
    fig.clear()


def figure_to_png(fig: Any, *, dpi: int = 150) -> bytes:
    """The figure as PNG bytes (deterministic: no timestamp in the metadata)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def figure_to_array(fig: Any, *, dpi: int = 100) -> np.ndarray:
    """The figure rendered as an (H, W, 3) uint8 array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def _step_cmap() -> Any:
    from matplotlib.colors import ListedColormap

    base = _mpl().colormaps[STEP_CMAP]
    return ListedColormap(base(np.linspace(*_STEP_CMAP_RANGE, 256)), name="ibhooks_steps")


def _step_norm(steps: Sequence[float]) -> Any:
    from matplotlib.colors import LogNorm

    """Log colour scale over the positive steps; step 0 takes the colour of the smallest one, and a
    single distinct step gets a decade of range so the colorbar is readable."""
    pos = [s for s in steps if s > 0]
    vmin = min(pos) if pos else 1.0
    vmax = max(pos) if pos else 1.0
    if vmax <= vmin:
        vmax = vmin * 10.0
    return LogNorm(vmin=vmin, vmax=vmax, clip=True)


def _layer_style(i: int) -> Tuple[str, str]:
    return LAYER_COLORS[i % len(LAYER_COLORS)], LAYER_MARKERS[i % len(LAYER_MARKERS)]


def fmt_bits(x: float) -> str:
    return f"{x:.3g} bit" if abs(x - 1) < 1e-9 else f"{x:.3g} bits"


def _short(name: str, width: int = 22) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]


# --------------------------------------------------------------------------------------------------
# The information plane
# --------------------------------------------------------------------------------------------------


@dataclass
class _PlaneFrame:
    """Fixed decorations of a plane, shared by the static figure and every animation frame."""

    layers: List[str]
    estimator: str
    norm: Any
    xcap: Optional[float]
    hy: Optional[float]
    xlim: Tuple[float, float]
    ylim: Tuple[float, float]
    xlabel: str
    ylabel: str


def _plane_frame(records: Sequence[Record], estimator: str, layers: Optional[Sequence[str]]) -> _PlaneFrame:
    layers = list(layers) if layers else layer_names(records)
    xcap, hy = caps(records, estimator)
    xmax = ymax = 0.0
    for layer in layers:
        sx = layer_series(records, layer, estimator, "I_XT")
        sy = layer_series(records, layer, estimator, "I_TY")
        if len(sx):
            xmax = max(xmax, float(np.nanmax(np.concatenate([sx.value, sx.hi[np.isfinite(sx.hi)]]))))
        if len(sy):
            ymax = max(ymax, float(np.nanmax(np.concatenate([sy.value, sy.hi[np.isfinite(sy.hi)]]))))
    xtop = max(xmax, xcap or 0.0) * 1.06 or 1.0
    ytop = max(ymax, hy or 0.0) * 1.08 or 1.0
    xbottom = _bottom([layer_series(records, lyr, estimator, "I_XT") for lyr in layers], xtop, 0.06)
    ybottom = _bottom([layer_series(records, lyr, estimator, "I_TY") for lyr in layers], ytop, 0.08)
    qx = quantity_label(records, estimator, "I_XT")
    qy = quantity_label(records, estimator, "I_TY")
    xlabel = "I(X;T) [bits]" + (f"\nmeasured: {_wrap(qx, 70)}" if qx else "")
    ylabel = "I(T;Y) [bits]" + (f"\nmeasured: {_wrap(qy, 55)}" if qy else "")
    return _PlaneFrame(
        layers=layers,
        estimator=estimator,
        norm=_step_norm([r.step for r in records]),
        xcap=xcap,
        hy=hy,
        xlim=(xbottom, xtop),
        ylim=(ybottom, ytop),
        xlabel=xlabel,
        ylabel=ylabel,
    )


def _draw_plane(
    ax: Any,
    records: Sequence[Record],
    frame: _PlaneFrame,
    *,
    highlight_last: bool = False,
    legend: str = "outside",
) -> Any:
    """Draw trajectories on ``ax``; returns the scatter mappable for a colorbar. ``legend`` is
    ``"outside"`` (a row above the axes, never over data), ``"inside"`` (best spot) or ``"none"``."""
    from matplotlib.lines import Line2D

    mappable = None
    handles = []
    cmap = _step_cmap()
    any_sat = False
    for i, layer in enumerate(frame.layers):
        color, marker = _layer_style(i)
        sx = layer_series(records, layer, frame.estimator, "I_XT")
        sy = layer_series(records, layer, frame.estimator, "I_TY")
        common = np.intersect1d(sx.steps, sy.steps)
        if not len(common):
            continue
        ix = np.searchsorted(sx.steps, common)
        iy = np.searchsorted(sy.steps, common)
        # with duplicate steps (resumes) searchsorted picks the first; fine for drawing
        x, y = sx.value[ix], sy.value[iy]
        ax.plot(x, y, "-", color=color, lw=1.0, alpha=0.55, zorder=2, label=None, gid=f"traj:{layer}")
        xerr = _err(x, sx.lo[ix], sx.hi[ix])
        yerr = _err(y, sy.lo[iy], sy.hi[iy])
        if xerr is not None or yerr is not None:
            ax.errorbar(
                x,
                y,
                xerr=xerr,
                yerr=yerr,
                fmt="none",
                ecolor=color,
                elinewidth=0.6,
                alpha=0.45,
                capsize=0,
                zorder=1.5,
            )
        mappable = ax.scatter(
            x,
            y,
            c=np.maximum(common, frame.norm.vmin),
            cmap=cmap,
            norm=frame.norm,
            marker=marker,
            s=26,
            edgecolors=color,
            linewidths=0.7,
            zorder=3,
        )
        sat = sx.saturated[ix]
        if sat.any():
            any_sat = True
            ax.scatter(
                x[sat],
                y[sat],
                marker="o",
                s=64,
                facecolors="none",
                edgecolors="#B22222",
                linewidths=0.8,
                zorder=2.8,
            )
        if highlight_last:
            ax.scatter(
                x[-1:],
                y[-1:],
                marker=marker,
                s=90,
                c=[cmap(frame.norm(max(common[-1], frame.norm.vmin)))],
                edgecolors="black",
                linewidths=1.2,
                zorder=5,
            )
        handles.append(
            Line2D(
                [],
                [],
                color=color,
                marker=marker,
                markerfacecolor="white",
                markeredgecolor=color,
                lw=1.0,
                label=_short(layer),
            )
        )
    if frame.xcap is not None:
        ax.axvline(frame.xcap, color="0.35", ls="--", lw=0.9, zorder=1)
        ax.annotate(
            f"log$_2$ n = {fmt_bits(frame.xcap)}",
            xy=(frame.xcap, 0.02),
            xycoords=("data", "axes fraction"),
            xytext=(3, 0),
            textcoords="offset points",
            rotation=90,
            ha="left",
            va="bottom",
            fontsize=7.5,
            color="0.3",
        )
    if frame.hy is not None:
        ax.axhline(frame.hy, color="0.35", ls=":", lw=0.9, zorder=1)
        ax.annotate(
            f"H(Y) = {fmt_bits(frame.hy)}",
            xy=(0.01, frame.hy),
            xycoords=("axes fraction", "data"),
            xytext=(0, 3),
            textcoords="offset points",
            ha="left",
            va="bottom",
            fontsize=7.5,
            color="0.3",
        )
    ax.set_xlim(*frame.xlim)
    ax.set_ylim(*frame.ylim)
    ax.set_xlabel(frame.xlabel)
    ax.set_ylabel(frame.ylabel)
    if legend != "none" and handles:
        if any_sat:
            handles.append(
                Line2D(
                    [],
                    [],
                    ls="none",
                    marker="o",
                    markersize=8,
                    markerfacecolor="none",
                    markeredgecolor="#B22222",
                    label="I(X;T) at cap",
                )
            )
        if legend == "outside":
            ax.legend(
                handles=handles,
                loc="lower left",
                bbox_to_anchor=(0.0, 1.01, 1.0, 0.1),
                mode="expand",
                ncols=min(len(handles), 4),
                frameon=False,
                borderaxespad=0.0,
                handlelength=1.8,
                title="layer",
                title_fontsize=8,
                alignment="left",
            )
        else:
            ax.legend(
                handles=handles,
                loc="best",
                frameon=True,
                framealpha=0.85,
                edgecolor="0.8",
                borderpad=0.4,
                handlelength=1.8,
            )
    return mappable


def _err(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Optional[np.ndarray]:
    if not np.isfinite(lo).any():
        return None
    lo = np.where(np.isfinite(lo), lo, v)
    hi = np.where(np.isfinite(hi), hi, v)
    return np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])


def _title(records: Sequence[Record], estimator: str, what: str) -> str:
    n = records[-1].n_samples if records else 0
    mode = records[-1].mode if records else ""
    bits = [what, estimator]
    if n:
        bits.append(f"n = {n}")
    if mode:
        bits.append(f"{mode} mode")
    return " · ".join(bits)


def plot_information_plane(
    records: RunLike,
    *,
    estimator: Optional[str] = None,
    layers: Optional[Sequence[str]] = None,
    ax: Any = None,
    header: Optional[Dict[str, Any]] = None,
    title: Optional[str] = None,
) -> Any:
    """The information plane: x = I(X;T), y = I(T;Y), one trajectory per layer, points coloured by
    training step (log scale, colorbar), CI whiskers where the estimates have intervals, the
    estimator's cap on I(X;T) (log2 n) as a dashed vertical line and H(Y) as a dotted horizontal
    line; points at the cap are ringed. Axis labels name the quantity actually measured.

    Args:
        records: Records, a :class:`~ibhooks.runlog.Run` or a run-log path.
        estimator: Which estimator to draw (default: the first one in the records).
        layers: Subset and order of layers (default: all, in network order).
        ax: Draw into this Axes instead of a new figure.

    Returns:
        The :class:`matplotlib.figure.Figure`.
    """
    recs, _ = as_records(records, header)
    estimator = default_estimator(recs, estimator)
    with _style():
        own = ax is None
        if own:
            fig = _new_figure((6.0, 5.0))
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        frame = _plane_frame(recs, estimator, layers)
        mappable = _draw_plane(ax, recs, frame, legend="outside" if own else "inside")
        if mappable is not None:
            cb = fig.colorbar(mappable, ax=ax, pad=0.02, aspect=30)
            cb.set_label("training step (log scale)")
        else:
            ax.text(
                0.5,
                0.5,
                "No layer has both I(X;T) and I(T;Y)\n(no labels were given?): nothing to place "
                "on the plane.\nSee the layer curves for I(X;T).",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=9,
                color="0.35",
            )
        text = title if title is not None else _title(recs, estimator, "Information plane")
        fig.suptitle(text) if own else ax.set_title(text)
    return fig


# --------------------------------------------------------------------------------------------------
# Per-layer curves over training, with phases
# --------------------------------------------------------------------------------------------------


def _wrap(text: str, width: int) -> str:
    """Break a long measured-quantity label over lines so it stays inside the figure."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text


def _log_x(ax: Any, steps: Sequence[float]) -> None:
    if any(s > 0 for s in steps):
        if any(s <= 0 for s in steps):
            ax.set_xscale("symlog", linthresh=1.0, linscale=0.3)
            ax.set_xlim(left=0)  # steps are never negative: no empty negative half-axis
        else:
            ax.set_xscale("log")


def plot_layer_curves(
    records: RunLike,
    *,
    estimator: Optional[str] = None,
    layers: Optional[Sequence[str]] = None,
    header: Optional[Dict[str, Any]] = None,
) -> Any:
    """I(X;T) and I(T;Y) of every layer over training steps (log x axis), with CI bands and caps, and
    below them one strip per layer shading the fitting / compression phases from ``Record.phases``
    (no strip when the records hold no phase decisions).

    Returns:
        The :class:`matplotlib.figure.Figure`.
    """
    recs, _ = as_records(records, header)
    estimator = default_estimator(recs, estimator)
    layers = list(layers) if layers else layer_names(recs)
    spans = {layer: phase_spans(recs, layer, estimator) for layer in layers}
    has_phases = any(spans.values())
    steps = [r.step for r in recs]
    xcap, hy = caps(recs, estimator)
    with _style():
        strip_h = 0.18 * len(layers) + 0.25 if has_phases else 0.0
        fig = _new_figure((6.4, 5.2 + strip_h))
        ratios = [1.0, 1.0] + ([max(0.12 * len(layers), 0.25)] if has_phases else [])
        gs = fig.add_gridspec(len(ratios), 1, height_ratios=ratios)
        ax_x = fig.add_subplot(gs[0])
        ax_y = fig.add_subplot(gs[1], sharex=ax_x)
        for ax, q, cap, cap_label in ((ax_x, "I_XT", xcap, "log$_2$ n"), (ax_y, "I_TY", hy, "H(Y)")):
            for i, layer in enumerate(layers):
                color, marker = _layer_style(i)
                s = layer_series(recs, layer, estimator, q)
                if not len(s):
                    continue
                xs = s.steps
                ax.plot(
                    xs,
                    s.value,
                    "-",
                    color=color,
                    marker=marker,
                    ms=3.2,
                    lw=1.3,
                    label=_short(layer),
                    gid=f"{q}:{layer}",
                )
                if s.has_ci:
                    ok = np.isfinite(s.lo)
                    ax.fill_between(xs[ok], s.lo[ok], s.hi[ok], color=color, alpha=0.18, lw=0)
            if cap is not None:
                ax.axhline(cap, color="0.35", ls="--" if q == "I_XT" else ":", lw=0.9)
                ax.annotate(
                    f"{cap_label} = {fmt_bits(cap)}",
                    xy=(0.99, cap),
                    xycoords=("axes fraction", "data"),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="right",
                    va="bottom",
                    fontsize=7.5,
                    color="0.3",
                )
            top = max(
                [cap or 0.0]
                + [
                    float(np.nanmax(layer_series(recs, lyr, estimator, q).value))
                    for lyr in layers
                    if len(layer_series(recs, lyr, estimator, q))
                ]
            )
            top = top * 1.1 or 1.0
            ax.set_ylim(_bottom([layer_series(recs, lyr, estimator, q) for lyr in layers], top, 0.1), top)
            label = quantity_label(recs, estimator, q)
            ax.set_ylabel(f"{GENERIC_LABELS[q]} [bits]" + (f"\n{_wrap(label, 40)}" if label else ""))
        _log_x(ax_x, steps)
        ax_x.tick_params(labelbottom=False)
        ax_x.legend(
            loc="best",
            ncols=min(3, max(1, len(layers))),
            title="layer",
            title_fontsize=8,
            framealpha=0.85,
            edgecolor="0.8",
        )
        ax_x.set_title(_title(recs, estimator, "Layer information over training"))
        if has_phases:
            ax_p = fig.add_subplot(gs[2], sharex=ax_x)
            ax_y.tick_params(labelbottom=False)
            handles = _draw_phase_strip(ax_p, layers, spans, steps)
            ax_p.set_xlabel("training step")
            fig.legend(
                handles=handles,
                loc="outside lower center",
                ncols=2,
                frameon=False,
                fontsize=7.5,
                handlelength=1.4,
                columnspacing=1.2,
            )
        else:
            ax_y.set_xlabel("training step")
    return fig


def _draw_phase_strip(
    ax: Any, layers: Sequence[str], spans: Dict[str, List[PhaseSpan]], steps: Sequence[float]
) -> List[Any]:
    """One row per layer, split in two lanes: fitting (upper) and compression (lower). Detected
    phases are filled, candidates (not yet persistent) hatched; an ongoing phase ends in an arrow.
    Returns legend handles."""
    from matplotlib.patches import Patch

    ax.grid(False)
    pos_steps = [s for s in steps if s > 0]
    log_only = not any(s <= 0 for s in steps)  # a pure log axis cannot show step 0
    tiny = min(pos_steps) * 0.5 if pos_steps else 0.5
    for row, layer in enumerate(layers):
        y0 = len(layers) - 1 - row
        ax.axhline(y0 - 0.5, color="0.85", lw=0.5)
        for sp in spans.get(layer, []):
            lane = y0 + (0.2 if sp.phase == "fitting" else -0.2)
            color = PHASE_COLORS.get(sp.phase, "#d9d9d9")
            start = sp.start if (sp.start > 0 or not log_only) else tiny
            end = max(sp.end, start * 1.15, start + 0.5)
            detected = sp.status == "detected"
            ax.barh(
                lane,
                end - start,
                left=start,
                height=0.36,
                color=color if detected else "white",
                edgecolor=color if not detected else "white",
                hatch=None if detected else "////",
                linewidth=0.8,
            )
            if sp.ongoing:
                ax.annotate(
                    "",
                    xy=(end * 1.25, lane),
                    xytext=(end, lane),
                    arrowprops=dict(arrowstyle="-|>", color=color, lw=1.2, shrinkA=0, shrinkB=0),
                )
    ax.set_yticks(range(len(layers)), [_short(layer, 16) for layer in reversed(layers)])
    ax.set_ylim(-0.55, len(layers) - 0.45)
    ax.tick_params(axis="y", length=0)
    for side in ("left", "top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_ylabel("phases")
    handles = [
        Patch(facecolor=PHASE_COLORS["fitting"], label="fitting: I(T;Y) rises (upper lane)"),
        Patch(facecolor=PHASE_COLORS["compression"], label="compression: I(X;T) falls (lower lane)"),
        Patch(facecolor="white", edgecolor="0.45", hatch="////", label="candidate (not yet persistent)"),
    ]
    return handles


# --------------------------------------------------------------------------------------------------
# DPI along chains
# --------------------------------------------------------------------------------------------------


def _pick_steps(records: Sequence[Record], k: int) -> List[int]:
    """Indices of up to ``k`` records spread log-evenly over the run (first and last included)."""
    n = len(records)
    if n <= k:
        return list(range(n))
    steps = np.array([max(r.step, 0) for r in records], dtype=float) + 1.0
    targets = np.geomspace(steps[0], steps[-1], k)
    idx = sorted({int(np.argmin(np.abs(np.log(steps) - np.log(t)))) for t in targets} | {0, n - 1})
    return idx


def _dpi_checked(rec: Record, chain: str, estimator: str, quantity: str) -> bool:
    """Whether ``rec.checks`` holds a DPI check of ``chain`` for ``estimator`` and ``quantity``."""
    dpi = rec.checks.get("dpi") if isinstance(rec.checks, dict) else None
    if not isinstance(dpi, dict):
        return False
    names = [c.get("name") for c in dpi.get("chains") or [] if isinstance(c, dict)]
    if names and chain not in names:
        return False
    cell = ((dpi.get("summary") or {}).get(estimator) or {}).get(quantity)
    return bool(cell.get("pairs_checked")) if isinstance(cell, dict) else bool(names)


def plot_dpi(
    records: RunLike,
    *,
    header: Optional[Dict[str, Any]] = None,
    estimator: Optional[str] = None,
    n_steps: int = 4,
) -> Any:
    """The data-processing inequality along each chain: I(X;T) and I(T;Y) against layer position at
    a few steps spread over training (colour = step). Points where ``Record.checks`` reports a DPI
    violation are marked with a red cross (filled: beyond the estimates' uncertainty), and each
    panel states how many measurements had violations. Without chains in the header, the layers in
    network order are drawn and the title says that the DPI need not hold between them.

    Returns:
        The :class:`matplotlib.figure.Figure`.
    """
    recs, hdr = as_records(records, header)
    estimator = default_estimator(recs, estimator)
    chains = chains_of(hdr, recs)
    declared = bool(chains)
    if not chains:
        chains = [("layers in network order (no chain detected: the DPI need not hold)", layer_names(recs))]
    picks = _pick_steps(recs, n_steps)
    norm = _step_norm([r.step for r in recs])
    viols = [[v for v in dpi_violations(r) if v.get("estimator") in (None, estimator)] for r in recs]
    xcap, hy = caps(recs, estimator)
    with _style():
        from matplotlib.lines import Line2D

        cmap = _step_cmap()
        longest = max(len(c[1]) for c in chains)
        width = max(7.5, min(12.0, 3.0 + 1.1 * longest))
        fig = _new_figure((width, 2.8 * len(chains) + 0.6))
        axes = fig.subplots(len(chains), 2, squeeze=False)
        for row, (cname, members) in enumerate(chains):
            pos = np.arange(len(members))
            for col, q in enumerate(QUANTITIES):
                ax = axes[row][col]
                cap = xcap if q == "I_XT" else hy
                for j in picks:
                    rec = recs[j]
                    ests = [_get(rec, m, estimator, q) for m in members]
                    vals = np.array([np.nan if e is None else e.value for e in ests], dtype=float)
                    lo = np.array(
                        [np.nan if e is None or e.ci is None else e.ci[0] for e in ests], dtype=float
                    )
                    hi = np.array(
                        [np.nan if e is None or e.ci is None else e.ci[1] for e in ests], dtype=float
                    )
                    color = cmap(norm(max(rec.step, norm.vmin)))
                    ax.plot(
                        pos,
                        vals,
                        "-o",
                        color=color,
                        ms=4,
                        lw=1.3,
                        label=f"step {rec.step}",
                        gid=f"dpi:{q}:{rec.step}",
                    )
                    err = _err(vals, lo, hi)
                    if err is not None:
                        ax.errorbar(pos, vals, yerr=err, fmt="none", ecolor=color, elinewidth=0.8, capsize=2)
                    for v in viols[j]:
                        if v["quantity"] not in (q, None) or v["downstream"] not in members:
                            continue
                        k = members.index(v["downstream"])
                        filled = bool(v.get("significant"))
                        ax.plot(
                            pos[k],
                            vals[k],
                            marker="X",
                            ms=9,
                            ls="none",
                            markerfacecolor="#D62728" if filled else "none",
                            markeredgecolor="#D62728",
                            markeredgewidth=1.3,
                            zorder=5,
                        )
                if cap is not None:
                    ax.axhline(cap, color="0.35", ls="--" if q == "I_XT" else ":", lw=0.9)
                    ax.annotate(
                        ("log$_2$ n = " if q == "I_XT" else "H(Y) = ") + fmt_bits(cap),
                        xy=(0.99, cap),
                        xycoords=("axes fraction", "data"),
                        xytext=(0, 2),
                        textcoords="offset points",
                        ha="right",
                        va="bottom",
                        fontsize=7.5,
                        color="0.3",
                    )
                hits = [
                    [v for v in vs if v["quantity"] in (q, None) and v["downstream"] in members]
                    for vs in viols
                ]
                n_bad = sum(1 for vs in hits if vs)
                n_sig = sum(1 for vs in hits if any(v.get("significant") for v in vs))
                n_checked = sum(1 for r in recs if _dpi_checked(r, cname, estimator, q))
                tilt = len(members) > 4 and max(len(m) for m in members) > 4
                ax.set_xticks(
                    pos,
                    [_short(m, 14) for m in members],
                    rotation=30 if tilt else 0,
                    ha="right" if tilt else "center",
                )
                ax.set_xlim(-0.3, len(members) - 0.7)
                ax.set_ylabel(f"{GENERIC_LABELS[q]} [bits]")
                top = max(
                    [cap or 0.0]
                    + [
                        float(np.nanmax(layer_series(recs, m, estimator, q).value))
                        for m in members
                        if len(layer_series(recs, m, estimator, q))
                    ]
                )
                top = top * 1.12 or 1.0
                ax.set_ylim(_bottom([layer_series(recs, m, estimator, q) for m in members], top, 0.12), top)
                if declared:
                    if n_checked == 0:
                        sub = "not checked (no DPI checks in the records)"
                    else:
                        sub = f"DPI violated at {n_bad} of {n_checked} checked steps"
                        n_unknown = sum(
                            1 for vs in hits
                            if vs and not any(v.get("significant") for v in vs)
                            and all(v.get("significant") is None for v in vs)
                        )
                        if n_bad:
                            sub += f", {n_sig} significant"
                            if n_unknown:
                                sub += f", {n_unknown} not assessed (no uncertainty)"
                    ax.set_title(f"{GENERIC_LABELS[q]} along chain '{_short(cname, 24)}'\n{sub}", fontsize=9)
                else:
                    ax.set_title(GENERIC_LABELS[q], fontsize=9)
        handles = [
            Line2D(
                [],
                [],
                color=cmap(norm(max(recs[j].step, norm.vmin))),
                marker="o",
                ms=4,
                label=f"step {recs[j].step}",
            )
            for j in picks
        ]
        handles += [
            Line2D(
                [],
                [],
                ls="none",
                marker="X",
                ms=8,
                markerfacecolor="#D62728",
                markeredgecolor="#D62728",
                label="DPI violation (significant)",
            ),
            Line2D(
                [],
                [],
                ls="none",
                marker="X",
                ms=8,
                markerfacecolor="none",
                markeredgecolor="#D62728",
                label="DPI violation (within uncertainty)",
            ),
        ]
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=min(len(handles), 6),
            frameon=False,
            handlelength=1.6,
            columnspacing=1.2,
        )
        suptitle = _title(recs, estimator, "Data-processing inequality")
        if not declared:
            suptitle += "\n" + chains[0][0]
        fig.suptitle(suptitle, fontsize=10)
    return fig


# --------------------------------------------------------------------------------------------------
# Animation
# --------------------------------------------------------------------------------------------------


def animate_plane(
    records: RunLike,
    path: Union[str, "os.PathLike[str]"],
    *,
    estimator: Optional[str] = None,
    header: Optional[Dict[str, Any]] = None,
    fps: int = 4,
    max_frames: int = 60,
    dpi: int = 100,
) -> Path:
    """Write a GIF of the information plane over training (one frame per measurement, at most
    ``max_frames`` evenly chosen, the last always included) with matplotlib's PillowWriter.
    Axes, caps and the step colour scale are fixed across frames.

    Returns:
        The path written.
    """
    from matplotlib.animation import PillowWriter

    recs, _ = as_records(records, header)
    estimator = default_estimator(recs, estimator)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(recs)
    idx = sorted(set(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int).tolist()))
    with _style():
        fig = _new_figure((6.0, 5.0))
        ax = fig.add_subplot()
        frame = _plane_frame(recs, estimator, None)
        # lay the figure out once with all the data (the fullest legend, a 2-line title), then freeze
        # the layout: frames only redraw the axes content, which is much faster
        mappable = _draw_plane(ax, recs, frame, highlight_last=True)
        if mappable is not None:
            fig.colorbar(mappable, ax=ax, pad=0.02, aspect=30).set_label("training step (log scale)")
        fig.suptitle(_title(recs, estimator, "Information plane") + "\nstep")
        fig.canvas.draw()
        fig.set_layout_engine("none")
        writer = PillowWriter(fps=fps)
        with writer.saving(fig, str(path), dpi=dpi):
            for i in idx:
                ax.clear()
                _draw_plane(ax, recs[: i + 1], frame, highlight_last=True)
                rec = recs[i]
                fig.suptitle(
                    _title(recs, estimator, "Information plane")
                    + f"\nstep {rec.step}"
                    + (f" (epoch {rec.epoch})" if rec.epoch is not None else "")
                )
                writer.grab_frame()
    close_figure(fig)
    return path


# --------------------------------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


def make_figures(run_or_records: RunLike, *, header: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Every static figure as ``{name: Figure}``: ``information_plane`` (one per estimator, suffixed
    ``_<estimator>`` when there are several), ``layer_curves`` (likewise) and ``dpi`` (when at least
    two layers were measured)."""
    recs, hdr = as_records(run_or_records, header)
    if not recs or not estimator_names(recs):
        raise ValueError("the run has no measurements to plot yet")
    ests = estimator_names(recs)
    figs: Dict[str, Any] = {}
    for est in ests:
        suffix = "" if len(ests) == 1 else f"_{_slug(est)}"
        figs[f"information_plane{suffix}"] = plot_information_plane(recs, estimator=est, header=hdr)
        figs[f"layer_curves{suffix}"] = plot_layer_curves(recs, estimator=est, header=hdr)
    if len(layer_names(recs)) >= 2:
        figs["dpi"] = plot_dpi(recs, header=hdr, estimator=ests[0])
    return figs


def save_all_figures(
    run_or_records: RunLike,
    out_dir: Union[str, "os.PathLike[str]"],
    *,
    header: Optional[Dict[str, Any]] = None,
    formats: Sequence[str] = ("png",),
    dpi: int = 200,
    animation: bool = True,
) -> Dict[str, Path]:
    """Draw every figure (see :func:`make_figures`) plus the plane animation and save them in
    ``out_dir``. Used by the live run and by ``ibhooks plot``, so both give the same files.

    Returns:
        ``{name: path}``; with several formats the extra ones are keyed ``<name>.<fmt>``.
    """
    recs, hdr = as_records(run_or_records, header)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: Dict[str, Path] = {}
    for name, fig in make_figures(recs, header=hdr).items():
        for k, fmt in enumerate(formats):
            p = out / f"{name}.{fmt}"
            meta = {"Software": None} if fmt == "png" else {}
            fig.savefig(p, format=fmt, dpi=dpi, metadata=meta)
            paths[name if k == 0 else f"{name}.{fmt}"] = p
        close_figure(fig)
    if animation and len(recs) >= 2:
        paths["information_plane_animation"] = animate_plane(recs, out / "information_plane.gif", header=hdr, dpi=80)
    return paths
