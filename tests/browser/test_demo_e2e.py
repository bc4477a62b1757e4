"""End to end: a real headless Chromium uploads a video to the demo and plays the result.

Starts ``foleygen demo --model debug`` (the tiny random model) on a free 127.0.0.1 port in a
subprocess, drives Debian's ``/usr/bin/chromium`` through ``/usr/bin/chromedriver`` with Selenium, and
checks what a visitor would: the output ``<video>`` loads (readyState >= 1, duration > 0), the file it
plays has an audio track, the alignment picture is shown, and a too-long video gets a clear error.
Screenshots are kept in ``runs/browser/demo_e2e.png`` and ``runs/browser/demo_error.png``.

Skipped (with the reason) only when Chromium/chromedriver are absent; ``make test`` installs them first
(``scripts/ensure_test_packages.py``).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import av
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "runs" / "browser" / "demo_e2e.png"

if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip(
        "chromium/chromedriver not installed (run: python scripts/ensure_test_packages.py as root)",
        allow_module_level=True,
    )
pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev extra) is not installed")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def _make_video():
    # The clip maker lives beside the unit tests (tests/ is not a package, so load it by path).
    spec = importlib.util.spec_from_file_location("_fg_test_app", REPO / "tests" / "test_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_video


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``foleygen demo --model debug`` in a subprocess on 127.0.0.1:<free port>; yields its URL."""
    tmp_path = tmp_path_factory.mktemp("server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = tmp_path / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "foleygen",
        "demo",
        "--model",
        "debug",
        "--port",
        str(port),
        "--max-upload-mb",
        "5",
        "--max-duration",
        "5",
        "--examples",
        "1",
        "--work-dir",
        str(tmp_path / "demo"),
    ]
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the demo server exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the demo server did not answer within 120 s:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()  # only the process this fixture started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium; Selenium Manager is bypassed so nothing is ever downloaded."""
    tmp_path = tmp_path_factory.mktemp("chromium")
    os.environ["SE_OFFLINE"] = "true"  # belt and braces: an explicit driver path already skips the manager
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
        "--window-size=1400,2300",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _video_state(driver, selector: str) -> dict | None:
    return driver.execute_script(
        "const v = document.querySelector(arguments[0]);"
        "return v ? {src: v.currentSrc || v.src || '', ready: v.readyState, duration: v.duration,"
        " error: v.error ? v.error.code : null} : null;",
        selector,
    )


def test_upload_generate_and_play(server, browser, tmp_path):
    url = server
    video = _make_video()(tmp_path / "bouncing square.mp4", seconds=1.0, size=(96, 128))
    browser.get(url)
    wait = WebDriverWait(browser, 60, poll_frequency=0.25)
    file_input = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#input-video input[type=file]"))
    file_input.send_keys(str(video))
    # The upload is done when the input preview shows the video.
    wait.until(lambda d: (_video_state(d, "#input-video video") or {}).get("src"))

    browser.find_element(By.CSS_SELECTOR, "#generate-btn").click()
    t0 = time.monotonic()
    state = WebDriverWait(browser, 180, poll_frequency=0.5).until(
        lambda d: (s := _video_state(d, "#output-video video")) and s["src"] and s["ready"] >= 1 and s
    )
    elapsed = time.monotonic() - t0
    assert state["error"] is None, f"the browser could not play the result: {state}"
    assert state["duration"] == pytest.approx(1.0, abs=0.15)

    # The alignment picture and the summary are on the page too.
    wait.until(
        lambda d: d.execute_script(
            "const i = document.querySelector('#alignment-plot img'); return i && i.complete && i.naturalWidth > 0;"
        )
    )
    summary = browser.find_element(By.CSS_SELECTOR, "#summary").text
    assert "Done" in summary and "debug" in summary
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#audio-file a, #video-file a")]
    assert any(h and h.split("?")[0].endswith("_foley.wav") for h in links), links
    assert any(h and h.split("?")[0].endswith("_foley.mp4") for h in links), links

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))

    # What the <video> plays really carries the generated soundtrack.
    served = tmp_path / "served.mp4"
    with urllib.request.urlopen(state["src"], timeout=30) as response, open(served, "wb") as f:
        f.write(response.read())
    with av.open(str(served)) as container:
        assert len(container.streams.video) == 1
        assert len(container.streams.audio) == 1
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        decoded = sum(frame.samples for frame in container.decode(audio=0))
    assert decoded >= 0.9 * audio.codec_context.sample_rate  # about one second of sound
    print(f"generation round trip in the browser: {elapsed:.1f} s; screenshot {SCREENSHOT}")
    assert os.path.getsize(SCREENSHOT) > 10_000


def test_too_long_video_shows_a_clear_error(server, browser, tmp_path):
    video = _make_video()(tmp_path / "six seconds.mp4", seconds=6.0, size=(48, 64))
    browser.get(server)
    wait = WebDriverWait(browser, 60, poll_frequency=0.25)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#input-video input[type=file]")).send_keys(str(video))
    message = "six seconds.mp4: video is 6.0 s long; this demo accepts at most 5 s"

    def page_text(d):
        return d.execute_script("return document.body.innerText")

    # gr.Error shows as a toast with the app's one-line message, as soon as the upload arrives...
    wait.until(lambda d: message in page_text(d))
    # ...and if the visitor presses generate anyway, a one-line error again (the refused upload was
    # deleted from the server at once, so it says to upload again); no result appears.
    browser.execute_script("document.querySelectorAll('.toast-close').forEach(b => b.click());")
    wait.until(lambda d: message not in page_text(d))
    browser.find_element(By.CSS_SELECTOR, "#generate-btn").click()
    again = "six seconds.mp4: the upload is missing on the server"
    wait.until(lambda d: message in page_text(d) or again in page_text(d))
    assert not (_video_state(browser, "#output-video video") or {}).get("src")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    time.sleep(1.0)  # let the toast finish fading in, so the screenshot shows it readable
    browser.save_screenshot(str(SCREENSHOT.with_name("demo_error.png")))
