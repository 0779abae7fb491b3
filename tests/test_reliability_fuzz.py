"""Fuzzed run logs (hypothesis): records with hostile values at random places, garbage, deep nesting,
empty and cut-off lines. ``load_run`` either reads the log (every untouched record recovered, every
other line counted) or raises one ValueError; the summary and the report never raise; the CLI exits
0 or 2 without a traceback."""

import io
import json
import warnings
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ibhooks import report  # noqa: E402
from ibhooks.cli import main  # noqa: E402
from ibhooks.runlog import load_run  # noqa: E402

V1_LOG = Path(__file__).parent / "fixtures" / "run_v1.jsonl"
_V1 = None

#: Raw JSON text put in place of one value (not all of it valid JSON: that is the point).
HOSTILE = [
    "1e999",
    "-1e999",
    "1e300",
    "NaN",
    "Infinity",
    '"abc"',
    "true",
    "null",
    "[]",
    "{}",
    "-1",
    "9" * 400,
    "[" * 3000 + "]" * 3000,
    '{"a": ' * 40 + "1" + "}" * 40,
    '"\\ud800"',
    "1.5",
]
GARBAGE = [b"{bad json", b"\x89PNG\x00\xff\xfe", b"[1, 2]", b'"text"', b"   ", b"\x00" * 10, b"{" * 5000]


def base():
    global _V1
    if _V1 is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = load_run(V1_LOG)
        header = {k: v for k, v in run.header.items() if k not in ("type", "format", "version")}
        _V1 = (
            {"type": "header", "format": "ibhooks-run", "version": 2, **header},
            [r.to_dict() for r in run.records],
        )
    return _V1


def paths(obj, prefix=()):
    """Every path to a value inside ``obj``."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += paths(v, prefix + (i,))
    return out


def with_hostile(obj, path, raw):
    """``obj`` as JSON text with the value at ``path`` replaced by the raw text ``raw``."""
    marker = "\u0001HOSTILE\u0001"
    obj = json.loads(json.dumps(obj))
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = marker
    return json.dumps(obj).replace(json.dumps(marker), raw)


@st.composite
def logs(draw):
    header, records = base()
    lines, kept = [], []
    if draw(st.booleans()) and draw(st.booleans()):  # one in four: a hostile header
        where = draw(st.sampled_from(paths(header)))
        lines.append(
            with_hostile(header, where, draw(st.sampled_from(HOSTILE))).encode("utf-8", "surrogatepass")
        )
    else:
        lines.append(json.dumps(header).encode())
    for step in range(draw(st.integers(0, 8))):
        rec = dict(draw(st.sampled_from(records)), step=step)
        kind = draw(st.sampled_from(["ok", "ok", "hostile", "garbage", "empty"]))
        if kind == "ok":
            lines.append(json.dumps(rec).encode())
            kept.append(rec)
        elif kind == "hostile":
            where = draw(st.sampled_from(paths(rec)))
            lines.append(
                with_hostile(rec, where, draw(st.sampled_from(HOSTILE))).encode("utf-8", "surrogatepass")
            )
        elif kind == "garbage":
            lines.append(draw(st.sampled_from(GARBAGE)))
        else:
            lines.append(b"")
    data = b"\n".join(lines) + b"\n"
    if draw(st.booleans()):  # killed while writing the last line
        data += json.dumps(records[0])[: draw(st.integers(1, 200))].encode()
    return data, kept


@settings(
    max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(logs())
def test_fuzzed_logs_never_raise_a_traceback(tmp_path_factory, log):
    data, kept = log
    path = tmp_path_factory.mktemp("fuzz") / "run.jsonl"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            run = load_run(path)
        except ValueError as exc:
            message = str(exc)
            assert str(path) in message and "\n" not in message
            assert "line 1" in message or "is empty" in message or "not a text file" in message
            run = None
        if run is not None:
            got = [r.to_dict() for r in run.records]
            # every untouched record is recovered, in order
            it = iter(got)
            from ibhooks.schema import Record

            assert all(any(g == Record.from_dict(k).to_dict() for g in it) for k in kept)
            report.render_summary(run)
            report.render_report(run, figures=False)
        err = io.StringIO()
        code = main(["summary", str(path)], stdout=io.StringIO(), stderr=err)
    assert code in (0, 2) and "Traceback" not in err.getvalue()
    assert (code == 0) == (run is not None)
