"""The `ibhooks` command: plot / report / summary from a run log alone, clear errors for bad logs,
and the progress helpers."""

import io
import os
import re
from dataclasses import replace
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest

from ibhooks import report as report_pkg
from ibhooks.cli import main
from ibhooks.progress import NullProgress, format_measurement_line, measurement_progress
from ibhooks.runlog import load_run
from ibhooks.schema import Checks, DpiTally, DpiViolation, Quantity, RecordError

from _records import LAYERS, make_header, make_history, steps_default, write_log

STEPS = steps_default()  # enough measurements for the real phase tests to detect compression


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
    assert len(re.findall(r'src="data:image/gif;base64,', text)) == 1  # the plane over training
    assert '<h2 id="plane">' in text and "ibhooksPlane(" in text  # the interactive plane, embedded
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched from the network
    for section in ("summary", "figures", "phases", "dpi", "warnings", "errors", "coverage", "settings"):
        assert f'<h2 id="{section}">' in text and f'href="#{section}"' in text
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


# -- compare and export ----------------------------------------------------------------------------


def test_compare_two_runs_side_by_side(log, tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    path, _ = log
    other = tmp_path / "relu.jsonl"
    write_log(other, make_history(steps_default(10), seed=4))
    code, out, err = run_cli("compare", path, other, "--label", "tanh", "relu", "-o", tmp_path / "cmp",
                             "--dpi", 50)
    assert code == 0, err
    planes = Image.open(tmp_path / "cmp" / "compare_planes.png")
    assert planes.size[0] > 1.5 * planes.size[1]  # two planes side by side
    assert "compare_curves:" in out and (tmp_path / "cmp" / "compare_curves.png").exists()
    code, _, err = run_cli("compare", path, other, "--label", "only-one")
    assert code == 2 and "one label per run" in err


def test_export_a_jsonl_run_to_tensorboard(log, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path, history = log
    code, out, err = run_cli("export", path, "--tensorboard", tmp_path / "tb", "--figure-every", 100)
    assert code == 0, err and "tensorboard: " in out
    (layer_dir,) = [d for d in (tmp_path / "tb").iterdir() if d.name.startswith("T2 fc2")]
    ea = EventAccumulator(str(layer_dir))
    ea.Reload()
    assert [e.step for e in ea.Scalars("ib/I_XT")] == [r.step for r in history]
    main_ea = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    main_ea.Reload()
    assert [im.step for im in main_ea.Images("ib/plane")] == [history[0].step, history[-1].step]
    code, _, err = run_cli("export", path)
    assert code == 2 and "--tensorboard" in err


def test_export_a_jsonl_run_to_wandb_offline(log, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    for k, v in {"WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true", "WANDB_CONSOLE": "off"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    path, _ = log
    try:
        code, out, err = run_cli("export", path, "--wandb", "--offline", "--figure-every", 100)
    finally:
        wandb.teardown()
    assert code == 0, err
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    assert list(run_dir.glob("run-*.wandb")) and "wandb: " in out


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


# -- one estimator of several ----------------------------------------------------------------------

ESTIMATORS = ("binning", "kde")


@pytest.fixture(scope="module")
def log2(tmp_path_factory):
    """A run with two estimators."""
    path = tmp_path_factory.mktemp("run2") / "run2.jsonl"
    history = make_history(STEPS, estimators=ESTIMATORS)
    write_log(path, history, make_header(estimators=ESTIMATORS))
    return path, history


def _png_pixels(path):
    from PIL import Image

    return np.asarray(Image.open(path))


def test_plot_estimator_draws_that_estimators_figures(log2, tmp_path):
    pytest.importorskip("matplotlib")
    from ibhooks import plotting

    path, history = log2
    code, out, err = run_cli("plot", path, "-o", tmp_path / "all", "--dpi", 40, "--no-animation")
    assert code == 0, err
    assert all(f"information_plane_{e}:" in out for e in ESTIMATORS)  # both, named apart
    planes = {}
    for est in ESTIMATORS:
        target = tmp_path / est
        code, out, err = run_cli(
            "plot", path, "-o", target, "--dpi", 40, "--no-animation", "--estimator", est
        )
        assert code == 0, err
        other = next(e for e in ESTIMATORS if e != est)
        assert f"information_plane: {target / 'information_plane.png'}" in out and other not in out
        planes[est] = _png_pixels(target / "information_plane.png")
        # the plane the CLI drew for `est` is the one the plotting API draws for `est` from the live Records
        header = make_header(estimators=ESTIMATORS)
        live = plotting.plot_information_plane(history, estimator=est, header=header)
        live.savefig(tmp_path / f"live_{est}.png", dpi=40, metadata={"Software": None})
        plotting.close_figure(live)
        assert np.array_equal(planes[est], _png_pixels(tmp_path / f"live_{est}.png")), est
    a, b = planes["binning"], planes["kde"]
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_report_and_summary_estimator_show_only_that_estimator(log2, tmp_path):
    path, history = log2
    target = tmp_path / "kde.html"
    code, _, err = run_cli("report", path, "-o", target, "--no-figures", "--estimator", "kde")
    assert code == 0, err
    text = target.read_text(encoding="utf-8")
    assert "Estimator <code>kde</code>" in text and "Estimator <code>binning</code>" not in text
    assert "<td>binning</td>" not in text  # no phase, DPI or warning row of the other estimator
    full = run_cli("report", path, "-o", tmp_path / "all.html", "--no-figures")
    assert full[0] == 0 and "<td>binning</td>" in (tmp_path / "all.html").read_text(encoding="utf-8")
    code, out, err = run_cli("summary", path, "--estimator", "kde")
    assert code == 0, err
    assert "estimator kde" in out and "estimator binning" not in out
    fc3 = next(ln for ln in out.splitlines() if ln.strip().startswith("fc3 "))
    assert f"{history[-1].layers['fc3']['kde'].i_ty.value:.3f}" in fc3


@pytest.mark.parametrize("command", ["plot", "report", "summary"])
def test_unknown_estimator_is_a_one_line_error_listing_the_known_ones(log2, tmp_path, command):
    path, _ = log2
    extra = ["-o", tmp_path / "out"] if command != "summary" else []
    code, out, err = run_cli(command, path, *extra, "--estimator", "nope")
    assert code == 2 and out == ""
    assert err.startswith(f"ibhooks {command}: error: estimator 'nope'") and "binning, kde" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


# -- the report reads typed records ----------------------------------------------------------------


def test_report_escapes_names_from_the_run(tmp_path):
    layers = ("fc1", "<script>alert(1)</script>", "a&b")
    history = make_history([0, 10, 100, 1000], layers=layers)
    history[-1].errors = [RecordError("<b>boom</b>", layer=layers[1], estimator="binning")]
    path = tmp_path / "odd.jsonl"
    write_log(path, history, make_header(layers=layers))
    code, _, err = run_cli("report", path, "--no-figures")
    assert code == 0, err
    text = (tmp_path / "odd.html").read_text(encoding="utf-8")
    # the report's own scripts (the interactive plane) carry the names as JSON with "</" escaped, so a
    # name can never close the script element; everywhere else names are HTML-escaped
    assert "<script>alert" not in text and text.count("<script>") == text.count("</script>")
    html_only = re.sub(r"<script>.*?</script>", "", text, flags=re.S)
    assert "<script>" not in html_only and "<b>boom</b>" not in html_only and "a&b" not in html_only
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_only and "&lt;b&gt;boom&lt;/b&gt;" in html_only
    assert "<td>a&amp;b</td>" in html_only


def test_errors_section_and_summary_line(tmp_path):
    history = make_history([0, 10, 100, 1000])
    history[1].errors = [RecordError("CUDA out of memory", layer="fc2", estimator="binning")]
    history[2].errors = [RecordError("probe failed", stage="capture")]
    path = tmp_path / "errs.jsonl"
    write_log(path, history)
    code, _, err = run_cli("report", path, "--no-figures")
    assert code == 0, err
    text = (tmp_path / "errs.html").read_text(encoding="utf-8")
    section = text[text.index('<h2 id="errors">'):text.index('<h2 id="coverage">')]
    assert "CUDA out of memory" in section and "probe failed" in section and "<td>capture</td>" in section
    code, out, _ = run_cli("summary", path)
    assert code == 0
    assert "errors: 2 (first: step 10, estimate of fc2 under binning: CUDA out of memory)" in out


def _with_unassessed_violation(rec):
    """``rec`` plus an I(T;Y) DPI violation fc2 -> fc3 under kde whose uncertainty is unknown."""
    v = DpiViolation(
        chain="main", estimator="kde", quantity=Quantity.I_TY, upstream="fc2", downstream="fc3",
        upstream_bits=0.90, downstream_bits=0.93, size_bits=0.03, uncertainty_bits=None, significant=None,
        estimate_kinds=("upper_bound", "upper_bound"), message="DPI violated; no interval to assess it",
    )
    checks = rec.checks or Checks()
    old = checks.tally("kde", Quantity.I_TY) or DpiTally("kde", Quantity.I_TY, pairs_checked=2)
    tally = replace(old, violated=old.violated + 1, not_assessed=old.not_assessed + 1)
    rec.checks = replace(checks, dpi=tuple(t for t in checks.dpi if t is not old) + (tally,),
                         dpi_violations=checks.dpi_violations + (v,))
    return rec


def test_not_assessed_dpi_violations_are_worded_so(tmp_path):
    """A violation without an interval is "not assessed" in the summary and the report, never "unknown"."""
    history = make_history([0, 10, 100, 1000, 5000], estimators=("kde",), with_ci=False)
    history[-2:] = [_with_unassessed_violation(rec) for rec in history[-2:]]
    path = tmp_path / "noci.jsonl"
    write_log(path, history, make_header(estimators=("kde",)))
    tallies = [t for rec in history if rec.checks for t in rec.checks.dpi if t.quantity == Quantity.I_TY]
    total = sum(t.not_assessed for t in tallies)
    code, out, _ = run_cli("summary", path)
    assert code == 0
    (line,) = [ln for ln in out.splitlines() if ln.strip().startswith("kde I(T;Y): violated")]
    assert line.endswith(f"{total} not assessed)") and "unknown" not in out.split("DPI along chains")[1]
    code, _, err = run_cli("report", path, "--no-figures")
    assert code == 0, err
    text = (tmp_path / "noci.html").read_text(encoding="utf-8")
    dpi = text[text.index('<h2 id="dpi">'):text.index('<h2 id="warnings">')]
    assert "<th>not assessed</th>" in dpi and "<td>fc2 → fc3</td>" in dpi and "unknown" not in dpi


def test_phase_table_is_the_fold_of_the_phase_changes(log):
    path, history = log
    run = load_run(path)
    text = report_pkg.render_report(run, figures=False)
    section = text[text.index('<h2 id="phases">'):text.index('<h2 id="dpi">')]
    latest = {}
    for rec in history:
        for d in rec.phase_changes:
            latest[d.key] = d
    assert latest, "the synthetic history should decide phases"
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td>", section)
    shown = {(a, b, c): d for a, b, c, d in rows}
    assert shown == {k: str(d.status).replace("_", " ") for k, d in latest.items()}
    # a run object without the reader's fold (``Run.phases``) gives the same table: the report folds itself
    bare = types.SimpleNamespace(path=run.path, header=run.header, records=run.records, truncated=False)
    again = report_pkg.render_report(bare, figures=False)
    assert again[again.index('<h2 id="phases">'):again.index('<h2 id="dpi">')] == section


def test_template_and_style_are_package_files(report):
    from importlib import resources

    _, text = report
    files = resources.files("ibhooks.report")
    css = files.joinpath("style.css").read_text(encoding="utf-8")
    assert files.joinpath("template.html").is_file() and css.strip() in text


def test_cli_holds_no_html():
    import ibhooks.cli

    source = open(ibhooks.cli.__file__, encoding="utf-8").read()
    assert not re.search(r"<(table|tr|td|th|html|body|style|div|span|h[1-6]|p)[\s>]", source)
    assert "import html" not in source and "base64" not in source


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ("", "is empty"),
        (  # a torn header (a corrupt middle line is recovered, see tests/test_reliability_runlog.py)
            '{"type": "header", "format": "ibhooks-run", "version": 1\n{"type": "text"}\n',
            "line 1",
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
    rec.errors = [RecordError("boom", layer="fc2", estimator="binning")]
    line = format_measurement_line(rec)
    assert line.startswith("ibhooks: step 5000 (epoch 50): 3 layers x 1 estimator in ")
    total = rec.checks.dpi_total()
    assert total.significant > 0, "the synthetic history should end with a significant DPI violation"
    assert f"{len(rec.warnings)} warning" in line and "1 error" in line and "\n" not in line
    assert f"DPI {total.significant} significant / {total.not_assessed} not assessed" in line


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
