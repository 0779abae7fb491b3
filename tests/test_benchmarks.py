"""Smoke runs of the benchmark scripts (benchmarks/*.py --quick): each finishes and prints its table.

No timing or accuracy is asserted (shared machines are noisy; the numbers live in
benchmarks/RESULTS.md). The five scripts start together as subprocesses, single-threaded, so the
whole module costs about the slowest of them rather than their sum.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
TIMEOUT_S = 600  # a hang guard only: five single-threaded runs on a loaded 2-core box take 2-6 min

# script -> (extra arguments, lines its output must contain)
SCRIPTS: Dict[str, Tuple[List[str], List[str]]] = {
    # The estimator benchmark's --quick grid takes minutes on a loaded 2-core box; the smoke run keeps
    # its sizes <= 1024, one timed call per case and no large blocked-KDE check.
    "estimators.py": (
        ["--quick", "--threads", "1", "--max-n", "1024", "--repeats", "1", "--kde-large-n", "0"],
        ["estimator", "ref/ours", "binning", "ksg", "infonce"],
    ),
    "overhead.py": (
        ["--quick"],
        [
            "## (a) steps with no measurement due",
            "## (b) amortised overhead",
            "## (c) training thread blocked per measurement",
            "szt-mlp",
            "resnet18",
            "component",
            "background",
        ],
    ),
    "longrun.py": (
        ["--quick"],
        [
            "## measurement time",
            "## process RSS after gc.collect()",
            "## monitor state at record 200",
            "pickle.dumps(monitor.state_dict())",
        ],
    ),
    "memory.py": (
        ["--quick"],
        [
            "## peak extra memory against the configured budget",
            "## process RSS over passive runs",
            "per step:",
            "per measurement:",
        ],
    ),
    "accuracy.py": (
        ["--quick"],
        [
            "## where ibhooks is better and where it is not",
            "## like for like",
            "gauss",
            "mixture",
            "tanh",
            "ibhooks:ksg",
        ],
    ),
}


@pytest.fixture(scope="module")
def runs() -> Dict[str, subprocess.Popen]:
    env = dict(os.environ)
    # one thread per process for numpy/scipy/torch alike: five processes share a 2-core box
    env.update(
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        NUMBA_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    procs = {}
    for script, (args, _) in SCRIPTS.items():
        procs[script] = subprocess.Popen(
            [sys.executable, str(BENCH / script), *args],
            cwd=str(ROOT),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    yield procs
    for p in procs.values():  # a test that failed early must not leave its siblings running
        if p.poll() is None:
            p.kill()
            p.wait()


def _finish(proc: subprocess.Popen) -> Tuple[str, str, float]:
    t0 = time.perf_counter()
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"did not finish in {TIMEOUT_S} s\nstdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}")
    return out, err, time.perf_counter() - t0


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_benchmark_quick_prints_its_table(runs: Dict[str, subprocess.Popen], script: str) -> None:
    out, err, _ = _finish(runs[script])
    assert runs[script].returncode == 0, f"{script} exited {runs[script].returncode}\n{err[-4000:]}"
    for needle in SCRIPTS[script][1]:
        assert needle in out, f"{script} output lacks {needle!r}:\n{out[-4000:]}"
    table_lines = [ln for ln in out.splitlines() if ln.startswith("-----")]
    assert table_lines, f"{script} printed no table rule:\n{out[-4000:]}"


def test_accuracy_skips_a_missing_peer_cleanly() -> None:
    """A peer that is not importable is a 'SKIPPED' note and skipped rows, never a crash."""
    sys.path.insert(0, str(BENCH))
    try:
        import accuracy
    finally:
        sys.path.remove(str(BENCH))
    accuracy.PEERS.clear()
    accuracy.PEERS.update(
        {
            "npeet": (None, "not importable (ModuleNotFoundError: test)"),
            "sklearn": (None, "not importable"),
            "infomeasure": (None, "not importable"),
        }
    )
    rows: List = []
    accuracy.task_gauss(rows, 1, 1.0, 128, 0, fast=True)
    peers = [r for r in rows if r.lib != "ibhooks"]
    assert peers and all(r.value is None and r.note.startswith("skipped:") for r in peers)
    ksg = next(r for r in rows if r.method == "ibhooks:ksg")
    assert ksg.value is not None and abs(ksg.error) < 0.5


def _longrun_result(total: int, late_ms: float, rss_growth: int, state_bytes: int) -> Dict:
    """A synthetic longrun result: 10 ms per early measurement, ``late_ms`` per late one."""
    import numpy as np

    step_s = np.full(total + 1, 0.010)
    step_s[total - 19:] = late_ms / 1e3
    return {
        "total": total, "records": total, "early": (81, 100), "late": (total - 19, total),
        "paired": {"fresh": [0.010] * 20, "long": [late_ms / 1e3] * 20, "fresh_interp": [0.005] * 20,
                   "long_interp": [late_ms / 2e3] * 20},
        "step_s": step_s, "interp_s": step_s / 2, "checkpoints": [200, total], "mem_first": 200,
        "raw": {200: 100_000_000, total: 100_000_000 + rss_growth},
        "trimmed": {200: 100_000_000, total: 100_000_000 + rss_growth},
        "state_bytes": state_bytes, "series_bytes": 0, "wall": 1.0,
    }


def test_longrun_verdicts_name_each_missed_target(capsys: pytest.CaptureFixture) -> None:
    """The full run's verdicts: all met -> nothing missed; each target over its limit is named (and a
    --quick run asserts nothing)."""
    sys.path.insert(0, str(BENCH))
    try:
        import longrun
    finally:
        sys.path.remove(str(BENCH))
    ok = _longrun_result(3200, late_ms=14.0, rss_growth=3000 * 7_000, state_bytes=900_000)
    assert longrun.report(ok, quick=False) == []
    bad = _longrun_result(3200, late_ms=16.0, rss_growth=3000 * 9_000, state_bytes=1_100_000)
    missed = longrun.report(bad, quick=False)
    assert [m.rsplit(" (", 1)[0] for m in missed] == [
        "one measurement (monitor.step()) time ratio", "RSS growth per measurement", "state_dict size"]
    assert longrun.report(bad, quick=True) == []
    assert "MISSED (1.60 > 1.5)" in capsys.readouterr().out
