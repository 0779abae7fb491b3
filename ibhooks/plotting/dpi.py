"""The data-processing inequality along each chain: both quantities against layer position at a few
steps, with the violations the checks reported marked."""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..schema import QUANTITIES, DpiViolation, Quantity, Record
from .findings import chains_of, dpi_checked, dpi_violations
from .queries import RunLike, as_records, caps, default_estimator, estimate_of, layer_names, layer_series
from .style import (
    VIOLATION_COLOR,
    cap_line,
    errorbars,
    figure_title,
    new_figure,
    short,
    step_cmap,
    step_norm,
    style,
    value_limits,
)

NO_CHAIN = "layers in network order (no chain detected: the DPI need not hold)"


def pick_steps(records: Sequence[Record], k: int) -> List[int]:
    """Indices of up to ``k`` records spread log-evenly over the run (first and last included)."""
    n = len(records)
    if n <= k:
        return list(range(n))
    steps = np.log(np.array([max(r.step, 0) for r in records], dtype=float) + 1.0)
    targets = np.linspace(steps[0], steps[-1], k)
    nearest = np.abs(steps[None, :] - targets[:, None]).argmin(axis=1)
    return sorted(set(nearest.tolist()) | {0, n - 1})


def _values(rec: Record, members: Sequence[str], estimator: str, q: Quantity) -> np.ndarray:
    """``(3, len(members))``: value, interval low, interval high (NaN where missing)."""
    rows = [(np.nan, np.nan, np.nan) if e is None else (e.value, *(e.ci or (np.nan, np.nan)))
            for e in (estimate_of(rec, m, estimator, q) for m in members)]
    return np.array(rows, dtype=float).reshape(-1, 3).T


def _panel_title(q: Quantity, chain: str, hits: Sequence[List[DpiViolation]], n_checked: int) -> str:
    if n_checked == 0:
        return f"{q.label} along chain '{short(chain, 24)}'\nnot checked (no DPI checks in the records)"
    n_bad = sum(1 for vs in hits if vs)
    sub = f"DPI violated at {n_bad} of {n_checked} checked steps"
    if n_bad:
        n_sig = sum(1 for vs in hits if any(v.significant for v in vs))
        n_unknown = sum(1 for vs in hits if vs and all(v.significant is None for v in vs))
        sub += f", {n_sig} significant"
        if n_unknown:
            sub += f", {n_unknown} not assessed (no uncertainty)"
    return f"{q.label} along chain '{short(chain, 24)}'\n{sub}"


def _draw_panel(ax: Any, recs: Sequence[Record], picks: Sequence[int], members: Sequence[str], estimator: str,
                q: Quantity, cap: Optional[float], viols: Sequence[List[DpiViolation]], norm: Any, cmap: Any
                ) -> List[List[DpiViolation]]:
    """One chain and quantity; returns, per record, the violations shown on this panel."""
    pos = np.arange(len(members))
    hits = [[v for v in vs if v.quantity is q and v.downstream in members and v.upstream in members]
            for vs in viols]
    for j in picks:
        rec = recs[j]
        vals, lo, hi = _values(rec, members, estimator, q)
        color = cmap(norm(max(rec.step, norm.vmin)))
        ax.plot(pos, vals, "-o", color=color, ms=4, lw=1.3, label=f"step {rec.step}",
                gid=f"dpi:{q.value}:{rec.step}")
        err = errorbars(vals, lo, hi)
        if err is not None:
            ax.errorbar(pos, vals, yerr=err, fmt="none", ecolor=color, elinewidth=0.8, capsize=2)
        for v in hits[j]:
            k = members.index(v.downstream)
            ax.plot(pos[k], vals[k], marker="X", ms=9, ls="none", zorder=5, markeredgewidth=1.3,
                    markerfacecolor=VIOLATION_COLOR if v.significant else "none",
                    markeredgecolor=VIOLATION_COLOR)
    cap_line(ax, q, cap)
    tilt = len(members) > 4 and max(len(m) for m in members) > 4
    ax.set_xticks(pos, [short(m, 14) for m in members], rotation=30 if tilt else 0,
                  ha="right" if tilt else "center")
    ax.set_xlim(-0.3, len(members) - 0.7)
    ax.set_ylabel(f"{q.label} [bits]")
    ax.set_ylim(*value_limits([layer_series(recs, m, estimator, q) for m in members], cap, 0.12))
    return hits


def _legend_handles(recs: Sequence[Record], picks: Sequence[int], norm: Any, cmap: Any) -> List[Any]:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=cmap(norm(max(recs[j].step, norm.vmin))), marker="o", ms=4,
                      label=f"step {recs[j].step}") for j in picks]
    for filled, what in ((True, "significant"), (False, "within uncertainty")):
        handles.append(Line2D([], [], ls="none", marker="X", ms=8, markeredgecolor=VIOLATION_COLOR,
                              markerfacecolor=VIOLATION_COLOR if filled else "none",
                              label=f"DPI violation ({what})"))
    return handles


def plot_dpi(
    records: RunLike,
    *,
    header: Optional[Mapping[str, Any]] = None,
    estimator: Optional[str] = None,
    n_steps: int = 4,
) -> Any:
    """The data-processing inequality along each chain under one estimator: I(X;T) and I(T;Y) against
    layer position at a few steps spread over training (colour = step). Points where the records'
    :class:`~ibhooks.schema.Checks` report a DPI violation of this estimator are marked with a red cross
    (filled: beyond the estimates' uncertainty), and each panel states at how many checked
    measurements it was violated (and how many of those were significant or not assessed). Without
    chains in the header or the checks, the layers in network order are drawn and the title says that
    the DPI need not hold between them.

    Args:
        records: Records, a :class:`~ibhooks.runlog.Run` or a run-log path.
        header: Run header; its ``"chains"`` are drawn.
        estimator: Which estimator key (default: the first in the records).
        n_steps: How many steps to draw per panel.

    Returns:
        The :class:`matplotlib.figure.Figure`.
    """
    recs, hdr = as_records(records, header)
    estimator = default_estimator(recs, estimator)
    found = chains_of(hdr, recs)
    chains: List[Tuple[str, Tuple[str, ...]]] = [(c.name, c.layers) for c in found] or [
        (NO_CHAIN, tuple(layer_names(recs)))]
    picks = pick_steps(recs, n_steps)
    norm = step_norm([r.step for r in recs])
    viols = [[v for v in dpi_violations(r) if v.estimator == estimator] for r in recs]
    cap_of = dict(zip(QUANTITIES, caps(recs, estimator)))
    with style():
        cmap = step_cmap()
        width = max(7.5, min(12.0, 3.0 + 1.1 * max(len(m) for _, m in chains)))
        fig = new_figure((width, 2.8 * len(chains) + 0.6))
        axes = fig.subplots(len(chains), 2, squeeze=False)
        for row, (cname, members) in enumerate(chains):
            for ax, q in zip(axes[row], QUANTITIES):
                hits = _draw_panel(ax, recs, picks, list(members), estimator, q, cap_of[q], viols, norm, cmap)
                if found:
                    n_checked = sum(1 for r in recs if dpi_checked(r, cname, estimator, q))
                    ax.set_title(_panel_title(q, cname, hits, n_checked), fontsize=9)
                else:
                    ax.set_title(q.label, fontsize=9)
        handles = _legend_handles(recs, picks, norm, cmap)
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), frameon=False,
                   handlelength=1.6, columnspacing=1.2)
        suptitle = figure_title(recs, estimator, "Data-processing inequality")
        fig.suptitle(suptitle + ("" if found else "\n" + NO_CHAIN), fontsize=10)
    return fig
