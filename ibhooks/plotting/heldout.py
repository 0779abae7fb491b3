"""The training probe and the held-out probe in one information plane (``record.analyses["heldout"]``,
see :mod:`ibhooks.analyses.heldout`): filled circles for the training probe, hollow squares for the
held-out probe, one colour per layer (lines and circle edges), marker fill / square edge coloured by
training step; a note lists the
series whose phase verdicts differ between the two probes."""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..schema import Quantity, Record
from .plane import plane_frame
from .queries import RunLike, Series, as_records, default_estimator, layer_names, layer_series, quantity_label
from .style import (
    cap_line,
    figure_title,
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

HELDOUT_MARKER = "s"
TRAIN_MARKER = "o"


def has_heldout(records: Sequence[Record]) -> bool:
    """Whether some record holds a held-out analysis."""
    return any(isinstance(r.analyses.get("heldout"), Mapping) for r in records)


def heldout_records(records: Sequence[Record]) -> List[Record]:
    """The held-out probe's measurements as Records (``layers`` from ``analyses["heldout"]``), so the
    ordinary record queries read them."""
    from ..analyses.heldout import heldout_layers

    out = []
    for rec in records:
        res = rec.analyses.get("heldout")
        if isinstance(res, Mapping):
            out.append(Record(step=rec.step, mode=rec.mode, n_samples=int(res.get("n") or 0),
                              layers=heldout_layers(res), h_y=res.get("h_y"), epoch=rec.epoch))
    return out


def verdict_differences(records: Sequence[Record]) -> List[str]:
    """The notes of the latest held-out result (series whose verdicts differ), or ``[]``."""
    for rec in reversed(records):
        res = rec.analyses.get("heldout")
        if isinstance(res, Mapping):
            return [str(n) for n in res.get("notes") or []]
    return []


def _points(records: Sequence[Record], layer: str, estimator: str
            ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    sx = layer_series(records, layer, estimator, Quantity.I_XT)
    sy = layer_series(records, layer, estimator, Quantity.I_TY)
    common = np.intersect1d(sx.steps, sy.steps)
    ix, iy = np.searchsorted(sx.steps, common), np.searchsorted(sy.steps, common)
    return common, sx.value[ix], sy.value[iy]


def plot_heldout_plane(
    records: RunLike,
    *,
    estimator: Optional[str] = None,
    layers: Optional[Sequence[str]] = None,
    header: Optional[Mapping[str, Any]] = None,
) -> Any:
    """Training-probe and held-out-probe trajectories of every layer in one plane: training as filled
    circles on solid lines (fill = training step), held-out as hollow squares on dashed lines (edge =
    training step), both in the layer's colour; caps (log2 n, H(Y)) of the training probe. Under the
    plane, where the phase verdicts of the two probes differ (from the latest held-out result).

    Returns:
        The :class:`matplotlib.figure.Figure`. ``ValueError`` when no record holds a held-out analysis.
    """
    from matplotlib.lines import Line2D

    recs, _ = as_records(records, header)
    if not has_heldout(recs):
        raise ValueError("no record holds a 'heldout' analysis; run the monitor with "
                         "analyses=[('heldout', {'probe': (x_heldout, y_heldout)})]")
    estimator = default_estimator(recs, estimator)
    held = heldout_records(recs)
    layers = list(layers) if layers else layer_names(recs)
    notes = verdict_differences(recs)
    with style():
        shown = notes[:8] + ([f"... and {len(notes) - 8} more"] if len(notes) > 8 else [])
        text = ("\n".join(["Phase verdicts differ between the probes:"] + [wrap(n, 100) for n in shown])
                if notes else
                "Phase verdicts agree between the training and held-out probes "
                "(no phase detected on one only).")
        lines = text.count("\n") + 1
        fig = new_figure((6.4, 5.4 + 0.15 * lines))
        gs = fig.add_gridspec(2, 1, height_ratios=[5.0, 0.18 * lines + 0.1])
        ax = fig.add_subplot(gs[0])
        ax_note = fig.add_subplot(gs[1])
        ax_note.axis("off")
        ax_note.text(0.0, 1.0, text, transform=ax_note.transAxes, ha="left", va="top", fontsize=7.5,
                     color="#B22222" if notes else "0.35")
        frame = plane_frame(recs, estimator, layers)
        norm, cmap = step_norm([r.step for r in recs]), step_cmap()
        mappable = None
        hx: List[Series] = []
        hy: List[Series] = []
        for i, layer in enumerate(layers):
            color, _ = layer_style(i)
            tr = frame.trajectories[i]
            if len(tr.steps):
                ax.plot(tr.x, tr.y, "-", color=color, lw=1.0, alpha=0.6, zorder=2, gid=f"train:{layer}")
                mappable = ax.scatter(tr.x, tr.y, c=np.maximum(tr.steps, norm.vmin), cmap=cmap, norm=norm,
                                      marker=TRAIN_MARKER, s=30, edgecolors=color, linewidths=0.8, zorder=3)
            steps, x, y = _points(held, layer, estimator)
            hx.append(layer_series(held, layer, estimator, Quantity.I_XT))
            hy.append(layer_series(held, layer, estimator, Quantity.I_TY))
            if not len(steps):
                continue
            ax.plot(x, y, "--", color=color, lw=1.0, alpha=0.7, zorder=2, gid=f"heldout:{layer}")
            ax.scatter(x, y, marker=HELDOUT_MARKER, s=34, facecolors="none",
                       edgecolors=cmap(norm(np.maximum(steps, norm.vmin))), linewidths=1.3, zorder=3.5)
        cap_line(ax, Quantity.I_XT, frame.xcap, vertical=True)
        cap_line(ax, Quantity.I_TY, frame.hy, label_left=True)
        ax.set_xlabel(frame.xlabel)
        ax.set_ylabel(frame.ylabel)
        # axis limits over both probes
        tx = [layer_series(recs, lyr, estimator, Quantity.I_XT) for lyr in layers]
        ty = [layer_series(recs, lyr, estimator, Quantity.I_TY) for lyr in layers]
        ax.set_xlim(*value_limits(tx + hx, frame.xcap, 0.06))
        ax.set_ylim(*value_limits(ty + hy, frame.hy, 0.08))
        if mappable is not None:
            fig.colorbar(mappable, ax=ax, pad=0.02, aspect=30).set_label("training step (log scale)")
        handles = [Line2D([], [], color=layer_style(i)[0], lw=1.2, label=short(lyr))
                   for i, lyr in enumerate(layers)]
        handles += [
            Line2D([], [], ls="-", color="0.3", marker=TRAIN_MARKER, markerfacecolor="0.5",
                   label="training probe"),
            Line2D([], [], ls="--", color="0.3", marker=HELDOUT_MARKER, markerfacecolor="none",
                   label="held-out probe"),
        ]
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.01, 1.0, 0.1), mode="expand",
                  ncols=min(len(handles), 4), frameon=False, borderaxespad=0.0, handlelength=2.2)
        n_held = held[-1].n_samples if held else 0
        title = figure_title(recs, estimator, "Training and held-out probes")
        fig.suptitle(f"{title} · held-out n = {n_held}")
        measured_caption(fig, [(q.label, quantity_label(recs, estimator, q))
                               for q in (Quantity.I_XT, Quantity.I_TY)])
    return fig
