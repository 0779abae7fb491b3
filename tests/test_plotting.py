"""Figures from Records: what is drawn matches the Records, caps and labels say what was measured,
missing checks/phases draw nothing, and matplotlib stays out of `import ibhooks` and pyplot."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from ibhooks import plotting  # noqa: E402
from ibhooks.estimate import LayerResult, make_estimate  # noqa: E402

from _records import CAP, H_Y, LAYERS, QX, QY, make_header, make_history  # noqa: E402

STEPS = [0, 1, 3, 10, 30, 100, 300, 1000, 2000, 3000, 4000, 5000]


@pytest.fixture(scope="module")
def history():
    return make_history(STEPS)


def _traj(ax, layer):
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == f"traj:{layer}"]
    return np.asarray(line.get_xydata())


def test_import_ibhooks_and_plotting_leave_matplotlib_and_pyplot_alone():
    code = (
        "import sys, ibhooks, ibhooks.plotting, ibhooks.progress, ibhooks.cli\n"
        "assert 'matplotlib' not in sys.modules, 'import pulled matplotlib'\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
        "from _records import make_history\n"
        "from ibhooks.plotting import plot_information_plane\n"
        "fig = plot_information_plane(make_history([0, 1, 10]))\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'plotting imported pyplot'\n"
        "import matplotlib; print(matplotlib.get_backend())\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "MPLBACKEND"},
    )
    assert res.returncode == 0, res.stderr


def test_plane_draws_every_layer_trajectory_from_the_records(history):
    fig = plotting.plot_information_plane(history)
    ax = fig.axes[0]
    for layer in LAYERS:
        xy = _traj(ax, layer)
        want = [
            (r.layers[layer]["binning"].i_xt.value, r.layers[layer]["binning"].i_ty.value) for r in history
        ]
        np.testing.assert_allclose(xy, want)
    # the axes name the quantity actually measured, and the caps are drawn where they are
    assert QX in ax.get_xlabel() and "I(X;T)" in ax.get_xlabel()
    assert QY in ax.get_ylabel() and "I(T;Y)" in ax.get_ylabel()
    vlines = [
        ln for ln in ax.get_lines() if np.allclose(ln.get_xdata(), CAP) and len(set(ln.get_xdata())) == 1
    ]
    hlines = [
        ln for ln in ax.get_lines() if np.allclose(ln.get_ydata(), H_Y) and len(set(ln.get_ydata())) == 1
    ]
    assert vlines and hlines
    assert ax.get_xlim()[1] > CAP and ax.get_ylim()[1] > H_Y
    # a colorbar on a log scale of steps
    cbar_axes = [a for a in fig.axes if a is not ax]
    assert cbar_axes and "step" in cbar_axes[0].get_ylabel()
    scatters = [
        c for c in ax.collections if type(c).__name__ == "PathCollection" and c.get_array() is not None
    ]
    assert scatters and all(type(c.norm).__name__ == "LogNorm" for c in scatters)
    # the saturated first layer is ringed, and CI whiskers exist
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "I(X;T) at cap" in texts and all(layer in texts for layer in LAYERS)
    assert any(type(c).__name__ == "LineCollection" for c in ax.collections)


def test_plane_into_a_given_axes_and_a_chosen_estimator():
    from matplotlib.figure import Figure

    recs = make_history([0, 10, 100, 1000], estimators=("binning", "kde"))
    fig = Figure()
    ax = fig.add_subplot()
    out = plotting.plot_information_plane(recs, estimator="kde", ax=ax)
    assert out is fig
    assert "upper bound" in ax.get_xlabel()
    xy = _traj(ax, "fc2")
    np.testing.assert_allclose(xy[:, 0], [r.layers["fc2"]["kde"].i_xt.value for r in recs])
    with pytest.raises(ValueError, match="not in these records"):
        plotting.plot_information_plane(recs, estimator="nope")


def test_layer_curves_values_caps_and_phase_lanes(history):
    fig = plotting.plot_layer_curves(history)
    ax_x, ax_y, ax_p = fig.axes[:3]
    (line,) = [ln for ln in ax_x.get_lines() if ln.get_gid() == "I_XT:fc2"]
    np.testing.assert_allclose(line.get_ydata(), [r.layers["fc2"]["binning"].i_xt.value for r in history])
    assert ax_x.get_xscale() in ("log", "symlog")
    # phases from the last record: fitting for every layer, compression (ongoing) for fc2 and fc3
    spans = plotting.phase_spans(history, "fc3")
    assert {(s.phase, s.status, s.ongoing) for s in spans} == {
        ("fitting", "detected", False),
        ("compression", "detected", True),
    }
    assert spans[0].start == 0 and spans[0].end == STEPS[5]
    assert len(ax_p.patches) == 5  # fc1 fitting, fc2 and fc3 fitting + compression
    assert not [p for p in ax_p.patches if p.get_hatch()]
    # earlier, compression was only a candidate: drawn hatched
    early = plotting.plot_layer_curves(history[:7]).axes[2]
    assert sum(1 for p in early.patches if p.get_hatch()) == 2
    assert [t.get_text() for t in ax_p.get_yticklabels()] == list(reversed(LAYERS))


def test_missing_phases_checks_and_failed_layers_draw_nothing_extra():
    recs = make_history([0, 5, 50, 500])
    for r in recs:
        r.phases, r.checks, r.warnings = {}, {}, []
    recs[-1].layers["fc2"]["binning"] = LayerResult(error="RuntimeError: boom")
    fig = plotting.plot_layer_curves(recs)
    assert len(fig.axes) == 2  # no phase strip
    plane = plotting.plot_information_plane(recs)
    assert len(_traj(plane.axes[0], "fc2")) == 3  # the failed measurement is skipped
    dpi = plotting.plot_dpi(recs, header=make_header())
    markers = [ln for ax in dpi.axes for ln in ax.get_lines() if ln.get_marker() == "X"]
    assert not markers


def test_dpi_marks_reported_violations(history):
    fig = plotting.plot_dpi(history, header=make_header())
    ax_x, ax_y = fig.axes[:2]
    crosses = [ln for ln in ax_y.get_lines() if ln.get_marker() == "X"]
    assert crosses and not [ln for ln in ax_x.get_lines() if ln.get_marker() == "X"]
    assert np.allclose(crosses[0].get_xdata(), [2])  # fc3, the downstream layer
    n_viol = sum(1 for r in history if plotting.dpi_violations(r))
    assert f"{n_viol} of {len(history)} checked steps" in ax_y.get_title()
    assert "chain 'main'" in ax_x.get_title()


def test_dpi_without_chains_says_so():
    recs = make_history([0, 10, 100])
    for r in recs:
        r.checks = {}
    fig = plotting.plot_dpi(recs, header={})
    assert "need not hold" in fig._suptitle.get_text()


def test_phase_readers_accept_simple_layouts():
    recs = make_history([0, 1, 2, 3])
    for r, label in zip(recs, [None, "fitting", "fitting", "compression"]):
        r.phases = {} if label is None else {"fc1": {"phase": label}}
    spans = plotting.phase_spans(recs, "fc1")
    assert [(s.phase, s.start, s.end) for s in spans] == [("fitting", 1.0, 2.0), ("compression", 3.0, 3.0)]
    assert plotting.phase_spans(recs, "fc2") == []


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
    assert set(paths) >= {
        "information_plane",
        "layer_curves",
        "dpi",
        "information_plane_animation",
        "information_plane.pdf",
    }
    assert all(p.exists() and p.stat().st_size > 1000 for p in paths.values())
    gif = Image.open(paths["information_plane_animation"])
    assert gif.n_frames == len(recs)
    multi = plotting.save_all_figures(
        make_history([0, 10, 100], estimators=("binning", "kde")), tmp_path / "m", dpi=60, animation=False
    )
    assert {"information_plane_binning", "information_plane_kde", "layer_curves_kde"} <= set(multi)


def test_no_measurements_is_a_clear_error():
    with pytest.raises(ValueError, match="no measurements"):
        plotting.make_figures([])


def test_non_finite_values_are_skipped():
    recs = make_history([0, 10, 100])
    bad = make_estimate(math.nan, QX, kind="exact", estimator="binning", cap=CAP, n=4096)
    recs[1].layers["fc1"]["binning"].i_xt = bad
    s = plotting.layer_series(recs, "fc1", "binning", "I_XT")
    assert list(s.steps) == [0, 100]
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
