"""matplotlib plumbing shared by every figure: the style, colours, figures on an Agg canvas (pyplot is
never imported, so the user's backend and pyplot state are left alone), step colour scale, axis
helpers, and PNG / array export.

matplotlib is imported inside the functions only: importing this module does not import it.
"""

from __future__ import annotations

import io
import sys
import textwrap
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .._optional import require
from ..schema import Quantity, Record
from .queries import Series, estimator_title, fmt_bits

#: Okabe-Ito colours (distinguishable under the common colour-vision deficiencies).
LAYER_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
LAYER_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "h", "<", ">", "p", "*"]
PHASE_COLORS = {"fitting": "#9ecae1", "compression": "#fdae6b"}
VIOLATION_COLOR = "#D62728"
STEP_CMAP = "viridis"
_STEP_CMAP_RANGE = (0.0, 0.9)  # viridis without its palest yellows, which vanish on white

#: How each quantity's cap line is labelled and drawn.
CAP_LABELS = {Quantity.I_XT: "log$_2$ n", Quantity.I_TY: "H(Y)"}
CAP_LINESTYLES = {Quantity.I_XT: "--", Quantity.I_TY: ":"}

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


def mpl() -> Any:
    """The matplotlib module, or an ImportError naming the extra to install."""
    return require("matplotlib", purpose="ibhooks figures")


@contextmanager
def style() -> Iterator[None]:
    """The figures' rc settings, for the duration of drawing only."""
    with mpl().rc_context(_RC):
        yield


def new_figure(figsize: Tuple[float, float]) -> Any:
    """A constrained-layout Figure on an Agg canvas, never registered with pyplot."""
    mpl()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def close_figure(fig: Any) -> None:
    """Release a figure: clear it and, if pyplot happens to manage it, close it there too."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        try:
            plt.close(fig)
        except Exception:  # pragma: no cover - pyplot without a usable backend
            pass
    fig.clear()


def figure_to_png(fig: Any, *, dpi: int = 150) -> bytes:
    """The figure as PNG bytes (deterministic: no timestamp in the metadata)."""
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


def step_cmap() -> Any:
    """viridis without its palest end, for colouring points by training step."""
    from matplotlib.colors import ListedColormap

    base = mpl().colormaps[STEP_CMAP]
    return ListedColormap(base(np.linspace(*_STEP_CMAP_RANGE, 256)), name="ibhooks_steps")


def step_norm(steps: Sequence[float]) -> Any:
    """Log colour scale over the positive steps; step 0 takes the colour of the smallest one, and a
    single distinct step gets a decade of range so the colorbar is readable."""
    from matplotlib.colors import LogNorm

    pos = np.asarray([s for s in steps if s > 0], dtype=float)
    vmin = float(pos.min()) if pos.size else 1.0
    vmax = float(pos.max()) if pos.size else 1.0
    if vmax <= vmin:
        vmax = vmin * 10.0
    return LogNorm(vmin=vmin, vmax=vmax, clip=True)


def layer_style(i: int) -> Tuple[str, str]:
    """(colour, marker) of the ``i``-th layer."""
    return LAYER_COLORS[i % len(LAYER_COLORS)], LAYER_MARKERS[i % len(LAYER_MARKERS)]


def short(name: str, width: int = 22) -> str:
    """``name`` cut from the left to ``width`` characters (the end of a layer path says most)."""
    return name if len(name) <= width else "…" + name[-(width - 1):]


def wrap(text: str, width: int) -> str:
    """Break a long measured-quantity label over lines so it stays inside the figure."""
    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text


def log_x(ax: Any, steps: Sequence[float]) -> None:
    """Log step axis (symlog from 0 when step 0 is present)."""
    if any(s > 0 for s in steps):
        if any(s <= 0 for s in steps):
            ax.set_xscale("symlog", linthresh=1.0, linscale=0.3)
            ax.set_xlim(left=0)  # steps are never negative: no empty negative half-axis
        else:
            ax.set_xscale("log")


def errorbars(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> Optional[np.ndarray]:
    """``(2, n)`` error-bar lengths from interval ends (zero where an end is NaN), None without any."""
    if not np.isfinite(lo).any():
        return None
    lo = np.where(np.isfinite(lo), lo, v)
    hi = np.where(np.isfinite(hi), hi, v)
    return np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])


def value_limits(series: Sequence[Series], cap: Optional[float], pad: float) -> Tuple[float, float]:
    """Axis limits for ``series`` and a cap line: from 0 (or below the lowest value when some are
    negative: kNN estimates near independence, differential entropies) to above the highest."""
    tops = [s.top for s in series if len(s)]
    top = max([cap or 0.0] + tops) * (1 + pad) or 1.0
    low = min([s.bottom for s in series if len(s)], default=0.0)
    return (0.0 if low >= 0 else low - pad * max(top - low, 1e-9)), top


def cap_line(ax: Any, quantity: Quantity, cap: Optional[float], *, vertical: bool = False,
             label_left: bool = False) -> None:
    """The cap of ``quantity`` (log2 n for I(X;T), H(Y) for I(T;Y)) as a labelled line: vertical (the
    plane's x axis) or horizontal, its label at the right end (or the left with ``label_left``)."""
    if cap is None:
        return
    text = f"{CAP_LABELS[quantity]} = {fmt_bits(cap)}"
    kw = dict(textcoords="offset points", fontsize=7.5, color="0.3")
    if vertical:
        ax.axvline(cap, color="0.35", ls=CAP_LINESTYLES[quantity], lw=0.9, zorder=1)
        ax.annotate(text, xy=(cap, 0.02), xycoords=("data", "axes fraction"), xytext=(3, 0), rotation=90,
                    ha="left", va="bottom", **kw)
        return
    ax.axhline(cap, color="0.35", ls=CAP_LINESTYLES[quantity], lw=0.9, zorder=1)
    if label_left:
        ax.annotate(text, xy=(0.01, cap), xycoords=("axes fraction", "data"), xytext=(0, 3), ha="left",
                    va="bottom", **kw)
    else:
        ax.annotate(text, xy=(0.99, cap), xycoords=("axes fraction", "data"), xytext=(0, 2), ha="right",
                    va="bottom", **kw)


def measured_caption(fig: Any, labels: Sequence[Tuple[str, str]], *, fontsize: float = 7.5) -> None:
    """Say under the figure what each quantity actually is (``[("I(X;T)", "H(bin30[-1,1](T))"), ...]``),
    wrapped to the figure's width; axis labels stay short, so nothing is cut off."""
    parts = [text if text.startswith(short_name) else f"{short_name} = {text}"  # "I(T;Y) >= ..." says it
             for short_name, text in labels if text]
    if not parts:
        return
    width = max(40, int(fig.get_figwidth() * 72 / (fontsize * 0.56)))
    fig.supxlabel("measured: " + wrap("; ".join(parts), width), fontsize=fontsize, color="0.3", ha="center")


def layer_marker_sizes(n: int, base: float = 26.0) -> List[float]:
    """Marker areas from large (first layer) to small (last): layers that sit at the same point show as
    nested markers instead of hiding each other."""
    if n <= 1:
        return [base] * n
    return [base * (2.2 - 1.4 * i / (n - 1)) for i in range(n)]


#: A figure title longer than this many characters puts the estimator's name on a second line (a
#: 6-inch figure holds about 70 characters of a title).
TITLE_CHARS = 64


def figure_title(records: Sequence[Record], estimator: str, what: str) -> str:
    """``"<what> · <estimator name> · n = <probe rows> · <mode> mode"`` from the latest record; when that
    is too long for one line (a per-layer choice names every instrument), the estimator's name goes on a
    second line."""
    name = estimator_title(records, estimator)
    bits: List[str] = [what, name]
    if records and records[-1].n_samples:
        bits.append(f"n = {records[-1].n_samples}")
    if records and records[-1].mode:
        bits.append(f"{records[-1].mode} mode")
    line = " · ".join(bits)
    if len(line) <= TITLE_CHARS:
        return line
    return " · ".join(bits[:1] + bits[2:]) + "\n" + name
