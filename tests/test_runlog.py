"""The JSONL run log: survives kill -9, clear errors for bad files."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import ibhooks

SCRIPT = textwrap.dedent(
    """
    import sys, torch, torch.nn as nn, ibhooks
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 10), nn.Tanh(), nn.Linear(10, 2))
    x = torch.randn(256, 12); y = (x[:, 0] > 0).long()
    mon = ibhooks.IBMonitor(model, probe=(x, y), schedule=1, log_dir=sys.argv[1], run_name="killed",
                            verbose=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    while True:  # runs until killed
        loss = nn.functional.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
        mon.step()
    """
)


def test_log_of_a_killed_run_loads(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], stderr=subprocess.DEVNULL)
    path = tmp_path / "killed.jsonl"
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if path.exists() and path.read_text().count("\n") >= 12:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the monitored run wrote no records in time")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    lines = path.read_text().splitlines()
    run = ibhooks.load_run(path)
    complete = sum(1 for ln in lines[1:] if ln.strip().endswith("}") and '"type": "record"' in ln)
    assert len(run.records) >= complete - 1 >= 10
    steps = [r.step for r in run.records]
    assert steps == list(range(len(steps)))


def test_truncated_last_line_is_dropped(tmp_path):
    path = tmp_path / "t.jsonl"
    header = {"type": "header", "format": "ibhooks-run", "version": 1, "config": {}}
    rec = ibhooks.Record(step=3, mode="probe", n_samples=10).to_dict()
    path.write_text(json.dumps(header) + "\n" + json.dumps(rec) + "\n" + json.dumps(rec)[:25])
    run = ibhooks.load_run(path)
    assert run.truncated and [r.step for r in run.records] == [3]


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "does not exist"),
        ("", "is empty"),
        ('{"type": "record"}\n', "not an ibhooks run log"),
        ('{"type": "header", "format": "ibhooks-run", "version": 1}\n{bad json\n{"type": "text"}\n', "line 2"),
        ('{"type": "header", "format": "ibhooks-run", "version": 99}\n', "newer than this ibhooks"),
    ],
)
def test_bad_logs_raise_clear_errors(tmp_path, content, match):
    path = tmp_path / "run.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises((FileNotFoundError, ValueError), match=match):
        ibhooks.load_run(path)


def test_records_re_measured_after_a_resume_supersede_the_old_ones(tmp_path):
    path = tmp_path / "r.jsonl"
    header = {"type": "header", "format": "ibhooks-run", "version": 1, "config": {}}
    rec = lambda step, n: json.dumps(ibhooks.Record(step=step, mode="probe", n_samples=n).to_dict())  # noqa: E731
    lines = [json.dumps(header), rec(0, 1), rec(10, 1), rec(20, 1), rec(30, 1),  # crashed after 30
             json.dumps({"type": "resume"}), rec(20, 2), rec(30, 2), rec(40, 2)]  # resumed from step 10
    path.write_text("\n".join(lines) + "\n")
    run = ibhooks.load_run(path)
    assert [(r.step, r.n_samples) for r in run.records] == [(0, 1), (10, 1), (20, 2), (30, 2), (40, 2)]
