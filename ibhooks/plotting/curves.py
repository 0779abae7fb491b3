"""Per-layer I(X;T) and I(T;Y) over training, with a strip of phase lanes (fitting / compression), and
where the run log holds ``analyses["calibration"]`` (:mod:`ibhooks.analyses.calibration`) a hatched
band value +- |calibration error| per layer and a red ring where that error was flagged large.

The band is symmetric on purpose: the calibration error is measured on a synthetic twin (or, for a
noise-based I(X;T), directly on the rows) and its sign need not carry over to the real layer
(benchmarks/calibration.py measures how often it does), so the figure shows its size, not a
corrected value. Records carry the signed error for readers who want the shifted value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..schema import QUANTITIES, PhaseStatus, Quantity, Record
from .findings import Phases, PhaseSpan, latest_phases, phase_spans
from .queries import RunLike, as_records, caps, default_estimator, layer_names, layer_series, quantity_label
from .style import (
    PHASE_COLORS,
    VIOLATION_COLOR,
    cap_line,
    figure_title,
    layer_style,
    log_x,
    measured_caption,
    new_figure,
    short,
    style,
    value_limits,
)

PHASE_LEGEND = (
    ("fitting", "fitting: I(T;Y) rises (upper lane)"),
    ("compression", "compression: I(X;T) falls (lower lane)"),
)


#: Caption text of the calibration band (added under the figure when a band is drawn).
CALIBRATION_CAPTION = ("hatched band = value +- |error of the same estimator on a Gaussian twin of the layer "
                       "with known truth| (direct Monte Carlo for a noise-based I(X;T)); red ring = error "
                       "flagged large")


@dataclass
class CalibrationSeries:
    """One layer's calibration of one quantity under one estimator, aligned by measurement.

    Attributes:
        steps, value: Steps and the real estimates (bits) at the calibrated measurements.
        error: Signed calibration error (estimate - truth on the twin, or on the rows), bits.
        large: Whether each error was flagged large.
    """

    steps: np.ndarray
    value: np.ndarray
    error: np.ndarray
    large: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


def calibration_entry(record: Record, layer: str, estimator: str,
                      quantity: Quantity) -> Optional[Mapping[str, Any]]:
    """``record.analyses["calibration"]["layers"][layer][estimator][quantity]`` when it holds an error."""
    cal = record.analyses.get("calibration") if isinstance(record.analyses, Mapping) else None
    try:
        entry = cal["layers"][layer][estimator][quantity.value]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    ok = isinstance(entry, Mapping) and isinstance(entry.get("error"), (int, float))
    return entry if ok and math.isfinite(entry["error"]) else None


def calibration_series(records: Sequence[Record], layer: str, estimator: str, quantity: Quantity
                       ) -> CalibrationSeries:
    """The :class:`CalibrationSeries` of ``layer`` from the records' ``analyses["calibration"]``."""
    rows = []
    for rec in records:
        entry = calibration_entry(rec, layer, estimator, quantity)
        est = rec.estimate(layer, quantity, estimator) if entry is not None else None
        if est is not None and est.value is not None and math.isfinite(est.value):
            rows.append((rec.step, est.value, float(entry["error"]), bool(entry.get("large"))))  # type: ignore[index]
    arr = np.array([r[:3] for r in rows], dtype=float).reshape(-1, 3)
    return CalibrationSeries(arr[:, 0], arr[:, 1], arr[:, 2], np.array([r[3] for r in rows], dtype=bool))


def _draw_calibration(ax: Any, cal: CalibrationSeries, color: str, gid: str) -> None:
    half = np.abs(cal.error)
    ax.fill_between(cal.steps, cal.value - half, cal.value + half, facecolor="none", edgecolor=color,
                    hatch="////", alpha=0.45, lw=0, gid=f"calibration:{gid}")
    if cal.large.any():
        ax.scatter(cal.steps[cal.large], cal.value[cal.large], s=46, facecolors="none",
                   edgecolors=VIOLATION_COLOR, linewidths=1.2, zorder=5, gid=f"calibration-large:{gid}")


def _draw_quantity(ax: Any, records: Sequence[Record], layers: Sequence[str], estimator: str, q: Quantity,
                   cap: Optional[float]) -> bool:
    """One panel; returns whether a calibration band was drawn."""
    series = [layer_series(records, layer, estimator, q) for layer in layers]
    banded = False
    for i, (layer, s) in enumerate(zip(layers, series)):
        if not len(s):
            continue
        color, marker = layer_style(i)
        ax.plot(s.steps, s.value, "-", color=color, marker=marker, ms=3.2, lw=1.3, label=short(layer),
                gid=f"{q.value}:{layer}")
        if s.has_ci:
            ok = np.isfinite(s.lo)
            ax.fill_between(s.steps[ok], s.lo[ok], s.hi[ok], color=color, alpha=0.18, lw=0)
        cal = calibration_series(records, layer, estimator, q)
        if len(cal):
            _draw_calibration(ax, cal, color, f"{q.value}:{layer}")
            banded = True
    cap_line(ax, q, cap)
    ax.set_ylim(*value_limits(series, cap, 0.1))
    ax.set_ylabel(f"{q.label} [bits]")
    return banded


def plot_layer_curves(
    records: RunLike,
    *,
    estimator: Optional[str] = None,
    layers: Optional[Sequence[str]] = None,
    header: Optional[Mapping[str, Any]] = None,
    phases: Optional[Phases] = None,
) -> Any:
    """I(X;T) and I(T;Y) of every layer over training steps (log x axis), with CI bands and caps, and
    where the records hold ``analyses["calibration"]`` a hatched band value +- |calibration error| and a red
    ring where it was flagged large (see the module); below them one strip per layer shading the fitting /
    compression phases: the detected (filled) and
    candidate (hatched) decisions of the records' folded ``phase_changes`` (or of ``phases``, an already
    folded ``{(layer, estimator, phase): PhaseDecision}``). No strip when no phase is shown.

    Returns:
        The :class:`matplotlib.figure.Figure`.
    """
    recs, _ = as_records(records, header)
    estimator = default_estimator(recs, estimator)
    layers = list(layers) if layers else layer_names(recs)
    latest = latest_phases(recs) if phases is None else phases
    spans = {layer: phase_spans(recs, layer, estimator, phases=latest) for layer in layers}
    has_phases = any(spans.values())
    steps = [r.step for r in recs]
    xcap, hy = caps(recs, estimator)
    with style():
        fig = new_figure((6.4, 5.2 + (0.18 * len(layers) + 0.25 if has_phases else 0.0)))
        ratios = [1.0, 1.0] + ([max(0.12 * len(layers), 0.25)] if has_phases else [])
        gs = fig.add_gridspec(len(ratios), 1, height_ratios=ratios)
        ax_x = fig.add_subplot(gs[0])
        ax_y = fig.add_subplot(gs[1], sharex=ax_x)
        banded = False
        for ax, q, cap in zip((ax_x, ax_y), QUANTITIES, (xcap, hy)):
            banded = _draw_quantity(ax, recs, layers, estimator, q, cap) or banded
        log_x(ax_x, steps)
        ax_x.tick_params(labelbottom=False)
        # legends sit outside the axes (above the I(X;T) panel, above the phase strip): never over data
        ax_x.legend(loc="lower left", bbox_to_anchor=(0.0, 1.01, 1.0, 0.1), mode="expand",
                    ncols=min(5, max(1, len(layers))), frameon=False, borderaxespad=0.0, handlelength=1.8)
        fig.suptitle(figure_title(recs, estimator, "Layer information over training"))
        measured_caption(fig, [(q.label, quantity_label(recs, estimator, q)) for q in QUANTITIES]
                         + ([("calibration", CALIBRATION_CAPTION)] if banded else []))
        if not has_phases:
            ax_y.set_xlabel("training step")
            return fig
        ax_p = fig.add_subplot(gs[2], sharex=ax_x)
        ax_y.tick_params(labelbottom=False)
        handles = draw_phase_strip(ax_p, layers, spans, steps)
        ax_p.set_xlabel("training step")
        ax_p.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.02), ncols=3, frameon=False,
                    fontsize=7, handlelength=1.4, columnspacing=1.0, borderaxespad=0.0)
    return fig


def draw_phase_strip(ax: Any, layers: Sequence[str], spans: Dict[str, List[PhaseSpan]],
                     steps: Sequence[float]) -> List[Any]:
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
            detected = sp.status is PhaseStatus.DETECTED
            ax.barh(lane, end - start, left=start, height=0.36, color=color if detected else "white",
                    edgecolor="white" if detected else color, hatch=None if detected else "////",
                    linewidth=0.8)
            if sp.ongoing:
                ax.annotate("", xy=(end * 1.25, lane), xytext=(end, lane),
                            arrowprops=dict(arrowstyle="-|>", color=color, lw=1.2, shrinkA=0, shrinkB=0))
    ax.set_yticks(range(len(layers)), [short(layer, 16) for layer in reversed(layers)])
    ax.set_ylim(-0.55, len(layers) - 0.45)
    ax.tick_params(axis="y", length=0)
    for side in ("left", "top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_ylabel("phases")
    return [Patch(facecolor=PHASE_COLORS[p], label=text) for p, text in PHASE_LEGEND] + [
        Patch(facecolor="white", edgecolor="0.45", hatch="////", label="candidate (not yet persistent)")
    ]
