"""End to end: the demo's live page in a real headless Chromium, its camera fed from a file.

Starts ``foleygen demo --model debug`` (the tiny random model: about four times faster than real time
on one thread, so the test measures the page and the server rather than the machine's speed; the
embedded demo model runs about 1.5x real time on one thread, see ``benchmarks/``) on a free 127.0.0.1
port, with ``$FOLEYGEN_LIVE_RECORD`` set so the server keeps the frames it used and the audio it sent.
Chromium gets a fake camera playing a y4m clip written here by hand (a bright square moving on a dark
background, looped by Chromium), opens ``/live`` and presses Start. Checks:

* audio arrives in the page (samples counted by the page's JS, read back through Selenium);
* it keeps up: between 1 s and 4 s of camera time the audio received grows at 1x within 15 %, and at
  the end it lags the camera by at most the algorithmic latency plus 0.5 s (median latency too), with
  no skip; when the server measured itself under 1.25x real time (a machine busy with other work)
  the test xfails with the figures instead;
* nothing drifts or goes missing silently: the timeline ends one frame after the last frame sent, and
  every sample of it is audio the page received or a reported skip;
* the page received exactly the audio the server made (sample count and sum of magnitudes);
* the server's audio is ``FoleyGen.stream`` on the frames it used, segment by segment (within 1e-5),
  and those frames are the fake camera's (centre-cropped to 32x32, the square visible).

Screenshot: ``runs/browser/live_e2e.png``. Skipped (with the reason) when Chromium/chromedriver are absent.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "runs" / "browser" / "live_e2e.png"
KEEP_UP_RATE_TOLERANCE = 0.15
EXTRA_LAG_S = 0.5  # beyond the algorithmic latency, at the end of the run
MIN_HEADROOM = 1.25  # server compute speed (x real time) under which keeping up is not expected

if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip(
        "chromium/chromedriver not installed (run: python scripts/ensure_browser.py as root)", allow_module_level=True
    )
pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev extra) is not installed")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def write_y4m(path: Path, *, width: int = 96, height: int = 64, fps: int = 25, seconds: float = 2.0) -> Path:
    """A raw YUV 4:2:0 clip (the format Chromium's fake camera reads): a white square moving right."""
    n = round(seconds * fps)
    chroma = bytes([128]) * ((width // 2) * (height // 2) * 2)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(n):
            luma = np.full((height, width), 16, dtype=np.uint8)
            x = 16 + (i * 2) % (width - 48)
            luma[16:40, x : x + 16] = 235
            f.write(b"FRAME\n" + luma.tobytes() + chroma)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(tmp_path: Path) -> tuple[subprocess.Popen, str, Path, Path]:
    """``foleygen demo --model debug`` on 127.0.0.1:<free port>, not waited for."""
    port = _free_port()
    record, log_path = tmp_path / "record", tmp_path / "server.log"
    cmd = [sys.executable, "-m", "foleygen", "demo", "--model", "debug", "--port", str(port), "--examples", "0"]
    cmd += ["--work-dir", str(tmp_path / "demo")]
    env = dict(
        os.environ,
        GRADIO_ANALYTICS_ENABLED="False",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",  # one session, one core: the other is for Chromium
        FOLEYGEN_LIVE_RECORD=str(record),
    )
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, f"http://127.0.0.1:{port}/", record, log_path


def _wait_for_server(proc: subprocess.Popen, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"the demo server exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url + "live/info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the demo server did not answer within 120 s:\n{log_path.read_text()}")
        time.sleep(0.2)


def _chromium(tmp_path: Path, clip: Path):
    """Headless Chromium whose camera plays ``clip``; nothing is downloaded (Selenium Manager bypassed)."""
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1100,900",
        "--autoplay-policy=no-user-gesture-required",
        "--use-fake-ui-for-media-stream",  # grant the camera without a prompt
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={clip}",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """(browser, server URL, record directory, server log): the server starts while Chromium does."""
    tmp_path = tmp_path_factory.mktemp("live")
    proc, url, record, log_path = _start_server(tmp_path)
    driver = None
    try:
        driver = _chromium(tmp_path, write_y4m(tmp_path / "clip.y4m"))
        _wait_for_server(proc, url, log_path)
        yield driver, url, record, log_path
    finally:
        if driver is not None:
            driver.quit()
        proc.terminate()  # only the process this fixture started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


READ_STATS = """
const s = window.liveStats;
return {state: s.state, message: s.message, samples: s.samplesReceived, sumAbs: s.sumAbs, chunks: s.chunks,
        elapsed: s.t0 === null ? 0 : (performance.now() - s.t0) / 1000, framesSent: s.framesSent,
        droppedHere: s.framesDroppedHere, latencies: s.latencies, skips: s.skips, server: s.server,
        info: s.info, rebuffers: s.rebuffers, lastSlotSent: s.lastSlotSent, lastSampleEnd: s.lastSampleEnd};
"""


def _wait_elapsed(driver, seconds: float) -> dict:
    return WebDriverWait(driver, seconds + 15, poll_frequency=0.05).until(
        lambda d: (s := d.execute_script(READ_STATS))["elapsed"] >= seconds and s
    )


def test_live_page_plays_the_soundtrack_of_the_camera(live):
    browser, url, record, log_path = live
    # The upload page links to the live one.
    with urllib.request.urlopen(url + "config", timeout=10) as response:
        assert "](/live)" in response.read().decode()

    browser.get(url + "live")
    wait = WebDriverWait(browser, 30, poll_frequency=0.1)
    wait.until(lambda d: d.find_element(By.ID, "start").is_enabled())
    sr = browser.execute_script("return window.liveStats.info.sample_rate")
    latency_s = browser.execute_script("return window.liveStats.info.latency.total")
    browser.find_element(By.ID, "start").click()
    wait.until(lambda d: d.execute_script(READ_STATS)["state"] in ("running", "error", "busy"))
    first = wait.until(lambda d: (s := d.execute_script(READ_STATS))["samples"] > 0 and s)
    assert first["state"] == "running", first["message"]

    a = _wait_elapsed(browser, 1.0)
    b = _wait_elapsed(browser, 4.0)
    rate = (b["samples"] - a["samples"]) / sr / (b["elapsed"] - a["elapsed"])
    lag = b["elapsed"] - b["samples"] / sr
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))
    browser.find_element(By.ID, "stop").click()
    end = WebDriverWait(browser, 30, poll_frequency=0.1).until(
        lambda d: (s := d.execute_script(READ_STATS))["state"] in ("ended", "error") and s
    )
    assert end["state"] == "ended", end["message"]
    counts = end["server"]
    latencies = sorted(end["latencies"])
    median_ms = latencies[len(latencies) // 2]
    print(
        f"live: {b['elapsed']:.2f} s of camera, audio rate {rate:.3f}x, lag {lag * 1000:.0f} ms "
        f"(algorithmic {latency_s * 1000:.0f} ms), latency median {median_ms:.0f} ms max {latencies[-1]:.0f} ms, "
        f"model {counts['rtf']:.2f}x real time, repeated {counts['repeated']}, dropped {counts['dropped']}, "
        f"resyncs {counts['resyncs']}, page-side drops {end['droppedHere']}, rebuffers {end['rebuffers']}"
    )

    # Nothing drifts or goes missing silently: the timeline ends one frame after the last frame sent,
    # and every sample of it is either audio the page received or a stretch reported as skipped.
    per_frame = sr // 25
    assert end["lastSampleEnd"] == (end["lastSlotSent"] + 1) * per_frame
    assert end["samples"] + counts["skipped_frames"] * per_frame == end["lastSampleEnd"]
    assert counts["resyncs"] == len(end["skips"]) and counts["received"] == end["framesSent"]

    # Audio arrives and keeps up with the camera: asserted when the server could keep up at all (its
    # compute speed, measured by itself, had 25 % headroom); on a machine too busy for that, the
    # degrade rule must skip (checked above) and the test says so instead of failing.
    keeps_up = [
        (abs(rate - 1.0) <= KEEP_UP_RATE_TOLERANCE, f"audio grew at {rate:.3f}x the camera's time"),
        (-0.05 <= lag <= latency_s + EXTRA_LAG_S, f"audio lags the camera by {lag:.3f} s"),
        (median_ms <= 1000 * (latency_s + EXTRA_LAG_S), f"median latency {median_ms:.0f} ms"),
    ]
    failed = [why for ok, why in keeps_up if not ok]
    if failed and counts["rtf"] < MIN_HEADROOM:
        pytest.xfail(f"the server ran at {counts['rtf']:.2f}x real time (machine busy): " + "; ".join(failed))
    assert not failed, failed
    assert counts["resyncs"] == 0

    # The page got exactly what the server sent, and the server sent FoleyGen.stream of what it got.
    records = sorted(record.glob("live_*.npz"))
    assert records, f"no live segment was recorded:\n{log_path.read_text()}"
    segments = [np.load(r) for r in records]
    assert sum(s["audio"].shape[-1] for s in segments) == end["samples"]
    server_abs = sum(float(np.abs(s["audio"].astype(np.float64)).sum()) for s in segments)
    assert end["sumAbs"] == pytest.approx(server_abs, rel=1e-6)
    assert sum(s["frames"].shape[0] for s in segments) == counts["used"] + counts["repeated"]

    from foleygen.api import FoleyGen

    torch.set_num_threads(1)
    model = FoleyGen.from_pretrained("debug")
    for seg in segments:
        frames = torch.from_numpy(seg["frames"])
        assert bool(seg["ended"]) and frames.shape[1:] == (32, 32, 3)
        assert frames.max() > 200 and frames.min() < 40  # the fake camera's square on its dark ground
        expected = torch.cat(list(model.stream(iter(frames), fps=float(seg["fps"]), seed=int(seg["seed"]))), dim=-1)
        assert expected.shape[-1] == seg["audio"].shape[-1]
        assert (expected - torch.from_numpy(seg["audio"])).abs().max() <= 1e-5
