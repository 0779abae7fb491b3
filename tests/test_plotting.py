"""Figures and record queries from typed Records: what is drawn matches the Records, caps and labels say
what was measured, phases are the fold of the records' phase changes, every estimator gets its DPI
panel, missing checks/phases draw nothing, and matplotlib stays out of `import ibhooks` and pyplot."""

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from ibhooks import plotting  # noqa: E402
from ibhooks.plotting.dpi import pick_steps  # noqa: E402
from ibhooks.plotting.style import measured_caption, new_figure  # noqa: E402
from ibhooks.schema import (  # noqa: E402
    DpiViolation,
    LayerResult,
    PhaseDecision,
    PhaseStatus,
    Quantity,
    make_estimate,
)

from _records import CAP, H_Y, LAYERS, QX, QY, make_header, make_history, write_log  # noqa: E402

STEPS = [0, 1, 3, 10, 30, 100, 300, 1000, 2000, 3000, 4000, 5000]
V1_LOG = Path(__file__).parent / "fixtures" / "run_v1.jsonl"


@pytest.fixture(scope="module")
def history():
    return make_history(STEPS)


def _traj(ax, layer):
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == f"traj:{layer}"]
    return np.asarray(line.get_xydata())


def _crosses(ax):
    return [ln for ln in ax.get_lines() if ln.get_marker() == "X"]


def _run(code):
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def test_import_plotting_does_not_import_matplotlib_and_drawing_leaves_pyplot_alone():
    res = _run(
        "import sys, ibhooks.plotting\n"
        "from ibhooks.plotting import queries, findings, style, plane, curves, dpi, animation\n"
        "mpl = sorted(m for m in sys.modules if m == 'matplotlib' or m.startswith('matplotlib.'))\n"
        "assert not mpl, f'import ibhooks.plotting pulled {mpl}'\n"
        "import ibhooks.progress, ibhooks.cli\n"
        "assert 'matplotlib' not in sys.modules, 'import pulled matplotlib'\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
        "from _records import make_history\n"
        "fig = ibhooks.plotting.plot_information_plane(make_history([0, 1, 10]))\n"
        "assert 'matplotlib' in sys.modules and 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
    )
    assert res.returncode == 0, res.stderr


def test_plane_draws_every_layer_trajectory_from_the_records(history):
    fig = plotting.plot_information_plane(history)
    ax = fig.axes[0]
    for layer in LAYERS:
        res = [r.layers[layer]["binning"] for r in history]
        want = [(x.i_xt.value, x.i_ty.value) for x in res]
        np.testing.assert_allclose(_traj(ax, layer), want)
    # short axis labels; the caption under the figure names the quantities actually measured
    assert ax.get_xlabel() == f"{Quantity.I_XT.label} [bits]" and ax.get_ylabel() == f"{Quantity.I_TY.label} [bits]"
    caption = fig._supxlabel.get_text()
    assert QX in caption and QY in caption
    # layers that meet at one point stay visible: first layer's markers largest, the last's smallest
    sizes = [c.get_sizes()[0] for c in ax.collections
             if type(c).__name__ == "PathCollection" and c.get_array() is not None]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > 1.5 * sizes[-1]
    lines = ax.get_lines()
    vlines = [ln for ln in lines if np.allclose(ln.get_xdata(), CAP) and len(set(ln.get_xdata())) == 1]
    hlines = [ln for ln in lines if np.allclose(ln.get_ydata(), H_Y) and len(set(ln.get_ydata())) == 1]
    assert vlines and hlines
    assert ax.get_xlim()[1] > CAP and ax.get_ylim()[1] > H_Y
    # a colorbar on a log scale of steps
    cbar_axes = [a for a in fig.axes if a is not ax]
    assert cbar_axes and "step" in cbar_axes[0].get_ylabel()
    scatters = [c for c in ax.collections
                if type(c).__name__ == "PathCollection" and c.get_array() is not None]
    assert scatters and all(type(c.norm).__name__ == "LogNorm" for c in scatters)
    # the saturated first layer is ringed, and CI whiskers exist
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(r.layers["fc1"]["binning"].i_xt.saturated for r in history)
    assert "I(X;T) at cap" in texts and all(layer in texts for layer in LAYERS)
    assert any(type(c).__name__ == "LineCollection" for c in ax.collections)


def test_plane_into_a_given_axes_and_a_chosen_estimator():
    from matplotlib.figure import Figure

    recs = make_history([0, 10, 100, 1000], estimators=("binning", "kde"))
    fig = Figure()
    ax = fig.add_subplot()
    out = plotting.plot_information_plane(recs, estimator="kde", ax=ax)
    assert out is fig
    assert "upper bound" in ax.get_xlabel() and "kde" in ax.get_title()
    np.testing.assert_allclose(_traj(ax, "fc2")[:, 0], [r.layers["fc2"]["kde"].i_xt.value for r in recs])
    with pytest.raises(ValueError, match="not in these records"):
        plotting.plot_information_plane(recs, estimator="nope")


def test_layer_curves_values_caps_and_phase_lanes(history):
    fig = plotting.plot_layer_curves(history)
    ax_x, ax_y, ax_p = fig.axes[:3]
    (line,) = [ln for ln in ax_x.get_lines() if ln.get_gid() == "I_XT:fc2"]
    np.testing.assert_allclose(line.get_ydata(), [r.layers["fc2"]["binning"].i_xt.value for r in history])
    assert ax_x.get_xscale() in ("log", "symlog")
    # one bar per detected/candidate decision of the fold of the records' phase changes
    latest = plotting.latest_phases(history)
    shown = [d for d in latest.values() if d.shown and d.start_step is not None]
    assert {d.phase for d in shown} == {"fitting", "compression"}, "the synthetic run has both phases"
    assert len(ax_p.patches) == len(shown)
    n_candidates = sum(d.status is PhaseStatus.CANDIDATE for d in shown)
    assert sum(1 for p in ax_p.patches if p.get_hatch()) == n_candidates
    for layer in LAYERS:
        spans = plotting.phase_spans(history, layer)
        want = [d for d in shown if d.layer == layer]
        assert [(s.phase, s.start, s.ongoing) for s in spans] == [
            (d.phase, float(d.start_step), d.end_step is None) for d in want]
        assert all(s.end == (history[-1].step if s.ongoing else s.decision.end_step) for s in spans)
    assert [t.get_text() for t in ax_p.get_yticklabels()] == list(reversed(LAYERS))
    # earlier in the run a phase was only a candidate: drawn hatched
    prefixes = [k for k in range(2, len(history)) if any(
        d.status is PhaseStatus.CANDIDATE for d in plotting.latest_phases(history[:k]).values())]
    assert prefixes, "the synthetic run passes through candidate decisions"
    early = plotting.plot_layer_curves(history[: prefixes[0]]).axes[2]
    assert any(p.get_hatch() for p in early.patches)


def _decision(step, status, start, end, phase="fitting", layer="fc1"):
    return PhaseDecision(layer, "binning", phase, step, PhaseStatus(status), start_step=start, end_step=end,
                         ongoing=end is None)


def test_phase_spans_are_the_latest_fold_of_the_changes():
    recs = make_history([0, 1, 2, 3, 4])
    for r in recs:
        r.phase_changes = []
    recs[1].phase_changes = [_decision(1, "candidate", 0, None),
                             _decision(1, "candidate", 1, None, "compression")]
    recs[2].phase_changes = [_decision(2, "detected", 0, 2)]
    recs[3].phase_changes = [_decision(3, "not_detected", None, None, "compression")]
    spans = plotting.phase_spans(recs, "fc1")
    assert [(s.phase, s.status, s.start, s.end, s.ongoing) for s in spans] == [
        ("fitting", "detected", 0, 2, False)]
    # up to step 1: both candidates, ongoing up to the last step given
    early = plotting.phase_spans(recs[:2], "fc1")
    assert [(s.phase, s.status, s.end, s.ongoing) for s in early] == [
        ("fitting", "candidate", 1, True), ("compression", "candidate", 1, True)]
    assert plotting.phase_spans(recs, "fc2") == []
    # an already folded mapping (e.g. Run.phases) is used as given
    folded = plotting.latest_phases(recs[:2])
    assert plotting.phase_spans(recs, "fc1", phases=folded)[0].end == recs[-1].step


def test_missing_phases_checks_and_failed_layers_draw_nothing_extra():
    recs = make_history([0, 5, 50, 500])
    for r in recs:
        r.phase_changes, r.checks, r.warnings = [], None, []
    recs[-1].layers["fc2"]["binning"] = LayerResult(error="RuntimeError: boom")
    assert len(plotting.plot_layer_curves(recs).axes) == 2  # no phase strip
    plane = plotting.plot_information_plane(recs)
    assert len(_traj(plane.axes[0], "fc2")) == len(recs) - 1  # the failed measurement is skipped
    dpi = plotting.plot_dpi(recs, header=make_header())
    assert not [ln for ax in dpi.axes for ln in _crosses(ax)]
    assert "not checked" in dpi.axes[0].get_title()
    assert plotting.dpi_totals(recs) == {} and plotting.warnings_summary(recs) == []


def test_dpi_marks_reported_violations(history):
    fig = plotting.plot_dpi(history, header=make_header())
    picks = [history[j] for j in pick_steps(history, 4)]
    for ax, q in zip(fig.axes[:2], (Quantity.I_XT, Quantity.I_TY)):
        want = sorted(LAYERS.index(v.downstream) for r in picks for v in plotting.dpi_violations(r)
                      if v.quantity is q)
        got = sorted(int(ln.get_xdata()[0]) for ln in _crosses(ax))
        assert got == want
        n_viol = sum(1 for r in history if any(v.quantity is q for v in plotting.dpi_violations(r)))
        assert f"violated at {n_viol} of {len(history)} checked steps" in ax.get_title()
        assert "chain 'main'" in ax.get_title()
    assert _crosses(fig.axes[1]), "the synthetic run violates the DPI on I(T;Y) at a drawn step"


def test_dpi_figure_for_every_estimator_under_its_own_name():
    recs = make_history([0, 10, 100, 1000], estimators=("binning", "kde"))
    last = recs[-1]
    extra = DpiViolation("main", "kde", Quantity.I_XT, "fc1", "fc2", 5.0, 5.1, 0.1, None, None,
                         ("upper_bound", "upper_bound"), "injected")
    last.checks = dataclasses.replace(last.checks, dpi_violations=last.checks.dpi_violations + (extra,))
    figs = plotting.make_figures(recs, header=make_header(estimators=("binning", "kde")))
    assert {"dpi_binning", "dpi_kde"} <= set(figs)
    kde_x = figs["dpi_kde"].axes[0]
    (cross,) = _crosses(kde_x)
    assert cross.get_xdata()[0] == LAYERS.index("fc2") and cross.get_markerfacecolor() == "none"
    assert "1 not assessed" in kde_x.get_title()
    assert not _crosses(figs["dpi_binning"].axes[0])
    assert "kde" in figs["dpi_kde"]._suptitle.get_text()
    for fig in figs.values():
        plotting.close_figure(fig)


def test_titles_name_the_estimator_not_the_monitor_key():
    recs = make_history([0, 10, 100], estimators=("binning", "other"))
    for r in recs:  # a second binning with other settings, stored under the monitor key "binning_1"
        for layer, per_est in r.layers.items():
            res = per_est.pop("other")
            per_est["binning_1"] = LayerResult(*(
                dataclasses.replace(e, estimator="binning", params={**e.params, "n_bins": 100})
                for e in (res.i_xt, res.i_ty)))
        r.checks = None
    assert plotting.estimator_title(recs, "binning_1") == "binning (n_bins=100)"
    assert plotting.estimator_title(recs, "binning") == "binning (n_bins=30)"
    figs = plotting.make_figures(recs)
    titles = [f._suptitle.get_text() if f._suptitle else f.axes[0].get_title() for f in figs.values()]
    assert titles and not [t for t in titles if "binning_1" in t]
    assert any("n_bins=100" in t for t in titles)


def test_title_of_a_per_layer_choice_names_every_instrument():
    """The default ``auto`` picks an instrument per layer and quantity: the title lists them all, not the
    first layer's alone."""
    recs = make_history([0, 10], estimators=("auto",))
    for r in recs:
        for i, per_est in enumerate(r.layers.values()):
            res = per_est["auto"]
            xt = "auto:binning" if i == len(r.layers) - 1 else "auto:noisy_channel_rel"
            per_est["auto"] = LayerResult(dataclasses.replace(res.i_xt, estimator=xt),
                                          dataclasses.replace(res.i_ty, estimator="auto:classifier_probe"))
    assert plotting.estimator_title(recs, "auto") == \
        "auto (per layer: binning, classifier_probe, noisy_channel_rel)"
    figs = plotting.make_figures(recs)
    assert any("per layer" in (f._suptitle.get_text() if f._suptitle else "") for f in figs.values())
    for name, fig in figs.items():  # the longer title still fits every figure
        assert not _outside(fig), name
        plotting.close_figure(fig)
    fig = new_figure((6.0, 5.0))  # a quantity that names itself is not named twice
    measured_caption(fig, [("I(T;Y)", "I(T;Y) >= H(Y) - CE[linear probe]"), ("I(X;T)", "H(bin30(T))")])
    assert fig._supxlabel.get_text() == "measured: I(T;Y) >= H(Y) - CE[linear probe]; I(X;T) = H(bin30(T))"
    plotting.close_figure(fig)
    for r in recs:  # one instrument everywhere: its own name, as before
        for per_est in r.layers.values():
            res = per_est["auto"]
            per_est["auto"] = LayerResult(*(dataclasses.replace(e, estimator="auto:binning")
                                            for e in (res.i_xt, res.i_ty)))
    assert plotting.estimator_title(recs, "auto") == "auto:binning"


def _outside(fig):
    """Texts (labels, titles, legends, captions) that stick out of the rendered figure."""
    fig.canvas.draw()
    box = fig.bbox
    renderer = fig.canvas.get_renderer()
    out = []
    ticks = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for t in axis.get_ticklabels(minor=False) + axis.get_ticklabels(minor=True)}
    for t in fig.findobj(lambda a: type(a).__name__ in ("Text", "Annotation")):
        if not t.get_visible() or not t.get_text().strip() or id(t) in ticks:
            continue
        bb = t.get_window_extent(renderer)
        if bb.x0 < box.x0 - 1 or bb.x1 > box.x1 + 1 or bb.y0 < box.y0 - 1 or bb.y1 > box.y1 + 1:
            out.append(t.get_text())
    tight = fig.get_tightbbox(renderer)  # every drawn artist, tick labels included (inches)
    w, h = fig.get_size_inches()
    if tight.x0 < -0.01 or tight.y0 < -0.01 or tight.x1 > w + 0.01 or tight.y1 > h + 0.01:
        out.append(f"drawn area {tight} outside the {w}x{h} in figure")
    return out


def test_long_quantity_labels_and_layer_names_are_not_clipped():
    long_q = "I(X; T + N(0, 0.1 * var(T))) estimated with a very long description of the noise model used"
    recs = make_history([0, 10, 100, 1000, 5000], layers=("encoder.layers.0.self_attn.out_proj",
                                                            "encoder.layers.1.mlp.fc2", "head"))
    for r in recs:
        for per_est in r.layers.values():
            res = per_est["binning"]
            res.i_xt = dataclasses.replace(res.i_xt, quantity=long_q)
            res.i_ty = dataclasses.replace(res.i_ty, quantity=long_q.replace("I(X;", "I(Y;"))
    for draw in (plotting.plot_information_plane, plotting.plot_layer_curves, plotting.plot_dpi):
        fig = draw(recs)
        assert _outside(fig) == [], draw.__name__
        plotting.close_figure(fig)


def test_saving_in_several_formats_prints_no_library_warning(tmp_path, recwarn):
    recs = make_history([0, 10, 100, 1000])
    plotting.save_all_figures(recs, tmp_path, formats=("png", "svg"), animation=False)
    assert [str(w.message) for w in recwarn] == []
    assert (tmp_path / "layer_curves.svg").stat().st_size > 0


def test_dpi_without_chains_says_so():
    recs = make_history([0, 10, 100])
    for r in recs:
        r.checks = None
    fig = plotting.plot_dpi(recs, header={})
    assert "need not hold" in fig._suptitle.get_text()


def test_record_queries_return_typed_summaries(history):
    totals = plotting.dpi_totals(history)
    for (est, q), t in totals.items():
        tallies = [r.checks.tally(est, q) for r in history]
        assert isinstance(t, plotting.DpiTotal) and t.quantity is q
        assert t.pairs_checked == sum(x.pairs_checked for x in tallies)
        assert t.measurements_violated == sum(1 for x in tallies if x.violated)
        assert t.significant + t.not_assessed <= t.violated
    warns = plotting.warnings_summary(history)
    assert warns
    for w in warns:
        steps = [r.step for r in history if any(x.key == w.warning.key for x in r.warnings)]
        assert (w.count, w.first_step, w.last_step) == (len(steps), steps[0], steps[-1])
    pairs = plotting.dpi_violation_summary(history)
    assert sum(p.count for p in pairs) == sum(len(plotting.dpi_violations(r)) for r in history) > 0
    chains = plotting.chains_of(make_header(), history)
    assert [(c.name, c.layers) for c in chains] == [("main", LAYERS)]
    assert [c.layers for c in plotting.chains_of({}, history)] == [LAYERS]  # from the checks
    assert plotting.chains_of({"chains": [["fc1", "ghost", "fc3"]]}, history)[0].layers == ("fc1", "fc3")


def test_metric_items_key_scheme():
    rec = make_history([0, 10])[1]
    items = plotting.metric_items(rec)
    assert items["ib/fc1/I_XT"] == rec.layers["fc1"]["binning"].i_xt.value
    assert items["ib/fc1/I_XT_lo"] == rec.layers["fc1"]["binning"].i_xt.ci[0]
    assert {"ib/H_Y", "ib/seconds", "ib/fc3/I_TY_hi"} <= set(items)
    multi = make_history([0, 10], estimators=("binning", "kde"))[1]
    assert plotting.multi_estimator([multi])
    keys = plotting.metric_items(multi, with_estimator=True)
    assert "ib/kde/fc2/I_TY" in keys and "ib/binning/fc2/I_TY" in keys
    no_ci = make_history([0, 10], with_ci=False)[1]
    assert not [k for k in plotting.metric_items(no_ci) if k.endswith(("_lo", "_hi"))]


def test_animation_and_save_all_figures(tmp_path):
    from PIL import Image

    recs = make_history([0, 1, 10, 100, 1000])
    paths = plotting.save_all_figures(recs, tmp_path, header=make_header(), formats=("png", "pdf"), dpi=80)
    assert set(paths) == {"information_plane", "layer_curves", "dpi", "information_plane_animation",
                          "information_plane.pdf", "layer_curves.pdf", "dpi.pdf"}
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths.values())
    assert Image.open(paths["information_plane_animation"]).n_frames == len(recs)
    multi = plotting.save_all_figures(
        make_history([0, 10, 100], estimators=("binning", "kde")), tmp_path / "m", dpi=60, animation=False
    )
    assert set(multi) == {f"{kind}_{est}" for kind in ("information_plane", "layer_curves", "dpi")
                          for est in ("binning", "kde")}


def test_run_logs_v2_and_v1_redraw(tmp_path):
    recs = make_history([0, 10, 100, 1000])
    write_log(tmp_path / "run.jsonl", recs)
    logged, _ = plotting.as_records(tmp_path / "run.jsonl")
    assert [r.to_dict() for r in logged] == [r.to_dict() for r in recs]
    from_dicts, _ = plotting.as_records([r.to_dict() for r in reversed(recs)])
    assert [r.step for r in from_dicts] == [r.step for r in recs]
    # a version-1 log (phases stored whole in every record) draws from its typed reading
    v1, header = plotting.as_records(V1_LOG)
    figs = plotting.make_figures(V1_LOG)
    assert set(figs) == {f"{kind}_{est}" for kind in ("information_plane", "layer_curves", "dpi")
                         for est in plotting.estimator_names(v1)}
    assert len(figs["layer_curves_binning"].axes) == 3  # its phase decisions give a strip
    kde_viol = [v for r in v1 for v in plotting.dpi_violations(r) if v.estimator == "kde"]
    assert kde_viol and plotting.chains_of(header, v1)
    n_checked = sum(plotting.dpi_checked(r, "model", "kde", Quantity.I_TY) for r in v1)
    n_bad = sum(1 for r in v1 if any(v.estimator == "kde" and v.quantity is Quantity.I_TY
                                     for v in plotting.dpi_violations(r)))
    assert f"violated at {n_bad} of {n_checked} checked steps" in figs["dpi_kde"].axes[1].get_title()
    for fig in figs.values():
        plotting.close_figure(fig)


def test_no_measurements_is_a_clear_error():
    with pytest.raises(ValueError, match="no measurements"):
        plotting.make_figures([])


def test_non_finite_values_are_skipped():
    recs = make_history([0, 10, 100])
    bad = make_estimate(math.nan, QX, kind="exact", estimator="binning", cap=CAP)
    recs[1].layers["fc1"]["binning"].i_xt = bad
    s = plotting.layer_series(recs, "fc1", "binning", Quantity.I_XT)
    assert list(s.steps) == [0, 100]
    assert list(plotting.layer_series(recs, "fc1", "binning", "I_XT").steps) == [0, 100]
    plotting.plot_information_plane(recs)


def test_no_labels_gives_a_note_instead_of_an_empty_plane():
    recs = make_history([0, 5, 50])
    for r in recs:
        for per_est in r.layers.values():
            for res in per_est.values():
                res.i_ty = None
    assert not plotting.has_plane(recs)
    ax = plotting.plot_information_plane(recs).axes[0]
    assert any("no labels" in t.get_text() for t in ax.texts)
    assert len(plotting.plot_layer_curves(recs).axes) >= 2

