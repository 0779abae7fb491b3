"""The JSONL run log: format version 2 round-trips, version 1 still loads, survives kill -9, clear
errors for bad files."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

import ibhooks
from ibhooks.schema import Checks, IBWarning, PhaseDecision, PhaseStatus, Record, WarningCode
from ibhooks.sinks.jsonl import FORMAT_VERSION, JsonlSink

V1_LOG = Path(__file__).parent / "fixtures" / "run_v1.jsonl"

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
    header = {"type": "header", "format": "ibhooks-run", "version": FORMAT_VERSION, "config": {}}
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
        ('{"type": "header", "format": "ibhooks-run", "version": 1\n{"type": "text"}\n', "line 1"),
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
    header = {"type": "header", "format": "ibhooks-run", "version": FORMAT_VERSION, "config": {}}
    rec = lambda step, n: json.dumps(ibhooks.Record(step=step, mode="probe", n_samples=n).to_dict())  # noqa: E731
    lines = [json.dumps(header), rec(0, 1), rec(10, 1), rec(20, 1), rec(30, 1),  # crashed after 30
             json.dumps({"type": "resume"}), rec(20, 2), rec(30, 2), rec(40, 2)]  # resumed from step 10
    path.write_text("\n".join(lines) + "\n")
    run = ibhooks.load_run(path)
    assert [(r.step, r.n_samples) for r in run.records] == [(0, 1), (10, 1), (20, 2), (30, 2), (40, 2)]


def _v1_lines():
    return [json.loads(line) for line in V1_LOG.read_text().splitlines()]


def test_version_1_log_loads_with_typed_findings():
    raw = _v1_lines()
    run = ibhooks.load_run(V1_LOG)
    assert run.format_version == 1 and raw[0]["version"] == 1
    assert [r.step for r in run.records] == [obj["step"] for obj in raw[1:]]
    assert run.layers == ["1", "3", "5"] and run.records[-1].estimators == ["binning", "kde"]
    last, last_raw = run.records[-1], raw[-1]
    assert isinstance(last.checks, Checks)
    assert last.checks.bounds_checked == last_raw["checks"]["bounds"]["checked"]
    assert len(last.checks.dpi_violations) == len(last_raw["checks"]["dpi"]["violations"]) > 0
    # v1 violations without an interval are "not assessed" in the typed tally
    tally = last.checks.dpi_total()
    raw_violations = last_raw["checks"]["dpi"]["violations"]
    assert tally.not_assessed == sum(v["significant"] is None for v in raw_violations)
    assert all(isinstance(w, IBWarning) for w in last.warnings)
    assert [w.code for w in last.warnings] == [WarningCode(w["code"]) for w in last_raw["warnings"]]
    assert WarningCode.SATURATING_UNITS in {w.code for r in run.records for w in r.warnings}
    est = last.estimate("1", "I_XT", "binning")
    assert est.value == last_raw["layers"]["1"]["binning"]["I_XT"]["value"] and est.traits.discretises
    assert last.estimate("1", "I_XT", "kde").traits.adds_noise


def test_version_1_phases_are_the_decisions_of_the_last_record():
    raw_last = _v1_lines()[-1]["phases"]["layers"]
    run = ibhooks.load_run(V1_LOG)
    expected = {(layer, est, phase): dec for layer, per_est in raw_last.items()
                for est, per_phase in per_est.items() for phase, dec in per_phase.items()}
    assert set(run.phases) == set(expected) and len(expected) == 3 * 2 * 2
    for key, dec in run.phases.items():
        assert isinstance(dec, PhaseDecision) and dec.status is PhaseStatus(expected[key]["status"])
        assert (dec.start_step, dec.end_step) == (expected[key]["start_step"], expected[key]["end_step"])
    statuses = {d.status for d in run.phases.values()}
    assert PhaseStatus.DETECTED in statuses and PhaseStatus.INSUFFICIENT_DATA in statuses


def _changes_only(records):
    """The v1 fixture's records as the v2 monitor writes them: only the decisions that changed."""
    latest = {}
    out = []
    for rec in records:
        changed = [d for d in rec.phase_changes if not d.same_outcome(latest.get(d.key))]
        for d in changed:
            latest[d.key] = d
        out.append(replace(rec, phase_changes=changed))
    return out


def _write(path, header, records, **kwargs):
    sink = JsonlSink(path, fsync=False, **kwargs)
    sink.start(header)
    for rec in records:
        sink.write(rec)
    sink.close()


def test_version_2_log_round_trips_exactly(tmp_path):
    v1 = ibhooks.load_run(V1_LOG)
    records = _changes_only(v1.records)
    assert sum(len(r.phase_changes) for r in records) < sum(len(r.phase_changes) for r in v1.records)
    header = {k: v for k, v in v1.header.items() if k not in ("type", "format", "version")}
    path = tmp_path / "v2.jsonl"
    _write(path, header, records)
    first = json.loads(path.read_text().splitlines()[0])
    assert (first["type"], first["format"], first["version"]) == ("header", "ibhooks-run", FORMAT_VERSION)
    assert FORMAT_VERSION == 2
    run = ibhooks.load_run(path)
    assert run.format_version == 2 and not run.truncated
    assert [r.to_dict() for r in run.records] == [r.to_dict() for r in records]
    assert run.header["coverage"] == v1.header["coverage"] and run.header["chains"] == v1.header["chains"]
    # the fold of the changes gives the same latest outcome per series as v1's full copies
    assert set(run.phases) == set(v1.phases)
    for key, dec in run.phases.items():
        assert dec.same_outcome(v1.phases[key]) and dec.step <= v1.phases[key].step


def test_phases_fold_in_step_order_and_follow_a_resume(tmp_path):
    def dec(step, status, start=None):
        return PhaseDecision(layer="fc1", estimator="binning", phase="compression", step=step,
                             status=PhaseStatus(status), start_step=start)

    recs = [Record(step=0, mode="probe", n_samples=4, phase_changes=[dec(0, "insufficient_data")]),
            Record(step=10, mode="probe", n_samples=4, phase_changes=[dec(10, "candidate", 5)]),
            Record(step=20, mode="probe", n_samples=4, phase_changes=[dec(20, "detected", 5)])]
    path = tmp_path / "r.jsonl"
    _write(path, {"config": {}}, recs)
    assert ibhooks.load_run(path).phases[("fc1", "binning", "compression")].status is PhaseStatus.DETECTED
    # resumed from the checkpoint at step 10: the re-measured step 20 says "not detected"
    _write(path, {"created": "x", "step": 10}, [Record(step=20, mode="probe", n_samples=4,
                                                       phase_changes=[dec(20, "not_detected")])], resume=True)
    lines = [json.loads(ln) for ln in path.read_text().splitlines()]
    assert lines[4]["type"] == "resume" and lines[4]["version"] == FORMAT_VERSION
    run = ibhooks.load_run(path)
    assert [r.step for r in run.records] == [0, 10, 20] and len(run.resumes) == 1
    assert run.phases[("fc1", "binning", "compression")].status is PhaseStatus.NOT_DETECTED


def test_measurement_line_counts_typed_findings():
    from ibhooks.progress import format_measurement_line
    from ibhooks.schema import BoundViolation, RecordError

    run = ibhooks.load_run(V1_LOG)
    first, last = run.records[0], run.records[-1]
    assert format_measurement_line(first) == (
        f"ibhooks: step 0: 3 layers x 2 estimators in {first.seconds:.2f} s; {len(first.warnings)} warnings")
    bug = BoundViolation(layer="3", estimator="binning", bound="I_TY <= H_Y", lhs_bits=1.2, rhs_bits=1.0,
                         size_bits=0.2, uncertainty_bits=0.0, significant=True, is_bug=True, message="")
    rec = replace(last, epoch=7, errors=[RecordError("boom", layer="5", estimator="kde")],
                  checks=replace(last.checks, bound_violations=(bug,)))
    line = format_measurement_line(rec)
    tally = last.checks.dpi_total()
    assert tally.not_assessed == 2 and tally.significant == 0
    assert line.startswith("ibhooks: step 1500 (epoch 7): 3 layers x 2 estimators in ")
    assert line.endswith(f"; {len(last.warnings)} warnings, DPI 0 significant / 2 not assessed, "
                         "1 bound violation (bug), 1 error")
    assert format_measurement_line(replace(rec, warnings=[], checks=None, errors=[])).endswith(" s")
