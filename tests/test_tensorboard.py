"""TensorBoard sink: a real event file read back with tensorboard's EventAccumulator."""

import sys

import pytest

pytest.importorskip("tensorboard")
pytest.importorskip("matplotlib")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.custom_scalar import layout_pb2  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402

from ibhooks.integrations.tensorboard import TensorBoardSink  # noqa: E402
from ibhooks.sinks.registry import make_sink, sink_class  # noqa: E402

from _records import LAYERS, make_header, make_history, steps_default  # noqa: E402

STEPS = steps_default(18)  # long enough for a detected compression


def _read(path):
    ea = EventAccumulator(str(path), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    ea.Reload()
    return ea


def _text(ea, tag):
    return [
        (ev.step, tensor_util.make_ndarray(ev.tensor_proto).item().decode())
        for ev in ea.Tensors(f"{tag}/text_summary")
    ]


@pytest.fixture(scope="module")
def event_dir(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("tb")
    history = make_history(STEPS)
    sink = TensorBoardSink(str(log_dir), figure_every=8)
    sink.start(make_header())
    for rec in history:
        sink.write(rec)
    assert not hasattr(sink, "records")  # no Records kept: a compact history only
    sink.close()
    return log_dir, history


def _layer_dirs(log_dir):
    return sorted(p for p in log_dir.iterdir() if p.is_dir())


def test_one_sub_run_per_layer_named_in_network_order_with_intervals(event_dir):
    log_dir, history = event_dir
    dirs = _layer_dirs(log_dir)
    # TensorBoard sorts runs by name: T1 < T2 < T3 is input -> output; labels say type and dimension
    assert [d.name for d in dirs] == ["T1 fc1 (Linear, 10)", "T2 fc2 (Linear, 8)", "T3 fc3 (Linear, 6)"]
    for layer, d in zip(LAYERS, dirs):
        ea = _read(d)
        assert set(ea.Tags()["scalars"]) == {f"ib/{q}{s}" for q in ("I_XT", "I_TY") for s in ("", "_lo", "_hi")}
        events = ea.Scalars("ib/I_XT")
        assert [e.step for e in events] == STEPS
        assert [e.value for e in events] == pytest.approx(
            [r.layers[layer]["binning"].i_xt.value for r in history], abs=1e-5)
        assert ea.Scalars("ib/I_TY_lo")[-1].value == pytest.approx(
            history[-1].layers[layer]["binning"].i_ty.ci[0], abs=1e-5)
    main = set(_read(log_dir).Tags()["scalars"])
    assert {"ib/H_Y", "ib/seconds"} <= main and not any(t.startswith("ib/fc") for t in main)


def test_custom_scalars_layout_written_once_x_first(event_dir):
    log_dir, _ = event_dir
    ea = _read(log_dir)
    events = ea.Tensors("custom_scalars__config__")
    assert len(events) == 1
    layout = layout_pb2.Layout.FromString(tensor_util.make_ndarray(events[0].tensor_proto).item())
    cats = {c.title: c for c in layout.category}
    charts = [ch.title for ch in cats["ibhooks"].chart]
    assert charts == ["I(X;T) per layer [bits]", "I(T;Y) per layer [bits]"]
    assert list(cats["ibhooks"].chart[0].multiline.tag) == [r"^ib/I_XT$"]  # one line per layer run
    margin = {ch.title: ch for ch in cats["ibhooks intervals"].chart}["I(T;Y) with interval [bits]"]
    m = margin.margin.series[0]
    assert (m.value, m.lower, m.upper) == ("ib/I_TY", "ib/I_TY_lo", "ib/I_TY_hi")


def test_hparams_at_close_estimator_settings_to_final_fields(event_dir):
    from tensorboard.plugins.hparams import plugin_data_pb2

    log_dir, history = event_dir
    ea = _read(log_dir)
    content = ea.SummaryMetadata("_hparams_/experiment").plugin_data.content
    exp = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    assert {"binning.n_bins", "ibhooks.mode", "ibhooks.estimators"} <= {h.name for h in exp.hparam_infos}
    metrics = {m.name.tag for m in exp.metric_infos}
    assert {"final/T3 fc3 (Linear, 6)/I_XT", "final/T3 fc3 (Linear, 6)/compression_found",
            "final/T3 fc3 (Linear, 6)/compression_bits"} <= metrics
    final = ea.Scalars("final/T1 fc1 (Linear, 10)/I_TY")
    assert [e.step for e in final] == [STEPS[-1]]
    assert final[0].value == pytest.approx(history[-1].layers["fc1"]["binning"].i_ty.value, abs=1e-5)
    latest = {}
    for r in history:
        latest.update({d.key: d for d in r.phase_changes})
    for i, layer in enumerate(LAYERS):
        d = latest.get((layer, "binning", "compression"))
        found = float(d is not None and d.detected)
        label = f"T{i + 1} {layer} (Linear, {10 - 2 * i})"
        assert ea.Scalars(f"final/{label}/compression_found")[0].value == found
    assert any(d.detected and d.phase == "compression" for d in latest.values())


def test_a_reused_log_dir_gets_a_fresh_subfolder(tmp_path):
    for _ in range(2):
        sink = TensorBoardSink(str(tmp_path), figures=False)
        sink.start(make_header())
        for rec in make_history([0, 10]):
            sink.write(rec)
        sink.close()
    root_events = list(tmp_path.glob("events.out.tfevents.*"))
    (second,) = tmp_path.glob("run-*")
    assert len(root_events) == 1 and len(list(second.glob("events.out.tfevents.*"))) == 1
    assert len(_layer_dirs(second)) == len(LAYERS)
    for d in _layer_dirs(tmp_path):
        if d != second:
            assert len(list(d.glob("events.out.tfevents.*"))) == 1, d  # never two runs in one folder


def test_user_names_and_flat_keys_without_layer_runs(tmp_path):
    sink = TensorBoardSink(str(tmp_path), figures=False, layer_runs=False, layer_names={"fc2": "hidden"})
    sink.start(make_header())
    for rec in make_history([0, 10]):
        sink.write(rec)
    sink.close()
    assert sink.labels["fc2"] == "T2 hidden (Linear, 8)"
    assert _layer_dirs(tmp_path) == []
    tags = set(_read(tmp_path).Tags()["scalars"])
    assert {"ib/fc1/I_XT", "ib/fc3/I_TY_hi"} <= tags


def test_plane_and_curves_every_k_and_at_close_dpi_at_close(event_dir):
    log_dir, history = event_dir
    ea = _read(log_dir)
    planes = ea.Images("ib/plane")
    # figure_every=8: measurements 0, 8, 16, and the last one (17) at close() although 17 % 8 != 0
    assert [im.step for im in planes] == [STEPS[0], STEPS[8], STEPS[16], STEPS[-1]]
    assert planes[0].encoded_image_string[:4] == b"\x89PNG" and planes[0].width > 300
    assert planes[-1].encoded_image_string != planes[1].encoded_image_string
    assert [im.step for im in ea.Images("ib/curves")] == [STEPS[0], STEPS[8], STEPS[16], STEPS[-1]]
    assert [im.step for im in ea.Images("ib/dpi")] == [STEPS[-1]]


def test_close_draws_no_second_plane_when_the_last_measurement_was_drawn(tmp_path):
    sink = TensorBoardSink(str(tmp_path), figure_every=2)
    sink.start(make_header())
    for rec in make_history([0, 10, 100]):  # drawn at measurements 0 and 2 (the last)
        sink.write(rec)
    sink.close()
    sink.close()  # idempotent
    ea = _read(tmp_path)
    assert [im.step for im in ea.Images("ib/plane")] == [0, 100]
    assert [im.step for im in ea.Images("ib/dpi")] == [100]


def test_text_from_typed_findings(event_dir):
    log_dir, history = event_dir
    ea = _read(log_dir)
    (cfg,) = _text(ea, "ib/config")
    assert "Coverage" in cfg[1] and "dropout" in cfg[1] and "identity in eval mode" in cfg[1]
    warns = _text(ea, "ib/warnings")
    first_warned = next(r for r in history if r.warnings)
    assert warns[0][0] == first_warned.step
    for w in first_warned.warnings:
        assert w.code.value in warns[0][1] and w.layer in warns[0][1]
    dpi = _text(ea, "ib/dpi")
    violated = [r for r in history if r.checks is not None and r.checks.dpi_violations]
    assert violated and dpi[0][0] == violated[0].step
    v = violated[0].checks.dpi_violations[0]
    assert f"{v.upstream} → {v.downstream}" in dpi[0][1] and v.quantity.label in dpi[0][1]
    # phases: the fold of the records' phase_changes, as of the last change
    phases = _text(ea, "ib/phases")
    latest = {}
    for r in history:
        latest.update({d.key: d for d in r.phase_changes})
    shown = [d for d in latest.values() if d.shown]
    assert shown and phases
    last_text = phases[-1][1]
    for d in shown:
        assert f"| {d.layer} | {d.estimator} | {d.phase} | {d.status.value} |" in last_text
    assert last_text.count("\n| ") == len(shown) + 1  # header + one row per shown decision
    # text is only rewritten when it changes, not at every measurement
    assert len(dpi) < len(STEPS) and len(phases) < len(STEPS)


def test_sink_keeps_a_compact_history_not_records():
    import copy
    import tracemalloc

    history = make_history(list(range(0, 1500, 10)))

    def growth(store):
        tracemalloc.start()
        for rec in history[:50]:
            store(rec)
        before = tracemalloc.get_traced_memory()[0]
        for rec in history[50:]:
            store(rec)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return (after - before) / (len(history) - 50)

    sink = TensorBoardSink(writer=_NullWriter(), figures=False)
    sink.start(make_header())
    kept = []
    per_record = growth(lambda r: kept.append(copy.deepcopy(r)))  # what keeping every Record costs
    per_sink = growth(sink.write)
    assert per_sink < per_record / 8 and per_sink < 2048, (per_sink, per_record)
    assert len(sink.history) == len(history)


class _NullWriter:
    """A SummaryWriter stand-in that drops everything (memory test)."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def test_users_writer_is_flushed_not_closed_and_multi_estimator_keys(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    sink = make_sink(TensorBoardSink(writer=writer, figures=False))
    sink.start(make_header(estimators=("binning", "kde")))
    for rec in make_history([0, 10, 100], estimators=("binning", "kde")):
        sink.write(rec)
    sink.close()
    writer.add_scalar("user/loss", 1.0, 5)  # still open
    writer.close()
    ea = _read(tmp_path)
    tags = set(ea.Tags()["scalars"])
    assert "user/loss" in tags and not ea.Tags()["images"]
    layer_tags = set(_read(_layer_dirs(tmp_path)[0]).Tags()["scalars"])
    assert {"ib/binning/I_XT", "ib/kde/I_XT"} <= layer_tags


def test_registry_and_missing_tensorboard(monkeypatch):
    assert sink_class("tensorboard") is TensorBoardSink
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"ibhooks\[tensorboard\]"):
        TensorBoardSink("unused")
    with pytest.raises(ValueError, match="figure_every"):
        TensorBoardSink(writer=object(), figure_every=0)


def test_no_plane_image_without_labels(tmp_path):
    recs = make_history([0, 50])
    for r in recs:
        for per_est in r.layers.values():
            for res in per_est.values():
                res.i_ty = None
    sink = TensorBoardSink(str(tmp_path))
    sink.start({})
    for rec in recs:
        sink.write(rec)
    sink.close()
    ea = _read(tmp_path)
    assert "ib/plane" not in ea.Tags()["images"] and "ib/curves" in ea.Tags()["images"]
    layer_tags = set(_read(_layer_dirs(tmp_path)[0]).Tags()["scalars"])
    assert "ib/I_XT" in layer_tags and "ib/I_TY" not in layer_tags
