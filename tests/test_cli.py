"""The `ibhooks` command: plot / report / summary from a run log alone, clear errors for bad logs,
and the progress helpers."""

import io
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ibhooks.cli import main
from ibhooks.progress import NullProgress, format_measurement_line, measurement_progress
from ibhooks.runlog import load_run

from _records import LAYERS, make_header, make_history, write_log

STEPS = [0, 1, 5, 20, 100, 400, 1500, 5000]


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(map(str, argv)), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "run.jsonl"
    history = make_history(STEPS)
    write_log(path, history)
    return path, history


# -- plot ------------------------------------------------------------------------------------------


def test_plot_from_the_log_matches_the_live_figures(log, tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    from ibhooks import plotting

    path, history = log
    code, out, err = run_cli("plot", path, "-o", tmp_path / "cli", "--dpi", 60, "--no-animation")
    assert code == 0, err
    live = plotting.save_all_figures(
        history, tmp_path / "live", header=make_header(), dpi=60, animation=False
    )
    for name, p in live.items():
        cli_png = tmp_path / "cli" / p.name
        assert f"{name}: {cli_png}" in out
        a, b = Image.open(p), Image.open(cli_png)
        assert a.size == b.size
        assert np.array_equal(np.asarray(a), np.asarray(b)), name
    # and the plotted data itself: the plane's lines from the log equal those from the live Records
    live_fig = plotting.plot_information_plane(history)
    log_fig = plotting.plot_information_plane(load_run(path))
    live_lines = [ln.get_xydata().tolist() for ln in live_fig.axes[0].get_lines()]
    log_lines = [ln.get_xydata().tolist() for ln in log_fig.axes[0].get_lines()]
    assert live_lines == log_lines and len(live_lines) >= len(LAYERS)


def test_plot_default_folder_and_animation(log, tmp_path):
    pytest.importorskip("matplotlib")
    path, _ = log
    copy = tmp_path / "copy.jsonl"
    shutil.copy(path, copy)
    code, out, _ = run_cli("plot", copy, "--dpi", 40)
    assert code == 0
    assert (tmp_path / "copy_figures" / "information_plane.gif").exists()
    assert "information_plane_animation" in out


# -- report ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(log, tmp_path_factory):
    pytest.importorskip("matplotlib")
    path, _ = log
    target = tmp_path_factory.mktemp("report") / "report.html"
    code, out, err = run_cli("report", path, "-o", target, "--dpi", 60)
    assert code == 0, err
    return target, target.read_text(encoding="utf-8")


def test_report_is_self_contained_and_complete(report):
    _, text = report
    assert text.startswith("<!DOCTYPE html>")
    for layer in LAYERS:
        assert f"<td>{layer}</td>" in text
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 3  # plane, curves, DPI
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched from the network
    for section in ("Coverage", "Warnings", "Phases", "Data-processing inequality", "Estimator settings"):
        assert section in text
    assert "identity in eval mode" in text  # the skipped module and why
    assert "H(bin30[-1,1](T))" in text and "n_bins" in text  # quantity and estimator settings
    assert "at_cap" in text and "fc2 → fc3" in text  # warnings and DPI violations
    assert "detected" in text and "compression" in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(report, tmp_path):
    from PIL import Image

    target, _ = report
    shot = tmp_path / "shot.png"
    cmd = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        target.resolve().as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    assert shot.exists(), "chromium wrote no screenshot"
    img = np.asarray(Image.open(shot).convert("RGB"))
    assert img.shape[:2] == (2000, 1280)
    # the page rendered content (text and the embedded figures), not a blank or error page
    non_white = (img < 200).any(axis=2).mean()
    colourful = (img.max(axis=2).astype(int) - img.min(axis=2) > 60).mean()
    assert non_white > 0.02 and colourful > 0.002


def test_report_without_figures_and_without_measurements(tmp_path):
    path = tmp_path / "empty_run.jsonl"
    write_log(path, [])
    code, out, err = run_cli("report", path, "--no-figures")
    assert code == 0, err
    text = (tmp_path / "empty_run.html").read_text()
    assert "No measurements yet" in text and "identity in eval mode" in text


# -- summary ---------------------------------------------------------------------------------------


def test_summary_table(log):
    path, history = log
    code, out, err = run_cli("summary", path)
    assert code == 0, err
    lines = out.splitlines()
    for layer in LAYERS:
        (row,) = [ln for ln in lines if ln.strip().startswith(layer + " ")]
        last = history[-1].layers[layer]["binning"]
        assert f"{last.i_ty.value:.3f}" in row
    fc2 = next(ln for ln in lines if ln.strip().startswith("fc2 "))
    assert "comp" in fc2 and "fit" in fc2
    assert "H(bin30[-1,1](T))" in out and "DPI" in out and "at_cap" in out
    assert "*" in next(ln for ln in lines if ln.strip().startswith("fc1 "))  # at the cap
    assert run_cli("summary", path, "--estimator", "nope")[0] == 2


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ("", "is empty"),
        (
            '{"type": "header", "format": "ibhooks-run", "version": 1}\n{not json}\n{"type": "text"}\n',
            "not valid JSON",
        ),
        ('{"hello": 1}\n', "not an ibhooks run log"),
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not a text file"),
    ],
    ids=["missing", "empty", "corrupt", "foreign", "binary"],
)
@pytest.mark.parametrize("command", ["plot", "report", "summary"])
def test_bad_logs_are_one_line_errors(tmp_path, command, content, message):
    path = tmp_path / "run.jsonl"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    code, out, err = (
        run_cli(command, path, "-o", tmp_path / "out") if command != "summary" else run_cli(command, path)
    )
    assert code == 2
    assert message in err and err.startswith(f"ibhooks {command}: error:")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_truncated_log_warns_and_goes_on(log, tmp_path):
    path, history = log
    cut = tmp_path / "killed.jsonl"
    text = path.read_text()
    cut.write_text(text + text.splitlines()[-1][:100])  # a partial last line, as after kill -9
    code, out, err = run_cli("summary", cut)
    assert code == 0
    assert "cut off" in err and f"{len(history)} complete measurement" in err
    assert "fc3" in out


def test_header_only_log_cannot_be_plotted_but_can_be_summarised(tmp_path):
    path = tmp_path / "young.jsonl"
    write_log(path, [])
    code, _, err = run_cli("plot", path)
    assert code == 2 and "no measurements yet" in err
    code, out, _ = run_cli("summary", path)
    assert code == 0 and "none yet" in out


def test_console_script_process_exit_code(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "ibhooks.cli", "summary", str(tmp_path / "nope.jsonl")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr and "does not exist" in res.stderr
    assert main(["--help"], stdout=io.StringIO()) == 0
    assert run_cli("frobnicate")[0] == 2


# -- progress helpers -----------------------------------------------------------------------------


def test_progress_bar_and_measurement_line():
    stream = io.StringIO()
    bar = measurement_progress(3, True, step=7, file=stream)
    with bar:
        for _ in range(3):
            bar.update()
    assert type(bar).__name__ != "NullProgress" and bar.n == 3 and "ibhooks step 7" in stream.getvalue()
    off = measurement_progress(3, False)
    assert isinstance(off, NullProgress)
    with off:
        off.update()
        off.set_postfix_str("fc1")
    rec = make_history([0, 100, 5000])[-1]
    rec.errors = [{"layer": "fc2", "estimator": "binning", "error": "boom"}]
    line = format_measurement_line(rec)
    assert line.startswith("ibhooks: step 5000 (epoch 50): 3 layers x 1 estimator in ")
    assert "warning" in line and "1 DPI violation" in line and "1 error" in line and "\n" not in line


def test_progress_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    assert isinstance(measurement_progress(5, True), NullProgress)


def test_cli_does_not_import_heavy_modules_for_summary(log):
    path, _ = log
    code = (
        "import sys; from ibhooks.cli import main\n"
        f"rc = main(['summary', {str(path)!r}])\n"
        "assert rc == 0, rc\n"
        "assert 'matplotlib' not in sys.modules and 'wandb' not in sys.modules, sorted(sys.modules)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )
    assert res.returncode == 0, res.stderr
