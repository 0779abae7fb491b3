"""The examples of the extra analyses (issue 17) run in smoke mode and leave run logs whose records
carry their analysis, readable back through ``load_run``."""

import pytest

import ibhooks
from test_examples import example_main

CASES = {  # example -> the analysis its run logs must carry
    "ib_bound": "ib_bound",
    "heldout_szt": "heldout",
    "noisy_network_geometry": "geometry",
    "robust_verdicts": "robust",
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_analysis_example_smoke(name, tmp_path):
    example_main(name)(["--smoke", "--out", str(tmp_path)])
    logs = sorted(tmp_path.rglob("*.jsonl"))
    assert logs, f"{name}: no run log written"
    carrying = [p for p in logs if any(CASES[name] in r.analyses for r in ibhooks.load_run(p).records)]
    assert carrying, f"{name}: no record carries analyses[{CASES[name]!r}] in {[p.name for p in logs]}"
    assert not any(r.errors for p in carrying for r in ibhooks.load_run(p).records)
