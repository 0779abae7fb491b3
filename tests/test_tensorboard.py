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

from _records import LAYERS, make_header, make_history  # noqa: E402

STEPS = [0, 2, 20, 200, 1000, 2000, 5000]


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
    sink = TensorBoardSink(str(log_dir), figure_every=4)
    sink.start(make_header())
    for rec in history:
        sink.write(rec)
    assert not hasattr(sink, "records")  # no Records kept: a compact history only
    sink.close()
    return log_dir, history


def test_scalars_with_intervals_at_the_record_steps(event_dir):
    log_dir, history = event_dir
    ea = _read(log_dir)
    tags = set(ea.Tags()["scalars"])
    for layer in LAYERS:
        for q in ("I_XT", "I_TY"):
            assert {f"ib/{layer}/{q}", f"ib/{layer}/{q}_lo", f"ib/{layer}/{q}_hi"} <= tags
    events = ea.Scalars("ib/fc2/I_XT")
    assert [e.step for e in events] == STEPS
    assert [e.value for e in events] == pytest.approx(
        [r.layers["fc2"]["binning"].i_xt.value for r in history], abs=1e-5
    )
    lo = ea.Scalars("ib/fc2/I_TY_lo")
    assert lo[-1].value == pytest.approx(history[-1].layers["fc2"]["binning"].i_ty.ci[0], abs=1e-5)
    assert {"ib/H_Y", "ib/seconds"} <= tags
    # add_scalars would have created sub-runs (one folder per key); we never use it
    assert [p for p in log_dir.iterdir() if p.is_dir()] == []


def test_custom_scalars_layout_written_once(event_dir):
    log_dir, _ = event_dir
    ea = _read(log_dir)
    events = ea.Tensors("custom_scalars__config__")
    assert len(events) == 1
    layout = layout_pb2.Layout.FromString(tensor_util.make_ndarray(events[0].tensor_proto).item())
    cats = {c.title: c for c in layout.category}
    charts = {ch.title: ch for ch in cats["ibhooks"].chart}
    multi = charts["I(X;T) per layer [bits]"].multiline.tag
    assert len(multi) == len(LAYERS) and any("fc3" in t and "I_XT" in t for t in multi)
    margin = {ch.title: ch for ch in cats["ibhooks intervals"].chart}["fc2 I(T;Y)"].margin.series[0]
    assert (margin.value, margin.lower, margin.upper) == ("ib/fc2/I_TY", "ib/fc2/I_TY_lo", "ib/fc2/I_TY_hi")


def test_plane_and_curves_every_k_and_at_close_dpi_at_close(event_dir):
    log_dir, history = event_dir
    ea = _read(log_dir)
    planes = ea.Images("ib/plane")
    # figure_every=4: measurements 0 and 4, and the last one (6) at close() although 6 % 4 != 0
    assert [im.step for im in planes] == [STEPS[0], STEPS[4], STEPS[-1]]
    assert planes[0].encoded_image_string[:4] == b"\x89PNG" and planes[0].width > 300
    assert planes[-1].encoded_image_string != planes[1].encoded_image_string
    assert [im.step for im in ea.Images("ib/curves")] == [STEPS[0], STEPS[4], STEPS[-1]]
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
    assert {"ib/binning/fc1/I_XT", "ib/kde/fc1/I_XT", "user/loss"} <= tags
    assert not ea.Tags()["images"]


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
    assert "ib/fc1/I_XT" in ea.Tags()["scalars"] and "ib/fc1/I_TY" not in ea.Tags()["scalars"]
