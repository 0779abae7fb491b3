"""W&B sink: a real offline run read back from its .wandb file, plus fast checks on a disabled run."""

import json
import struct
import sys
import time

import pytest

wandb = pytest.importorskip("wandb")
pytest.importorskip("matplotlib")

from ibhooks.integrations.wandb import WandbSink  # noqa: E402
from ibhooks.sinks.registry import sink_class  # noqa: E402

from _records import LAYERS, make_header, make_history, steps_default, write_log  # noqa: E402

STEPS = steps_default(8)  # long enough for detected phases


def read_wandb_records(path):
    """Our own reader of a ``.wandb`` file: a 7-byte header (``:W&B``, magic, version), then
    LevelDB-log records in 32 KiB blocks (crc32 u32, length u16 LE, type u8: 1 full, 2 first,
    3 middle, 4 last), each payload a ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, out, buf = 32768, 7, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # block trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        buf = chunk if kind in (1, 2) else buf + chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
    return out


def _items(items):
    return {(it.key or "/".join(it.nested_key)): json.loads(it.value_json) for it in items}


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("wandb")
    for k, v in {
        "WANDB_MODE": "offline",
        "WANDB_DIR": str(root),
        "WANDB_SILENT": "true",
        "WANDB_CONSOLE": "off",
    }.items():
        mp.setenv(k, v)
    mp.delenv("WANDB_API_KEY", raising=False)
    history = make_history(STEPS)
    log = root / "run.jsonl"
    write_log(log, history)
    try:
        sink = WandbSink(project="ibhooks-test", figure_every=3, run_log=str(log))
        assert sink._own_run
        sink.start(make_header())
        for rec in history:
            sink.write(rec)
        assert not hasattr(sink, "records") and len(sink.history) == len(history)
        sink.close()
    finally:
        mp.undo()
    (run_dir,) = (root / "wandb").glob("offline-run-*")
    (wfile,) = run_dir.glob("run-*.wandb")
    # wandb-core may still be writing after finish() returns: wait for the exit record
    deadline = time.monotonic() + 60
    while True:
        records = read_wandb_records(wfile)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return run_dir, records, history


def test_offline_history_has_our_keys_and_values(offline_run):
    _, records, history = offline_run
    rows = [_items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    ours = [r for r in rows if "ib/fc1/I_XT" in r]
    assert [r["ib/step"] for r in ours] == STEPS
    for row, rec in zip(ours, history):
        for layer in LAYERS:
            res = rec.layers[layer]["binning"]
            assert row[f"ib/{layer}/I_XT"] == pytest.approx(res.i_xt.value)
            assert row[f"ib/{layer}/I_TY_hi"] == pytest.approx(res.i_ty.ci[1])
    # plane and curves at every 3rd measurement (0, 3, 6) and at close() for the last one (7), against
    # its step; the DPI image, the interactive plane and the table once, at close(); the coverage table once
    for key in ("ib/plane/path", "ib/curves/path"):
        assert [r["ib/step"] for r in rows if key in r] == [STEPS[0], STEPS[3], STEPS[6], STEPS[7]], key
    for key in ("ib/dpi/path", "ib/plane_table/_type", "ib/plane_interactive/_type"):
        assert [r["ib/step"] for r in rows if key in r] == [STEPS[-1]], key
    (final,) = [r for r in rows if "ib/dpi/path" in r]
    assert "ib/plane/path" in final and "ib/fc1/I_XT" not in final  # one row logged by close()
    assert sum(1 for r in ours if "ib/coverage/_type" in r) == 1


def test_offline_step_metric_summary_and_media_files(offline_run):
    run_dir, records, history = offline_run
    metrics = [r.metric for r in records if r.WhichOneof("record_type") == "metric"]
    assert any(m.glob_name == "ib/*" and m.step_metric == "ib/step" for m in metrics)
    peaks = {m.name for m in metrics if m.summary.max}
    assert {f"ib/{layer}/{q}" for layer in LAYERS for q in ("I_XT", "I_TY")} == peaks
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update(_items(r.summary.update))
    last = history[-1]
    assert summary["ib/n_warnings"] == len(last.warnings) >= 1
    assert summary["ib/warnings"] == [w.message for w in last.warnings]
    violations = last.checks.dpi_violations
    assert summary["ib/dpi_violations"] == len(violations) >= 1
    assert summary["ib/dpi_significant"] == sum(v.significant is True for v in violations)
    assert summary["ib/dpi_not_assessed"] == sum(v.significant is None for v in violations)
    # phases: the fold of every record's phase_changes
    latest = {}
    for r in history:
        latest.update({d.key: d for d in r.phase_changes})
    shown = [d for d in latest.values() if d.shown]
    assert shown and set(summary["ib/phases"]) == {d.layer for d in shown}
    for d in shown:
        assert f"{d.phase} {d.status.value} from step {d.start_step:g}" in summary["ib/phases"][d.layer]
    # numeric per-layer fields to sort a sweep by
    for layer in LAYERS:
        res = last.layers[layer]["binning"]
        assert summary[f"ib/final/{layer}/I_XT"] == pytest.approx(res.i_xt.value)
        peak = max(r.layers[layer]["binning"].i_ty.value for r in history)
        assert summary[f"ib/final/{layer}/I_TY_peak"] == pytest.approx(peak)
        d = latest.get((layer, "binning", "compression"))
        assert summary[f"ib/final/{layer}/compression_found"] == float(d is not None and d.detected)
        assert summary[f"ib/final/{layer}/compression_bits"] >= 0.0
    images = list((run_dir / "files" / "media" / "images").rglob("*.png"))
    assert any("plane" in p.name for p in images) and any("curves" in p.name for p in images)
    tables = list((run_dir / "files" / "media" / "table").rglob("*.table.json"))
    (table,) = [json.loads(p.read_text()) for p in tables if "plane_table" in str(p)]  # logged once
    assert len(table["data"]) == len(STEPS) * len(LAYERS)
    assert table["columns"][:6] == ["step", "epoch", "layer", "estimator", "I_XT", "I_TY"]
    (page,) = (run_dir / "files" / "media" / "html").rglob("*.html")
    text = page.read_text()
    script = text.split("<script>")[1]
    assert "ibhooksPlane(" in script and not any(x in script for x in ("src=", "fetch(", "XMLHttpRequest"))


def test_offline_run_log_and_report_are_an_artifact(offline_run):
    run_dir, records, _ = offline_run
    arts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    (art,) = [a for a in arts if a.type == "ibhooks-run"]
    names = {e.path for e in art.manifest.contents}
    assert names == {"run.jsonl", "run.html"}


def test_users_run_is_used_not_finished(monkeypatch):
    run = wandb.init(mode="disabled")
    assert isinstance(run, wandb.Run)
    logged = []
    monkeypatch.setattr(type(run), "log", lambda self, data, *a, **k: logged.append(data))
    finished = []
    monkeypatch.setattr(type(run), "finish", lambda self, *a, **k: finished.append(1))
    sink = WandbSink(run, figures=False)
    sink.start(make_header(estimators=("binning", "kde")))
    for rec in make_history([0, 10], estimators=("binning", "kde")):
        sink.write(rec)
    sink.close()
    assert not finished
    assert [d["ib/step"] for d in logged] == [0, 10]
    assert "ib/kde/fc2/I_XT" in logged[0] and "ib/binning/fc2/I_XT" in logged[0]
    assert all("step" not in k or k == "ib/step" for k in logged[0])
    monkeypatch.undo()
    run.finish()


def test_a_lightning_logger_puts_our_keys_on_the_trainer_step(monkeypatch):
    run = wandb.init(mode="disabled")
    logged, defined = [], []
    monkeypatch.setattr(type(run), "log", lambda self, data, *a, **k: logged.append(data))
    monkeypatch.setattr(type(run), "define_metric",
                        lambda self, name, *a, **k: defined.append((name, k.get("step_metric"))))

    class WandbLogger:  # what the sink reads of Lightning's logger: its run
        experiment = run

    sink = WandbSink(WandbLogger(), figures=False)
    assert sink.run is run and sink.step_key == "trainer/global_step"
    sink.start(make_header())
    for rec in make_history([0, 10]):
        sink.write(rec)
    sink.close()
    assert ("ib/*", "trainer/global_step") in defined and ("ib/fc1/I_XT", "trainer/global_step") in defined
    assert not any(metric == "ib/step" for _, metric in defined)
    assert [d["trainer/global_step"] for d in logged] == [d["ib/step"] for d in logged] == [0, 10]
    assert WandbSink(run, figures=False, step_key="epoch").step_key == "epoch"
    monkeypatch.undo()
    run.finish()


def test_bad_run_missing_wandb_and_registry(monkeypatch):
    assert sink_class("wandb") is WandbSink
    with pytest.raises(TypeError, match="wandb.Run"):
        WandbSink(run=object())
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"ibhooks\[wandb\]"):
        WandbSink()
