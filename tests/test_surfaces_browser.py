"""The interactive plane where users look: in the HTML report and the notebook view, loaded in headless
Chromium (skipped cleanly without it): the JavaScript runs, draws every point, and logs no error."""

import re
import shutil
import subprocess

import pytest

import ibhooks
from ibhooks.notebook import show
from ibhooks.report.interactive import interactive_plane, plane_data

from _records import LAYERS, make_header, make_history, write_log

STEPS = [0, 3, 30, 300, 3000]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "run.jsonl"
    write_log(path, make_history(STEPS, estimators=("binning", "kde")), make_header(estimators=("binning", "kde")))
    return ibhooks.load_run(path)


def test_plane_data_per_estimator_layer_and_step(run):
    data = plane_data(run)
    assert [e["name"] for e in data["estimators"]] == ["binning", "kde"]
    binning = data["estimators"][0]
    assert [x["label"] for x in binning["layers"]] == ["T1 fc1 (Linear, 10)", "T2 fc2 (Linear, 8)",
                                                        "T3 fc3 (Linear, 6)"]
    pts = binning["layers"][1]["points"]
    assert [p[0] for p in pts] == STEPS
    last = run.records[-1].layers["fc2"]["binning"]
    assert pts[-1][1:3] == pytest.approx([last.i_xt.value, last.i_ty.value], abs=1e-4)
    assert pts[-1][3:5] == pytest.approx(list(last.i_xt.ci), abs=1e-4)


def test_notebook_view_renders_the_plane_and_a_summary(run):
    view = show(run, estimator="kde")
    text = view._repr_html_()
    assert "ibhooksPlane(" in text and all(f"<td>{layer}</td>" in text for layer in LAYERS)
    assert not re.search(r'(src|href)="(https?:)?//', text)
    with pytest.raises(ValueError, match="not in these records"):
        show(run, estimator="nope")


def _dom(page, tmp_path):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--enable-logging=stderr",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000", "--dump-dom",
           page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    return done.stdout, done.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_interactive_plane_and_report_run_in_chromium_without_console_errors(run, tmp_path):
    pytest.importorskip("matplotlib")
    page = tmp_path / "plane.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
                    + interactive_plane(run) + "</body></html>", encoding="utf-8")
    dom, log = _dom(page, tmp_path)
    # the first estimator is drawn: one circle per point, one group per layer, one legend button per layer
    assert dom.count("<circle") == len(STEPS) * len(LAYERS), log[-2000:]
    assert dom.count('class="ibh-layer"') == len(LAYERS) and dom.count("<option") == 2
    assert "Uncaught" not in log and "CONSOLE" not in log, log[-2000:]

    report = tmp_path / "report.html"
    report.write_text(ibhooks.report.render_report(run, dpi=40, animation=False), encoding="utf-8")
    dom, log = _dom(report, tmp_path)
    assert dom.count("<circle") == len(STEPS) * len(LAYERS) and "Uncaught" not in log, log[-2000:]
