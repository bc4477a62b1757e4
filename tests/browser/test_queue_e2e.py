"""End to end: what a visitor sees in real headless Chromium when the demo is busy (issue 37, item 4).

The demo runs in this process (``foleygen.app.launch``, debug model, ``queue_size=1``, ``workers=1``)
so that the test can hold its one worker: every generation waits at a gate until the test opens it,
which makes "busy" a state the test controls, not a race against the clock. Then:

1. an HTTP client (``gradio_client``) starts a generation: it holds the worker;
2. visitor 1 (a Chromium window) presses generate: the request waits, and the page shows its place
   in the queue ("queue: 1/1" on the result panel);
3. visitor 2 (a second window) arrives and uploads: the upload works, but the check that runs on
   upload is refused (the queue is full) with "the demo is busy: ... your video is uploaded, press
   Generate soundtrack in 30 s"; then presses generate: the server answers 429, and the page shows our one line
   "the demo is busy: 1 request is already waiting, ...; try again in 30 s" in Gradio's pop-up titled
   "Error" (not a bare "Error"), and no result;
4. the gate opens: the HTTP client and visitor 1 get their results (nothing queued is lost), and
   visitor 2's retry from the same page is served.

Screenshots in ``runs/browser/``: ``queue_position.png`` (step 2), ``queue_busy_upload.png`` and
``queue_busy.png`` (step 3), ``queue_retry.png`` (step 4). Skipped, with the reason, only when
Chromium/chromedriver are absent (``scripts/ensure_test_packages.py`` installs them).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "runs" / "browser"
QUEUE_SIZE = 1


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The driver, the clip maker and the <video> probe of the upload test (skips when Chromium is absent).
_e2e = _load("_fg_demo_e2e", REPO / "tests" / "browser" / "test_demo_e2e.py")
browser = _e2e.browser  # the module-scoped headless Chromium fixture
gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from foleygen.app import launch  # noqa: E402
from foleygen.app_server import busy_message  # noqa: E402


class Gate:
    """Wrapped around ``DemoService.generate``: each generation waits until :meth:`open` is called.

    ``arrived`` counts the generations that reached the gate (i.e. that a worker is running).
    """

    def __init__(self, service) -> None:
        self._real = service.generate
        self._opened = threading.Event()
        self._cond = threading.Condition()
        self.arrived = 0
        service.generate = self

    def __call__(self, *args, **kwargs):
        with self._cond:
            self.arrived += 1
            self._cond.notify_all()
        if not self._opened.wait(120):
            raise RuntimeError("the test never opened the gate")
        return self._real(*args, **kwargs)

    def wait_arrived(self, count: int, timeout: float) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self.arrived >= count, timeout):
                raise AssertionError(f"{count} generation(s) should have started, {self.arrived} did")

    def open(self) -> None:
        self._opened.set()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def busy_demo(tmp_path):
    """``(url, gate)``: the demo on a free loopback port, queue 1, one worker, generations gated."""
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path / "gradio-cache")
    port = _free_port()
    app = launch(
        "127.0.0.1",
        port,
        "debug",
        work_root=tmp_path / "root",
        block=False,
        quiet=True,
        examples=0,
        max_upload_mb=5,
        max_duration_s=5,
        queue_size=QUEUE_SIZE,
        workers=1,
    )
    gate = Gate(app.foleygen_service)
    try:
        yield f"http://127.0.0.1:{port}/", gate
    finally:
        gate.open()  # never leave a worker blocked at teardown
        app.close(verbose=False)
        if previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous


def _text(driver) -> str:
    return driver.execute_script("return document.body.innerText")


def _visible(driver, text: str) -> bool:
    """Whether an element whose own text contains ``text`` is displayed (not merely in the DOM)."""
    found = driver.find_elements(By.XPATH, f"//*[contains(text(), {text!r})]")
    return any(element.is_displayed() for element in found)


def _close_toasts(driver, text: str) -> None:
    """Close the pop-ups (as a visitor would) and wait until ``text`` is no longer shown."""
    driver.execute_script("document.querySelectorAll('.toast-close').forEach(b => b.click());")
    WebDriverWait(driver, 30, poll_frequency=0.25).until(lambda d: not _visible(d, text))


def _toast_titles(driver) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".toast-title") if e.is_displayed()]


def _upload(driver, url: str, video: Path) -> None:
    driver.get(url)
    wait = WebDriverWait(driver, 60, poll_frequency=0.25)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#input-video input[type=file]")).send_keys(str(video))
    wait.until(lambda d: (_e2e._video_state(d, "#input-video video") or {}).get("src"))


def _played(driver, timeout: float) -> dict:
    """Wait until the result ``<video>`` has loaded; return its state."""
    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(
        lambda d: (s := _e2e._video_state(d, "#output-video video")) and s["src"] and s["ready"] >= 1 and s
    )


def test_queued_visitor_sees_position_refused_sees_busy_line_and_retry_is_served(busy_demo, browser, tmp_path):
    url, gate = busy_demo
    video = _e2e._make_video()(tmp_path / "clip.mp4", seconds=1.0, size=(48, 64))
    busy, busy_upload = busy_message(QUEUE_SIZE), busy_message(QUEUE_SIZE, upload=True)
    assert busy.startswith("the demo is busy: 1 request is already waiting") and busy.endswith("try again in 30 s")
    SHOTS.mkdir(parents=True, exist_ok=True)

    # Visitor 1 uploads (and the upload is checked) while the demo is idle.
    first = browser.current_window_handle
    _upload(browser, url, video)

    # An API client takes the only worker; it stays busy until the gate opens.
    client = Client(url, verbose=False, analytics_enabled=False, download_files=str(tmp_path / "downloads"))
    held = client.submit(handle_file(str(video)), "debug", 3.0, 50, 1.0, 0, 0, api_name="/generate")
    gate.wait_arrived(1, timeout=60)

    # (a) Visitor 1 waits in the queue and sees where.
    browser.switch_to.window(first)
    browser.find_element(By.CSS_SELECTOR, "#generate-btn").click()
    position = f"queue: 1/{QUEUE_SIZE}"
    WebDriverWait(browser, 30, poll_frequency=0.25).until(lambda d: _visible(d, position))
    assert gate.arrived == 1  # still waiting, not running
    browser.save_screenshot(str(SHOTS / "queue_position.png"))

    # (b) Visitor 2 arrives now. The upload itself works (the preview plays), but the check that runs
    # on upload is a queued request too and is refused: the line says so and that the video is kept.
    browser.switch_to.new_window("window")
    second = browser.current_window_handle
    _upload(browser, url, video)
    WebDriverWait(browser, 30, poll_frequency=0.25).until(lambda d: _visible(d, busy_upload))
    browser.save_screenshot(str(SHOTS / "queue_busy_upload.png"))
    _close_toasts(browser, busy_upload)
    # Pressing generate: refused at once with our line, and no result.
    browser.find_element(By.CSS_SELECTOR, "#generate-btn").click()
    WebDriverWait(browser, 30, poll_frequency=0.25).until(lambda d: _visible(d, busy))
    assert _toast_titles(browser) == ["Error"]  # Gradio's own title for a refused request; our line below it
    assert not (_e2e._video_state(browser, "#output-video video") or {}).get("src")
    assert "queue:" not in _text(browser)  # refused, not queued
    browser.save_screenshot(str(SHOTS / "queue_busy.png"))

    # (c) The load drains: everyone accepted is served...
    gate.open()
    out_video, _, out_audio, _, summary = held.result(timeout=120)
    assert Path(out_audio).suffix == ".wav" and "Done" in summary
    browser.switch_to.window(first)
    assert _played(browser, 120)["error"] is None
    assert "Done" in browser.find_element(By.CSS_SELECTOR, "#summary").text
    assert gate.arrived == 2

    # ...and the refused visitor's retry from the same page (upload still in place) is served too.
    browser.switch_to.window(second)
    _close_toasts(browser, busy)
    browser.find_element(By.CSS_SELECTOR, "#generate-btn").click()
    state = _played(browser, 120)
    assert state["error"] is None and state["duration"] > 0.5
    assert "Done" in browser.find_element(By.CSS_SELECTOR, "#summary").text
    assert gate.arrived == 3
    browser.save_screenshot(str(SHOTS / "queue_retry.png"))
    for name in ("queue_position.png", "queue_busy_upload.png", "queue_busy.png", "queue_retry.png"):
        assert (SHOTS / name).stat().st_size > 10_000, name
