"""The information plane: x = I(X;T), y = I(T;Y), one trajectory per layer, coloured by step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..ib_bound import IBCurve
from ..schema import Quantity, Record
from .queries import RunLike, as_records, caps, default_estimator, layer_names, layer_series, quantity_label
from .style import (
    cap_line,
    errorbars,
    figure_title,
    layer_marker_sizes,
    layer_style,
    measured_caption,
    new_figure,
    short,
    step_cmap,
    step_norm,
    style,
    value_limits,
    wrap,
)

SATURATED_COLOR = "#B22222"
BOUND_COLOR = "black"
NO_PLANE_NOTE = ("No layer has both I(X;T) and I(T;Y)\n(no labels were given?): nothing to place "
                 "on the plane.\nSee the layer curves for I(X;T).")


@dataclass
class Trajectory:
    """One layer's points on the plane: the steps where both quantities were measured, in order."""

    layer: str
    color: str
    marker: str
    steps: np.ndarray
    x: np.ndarray
    y: np.ndarray
    xerr: Optional[np.ndarray]  # (2, n) whisker lengths, or None
    yerr: Optional[np.ndarray]
    saturated: np.ndarray  # I(X;T) at its cap
    y_rule: Optional[np.ndarray] = None  # I(T;Y) under the IB bound's stochastic rule (NaN: not measured)


@dataclass
class PlaneFrame:
    """Everything a plane needs, computed once: shared by the static figure and every GIF frame."""

    estimator: str
    trajectories: List[Trajectory]
    norm: Any
    xcap: Optional[float]
    hy: Optional[float]
    xlim: Tuple[float, float]
    ylim: Tuple[float, float]
    xlabel: str
    ylabel: str
    measured: List[Tuple[str, str]]  # (quantity, what was actually measured) for the caption
    bound: Optional[IBCurve] = None  # the information-bottleneck curve, when the run logged one


def ib_bound_of(records: Sequence[Record]) -> Optional[IBCurve]:
    """The IB curve the ``ib_bound`` analysis logged (the latest record carrying one), or None."""
    for rec in reversed(records):
        entry = rec.analyses.get("ib_bound") if isinstance(rec.analyses, Mapping) else None
        if isinstance(entry, Mapping) and isinstance(entry.get("curve"), Mapping):
            return IBCurve.from_dict(entry["curve"])
    return None


def bound_label(bound: IBCurve) -> str:
    """The legend entry: says when the bound is the trivial one of a deterministic Y."""
    return "IB bound: trivial, Y = f(X)" if bound.deterministic else "IB bound"


def bound_caption(bound: IBCurve) -> str:
    """What the bound is, for the figure caption."""
    if bound.deterministic:
        return (f"min(I(X;T), H(Y)) exactly: Y is a function of X ({bound.source or 'labels'}), "
                "so the bound is trivial (Kolchinsky et al. 2019)")
    return (f"IB curve of {bound.source or 'p(y|x)'}, I(X;Y) = {bound.i_xy:.3f} bits; filled points: I(T;Y) "
            "with the probe labels; hollow dashed: I(T;Y) under that rule (what the logged gaps use)")


def _trajectory(records: Sequence[Record], layer: str, estimator: str, i: int) -> Trajectory:
    sx = layer_series(records, layer, estimator, Quantity.I_XT)
    sy = layer_series(records, layer, estimator, Quantity.I_TY)
    common = np.intersect1d(sx.steps, sy.steps)
    # with duplicate steps (resumes) searchsorted picks the first; fine for drawing
    ix, iy = np.searchsorted(sx.steps, common), np.searchsorted(sy.steps, common)
    x, y = sx.value[ix], sy.value[iy]
    color, marker = layer_style(i)
    rule = _rule_values(records, layer, estimator, common)
    return Trajectory(layer, color, marker, common, x, y, errorbars(x, sx.lo[ix], sx.hi[ix]),
                      errorbars(y, sy.lo[iy], sy.hi[iy]), sx.saturated[ix], rule)


def _rule_values(records: Sequence[Record], layer: str, estimator: str, steps: np.ndarray
                 ) -> Optional[np.ndarray]:
    """I(T;Y) under the IB bound's stochastic rule (``analyses["ib_bound"]["i_ty_rule"]``) at ``steps``."""
    found = {}
    for rec in records:
        entry = rec.analyses.get("ib_bound") if isinstance(rec.analyses, Mapping) else None
        rule = entry.get("i_ty_rule") if isinstance(entry, Mapping) else None
        value = rule.get(layer, {}).get(estimator) if isinstance(rule, Mapping) else None
        if isinstance(value, (int, float)):
            found.setdefault(rec.step, float(value))
    if not found:
        return None
    return np.array([found.get(int(st), np.nan) for st in steps], dtype=np.float64)


def plane_frame(records: Sequence[Record], estimator: str, layers: Optional[Sequence[str]] = None
                ) -> PlaneFrame:
    """Trajectories, caps, axis limits and labels of the plane of ``estimator``."""
    layers = list(layers) if layers else layer_names(records)
    xcap, hy = caps(records, estimator)
    sx = [layer_series(records, lyr, estimator, Quantity.I_XT) for lyr in layers]
    sy = [layer_series(records, lyr, estimator, Quantity.I_TY) for lyr in layers]
    qx = quantity_label(records, estimator, Quantity.I_XT)
    qy = quantity_label(records, estimator, Quantity.I_TY)
    bound = ib_bound_of(records)
    xlim, ylim = value_limits(sx, xcap, 0.06), value_limits(sy, hy, 0.08)
    if bound is not None:  # the whole curve in view
        xlim = (xlim[0], max(xlim[1], bound.h_x * 1.06))
        ylim = (ylim[0], max(ylim[1], bound.i_xy * 1.08))
    return PlaneFrame(
        estimator=estimator,
        trajectories=[_trajectory(records, lyr, estimator, i) for i, lyr in enumerate(layers)],
        norm=step_norm([r.step for r in records]),
        xcap=xcap,
        hy=hy,
        xlim=xlim,
        ylim=ylim,
        xlabel=f"{Quantity.I_XT.label} [bits]",
        ylabel=f"{Quantity.I_TY.label} [bits]",
        measured=[(Quantity.I_XT.label, qx), (Quantity.I_TY.label, qy)]
        + ([("IB bound", bound_caption(bound))] if bound is not None else []),
        bound=bound,
    )


def draw_plane(ax: Any, frame: PlaneFrame, *, upto: Optional[float] = None, highlight_last: bool = False,
               legend: str = "outside") -> Any:
    """Draw the trajectories (points up to step ``upto``, all by default) on ``ax``; returns the scatter
    mappable for a colorbar (None when no layer has a point). ``legend``: ``"outside"`` (a row above the
    axes, never over data), ``"inside"`` (best spot) or ``"none"``."""
    from matplotlib.lines import Line2D

    mappable, handles, any_sat, any_rule = None, [], False, False
    cmap = step_cmap()
    sizes = layer_marker_sizes(len(frame.trajectories))
    for tr, size in zip(frame.trajectories, sizes):
        keep = slice(None) if upto is None else tr.steps <= upto
        steps, x, y, sat = tr.steps[keep], tr.x[keep], tr.y[keep], tr.saturated[keep]
        if not len(steps):
            continue
        ax.plot(x, y, "-", color=tr.color, lw=1.0, alpha=0.55, zorder=2, label=None, gid=f"traj:{tr.layer}")
        xerr = None if tr.xerr is None else tr.xerr[:, keep]
        yerr = None if tr.yerr is None else tr.yerr[:, keep]
        if xerr is not None or yerr is not None:
            ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor=tr.color, elinewidth=0.6, alpha=0.45,
                        capsize=0, zorder=1.5)
        mappable = ax.scatter(x, y, c=np.maximum(steps, frame.norm.vmin), cmap=cmap, norm=frame.norm,
                              marker=tr.marker, s=size, edgecolors=tr.color, linewidths=0.7, zorder=3)
        if sat.any():
            any_sat = True
            ax.scatter(x[sat], y[sat], marker="o", s=2.5 * size, facecolors="none", edgecolors=SATURATED_COLOR,
                       linewidths=0.8, zorder=2.8)
        rule = None if tr.y_rule is None else tr.y_rule[keep]
        if rule is not None and np.isfinite(rule).any():
            any_rule = True
            ax.plot(x, rule, "--", color=tr.color, lw=0.8, alpha=0.6, zorder=2, gid=f"rule:{tr.layer}")
            ax.scatter(x, rule, marker=tr.marker, s=size, facecolors="none", edgecolors=tr.color,
                       linewidths=0.9, zorder=3)
        if highlight_last:
            last = cmap(frame.norm(max(steps[-1], frame.norm.vmin)))
            ax.scatter(x[-1:], y[-1:], marker=tr.marker, s=90, c=[last], edgecolors="black", linewidths=1.2,
                       zorder=5)
        handles.append(Line2D([], [], color=tr.color, marker=tr.marker, markerfacecolor="white",
                              markeredgecolor=tr.color, lw=1.0, label=short(tr.layer)))
    if frame.bound is not None:
        ax.plot(frame.bound.i_xt, frame.bound.i_ty, "-", color=BOUND_COLOR, lw=1.4, zorder=1.8,
                gid="ib_bound")
        handles.append(Line2D([], [], color=BOUND_COLOR, lw=1.4, label=bound_label(frame.bound)))
        if any_rule:
            handles.append(Line2D([], [], color="0.3", ls="--", marker="o", markerfacecolor="none", lw=0.8,
                                  label="I(T;Y) under the rule"))
    cap_line(ax, Quantity.I_XT, frame.xcap, vertical=True)
    cap_line(ax, Quantity.I_TY, frame.hy, label_left=True)
    ax.set_xlim(*frame.xlim)
    ax.set_ylim(*frame.ylim)
    ax.set_xlabel(frame.xlabel)
    ax.set_ylabel(frame.ylabel)
    if legend != "none" and handles:
        if any_sat:
            handles.append(Line2D([], [], ls="none", marker="o", markersize=8, markerfacecolor="none",
                                  markeredgecolor=SATURATED_COLOR, label="I(X;T) at cap"))
        if legend == "outside":
            ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.01, 1.0, 0.1), mode="expand",
                      ncols=_legend_columns(handles), frameon=False, borderaxespad=0.0, handlelength=1.8,
                      title="layer", title_fontsize=8, alignment="left")
        else:
            ax.legend(handles=handles, loc="best", frameon=True, framealpha=0.85, edgecolor="0.8",
                      borderpad=0.4, handlelength=1.8)
    return mappable


def _legend_columns(handles: Sequence[Any]) -> int:
    """Columns of the legend row above the plane: as many as fit the axes' width without labels
    running into each other (about 80 characters at the legend's font size)."""
    longest = max((len(str(h.get_label())) for h in handles), default=1)
    return max(1, min(4, len(handles), 80 // (longest + 6)))


def plot_information_plane(
    records: RunLike,
    *,
    estimator: Optional[str] = None,
    layers: Optional[Sequence[str]] = None,
    ax: Any = None,
    header: Optional[Mapping[str, Any]] = None,
    title: Optional[str] = None,
) -> Any:
    """The information plane: x = I(X;T), y = I(T;Y), one trajectory per layer, points coloured by
    training step (log scale, colorbar), CI whiskers where the estimates have intervals, the
    estimator's cap on I(X;T) (log2 n) as a dashed vertical line and H(Y) as a dotted horizontal
    line; points at the cap are ringed. Axis labels name the quantity actually measured. When the run
    logged the ``ib_bound`` analysis, its information-bottleneck curve is the black line (labelled
    trivial when Y is a function of X).

    Args:
        records: Records, a :class:`~ibhooks.runlog.Run` or a run-log path.
        estimator: Which estimator key to draw (default: the first one in the records).
        layers: Subset and order of layers (default: all, in network order).
        ax: Draw into this Axes instead of a new figure (the legend then goes inside).
        header: Run header (updates a Run's).
        title: Replaces the default title.

    Returns:
        The :class:`matplotlib.figure.Figure`.
    """
    recs, _ = as_records(records, header)
    estimator = default_estimator(recs, estimator)
    text = title if title is not None else figure_title(recs, estimator, "Information plane")
    with style():
        own = ax is None
        fig = new_figure((6.0, 5.0)) if own else ax.figure
        ax = fig.add_subplot() if own else ax
        frame = plane_frame(recs, estimator, layers)
        mappable = draw_plane(ax, frame, legend="outside" if own else "inside")
        if mappable is not None:
            fig.colorbar(mappable, ax=ax, pad=0.02, aspect=30).set_label("training step (log scale)")
        else:
            ax.text(0.5, 0.5, NO_PLANE_NOTE, transform=ax.transAxes, ha="center", va="center", fontsize=9,
                    color="0.35")
        if own:
            fig.suptitle(text)
            measured_caption(fig, frame.measured)
        else:  # the user's axes: no figure caption of ours, so the labels say what was measured
            ax.set_title(text)
            for (label, measured), set_label in zip(frame.measured, (ax.set_xlabel, ax.set_ylabel)):
                if measured:
                    set_label(f"{label} [bits]\nmeasured: {wrap(measured, 60)}")
    return fig

