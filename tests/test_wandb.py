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

from _records import LAYERS, make_header, make_history  # noqa: E402

STEPS = [0, 5, 50, 500, 5000]


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
    try:
        sink = WandbSink(project="ibhooks-test", figure_every=2)
        assert sink._own_run
        sink.start(make_header())
        for rec in history:
            sink.write(rec)
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
    # the plane image and scatter table at every 2nd measurement, the coverage table once
    with_plane = [r["ib/step"] for r in ours if "ib/plane/path" in r]
    assert with_plane == [STEPS[0], STEPS[2], STEPS[4]]
    assert [r["ib/plane_scatter_table/_type"] for r in ours if "ib/plane_scatter_table/_type" in r]
    assert sum(1 for r in ours if "ib/coverage/_type" in r) == 1
    # curves and DPI images logged at close, against the last step
    final = [r for r in rows if "ib/curves/path" in r]
    assert final and final[0]["ib/step"] == STEPS[-1] and "ib/dpi/path" in final[0]


def test_offline_step_metric_summary_and_media_files(offline_run):
    run_dir, records, _ = offline_run
    metrics = [r.metric for r in records if r.WhichOneof("record_type") == "metric"]
    assert any(m.glob_name == "ib/*" and m.step_metric == "ib/step" for m in metrics)
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update(_items(r.summary.update))
    assert summary["ib/n_warnings"] >= 1 and any("cap" in m for m in summary["ib/warnings"])
    assert summary["ib/dpi_violations"] == 1
    assert "compression" in summary["ib/phases"]["fc2"]
    images = list((run_dir / "files" / "media" / "images").rglob("*.png"))
    assert any("plane" in p.name for p in images) and any("curves" in p.name for p in images)
    tables = list((run_dir / "files" / "media" / "table").rglob("*.table.json"))
    scatter = [json.loads(p.read_text()) for p in tables if "plane_scatter" in str(p)]
    assert sorted(len(t["data"]) for t in scatter) == [
        len(LAYERS),
        3 * len(LAYERS),
        5 * len(LAYERS),
    ]  # all so far
    assert scatter[0]["columns"][:6] == ["step", "epoch", "layer", "estimator", "I_XT", "I_TY"]


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


def test_bad_run_missing_wandb_and_registry(monkeypatch):
    assert sink_class("wandb") is WandbSink
    with pytest.raises(TypeError, match="wandb.Run"):
        WandbSink(run=object())
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"ibhooks\[wandb\]"):
        WandbSink()
