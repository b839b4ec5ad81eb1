"""The dashboard in a real browser: headless Chromium (Debian's, driven by selenium) against a
real pool process that serves it, as `ebook-pool run` does.

It watches an ebook reach `done` live (no reload), opens a failed job, sees a retry without the
token refused, then retries it with the token and watches that ebook finish. It ends with a
screenshot of the overview (into docs/dashboard.png when UPDATE_SCREENSHOT=1).

Chromium and chromedriver come from apt (`chromium`, `chromium-driver`; .ci/run installs them).
Nothing downloads a browser: selenium is given both paths, so Selenium Manager never runs. If
they are missing the test fails, it does not skip.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from pool.keys import Keys
from pool_app.producer import build_jobs, enqueue_ebook
from tests.dashboard_helpers import TOKEN
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
KEYS = Keys("e2e")
WAIT_S = 30

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.fail(
                f"{path} is missing: install Debian's chromium and chromium-driver "
                "(apt-get install chromium chromium-driver; .ci/run does it)"
            )
    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1500",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def pool_url(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    """A real pool process (slow fake LLM) serving the dashboard; its base URL."""
    with SyncRedis.from_url(redis_server.url) as r:
        r.flushall()
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "KEY_PREFIX": KEYS.prefix,
        "HTTP_PORT": str(port),
        "HTTP_HOST": "127.0.0.1",
        "DASHBOARD_TOKEN": TOKEN,
        "CONCURRENT_WORKERS": "2",
        "PAGE_DELAY_MS": "400",
        "FAIL_JOB_IDS": "bad-book:1",
        "PROCESSING_DELAY": "0",
        "POLL_INTERVAL": "100",
        "HEARTBEAT_INTERVAL": "300",
        "HEARTBEAT_TIMEOUT": "3000",
        "STATS_INTERVAL": "0",
    }
    log = (tmp_path / "pool.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.pool_process"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "pool.log").read_text()) from None
                time.sleep(0.05)  # polling a process that is starting; no event to wait on
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _enqueue(url: str, ebook_id: str, pages: int) -> None:
    async def go() -> None:
        redis = Redis.from_url(url)
        try:
            jobs = build_jobs(ebook_id=ebook_id, title=f"Book {ebook_id}", pages=pages)
            await enqueue_ebook(redis, KEYS, jobs)
        finally:
            await redis.aclose()

    asyncio.run(go())


def _text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def _wait(driver: WebDriver, what: str, condition: Any) -> Any:
    """Wait for `condition`; live updates may replace an element under it: look again then."""
    wait = WebDriverWait(
        driver, WAIT_S, poll_frequency=0.05, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(condition, message=what)


def _click(driver: WebDriver, selector: str) -> bool:
    driver.find_element(By.CSS_SELECTOR, selector).click()
    return True


def _screenshot(driver: WebDriver, path: Path, max_height: int = 4000) -> None:
    """The whole page (up to `max_height` px) as a PNG."""
    height, chrome = driver.execute_script(
        "return [Math.ceil(document.querySelector('main').getBoundingClientRect().bottom"
        " + window.scrollY), window.outerHeight - window.innerHeight]"
    )
    driver.set_window_size(1400, min(int(height) + 16, max_height) + int(chrome))
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000


def test_dashboard_live_progress_failed_job_and_retry_with_token(
    browser: WebDriver, pool_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    driver = browser
    sync = SyncRedis.from_url(redis_server.url)

    # An ebook of 10 pages (2 workers, 0.4 s a page: ~2 s), watched on its own page.
    _enqueue(redis_server.url, "live-book", 10)
    driver.get(f"{pool_url}/ebook?id=live-book")
    driver.execute_script("window.__sameDocument = true")
    _wait(driver, "the live feed", lambda d: _text(d, "live").startswith("live"))
    seen: set[str] = set()

    def done_live(d: WebDriver) -> bool:
        state = _text(d, "e-state")
        seen.add(state)
        return state == "done"

    _wait(driver, "the ebook to reach done", done_live)
    assert seen & {"queued", "generating"}, f"never saw it in progress: {seen}"
    _wait(
        driver,
        "the ten pages rendered",
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "article.page")) == 10,
    )
    assert _text(driver, "e-counts").startswith("10/10 pages done")
    assert driver.find_element(By.CSS_SELECTOR, "#page-1 h1").text == "Page 1"
    assert driver.execute_script("return window.__sameDocument") is True  # never reloaded

    # An ebook whose page 2 fails for good: it shows up in the overview's failed list.
    driver.get(f"{pool_url}/")
    _enqueue(redis_server.url, "bad-book", 2)
    _wait(
        driver,
        "the failed job in the overview",
        lambda d: "the model refused this page" in d.find_element(By.ID, "failed").text,
    )
    assert "bad-book" in _text(driver, "failed")
    _wait(driver, "a click on open", lambda d: _click(d, "#failed tr[data-fid] a.open"))
    _wait(driver, "the failed job's page", lambda d: d.find_elements(By.ID, "retry-btn"))
    assert (
        "the model refused this page (test)" in driver.find_element(By.CSS_SELECTOR, ".fields").text
    )

    # Retry without the token: refused, and the job stays in the failed list.
    driver.find_element(By.ID, "retry-btn").click()
    _wait(driver, "the refusal", lambda d: "Refused (401)" in _text(d, "flash"))
    assert sync.llen(KEYS.failed) == 1

    # A wrong token does not unlock.
    driver.find_element(By.ID, "token-input").send_keys("not-the-token-at-all")
    driver.find_element(By.ID, "token-save").click()
    _wait(driver, "the wrong token refused", lambda d: "Refused (403)" in _text(d, "flash"))
    assert sync.llen(KEYS.failed) == 1

    # With the token: the job goes back on the queue, and the ebook finishes.
    field = driver.find_element(By.ID, "token-input")
    field.clear()
    field.send_keys(TOKEN)
    driver.find_element(By.ID, "token-save").click()
    _wait(driver, "unlocked", lambda d: _text(d, "token-state") == "unlocked")
    driver.find_element(By.ID, "retry-btn").click()
    _wait(
        driver,
        "the retry",
        lambda d: "Put ebook bad-book page 2 back on the queue." in _text(d, "flash"),
    )
    assert sync.llen(KEYS.failed) == 0
    _wait(driver, "a click on the ebook", lambda d: _click(d, "#failed-done a"))
    _wait(driver, "the retried ebook to finish", lambda d: _text(d, "e-state") == "done")
    assert _text(driver, "e-counts").startswith("2/2 pages done, 0 failed")

    # The overview while a book is being written, for the README.
    sync.lpush(KEYS.queue, b'{"ebookId": "broken", "pageIndex": "one", "totalPages": 3}')
    _enqueue(redis_server.url, "1796135603882-sourdough", 24)
    driver.get(f"{pool_url}/")
    _wait(
        driver,
        "a book half written",
        lambda d: (
            any(
                "1796135603882-sourdough" in r.text and "generating" in r.text
                for r in d.find_elements(By.CSS_SELECTOR, "#ebooks tr")
            )
            and int(sync.hget(KEYS.status("1796135603882-sourdough"), "done") or 0) >= 8
            and len(d.find_elements(By.CSS_SELECTOR, "#failed tr[data-fid]")) == 1
        ),
    )
    _wait(driver, "the chart", lambda d: d.find_elements(By.CSS_SELECTOR, "#chart polyline"))
    docs = ROOT / "docs" if os.environ.get("UPDATE_SCREENSHOT") else tmp_path
    _screenshot(driver, docs / "dashboard.png")
    driver.get(f"{pool_url}/ebook?id=1796135603882-sourdough")
    _wait(driver, "pages on the ebook page", lambda d: d.find_elements(By.CSS_SELECTOR, "#page-2"))
    _screenshot(driver, docs / "dashboard-ebook.png", max_height=1100)
    sync.close()
