"""Run-log integrity under real faults: kill -9 of a writing process at random points (also while the
header is written and during a resume), a log cut at every byte offset, and a full disk (RLIMIT_FSIZE
in a child process). Each asserts that every complete line survives and nothing reads as corrupt."""

import json
import os
import random
import resource
import signal
import sys
import time
import warnings

import pytest

from ibhooks.runlog import load_run
from ibhooks.schema import Record
from ibhooks.sinks.jsonl import JsonlSink

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork() and POSIX resource limits"
)

#: A large header (its write is long enough for a kill to land inside it).
BIG_HEADER = {
    "run_name": "k",
    "coverage": [{"name": f"layer{i}", "status": "monitored", "reason": "x" * 200} for i in range(3000)],
}


def rec(step):
    return Record(step=step, mode="probe", n_samples=step + 2, info={"pad": "p" * (50 + 97 * (step % 90))})


def intact(run):
    """Every record read back is the one written for its step."""
    return all(r.to_dict() == rec(r.step).to_dict() for r in run.records)


def in_child(body):
    """Run ``body()`` in a forked child (no interpreter start-up); returns its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            body()
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    return pid


def read_quietly(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RunLogWarning (skipped corrupt lines) fails the test
        return load_run(path)


def test_kill_9_at_random_points_loses_nothing_complete(tmp_path):
    path = tmp_path / "k.jsonl"
    rng = random.Random(1234)
    kept = []  # records read after the previous kill
    before_header = 0
    for round_ in range(14):
        nxt = kept[-1].step + 1 if kept else 0

        ready_r, ready_w = os.pipe()

        def write_forever(nxt=nxt, ready_w=ready_w):
            os.write(ready_w, b"!")  # about to open (and cut, or create) the log
            sink = JsonlSink(path, resume=True, fsync=False)
            sink.start({**BIG_HEADER, "step": nxt})
            step = nxt
            while True:
                sink.write(rec(step))
                step += 1

        pid = in_child(write_forever)
        os.read(ready_r, 1)
        os.close(ready_r)
        os.close(ready_w)
        if round_ < 6:  # a kill within milliseconds of opening (while the header is written or resumed)
            time.sleep(0 if round_ == 0 else rng.uniform(0, 0.004))
        else:  # a kill at a random byte of the stream of records
            target = (path.stat().st_size if path.exists() else 0) + rng.randint(1, 300_000)
            deadline = time.time() + 30
            while (not path.exists() or path.stat().st_size < target) and time.time() < deadline:
                time.sleep(0.0005)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        data = path.read_bytes() if path.exists() else b""
        if b"\n" not in data:  # killed before the header was whole (a single write: none or all of it)
            before_header += 1
            if data:
                with pytest.raises(ValueError, match="header is cut off"):
                    load_run(path)
            kept = []
            continue
        run = read_quietly(path)
        complete = [ln for ln in data.split(b"\n")[1:-1] if b'"type": "record"' in ln]
        assert len(run.records) == len(complete)  # every complete line is a record read back
        assert [r.step for r in run.records] == list(range(len(run.records))) and intact(run)
        assert [r.to_dict() for r in run.records[: len(kept)]] == [r.to_dict() for r in kept]  # none lost
        kept = run.records
    assert len(kept) > 20, "the child wrote too little to test anything"
    assert before_header >= 1, "no kill landed before the header was whole"
    final = JsonlSink(path, resume=True, fsync=False)
    final.start({"step": kept[-1].step})
    final.write(rec(kept[-1].step + 1))
    final.close()
    run = read_quietly(path)
    assert not run.truncated and [r.step for r in run.records] == list(range(len(kept) + 1)) and intact(run)


def test_a_log_cut_at_any_byte_reads_and_resumes(tmp_path):
    full = tmp_path / "full.jsonl"
    sink = JsonlSink(full, fsync=False)
    sink.start({"run_name": "c"})
    for step in range(4):
        sink.write(rec(step))
    sink.close()
    data = full.read_bytes()
    line_ends = [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    path = tmp_path / "cut.jsonl"
    for cut in range(1, len(data), 37):
        path.write_bytes(data[:cut])
        whole = sum(end <= cut for end in line_ends)  # complete lines, the header first
        if whole == 0:
            with pytest.raises(ValueError, match="line 1: the header is cut off"):
                load_run(path)
        else:
            run = read_quietly(path)
            assert [r.step for r in run.records] == list(range(whole - 1)) and intact(run)
            assert run.truncated == (cut not in line_ends)
        resumed = JsonlSink(path, resume=True, fsync=False)
        resumed.start({"run_name": "c", "step": max(whole - 2, 0)})
        resumed.write(rec(max(whole - 1, 0)))
        resumed.close()
        run = read_quietly(path)
        assert [r.step for r in run.records] == list(range(max(whole, 1))) and not run.truncated


def test_disk_full_loses_only_the_records_that_did_not_fit(tmp_path):
    path = tmp_path / "d.jsonl"
    read_fd, write_fd = os.pipe()
    limit = 40_000

    def write_with_a_full_disk():
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        sink = JsonlSink(path)  # fsync'd, as in a run
        sink.start({"run_name": "d"})
        outcome = {}
        for step in range(60):
            if step == 40:  # space is freed
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            try:
                sink.write(rec(step))
                outcome[step] = "ok"
            except OSError as exc:
                outcome[step] = exc.strerror or str(exc)
        sink.close()
        os.write(write_fd, json.dumps(outcome).encode())

    pid = in_child(write_with_a_full_disk)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        outcome = {int(k): v for k, v in json.loads(fh.read().decode()).items()}
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    ok = [s for s, v in outcome.items() if v == "ok"]
    failed = [s for s, v in outcome.items() if v != "ok"]
    assert failed and min(failed) < 40 and max(ok) >= 40 and "too large" in outcome[failed[0]].lower()
    run = read_quietly(path)
    assert [r.step for r in run.records] == ok and intact(run) and not run.truncated
