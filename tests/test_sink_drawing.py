"""FigureHistory: the compact copy of a run the drawing sinks keep instead of Records."""

import math
from dataclasses import replace

import pytest

from ibhooks.schema import QUANTITIES
from ibhooks.sinks.drawing import FigureHistory, draw_figures, figure_tag

from _records import LAYERS, make_header, make_history, steps_default

ESTIMATORS = ("binning", "kde")


@pytest.fixture(scope="module")
def filled():
    history = make_history(steps_default(12), estimators=ESTIMATORS)
    fh = FigureHistory()
    for rec in history:
        fh.append(rec)
    return history, fh


def test_slim_records_keep_every_figure_input(filled):
    history, fh = filled
    slim = fh.records()
    assert len(fh) == len(slim) == len(history) and fh.last_step == history[-1].step
    assert fh.layers == list(LAYERS) and fh.estimators == list(ESTIMATORS)
    for full, s in zip(history, slim):
        meta = ("step", "epoch", "mode", "n_samples", "h_y")
        assert [getattr(s, k) for k in meta] == [getattr(full, k) for k in meta]
        assert list(s.layers) == list(full.layers)
        for layer in full.layers:
            for est in ESTIMATORS:
                for q in QUANTITIES:
                    a, b = full.estimate(layer, q, est), s.estimate(layer, q, est)
                    kept = ("value", "ci", "cap", "saturated", "quantity", "kind", "estimator", "params",
                            "traits", "n", "dim")
                    assert [getattr(b, k) for k in kept] == [getattr(a, k) for k in kept]
                    assert b.diagnostics == {}
        assert s.warnings == [] and s.errors == [] and s.phase_changes == []
        if full.checks is None:
            assert s.checks is None
        else:
            assert s.checks.dpi == full.checks.dpi and s.checks.chains == full.checks.chains
            def pairs(checks):
                return [(v.upstream, v.downstream, v.size_bits, v.significant) for v in checks.dpi_violations]

            assert pairs(s.checks) == pairs(full.checks)
    assert any(r.checks is not None and r.checks.dpi_violations for r in slim)
    latest = {}
    for rec in history:
        latest.update({d.key: d for d in rec.phase_changes})
    assert fh.phases == latest and any(d.shown for d in latest.values())


def test_plane_rows_are_every_point_with_both_quantities(filled):
    history, fh = filled
    rows = fh.plane_rows("kde")
    assert len(rows) == len(history) * len(LAYERS)
    rec, layer = history[5], LAYERS[1]
    res = rec.layers[layer]["kde"]
    row = rows[5 * len(LAYERS) + 1]
    ci = [*res.i_xt.ci, *res.i_ty.ci]
    assert row == [rec.step, rec.epoch, layer, "kde", res.i_xt.value, res.i_ty.value, *ci]


def test_figures_from_the_compact_history_equal_those_from_records(filled):
    from ibhooks import plotting

    history, fh = filled
    header = make_header(estimators=ESTIMATORS)
    drawn = {(name, est): fig for name, est, fig in draw_figures(fh, header, ("plane", "curves", "dpi"))}
    assert set(drawn) == {(n, e) for n in ("plane", "curves", "dpi") for e in ESTIMATORS}
    reference = {
        "plane": plotting.plot_information_plane(history, estimator="kde", header=header),
        "curves": plotting.plot_layer_curves(history, estimator="kde", header=header),
        "dpi": plotting.plot_dpi(history, estimator="kde", header=header),
    }
    for name, ref in reference.items():
        png = plotting.figure_to_png(drawn[(name, "kde")], dpi=60)
        assert png == plotting.figure_to_png(ref, dpi=60), name
        plotting.close_figure(ref)
    for fig in drawn.values():
        plotting.close_figure(fig)


def test_no_plane_without_labels_and_bounded_labels():
    recs = make_history([0, 10, 100])
    for r in recs:
        for per_est in r.layers.values():
            per_est["binning"].i_ty = None
    fh = FigureHistory()
    for r in recs:
        fh.append(r)
    assert not fh.has_plane("binning") and fh.plane_rows("binning") == []
    assert [n for n, _, _ in draw_figures(fh, {}, ("plane",))] == []
    assert draw_figures(FigureHistory(), {}, ("plane", "curves")) == []
    # a label that differs at every measurement (e.g. a per-measurement bin range) keeps a bounded
    # number of templates; the values are all kept
    fh = FigureHistory()
    for k, r in enumerate(make_history(list(range(0, 300, 10)))):
        for per_est in r.layers.values():
            res = per_est["binning"]
            res.i_xt = replace(res.i_xt, quantity=f"H(bin30[-{k},{k}](T))")
        fh.append(r)
    (series,) = [s for (layer, _, q), s in fh._series.items() if layer == "fc1" and q.value == "I_XT"]
    assert len(series.templates) == 8 and len(series.value) == 30 and not math.isnan(series.value[-1])


def test_figure_tags():
    assert figure_tag("plane", "kde", with_estimator=False) == "ib/plane"
    assert figure_tag("dpi", "kde", with_estimator=True, prefix="x") == "x/kde/dpi"


def test_figure_history_keeps_what_the_figures_draw_of_the_analyses():
    """The IB curve (once), I(T;Y) under its rule and calibration errors reach the slim Records that the
    TensorBoard / W&B figures are drawn from; nothing else of the analyses is kept."""
    from ibhooks.schema import Estimate, LayerResult, Record
    from ibhooks.sinks.drawing import FigureHistory

    def rec(step, analyses):
        e = Estimate(value=1.0, quantity="q", kind="estimate", estimator="binning")
        return Record(step=step, mode="probe", n_samples=8, layers={"l": {"binning": LayerResult(e, e)}},
                      analyses=analyses)

    curve = {"points": [[0.0, 0.0], [1.0, 0.5]], "h_x": 3.0, "h_y": 1.0}
    hist = FigureHistory()
    hist.append(rec(0, {"ib_bound": {"curve": curve, "gaps": {"l": {"binning": 0.1}},
                                     "i_ty_rule": {"l": {"binning": 0.4}}},
                        "geometry": {"l": {"ratio": 0.5}}}))
    hist.append(rec(5, {"ib_bound": {"curve_step": 0, "i_ty_rule": {"l": {"binning": 0.6}}},
                        "calibration": {"layers": {"l": {"binning": {"I_TY": {"error": -0.2, "large": True,
                                                                              "truth": 1.0}}}}}}))
    first, second = hist.records()
    assert first.analyses["ib_bound"]["curve"] == curve and "gaps" not in first.analyses["ib_bound"]
    assert "geometry" not in first.analyses
    assert second.analyses["ib_bound"] == {"i_ty_rule": {"l": {"binning": 0.6}}}
    assert second.analyses["calibration"]["layers"]["l"]["binning"]["I_TY"] == {"error": -0.2, "large": True}
