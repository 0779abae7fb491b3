"""Kill-and-resume: a run SIGKILLed after a checkpoint and resumed in a new process appends to the
same run log, and its measurements and phase decisions equal those of an uninterrupted run.

Steps measured between the checkpoint and the kill are measured again after the resume, so the run
log holds them twice; the later Record of a step wins (as in ``ibhooks.phases.detect_phases``).
"""
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ibhooks
from ibhooks.schema.phases import fold_phase_changes

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 180


def run_script(name, *args, expect_kill=False):
    # MKL_CBWR: MKL's bitwise-reproducible mode, independent of buffer alignment across processes
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "MKL_CBWR": "AUTO,STRICT"}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / name), *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    if expect_kill:
        assert proc.returncode == -signal.SIGKILL, proc.stdout[-3000:] + proc.stderr[-3000:]
    else:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def last_per_step(records):
    out = {}
    for r in records:
        out[r.step] = r
    return [out[s] for s in sorted(out)]


def same(a, b, rel=1e-9):
    """Equal structure and decisions; floats equal up to ``rel`` (torch's vectorised float64 sums in the
    estimators can round differently in the last bit between processes, with the buffers' alignment)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=rel,
                                                                                             abs_tol=1e-12)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k], rel) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y, rel) for x, y in zip(a, b))
    return a == b


def folds(records):
    """The latest phase decision per series after each Record (the fold of the phase changes so far)."""
    latest, out = {}, []
    for rec in records:
        fold_phase_changes(rec.phase_changes, latest)
        out.append({k: d.to_dict() for k, d in latest.items()})
    return out


def decisions(fold):
    """(layer, estimator, phase) -> status and its steps."""
    return {k: (d["status"], d["start_step"], d["end_step"], d["ongoing"]) for k, d in fold.items()}


def values(record):
    return {(layer, est, q): (getattr(res, q).value, getattr(res, q).ci)
            for layer, per in record.layers.items() for est, res in per.items()
            for q in ("i_xt", "i_ty") if getattr(res, q) is not None}


def assert_same_measurements(full, resumed):
    assert [r.step for r in full] == [r.step for r in resumed]
    for a, b, fa, fb in zip(full, resumed, folds(full), folds(resumed)):
        assert same(values(a), values(b)), f"step {a.step}: estimates differ"
        assert same(a.h_y, b.h_y) and a.n_samples == b.n_samples
        assert decisions(fa) == decisions(fb), f"step {a.step}: phase decisions differ"
        assert decisions(fa), f"step {a.step}: no phase decisions recorded"
        assert same({k: {f: v for f, v in d.items() if f != "step"} for k, d in fa.items()},
                    {k: {f: v for f, v in d.items() if f != "step"} for k, d in fb.items()}), \
            f"step {a.step}: phase statistics differ"


def assert_weights_equal(a_path, b_path):
    a, b = torch.load(a_path, weights_only=True), torch.load(b_path, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_plain_torch_kill_and_resume(tmp_path):
    run_script("_resume_script.py", tmp_path, "full")
    run_script("_resume_script.py", tmp_path, "kill", "--kill-at", 24, expect_kill=True)
    killed = ibhooks.load_run(tmp_path / "interrupted" / "run.jsonl")
    assert [r.step for r in killed.records][-1] == 24  # measured past the last checkpoint (step 20)
    run_script("_resume_script.py", tmp_path, "resume", "--ckpt", tmp_path / "interrupted" / "ckpt-20.pt")

    full = ibhooks.load_run(tmp_path / "full" / "run.jsonl")
    resumed = ibhooks.load_run(tmp_path / "interrupted" / "run.jsonl")
    assert len(resumed.resumes) == 1
    # steps 21 and 24 were measured twice (before the kill and after the resume); load_run keeps the later
    assert [r.step for r in resumed.records] == list(range(0, 31, 3))
    assert_same_measurements(full.records, last_per_step(resumed.records))
    # the InfoNCE critics came back with the checkpoint: its warm-started estimates match too
    assert any(est == "infonce" for (_, est, _) in values(full.records[-1]))
    # the phase tests had something to decide
    assert len(full.records) == 11
    assert {d[0] for d in decisions(folds(full.records)[-1]).values()} - {"insufficient_data"}
    assert_weights_equal(tmp_path / "full" / "final.pt", tmp_path / "interrupted" / "final.pt")


@pytest.mark.slow
def test_lightning_kill_and_resume(tmp_path):
    pytest.importorskip("lightning")
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        from _lightning_resume import fit
    finally:
        sys.path.remove(str(ROOT / "tests"))
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        full_cb = fit(tmp_path, "full")  # uninterrupted, in this process
    finally:
        torch.use_deterministic_algorithms(deterministic)
    run_script("_lightning_resume.py", tmp_path, "kill", expect_kill=True)
    assert (tmp_path / "ckpt-kill" / "epoch=1.ckpt").exists()
    killed = ibhooks.load_run(tmp_path / "interrupted" / "ib.jsonl")
    assert [r.step for r in killed.records][-1] == 14  # measured past the checkpoint (step 12)
    run_script("_lightning_resume.py", tmp_path, "resume")

    full = ibhooks.load_run(tmp_path / "full" / "ib.jsonl")
    resumed = ibhooks.load_run(tmp_path / "interrupted" / "ib.jsonl")  # log_dir/run_name from the checkpoint
    assert [r.step for r in full.records] == list(range(0, 25, 2))
    assert [r.to_dict() for r in full.records] == [r.to_dict() for r in full_cb.history]
    assert len(resumed.resumes) == 1
    assert [r.step for r in resumed.records] == list(range(0, 25, 2))  # the re-measured step 14 kept once
    assert_same_measurements(full.records, last_per_step(resumed.records))
    assert_weights_equal(tmp_path / "final-full.pt", tmp_path / "final-resume.pt")
