"""Geometry beside information: the information plane on top, and under it each layer's clustering
statistics over training (``record.analyses["geometry"]``, see :mod:`ibhooks.analyses.geometry`): the
within/between-class distance ratio and the fraction of probe rows the noise merges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence

import numpy as np

from ..schema import Record
from .plane import NO_PLANE_NOTE, draw_plane, plane_frame
from .queries import RunLike, as_records, default_estimator, layer_names
from .style import figure_title, layer_style, log_x, measured_caption, new_figure, short, style

#: Axis labels of the statistics that can be drawn under the plane (keys of the analysis result).
STATISTIC_LABELS = {
    "within_between_ratio": "within / between\nclass distance",
    "merged_fraction": "rows merged\nby the noise",
    "merged_pair_fraction": "pairs merged\nby the noise",
    "silhouette": "silhouette\n(classes)",
}
#: The statistics drawn by default.
GEOMETRY_PANELS = ("within_between_ratio", "merged_fraction")


@dataclass
class GeometrySeries:
    """One layer's geometry statistic over training (steps where it was measured)."""

    layer: str
    steps: np.ndarray
    value: np.ndarray


def has_geometry(records: Sequence[Record]) -> bool:
    """Whether some record holds a geometry analysis."""
    return any(isinstance(r.analyses.get("geometry"), Mapping) for r in records)


def geometry_series(records: Sequence[Record], layer: str, key: str) -> GeometrySeries:
    """``record.analyses["geometry"][layer][key]`` over the records (missing or None values left out)."""
    pts = []
    for rec in records:
        v = ((rec.analyses.get("geometry") or {}).get(layer) or {}).get(key)
        if isinstance(v, (int, float)) and np.isfinite(v):
            pts.append((rec.step, float(v)))
    arr = np.array(pts, dtype=float).reshape(-1, 2)
    return GeometrySeries(layer, arr[:, 0], arr[:, 1])


def _sigma_note(records: Sequence[Record]) -> str:
    """How the merge distance was set, from the latest geometry result."""
    for rec in reversed(records):
        res = rec.analyses.get("geometry")
        if not isinstance(res, Mapping) or not res:
            continue
        srcs = list(dict.fromkeys(str(v.get("sigma_source")) for v in res.values() if isinstance(v, Mapping)))
        first = next((v for v in res.values() if isinstance(v, Mapping)), {})
        radius = first.get("merge_distance", 0.0) / max(first.get("sigma", 1.0) or 1.0, 1e-300)
        where = ("a relative level (beta x the layer's variance)" if srcs == ["relative"]
                 else "the noise of " + ", ".join(srcs))
        return f"merged: another row closer than {radius:g} sigma, sigma from {where}"
    return ""


def plot_geometry(
    records: RunLike,
    *,
    estimator: Optional[str] = None,
    layers: Optional[Sequence[str]] = None,
    header: Optional[Mapping[str, Any]] = None,
    statistics: Sequence[str] = GEOMETRY_PANELS,
) -> Any:
    """The information plane of ``estimator`` on top; under it, per layer over training steps (log x):
    the ratio of mean within-class to mean between-class distance, and the fraction of probe rows that
    have another row within the merge distance of the noise (both from ``record.analyses["geometry"]``).
    Compression that tracks clustering shows as I(X;T) falling while the ratio falls and the merged
    fraction rises. ``statistics`` picks other panels (keys of :data:`STATISTIC_LABELS`, e.g.
    ``"merged_pair_fraction"`` when the probe repeats inputs, so every row has a twin nearby).

    Returns:
        The :class:`matplotlib.figure.Figure`. ``ValueError`` when no record holds a geometry analysis.
    """
    recs, _ = as_records(records, header)
    if not has_geometry(recs):
        raise ValueError("no record holds a 'geometry' analysis; run the monitor with analyses=['geometry']")
    unknown = [k for k in statistics if k not in STATISTIC_LABELS]
    if unknown or not statistics:
        raise ValueError(f"statistics must name some of {', '.join(STATISTIC_LABELS)}; "
                         f"got {list(statistics)}")
    estimator = default_estimator(recs, estimator)
    layers = list(layers) if layers else layer_names(recs)
    steps = [r.step for r in recs]
    with style():
        fig = new_figure((6.4, 5.8 + 1.2 * len(statistics)))
        gs = fig.add_gridspec(1 + len(statistics), 1, height_ratios=[2.3] + [1.0] * len(statistics))
        ax_plane = fig.add_subplot(gs[0])
        frame = plane_frame(recs, estimator, layers)
        mappable = draw_plane(ax_plane, frame, legend="outside")
        if mappable is not None:
            fig.colorbar(mappable, ax=ax_plane, pad=0.02, aspect=30).set_label("training step (log scale)")
        else:
            ax_plane.text(0.5, 0.5, NO_PLANE_NOTE, transform=ax_plane.transAxes, ha="center", va="center",
                          fontsize=9, color="0.35")
        axes: List[Any] = []
        for k, key in enumerate(statistics):
            ax = fig.add_subplot(gs[1 + k], sharex=axes[0] if axes else None)
            _draw_statistic(ax, recs, layers, key)
            ax.set_ylabel(STATISTIC_LABELS[key])
            if key in ("merged_fraction", "merged_pair_fraction"):
                ax.set_ylim(-0.03, 1.03)
            elif key == "within_between_ratio":
                ax.set_ylim(bottom=0)
            axes.append(ax)
        log_x(axes[0], steps)
        for ax in axes[:-1]:
            ax.tick_params(labelbottom=False)
        axes[-1].set_xlabel("training step")
        fig.suptitle(figure_title(recs, estimator, "Information and geometry"))
        measured_caption(fig, list(frame.measured) + [("geometry", _sigma_note(recs))])
    return fig


def _draw_statistic(ax: Any, records: Sequence[Record], layers: Sequence[str], key: str) -> None:
    for i, layer in enumerate(layers):
        s = geometry_series(records, layer, key)
        if not len(s.steps):
            continue
        color, marker = layer_style(i)
        ax.plot(s.steps, s.value, "-", color=color, marker=marker, ms=3.0, lw=1.2, label=short(layer),
                gid=f"geometry:{key}:{layer}")

