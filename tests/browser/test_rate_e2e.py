"""End to end: two raters at once rate a study in real headless Chromium, one resumes, the admin watches.

Builds the tiny study of ``tests/rate`` (3 one-second videos, 2 systems, hidden reference, shuffled
anchor, A/B), starts ``foleygen rate serve`` in a subprocess on a free 127.0.0.1 port, and drives two
independent Chromium sessions (Debian's ``/usr/bin/chromium`` through ``/usr/bin/chromedriver``, as
``test_demo_e2e.py``) with the keyboard only: digits answer the highlighted MOS question, 1/2 pick the
A/B side, W plays clip B, Enter submits. Checks: clips really play to the end (submitting is blocked
before), the answers in the database are exactly the keys pressed, a reload resumes at the first
unanswered trial, the finished screen shows, and the admin page shows both raters' progress.
Screenshots: ``runs/browser/rate_e2e.png`` (a trial), ``runs/browser/rate_admin.png``.
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

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(420)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "runs" / "browser"
MOS_KEYS = {"quality": "4", "relevance": "2", "sync": "5"}

if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
    pytest.skip(
        "chromium/chromedriver not installed (run: python scripts/ensure_test_packages.py as root)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev extra) is not installed")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from foleygen.rate.store import DB_NAME, Store  # noqa: E402


def _helpers():
    # tests/ is not a package: load the study builder of tests/rate by path (it imports media_factory)
    sys.path.insert(0, str(REPO / "tests"))
    spec = importlib.util.spec_from_file_location("_fg_rate_helpers", REPO / "tests" / "rate" / "rate_helpers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``(base URL, study folder)`` of a fresh study served by ``foleygen rate serve`` in a subprocess."""
    from foleygen.rate.study import create_study

    root = tmp_path_factory.mktemp("rate_e2e")
    study = root / "study"
    create_study(study, _helpers().small_config(root), log=lambda _: None)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = root / "server.log"
    cmd = [sys.executable, "-m", "foleygen", "rate", "serve", str(study), "--port", str(port)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO))
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the rate server exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url + "/", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the rate server did not answer within 60 s:\n{log_path.read_text()}")
            time.sleep(0.3)
        yield url, study
    finally:
        proc.terminate()  # only the process this fixture started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _chromium(profile: Path):
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager download anything
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
        "--window-size=1200,1400",
        "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="module")
def browsers(tmp_path_factory):
    """Two independent headless Chromium sessions (two raters at once)."""
    root = tmp_path_factory.mktemp("chromium")
    drivers = [_chromium(root / f"profile{i}") for i in range(2)]
    try:
        yield drivers
    finally:
        for d in drivers:
            d.quit()


def _progress(driver) -> str:
    return driver.find_element(By.ID, "progress-text").text


def _keys(driver, *keys: str) -> None:
    ActionChains(driver).send_keys(*keys).perform()


def _answer_one(driver) -> str:
    """Answer the trial on screen with the keyboard; returns its kind once the next one is shown."""
    wait = WebDriverWait(driver, 30, poll_frequency=0.1)
    wait.until(lambda d: d.execute_script("const v = document.getElementById('clip0'); return v && v.readyState >= 1"))
    before = _progress(driver)
    kind = "ab" if driver.find_elements(By.ID, "clip1") else "mos"
    submit = driver.find_element(By.ID, "submit")
    if kind == "mos":
        for key in MOS_KEYS.values():
            _keys(driver, key)
    else:
        _keys(driver, "2")  # prefer the right-hand clip
        # clip A autoplays; once it has played to the end, W plays clip B
        wait.until(lambda d: "both clips" in d.find_element(By.ID, "hint").text)
        wait.until(lambda d: d.execute_script("return document.getElementById('clip0').ended"))
        assert not submit.is_enabled()  # B not heard yet: Enter would do nothing
        _keys(driver, "w")
    wait.until(lambda d: submit.is_enabled())  # answered and heard to the end
    _keys(driver, Keys.ENTER)
    wait.until(lambda d: _progress(d) != before)
    return kind


def test_two_raters_resume_and_admin(served, browsers):
    url, study = served
    store = Store(study / DB_NAME)
    links = {r["name"]: f"{url}/r/{r['token']}" for r in store.raters()}
    alice, bob = browsers
    alice.get(links["alice"])
    bob.get(links["bob"])
    for d in browsers:
        WebDriverWait(d, 30).until(lambda d: _progress(d).endswith("answered"))
        assert _progress(d) == "0 of 17 answered"
    # the two raters interleave their answers
    for _ in range(3):
        _answer_one(alice)
        _answer_one(bob)
    SHOTS.mkdir(parents=True, exist_ok=True)
    alice.save_screenshot(str(SHOTS / "rate_e2e.png"))

    # bob leaves and comes back later: he resumes where he stopped
    bob.get("about:blank")
    bob.get(links["bob"])
    WebDriverWait(bob, 30).until(lambda d: _progress(d) == "3 of 17 answered")
    _answer_one(bob)

    kinds = []
    while alice.find_element(By.ID, "finished").get_attribute("hidden") is not None:
        kinds.append(_answer_one(alice))
    assert _progress(alice) == "17 of 17 answered" and "All done" in alice.find_element(By.ID, "finished").text
    assert kinds.count("ab") == 5

    # what is stored is what was pressed
    rows = store.answer_rows()
    mine = [r for r in rows if r["rater"] == "alice"]
    assert {(r["question"], r["value"]) for r in mine if r["kind"] == "mos"} == {
        (q, int(k)) for q, k in MOS_KEYS.items()
    }
    for r in (r for r in mine if r["kind"] == "ab"):
        assert r["value"] == (0 if r["swapped"] else 1)  # "right" was pressed: B as shown
    assert len({r["position"] for r in rows if r["rater"] == "bob"}) == 4
    assert store.integrity_ok()

    # the admin page shows both raters' progress
    alice.get(f"{url}/admin/{store.meta()['admin_secret']}")
    wait = WebDriverWait(alice, 30, poll_frequency=0.2)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#raters tbody tr")) == 2)
    cells = {
        row.get_attribute("data-rater"): [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        for row in alice.find_elements(By.CSS_SELECTOR, "#raters tbody tr")
    }
    assert cells["alice"][2] == "17 / 17" and cells["bob"][2] == "4 / 17"
    # alice gave every clip the same scores, so the reference never beat the anchor: she is flagged
    assert cells["alice"][4] == "failed (8 checked)"
    assert "1 of 2 raters finished" in alice.find_element(By.ID, "summary").text
    alice.save_screenshot(str(SHOTS / "rate_admin.png"))
    # a wrong admin secret or token shows nothing
    alice.get(f"{url}/admin/not-the-secret")
    assert "Not found" in alice.find_element(By.TAG_NAME, "body").text
    assert os.path.getsize(SHOTS / "rate_e2e.png") > 5_000
