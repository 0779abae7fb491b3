"""The console while training: the per-measurement line says which warnings are new in the run, and a
measurement that takes over a second on the training thread shows a tqdm bar over its layers (written
to stderr through tqdm, removed when done); a fast one, or one on the background worker, shows none."""

import threading
import time

import pytest
import torch
import torch.nn as nn

import ibhooks
from ibhooks.capture.snapshot import Snapshot
from ibhooks.estimators.binning import Binning
from ibhooks.pipeline.console import Console
from ibhooks.pipeline.estimation import run_estimators
from ibhooks.progress import MeasurementLines, format_measurement_line
from ibhooks.schema import IBWarning, Record, Severity, WarningCode

pytest.importorskip("tqdm")

BAR = "ibhooks step"  # the bar's description; the measurement line reads "ibhooks: step ..."


class SlowBinning(Binning):
    """Binning that sleeps ``delay`` seconds per layer: a measurement that takes a while."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def layer_information(self, t, y=None, *, layer=None):
        time.sleep(self.delay)
        return super().layer_information(t, y, layer=layer)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))


def _probe():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 6, generator=g)
    return x, (x[:, 0] > 0).long()


def _measure(tmp_path, estimator, **kwargs):
    mon = ibhooks.IBMonitor(_model(), probe=_probe(), estimators=[estimator], schedule=1, log_dir=tmp_path,
                            measure_initial=False, **kwargs)
    t0 = time.perf_counter()
    rec = mon.step()
    mon.flush()
    seconds = time.perf_counter() - t0
    mon.close()
    return mon, rec, seconds


def test_a_slow_measurement_shows_a_bar_over_its_layers_and_removes_it(tmp_path, capsys):
    capsys.readouterr()
    mon, rec, seconds = _measure(tmp_path, SlowBinning(0.45))
    err = capsys.readouterr().err
    n = len(mon.layer_names)
    assert n >= 3 and seconds > 1.0 and len(rec.layers) == n
    assert f"{BAR} 1" in err, err[-2000:]
    assert f"/{n} [" in err  # a bar over the layers of this measurement, updated after the first second
    assert "ibhooks: step 1:" in err  # the measurement line follows the bar
    # leave=False: the bar's last act is to clear its own line (carriage return, blank, return)
    bar_part = err[err.rindex(BAR):err.index("ibhooks: step 1:")]
    assert bar_part.rstrip("\n").endswith("\r"), repr(bar_part[-80:])


def test_a_fast_measurement_and_a_quiet_monitor_show_no_bar(tmp_path, capsys):
    capsys.readouterr()
    _, _, seconds = _measure(tmp_path / "fast", Binning())
    err = capsys.readouterr().err
    assert seconds < 1.0 and BAR not in err and "ibhooks: step 1:" in err
    _measure(tmp_path / "quiet", SlowBinning(0.4), verbose=False)
    assert BAR not in capsys.readouterr().err


def test_the_bar_appears_after_the_delay_and_never_on_a_worker_thread(capsys):
    x, y = _probe()
    acts = {f"l{i}": torch.tanh(x[:, :4] * (i + 1)) for i in range(4)}
    snap = Snapshot(step=5, mode="probe", activations=acts, labels=y)
    console = Console(verbose=True, progress_delay=0.2)
    capsys.readouterr()
    layers, errors = run_estimators(snap, {"binning": SlowBinning(0.1)}, list(acts), console)
    err = capsys.readouterr().err
    assert list(layers) == list(acts) and not errors
    assert f"{BAR} 5" in err and "/4 [" in err
    # the same measurement on another thread (the background worker's case): no bar
    out = {}
    worker = threading.Thread(target=lambda: out.update(
        r=run_estimators(snap, {"binning": SlowBinning(0.1)}, list(acts), console)))
    worker.start()
    worker.join()
    assert list(out["r"][0]) == list(acts) and BAR not in capsys.readouterr().err
    with pytest.raises(ValueError, match="progress_delay"):
        Console(progress_delay=-1)


def _warning(code, layer, estimator="binning"):
    return IBWarning(layer=layer, estimator=estimator, quantity=None, code=code, severity=Severity.WARNING,
                     message=f"{code} in {layer}")


def _record(step, *warnings):
    rec = Record(step=step, mode="probe", n_samples=64)
    rec.warnings = list(warnings)
    return rec


def test_the_line_counts_warnings_new_in_the_run_by_code_and_layer():
    cap, sat, dpi = WarningCode.AT_CAP, WarningCode.SATURATING_UNITS, WarningCode.DPI_VIOLATION
    lines = MeasurementLines()
    tails = [lines(r).split(" s; ", 1)[-1] for r in [
        _record(0, _warning(cap, "fc1"), _warning(cap, "fc1", "kde")),  # one pair, two estimators: both new
        _record(1, _warning(cap, "fc1"), _warning(sat, "fc2")),  # only the saturating units are new
        _record(2, _warning(cap, "fc1", "kde")),  # another estimator, same (code, layer): not new
        _record(3),  # no warnings: no warning text
        _record(4, _warning(cap, "fc3"), _warning(cap, "fc2"), _warning(dpi, None), _warning(sat, "fc2")),
    ]]
    assert tails == [
        "2 warnings (2 new: at_cap in fc1)",
        "2 warnings (1 new: saturating_units in fc2)",
        "1 warning (0 new)",
        "ibhooks: step 3: 0 layers x 0 estimators in 0.00 s",
        "4 warnings (3 new: at_cap in fc3 fc2; dpi_violation)",
    ]
    assert lines.seen == {("at_cap", "fc1"), ("at_cap", "fc2"), ("at_cap", "fc3"),
                          ("saturating_units", "fc2"), ("dpi_violation", None)}
    # without a run's memory the line gives the count only (what `format_measurement_line(record)` did)
    assert format_measurement_line(_record(1, _warning(sat, "fc2"))).endswith(" s; 1 warning")
    many = _record(5, *[_warning(c, f"h{i}") for c in WarningCode for i in range(5)])
    tail = MeasurementLines()(many).split(" s; ", 1)[-1]
    n = 5 * len(WarningCode)
    assert tail == (f"{n} warnings ({n} new: saturating_units in h0 h1 h2 +2; outside_range in h0 h1 h2 +2; "
                    f"at_cap in h0 h1 h2 +2; +{len(WarningCode) - 3} more codes)")


def test_a_monitor_run_says_which_warnings_are_new(tmp_path, capsys):
    mon = ibhooks.IBMonitor(_model(), probe=_probe(), schedule=1, log_dir=tmp_path, measure_initial=False)
    capsys.readouterr()
    first, second = mon.step(), mon.step()  # no training in between: the same findings twice
    mon.close()
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("ibhooks: step ")]
    assert len(first.warnings) == len(second.warnings) >= 1 and len(lines) == 2
    assert f"{len(first.warnings)} warnings ({len(first.warnings)} new: " in lines[0]
    assert f"{len(second.warnings)} warnings (0 new)" in lines[1]
