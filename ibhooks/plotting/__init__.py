"""Figures from Records: the information plane, per-layer curves with phases, the DPI along chains,
and an animation of the plane over training.

Everything here reads typed :class:`~ibhooks.schema.Record` objects (or a run log) only, so the live
run and ``ibhooks plot RUN.jsonl`` draw the same figures. Layout:

* :mod:`.queries` and :mod:`.findings`: record queries (no matplotlib), also used by the report, the
  CLI and the TensorBoard / W&B sinks;
* :mod:`.style`: matplotlib setup, colours, figure helpers;
* :mod:`.plane`, :mod:`.curves`, :mod:`.dpi`, :mod:`.animation`: one module per figure.

Importing this package does not import matplotlib; drawing does, through
:class:`matplotlib.figure.Figure` and the Agg canvas only (pyplot is never imported, so the user's
backend and pyplot state are left alone). Returned figures can be saved with ``fig.savefig(...)``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from .animation import animate_plane
from .compare import plot_compare_curves, plot_compare_planes
from .curves import plot_layer_curves
from .dpi import plot_dpi
from .findings import (
    SHOWN_STATUSES,
    DpiTotal,
    DpiViolationSummary,
    PhaseSpan,
    WarningSummary,
    bound_violations,
    chains_of,
    dpi_checked,
    dpi_totals,
    dpi_violation_summary,
    dpi_violations,
    latest_phases,
    phase_decisions,
    phase_spans,
    warnings_summary,
)
from .geometry import has_geometry, plot_geometry
from .heldout import has_heldout, plot_heldout_plane
from .plane import plot_information_plane
from .queries import (
    QUANTITIES,
    RunLike,
    Series,
    as_records,
    caps,
    default_estimator,
    estimate_of,
    estimator_names,
    estimator_title,
    fmt_bits,
    has_plane,
    layer_names,
    layer_series,
    metric_items,
    metric_prefix,
    multi_estimator,
    quantity_label,
)
from .style import close_figure, figure_to_array, figure_to_png

__all__ = [
    "make_figures", "save_all_figures", "plot_information_plane", "plot_layer_curves", "plot_dpi",
    "animate_plane", "plot_compare_planes", "plot_compare_curves", "close_figure", "figure_to_png", "figure_to_array",
    "plot_geometry", "plot_heldout_plane",
    # record queries
    "QUANTITIES", "RunLike", "Series", "as_records", "caps", "default_estimator", "estimate_of",
    "estimator_names", "estimator_title", "fmt_bits", "has_plane", "layer_names", "layer_series",
    "metric_items", "metric_prefix", "multi_estimator", "quantity_label",
    # findings
    "SHOWN_STATUSES", "DpiTotal", "DpiViolationSummary", "PhaseSpan", "WarningSummary", "bound_violations",
    "chains_of", "dpi_checked", "dpi_totals", "dpi_violation_summary", "dpi_violations", "latest_phases",
    "phase_decisions", "phase_spans", "warnings_summary",
]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


def make_figures(run_or_records: RunLike, *, header: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Every static figure as ``{name: Figure}``, per estimator: ``information_plane``,
    ``layer_curves`` and (when at least two layers were measured) ``dpi``, each suffixed
    ``_<estimator>`` when the run has several estimators; ``geometry`` and ``heldout_plane`` when the
    records hold those analyses."""
    recs, hdr = as_records(run_or_records, header)
    ests = estimator_names(recs)
    if not recs or not ests:
        raise ValueError("the run has no measurements to plot yet")
    with_dpi = len(layer_names(recs)) >= 2
    latest = latest_phases(recs)
    with_geometry, with_heldout = has_geometry(recs), has_heldout(recs)
    figs: Dict[str, Any] = {}
    for est in ests:
        suffix = "" if len(ests) == 1 else f"_{_slug(est)}"
        figs[f"information_plane{suffix}"] = plot_information_plane(recs, estimator=est, header=hdr)
        figs[f"layer_curves{suffix}"] = plot_layer_curves(recs, estimator=est, header=hdr, phases=latest)
        if with_dpi:
            figs[f"dpi{suffix}"] = plot_dpi(recs, header=hdr, estimator=est)
        if with_geometry:
            figs[f"geometry{suffix}"] = plot_geometry(recs, estimator=est, header=hdr)
        if with_heldout:
            figs[f"heldout_plane{suffix}"] = plot_heldout_plane(recs, estimator=est, header=hdr)
    return figs


def save_all_figures(
    run_or_records: RunLike,
    out_dir: Union[str, "os.PathLike[str]"],
    *,
    header: Optional[Mapping[str, Any]] = None,
    formats: Sequence[str] = ("png",),
    dpi: int = 200,
    animation: bool = True,
    animation_dpi: int = 120,
) -> Dict[str, Path]:
    """Draw every figure (see :func:`make_figures`) plus the plane animation of every estimator with a
    plane (``information_plane[_<estimator>].gif``, with two or more measurements) and save them in
    ``out_dir``. Used by
    the live run and by ``ibhooks plot``, so both give the same files.

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
            fig.savefig(p, format=fmt, dpi=dpi, metadata={"Software": None} if fmt == "png" else {})
            if k == 0:
                fig.set_layout_engine("none")  # keep the first layout for the other formats
            paths[name if k == 0 else f"{name}.{fmt}"] = p
        close_figure(fig)
    ests = estimator_names(recs)
    if animation and len(recs) >= 2:
        for est in ests:
            if not has_plane(recs, est):
                continue
            suffix = "" if len(ests) == 1 else f"_{_slug(est)}"
            paths[f"information_plane_animation{suffix}"] = animate_plane(
                recs, out / f"information_plane{suffix}.gif", estimator=est, header=hdr, dpi=animation_dpi)
    return paths
