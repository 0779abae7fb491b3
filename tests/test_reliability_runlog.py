"""Run-log integrity in one process: whole lines or nothing, resume after a cut, no silent overwrite,
one writer per log, the reader recovering complete records, one-line errors for unreadable headers."""

import errno
import io
import json
import os
import warnings

import pytest

import ibhooks
from ibhooks.cli import main
from ibhooks.runlog import RunLogWarning, load_run
from ibhooks.schema import Record
from ibhooks.sinks import jsonl as jsonl_mod
from ibhooks.sinks.jsonl import FORMAT_VERSION, JsonlSink, RunLogExistsError

HEADER = {"run_name": "r", "config": {"model": "M"}, "fingerprint": "0123456789abcdef"}


def rec(step, pad=0):
    return Record(step=step, mode="probe", n_samples=step + 2, info={"pad": "x" * pad})


def write(path, steps, pad=0, **kwargs):
    sink = JsonlSink(path, fsync=False, **kwargs)
    sink.start(HEADER)
    for s in steps:
        sink.write(rec(s, pad))
    sink.close()


def read(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = load_run(path)
    return run, [w for w in caught if issubclass(w.category, RunLogWarning)]


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main([str(a) for a in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


# -- the writer ------------------------------------------------------------------------------------


def test_a_failed_write_is_rolled_back_and_the_next_line_is_whole(tmp_path, monkeypatch):
    path = tmp_path / "full.jsonl"
    sink = JsonlSink(path, fsync=False)
    sink.start(HEADER)
    sink.write(rec(0, pad=9000))
    real_write = os.write
    calls = {"n": 0}

    def half_then_enospc(fd, data):  # the disk fills up half-way through a 9 KiB record
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jsonl_mod.os, "write", half_then_enospc)
    with pytest.raises(OSError, match="No space"):
        sink.write(rec(1, pad=9000))
    monkeypatch.setattr(jsonl_mod.os, "write", real_write)
    sink.write(rec(2, pad=9000))  # space again
    sink.close()
    text = path.read_bytes()
    assert text.endswith(b"\n") and text.count(b"\n") == 3
    run, warned = read(path)
    assert (
        [r.step for r in run.records] == [0, 2] and not run.skipped_lines and not run.truncated and not warned
    )


def test_an_existing_log_is_never_replaced_silently(tmp_path):
    path = tmp_path / "r.jsonl"
    write(path, [0, 1, 2])
    before = path.read_bytes()
    with pytest.raises(RunLogExistsError, match="already exists.*resume=True.*overwrite=True.*run_name"):
        JsonlSink(path)
    assert path.read_bytes() == before
    write(path, [7], overwrite=True)
    assert [r.step for r in load_run(path).records] == [7]
    with pytest.raises(ValueError, match="not both"):
        JsonlSink(path, resume=True, overwrite=True)


def test_one_writer_per_log(tmp_path):
    path = tmp_path / "r.jsonl"
    first = JsonlSink(path, fsync=False)
    first.start(HEADER)
    for kwargs in ({}, {"resume": True}, {"overwrite": True}):
        with pytest.raises(RunLogExistsError, match="being written by another monitor"):
            JsonlSink(path, **kwargs)
    first.write(rec(0))
    first.close()
    again = JsonlSink(path, resume=True, fsync=False)  # the lock went with close()
    again.start(HEADER)
    again.write(rec(1))
    again.close()
    assert [r.step for r in load_run(path).records] == [0, 1]


def test_resume_removes_a_cut_off_last_line_and_says_so(tmp_path):
    path = tmp_path / "r.jsonl"
    write(path, [0, 1, 2])
    whole = path.read_bytes()
    path.write_bytes(whole + json.dumps(rec(3).to_dict()).encode()[:40])  # killed mid-write
    sink = JsonlSink(path, resume=True, fsync=False)
    assert sink.removed_tail == 40
    sink.start({**HEADER, "step": 2})
    sink.write(rec(3))
    sink.close()
    run, warned = read(path)
    assert [r.step for r in run.records] == [0, 1, 2, 3] and not run.skipped_lines and not warned
    assert not run.truncated and len(run.resumes) == 1
    assert run.resumes[0]["fingerprint"] == HEADER["fingerprint"]
    assert any("partial line (40 bytes" in t["text"] for t in run.texts)


def test_resume_after_a_torn_header_starts_a_new_log(tmp_path):
    path = tmp_path / "r.jsonl"
    write(path, [])
    path.write_bytes(path.read_bytes()[:30])  # killed while writing the header
    with pytest.raises(ValueError, match=r"line 1: the header is cut off"):
        load_run(path)
    sink = JsonlSink(path, resume=True, fsync=False)
    sink.start(HEADER)
    sink.write(rec(0))
    sink.close()
    run, _ = read(path)
    assert [r.step for r in run.records] == [0] and not run.resumes
    assert any("torn header (30 bytes" in t["text"] for t in run.texts)


def test_resume_into_a_foreign_file_is_refused(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text("hello\nworld\n")
    with pytest.raises(ValueError, match="not an ibhooks run-log header.*overwrite=True"):
        JsonlSink(path, resume=True)
    assert path.read_text() == "hello\nworld\n"


def test_two_monitors_with_one_run_name(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2))
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    kwargs = dict(probe=(x, y), schedule=1, log_dir=tmp_path, run_name="same", verbose=False)
    first = ibhooks.IBMonitor(model, **kwargs)
    for _ in range(3):
        first.step()
    with pytest.raises(FileExistsError, match="same.jsonl"):
        ibhooks.IBMonitor(model, **kwargs)
    first.step()
    first.close()
    with pytest.raises(FileExistsError, match="already exists"):
        ibhooks.IBMonitor(model, **kwargs)
    assert [r.step for r in load_run(tmp_path / "same.jsonl").records] == [0, 1, 2, 3, 4]


# -- the reader ------------------------------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE_LINES = {
    "not json": "{bad json",
    "binary garbage": "\x00\x01\x02\u00ff garbage",
    "deep nesting": DEEP,
    "deep in a record": json.dumps(rec(5).to_dict()).replace(
        '"info": {', '"info": {"deep": ' + '{"a": ' * 50 + "1" + "}" * 50 + ", "
    ),
    "step of 1e300": json.dumps(rec(5).to_dict()).replace('"step": 5', '"step": 1e300'),
    "huge integer": json.dumps(rec(5).to_dict()).replace('"step": 5', '"step": ' + "9" * 5000),
    "string value": json.dumps(rec(5).to_dict()).replace('"n_samples": 7', '"n_samples": "abc"'),
    "infinite h_y": json.dumps(rec(5).to_dict()).replace('"h_y": null', '"h_y": 1e999'),
    "array line": "[1, 2, 3]",
    "header_update of wrong type": json.dumps({"type": "header_update", "key": "coverage", "value": "abc"}),
}


@pytest.mark.parametrize("kind", list(HOSTILE_LINES))
def test_the_reader_recovers_every_complete_record_around_a_corrupt_line(tmp_path, kind):
    path = tmp_path / "r.jsonl"
    write(path, [0, 1, 2, 3])
    lines = path.read_bytes().split(b"\n")[:-1]
    bad = HOSTILE_LINES[kind].encode("utf-8", "surrogatepass")
    if kind == "binary garbage":
        bad = b"\x89PNG\x00\xff\xfe garbage"
    path.write_bytes(b"\n".join(lines[:3] + [bad] + lines[3:]) + b"\n")
    run, warned = read(path)
    assert [r.step for r in run.records] == [0, 1, 2, 3]
    assert run.skipped_lines == [4] and len(warned) == 1
    assert (
        "skipped 1 unreadable line(s) (line 4" in str(warned[0].message)
        and "4 complete record" in run.notes[0]
    )
    assert run.header["coverage"] if "coverage" in run.header else True  # a bad update does not replace it
    code, out, err = run_cli("summary", path)
    assert code == 0 and "Traceback" not in err and "0" in out


def _raw_header(**over):
    head = {"type": "header", "format": "ibhooks-run", "version": FORMAT_VERSION, "config": {}}
    head.update(over)
    return json.dumps(head)


BAD_HEADERS = {
    "empty file": (b"", "is empty"),
    "torn header": (_raw_header().encode()[:25], "line 1: the header is cut off"),
    "version 1e999": (
        _raw_header().replace('"version": 2', '"version": 1e999').encode() + b"\n",
        "line 1: the header's format version inf",
    ),
    "version abc": (_raw_header(version="abc").encode() + b"\n", "format version 'abc'"),
    "newer version": (_raw_header(version=99).encode() + b"\n", "newer than this ibhooks"),
    "config abc": (_raw_header(config="abc").encode() + b"\n", "the header's config: 'abc' is not a dict"),
    "deep header": (
        (_raw_header()[:-1] + ', "x": ' + DEEP + "}").encode() + b"\n",
        "line 1 (the header) is nested",
    ),
    "binary garbage": (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not a text file"),
    "foreign json": (b'{"hello": 1}\n', "not an ibhooks run log"),
}


@pytest.mark.parametrize("kind", list(BAD_HEADERS))
def test_an_unreadable_header_is_one_line_naming_file_and_line(tmp_path, kind):
    content, message = BAD_HEADERS[kind]
    path = tmp_path / "r.jsonl"
    path.write_bytes(
        content + json.dumps(rec(0).to_dict()).encode() + b"\n" if kind == "config abc" else content
    )
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        load_run(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    for command in ("summary", "report", "plot"):
        code, _, err = run_cli(command, path, *(["-o", tmp_path / "o"] if command != "summary" else []))
        assert code == 2 and err.startswith(f"ibhooks {command}: error:") and message in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
