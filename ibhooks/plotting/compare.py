"""Two or more runs side by side (e.g. tanh vs ReLU): their information planes on shared axes, and
their layer curves overlaid (colour = layer, line style = run)."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from ..schema import QUANTITIES, Record
from .plane import draw_plane, plane_frame
from .queries import caps, default_estimator, layer_names, layer_series
from .style import cap_line, layer_style, log_x, new_figure, short, style

RUN_LINESTYLES = ["-", "--", ":", "-."]

Runs = Sequence[Tuple[str, Sequence[Record]]]


def _estimator(recs: Sequence[Record], estimator: Optional[str]) -> str:
    return default_estimator(recs, estimator)


def plot_compare_planes(runs: Runs, *, estimator: Optional[str] = None) -> Any:
    """One information plane per run, side by side, on the same axis limits and step colour scale."""
    frames = [plane_frame(recs, _estimator(recs, estimator)) for _, recs in runs]
    xlim = (min(f.xlim[0] for f in frames), max(f.xlim[1] for f in frames))
    ylim = (min(f.ylim[0] for f in frames), max(f.ylim[1] for f in frames))
    from .style import step_norm

    norm = step_norm([r.step for _, recs in runs for r in recs])
    with style():
        fig = new_figure((4.2 * len(runs) + 0.8, 4.6))
        axes = fig.subplots(1, len(runs), squeeze=False, sharex=True, sharey=True)[0]
        mappable = None
        for ax, (name, _), frame in zip(axes, runs, frames):
            frame.xlim, frame.ylim, frame.norm = xlim, ylim, norm
            mappable = draw_plane(ax, frame, legend="inside") or mappable
            ax.set_title(f"{short(name, 40)}\n{frame.estimator}", fontsize=9)
        for ax in axes[1:]:
            ax.set_ylabel("")
        if mappable is not None:
            fig.colorbar(mappable, ax=list(axes), pad=0.02, aspect=30).set_label("training step (log scale)")
        fig.suptitle("Information planes compared")
    return fig


def plot_compare_curves(runs: Runs, *, estimator: Optional[str] = None) -> Any:
    """I(X;T) and I(T;Y) per layer over training for every run: colour = layer, line style = run."""
    from matplotlib.lines import Line2D

    with style():
        fig = new_figure((7.0, 5.6))
        axes = fig.subplots(2, 1, sharex=True)
        steps: List[float] = []
        layers_all: List[str] = []
        for k, (name, recs) in enumerate(runs):
            est = _estimator(recs, estimator)
            layers = layer_names(recs)
            layers_all += [x for x in layers if x not in layers_all]
            steps += [r.step for r in recs]
            for ax, q, cap in zip(axes, QUANTITIES, caps(recs, est)):
                for i, layer in enumerate(layers):
                    s = layer_series(recs, layer, est, q)
                    if len(s):
                        ax.plot(s.steps, s.value, RUN_LINESTYLES[k % len(RUN_LINESTYLES)],
                                color=layer_style(i)[0], lw=1.3, gid=f"{name}:{q.value}:{layer}")
                if k == 0:
                    cap_line(ax, q, cap)
                ax.set_ylabel(f"{q.label} [bits]")
        log_x(axes[0], steps)
        axes[1].set_xlabel("training step")
        handles = [Line2D([], [], color=layer_style(i)[0], lw=2, label=short(x)) for i, x in enumerate(layers_all)]
        handles += [Line2D([], [], color="0.3", ls=RUN_LINESTYLES[k % len(RUN_LINESTYLES)], label=short(n, 30))
                    for k, (n, _) in enumerate(runs)]
        axes[0].legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.01, 1.0, 0.1), mode="expand",
                       ncols=min(4, len(handles)), frameon=False, borderaxespad=0.0, fontsize=7.5)
        fig.suptitle("Layer information over training compared")
    return fig
