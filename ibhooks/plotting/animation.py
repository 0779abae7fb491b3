"""A GIF of the information plane over training (axes, caps and colour scale fixed across frames)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from .plane import draw_plane, plane_frame
from .queries import RunLike, as_records, default_estimator
from .style import close_figure, figure_title, measured_caption, new_figure, style


def animate_plane(
    records: RunLike,
    path: Union[str, "os.PathLike[str]"],
    *,
    estimator: Optional[str] = None,
    header: Optional[Mapping[str, Any]] = None,
    fps: int = 4,
    max_frames: int = 60,
    dpi: int = 120,
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
    idx = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int)).tolist()
    head = figure_title(recs, estimator, "Information plane")
    with style():
        fig = new_figure((6.0, 5.0))
        ax = fig.add_subplot()
        frame = plane_frame(recs, estimator)
        # lay the figure out once with all the data (the fullest legend, a 2-line title), then freeze
        # the layout: frames only redraw the axes content, which is much faster
        mappable = draw_plane(ax, frame, highlight_last=True)
        if mappable is not None:
            fig.colorbar(mappable, ax=ax, pad=0.02, aspect=30).set_label("training step (log scale)")
        fig.suptitle(head + "\nstep")
        measured_caption(fig, frame.measured)
        fig.canvas.draw()
        fig.set_layout_engine("none")
        writer = PillowWriter(fps=fps)
        with writer.saving(fig, str(path), dpi=dpi):
            for i in idx:
                rec = recs[i]
                ax.clear()
                draw_plane(ax, frame, upto=rec.step, highlight_last=True)
                epoch = f" (epoch {rec.epoch})" if rec.epoch is not None else ""
                fig.suptitle(f"{head}\nstep {rec.step}{epoch}")
                writer.grab_frame()
    close_figure(fig)
    return path
