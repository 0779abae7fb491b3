"""DDP on CPU (gloo, 2 ranks, 127.0.0.1): plain torch.distributed and Lightning's DDP strategy.

The monitor measures on rank 0 only, through the inner module, so no collective runs on one rank
alone; only rank 0 writes; training is bit-identical to the unmonitored DDP run. Every test has a
bounded timeout so a hang fails instead of blocking CI.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import ibhooks

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 150

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def plain_ddp(tmp_path_factory):
    """Spawn the 2-rank plain-torch worker once; its per-rank results are shared by the tests below."""
    from _ddp_worker import worker

    out = tmp_path_factory.mktemp("ddp")
    ctx = mp.start_processes(worker, args=(2, free_port(), str(out)), nprocs=2, join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=2):
            if time.monotonic() > deadline:
                pytest.fail(f"DDP workers did not finish within {TIMEOUT_S}s (hang)")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    return out, [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def _params_equal(a, b):
    assert a.keys() == b.keys()
    return all(torch.equal(a[k], b[k]) for k in a)


def test_plain_ddp_training_is_bit_identical(plain_ddp):
    _, ranks = plain_ddp
    for r in ranks:
        for mode in ("probe", "gather"):
            assert _params_equal(r["base"]["params"], r[mode]["params"]), f"{mode}: weights differ"
            assert _params_equal(r["base"]["buffers"], r[mode]["buffers"]), f"{mode}: buffers differ"
            assert torch.equal(r["base"]["rng"], r[mode]["rng"])
    # DDP kept the ranks in sync
    assert _params_equal(ranks[0]["probe"]["params"], ranks[1]["probe"]["params"])


def test_plain_ddp_probe_runs_no_collective_and_only_rank0_writes(plain_ddp):
    out, (r0, r1) = plain_ddp
    for r in (r0, r1):
        probe = r["probe"]
        assert probe["collectives"] == {}, "the monitor issued a collective in probe mode"
        assert probe["ddp_forwards"] == r["base"]["ddp_forwards"] == 12  # the probe never ran the DDP wrapper
    assert r0["probe"]["is_writer"] and not r1["probe"]["is_writer"]
    assert r0["probe"]["n_sinks"] == 1 and r1["probe"]["n_sinks"] == 0
    assert [s for s, *_ in r0["probe"]["records"]] == [0, 4, 8, 12]
    assert all(not errs and n == 128 for _, _, n, errs in r0["probe"]["records"])
    assert r1["probe"]["records"] == []  # no measurement on rank 1, not even step 0
    assert sorted(p.name for p in (out / "probe").iterdir()) == ["ddp.jsonl"]
    run = ibhooks.load_run(out / "probe" / "ddp.jsonl")
    assert [rec.step for rec in run.records] == [0, 4, 8, 12]


def test_plain_ddp_gather_passive_pools_both_ranks(plain_ddp):
    out, (r0, r1) = plain_ddp
    # every rank issued the same collectives: 3 measurements x (sizes + one per layer + labels)
    per_measurement = 1 + r0["gather"]["n_layers"] + 1
    assert r0["gather"]["collectives"] == r1["gather"]["collectives"] == {"all_gather": 3 * per_measurement}
    recs = r0["gather"]["records"]
    assert [s for s, *_ in recs] == [4, 8, 12]
    assert all(mode == "passive" and n == 2 * 2 * 16 and not errs for _, mode, n, errs in recs)  # 2 ranks x 2 steps
    assert r1["gather"]["records"] == []
    assert sorted(p.name for p in (out / "gather").iterdir()) == ["ddp.jsonl"]


def test_syncbatchnorm_probe_on_rank0_alone_does_not_sync(plain_ddp):
    _, (r0, _) = plain_ddp
    recs = r0["syncbn"]["records"]
    assert len(recs) == 3  # step 0 at construction + 2 measure() calls while rank 1 waited
    assert all(n == 64 and not errs for _, n, errs in recs), recs
    assert "SyncBatchNorm" in r0["syncbn"]["train_forward"]  # control: a syncing forward fails loudly on CPU


def test_fsdp2_passive_mode_gathers_and_keeps_training(plain_ddp):
    out, (r0, r1) = plain_ddp
    if "fsdp2_error" in r0:
        pytest.skip(f"FSDP2 unavailable: {r0['fsdp2_error']}")
    for r in (r0, r1):
        assert _params_equal(r["fsdp2_base"]["params"], r["fsdp2"]["params"])
    assert [(s, n) for s, _, n, _ in r0["fsdp2"]["records"]] == [(3, 32), (6, 32), (9, 32)]  # 2 ranks x 16 rows
    assert all(mode == "passive" and not errs for _, mode, _, errs in r0["fsdp2"]["records"])
    assert r1["fsdp2"]["records"] == []
    assert sorted(p.name for p in (out / "fsdp2").iterdir()) == ["fsdp2.jsonl"]


def _run_script(script: Path, args, timeout=TIMEOUT_S, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GLOO_SOCKET_IFNAME": "lo", "WANDB_MODE": "offline",
           "WANDB_SILENT": "true", "PYTHONWARNINGS": "ignore", **(env_extra or {})}
    proc = subprocess.Popen([sys.executable, str(script), *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the script and the rank it launched
        output, _ = proc.communicate()
        pytest.fail(f"{script.name} hung (> {timeout}s):\n{output.decode(errors='replace')[-4000:]}")
    return proc.returncode, output.decode(errors="replace")


@pytest.mark.slow
def test_lightning_ddp_strategy(tmp_path):
    pytest.importorskip("lightning")
    code, output = _run_script(ROOT / "tests" / "_lightning_ddp.py", [tmp_path])
    assert code == 0, output[-6000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    ranks = {int(p.stem[4:]): json.loads(p.read_text()) for p in tmp_path.glob("rank*.json")}
    assert sorted(ranks) == [0, 1]
    assert summary["weights_equal"] == {"probe": True, "gather": True}
    for name in ("probe", "gather"):
        assert ranks[0][name]["is_writer"] and not ranks[1][name]["is_writer"]
        assert ranks[0][name]["n_sinks"] >= 1 and ranks[1][name]["n_sinks"] == 0
        assert ranks[1][name]["records"] == []
        logs = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / name).rglob("*.jsonl"))
        assert logs == [f"{name}/ib.jsonl"]
    probe_recs = ranks[0]["probe"]["records"]
    assert [r[0] for r in probe_recs] == [0, 2, 4, 6, 8]
    assert all(r[1] == "probe" and r[2] == 64 for r in probe_recs)
    gather_recs = ranks[0]["gather"]["records"]
    assert [r[0] for r in gather_recs] == [2, 4, 6, 8]
    assert all(r[1] == "passive" and r[2] == 2 * 8 for r in gather_recs)  # both ranks' batch of 8
