"""TensorBoard as a user sees it: a short real training run with the TensorBoard sink, served by
``tensorboard --host 127.0.0.1``, read back through its HTTP API (scalars per layer run, the last plane
image at the last step, the text) and shown in headless Chromium (screenshot of the Images tab).
Skipped cleanly when TensorBoard cannot start or Chromium is not installed."""

import io
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import torch
import torch.nn as nn

pytest.importorskip("tensorboard")
pytest.importorskip("matplotlib")

import ibhooks  # noqa: E402
from ibhooks.integrations.tensorboard import TensorBoardSink  # noqa: E402
from ibhooks.sinks.layer_labels import path_safe  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
N_PROBE = 128  # distinct probe rows: I(X;T) of the first (injective) layer is log2 128 = 7 bits
STEPS, EVERY = 20, 5
VIRIDIS_DARK = (68, 1, 84)  # the earliest training step in the plane's colour scale


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """20 SGD steps of a small tanh MLP, measured every 5 steps, logged to a TensorBoard folder."""
    root = tmp_path_factory.mktemp("served")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sink = TensorBoardSink(str(root / "tb"), figure_every=100)  # the plane at the first step and at close
    mon = ibhooks.IBMonitor(model, probe=(x[:N_PROBE], y[:N_PROBE]), schedule=ibhooks.every_n(EVERY),
                            log_dir=root, sinks=[sink], verbose=False)
    for _ in range(STEPS):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mon.step()
    mon.close()
    history = list(mon.history)
    assert [r.step for r in history] == list(range(0, STEPS + 1, EVERY))
    return Path(sink.log_dir), history, dict(sink.labels)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base, path, **query):
    """JSON from ``base + path`` (``path`` may carry its own query string), or the bytes of an image."""
    url = base + path + ("?" + urllib.parse.urlencode(query) if query else "")
    with urllib.request.urlopen(url, timeout=20) as resp:
        body = resp.read()
    return body if "/individualImage" in path else json.loads(body)


@pytest.fixture(scope="module")
def server(run):
    """``tensorboard --logdir <run> --host 127.0.0.1 --port <free>``; its base URL once every layer run
    has its scalars loaded. Stopped after the module."""
    tb_dir, _, labels = run
    cmd = [sys.executable, "-m", "tensorboard.main", "--logdir", str(tb_dir), "--host", "127.0.0.1",
           "--port", str(_free_port()), "--load_fast", "false", "--reload_interval", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{cmd[cmd.index('--port') + 1]}"
    want = {path_safe(label) for label in labels.values()}
    deadline = time.monotonic() + 90
    try:
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode(errors="replace")
                pytest.skip("tensorboard did not start: " + out[-800:])
            try:
                tags = _get(base, "/data/plugin/scalars/tags")
                if all("ib/I_XT" in tags.get(run_name, {}) for run_name in want):
                    break
            except (urllib.error.URLError, ConnectionError, json.JSONDecodeError):
                pass
            if time.monotonic() > deadline:
                pytest.skip("tensorboard did not serve the run within 90 s")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_scalars_one_run_per_layer_at_the_measured_steps(run, server):
    _, history, labels = run
    runs = _get(server, "/data/runs")
    assert set(runs) == {"."} | {path_safe(label) for label in labels.values()}
    first = next(iter(labels))  # the injective first layer: every probe row its own bin
    for layer, label in labels.items():
        for q, attr in (("I_XT", "i_xt"), ("I_TY", "i_ty")):
            points = _get(server, "/data/plugin/scalars/scalars", run=path_safe(label), tag=f"ib/{q}")
            assert [p[1] for p in points] == [r.step for r in history], (label, q)
            want = [getattr(r.layers[layer]["auto"], attr).value for r in history]  # auto:binning (12 units)
            assert [p[2] for p in points] == pytest.approx(want, rel=1e-6, abs=1e-6), (label, q)
    points = _get(server, "/data/plugin/scalars/scalars", run=path_safe(labels[first]), tag="ib/I_XT")
    xt = [p[2] for p in points]
    assert xt == pytest.approx([7.0] * len(history), abs=1e-6)  # log2(128 distinct rows)


def test_the_last_plane_is_served_at_the_last_step(run, server):
    tb_dir, history, _ = run
    tags = _get(server, "/data/plugin/images/tags")["."]
    assert {"ib/plane", "ib/curves", "ib/dpi"} <= set(tags)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"images": 0})
    acc.Reload()
    for tag in ("ib/plane", "ib/curves"):
        served = _get(server, "/data/plugin/images/images", run=".", tag=tag, sample=0)
        assert [e["step"] for e in served] == [history[0].step, history[-1].step], tag
        png = _get(server, "/data/plugin/images/individualImage" + "?" + served[-1]["query"])
        assert png == acc.Images(tag)[-1].encoded_image_string, tag  # the last image written, byte for byte
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert width >= 400 and height >= 300, (tag, width, height)


def test_text_config_and_warnings(run, server):
    _, history, labels = run
    tags = set(_get(server, "/data/plugin/text/tags")["."])
    assert {"ib/config/text_summary", "ib/warnings/text_summary"} <= tags
    (config,) = _get(server, "/data/plugin/text/text", run=".", tag="ib/config/text_summary")
    assert f"{len(labels)} of {len(labels)} modules monitored" in config["text"]
    assert all(f"<td>{layer}</td>" in config["text"] for layer in labels)  # markdown rendered as HTML
    by_step = {r.step: r for r in history}
    served = _get(server, "/data/plugin/text/text", run=".", tag="ib/warnings/text_summary")
    assert served and any(r.warnings for r in history)  # at least the first layer at its cap
    for entry in served:
        rec = by_step[entry["step"]]
        assert f"{len(rec.warnings)} warning(s)" in entry["text"]
        assert all(w.code.value in entry["text"] for w in rec.warnings)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_chromium_shows_the_plane_in_the_images_tab(server, tmp_path):
    import matplotlib.image as mimage
    import numpy as np

    shot = tmp_path / "tensorboard.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-3d-apis", "--no-first-run",
           "--disable-background-networking", "--disable-component-update",
           f"--user-data-dir={tmp_path / 'profile'}",
           "--window-size=900,900", "--virtual-time-budget=5000", f"--screenshot={shot}",
           server + "/#images&tagFilter=ib%2Fplane"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = mimage.imread(io.BytesIO(shot.read_bytes()), format="png")[..., :3] * 255
    assert pixels.shape[:2] == (900, 900)
    # the plane's colour scale (viridis, dark purple for the first step) appears only once the image loaded
    dark = int((np.abs(pixels - np.array(VIRIDIS_DARK)).sum(-1) < 40).sum())
    assert dark >= 20, f"no plane image in the screenshot ({dark} viridis pixels)"
