"""Where the dashboard is served: on the pool's HTTP server (when enabled), alone by
`ebook-pool dashboard`, and that the wheel carries its files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from pool import Pool
from pool_app.health import health_app, serving
from tests.dashboard_helpers import settings_for
from tests.fakes import FakeGenerator, fast_settings
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent


async def _status(port: int, path: str) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        return resp.status


@pytest.mark.parametrize(("enabled", "expected"), [(True, 200), (False, 404), (None, 404)])
async def test_pool_http_server_mounts_the_dashboard_when_enabled(
    redis_server: RedisServer, redis: Redis, enabled: bool | None, expected: int
) -> None:
    """With settings and DASHBOARD_ENABLED, / is the dashboard; /healthz is there regardless."""
    pool = Pool(redis=redis, generator=FakeGenerator(), settings=fast_settings())
    settings = (
        None if enabled is None else settings_for(redis_server.url, dashboard_enabled=enabled)
    )
    app = health_app(pool, redis, settings=settings)
    async with serving(app, host="127.0.0.1", port=0) as port:
        assert await _status(port, "/") == expected
        assert await _status(port, "/assets/dashboard.js") == expected
        assert await _status(port, "/healthz") == 200


def _env(redis_server: RedisServer, **extra: str) -> dict[str, str]:
    env = {**os.environ, "REDIS_URL": redis_server.url, "KEY_PREFIX": "dash-serve", **extra}
    for name in ("HTTP_PORT", "PORT", "DASHBOARD_TOKEN", "DASHBOARD_ENABLED"):
        if name not in extra:
            env.pop(name, None)
    return env


def _get(url: str, deadline: float) -> bytes:
    """GET `url`, retrying while the server is not up yet, until `deadline` (monotonic)."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body: bytes = resp.read()
                return body
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # polling a process that is starting; no event to wait on


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 15) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=timeout_s)
    return proc.returncode, out.decode()


def test_ebook_pool_dashboard_serves_alone_and_stops_with_a_stream_open(
    redis_server: RedisServer,
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pool", "dashboard", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=_env(redis_server),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    stream = None
    try:
        page = _get(f"http://127.0.0.1:{port}/", time.monotonic() + 30)
        assert b'data-page="overview"' in page and b'data-readonly="1"' in page
        stream = urllib.request.urlopen(f"http://127.0.0.1:{port}/events", timeout=10)
        assert stream.readline().startswith(b"data: {")
        started = time.monotonic()
        code, out = _stop(proc)
        assert time.monotonic() - started < 5, "an open /events stream held up the shutdown"
    finally:
        if stream is not None:
            stream.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 0, out
    assert "[Dashboard] Serving / (read-only: DASHBOARD_TOKEN is not set)" in out
    assert f"HTTP: the dashboard on http://127.0.0.1:{port}" in out


def test_ebook_pool_run_serves_the_dashboard_on_port(redis_server: RedisServer) -> None:
    """`ebook-pool run` with PORT (Railway) serves / beside /healthz."""
    port = free_port()
    env = _env(
        redis_server,
        PORT=str(port),
        HTTP_HOST="127.0.0.1",
        OPENAI_BASE_URL="http://127.0.0.1:9/v1",
        DASHBOARD_TOKEN="a-long-enough-token-1234",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "pool", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        page = _get(f"http://127.0.0.1:{port}/", time.monotonic() + 30)
        assert b'data-readonly="0"' in page
    finally:
        code, out = _stop(proc, 30)
    assert code == 0, out
    assert "a-long-enough-token-1234" not in out
    assert "[Dashboard] Serving / (actions need DASHBOARD_TOKEN)" in out


def test_a_short_dashboard_token_is_refused(redis_server: RedisServer) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pool", "dashboard", "--port", "0"],
        cwd=ROOT,
        env=_env(redis_server, DASHBOARD_TOKEN="short"),
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert b"DASHBOARD_TOKEN: " in proc.stderr and b"short" not in proc.stderr


def test_the_wheel_carries_the_dashboard_files(tmp_path: Path) -> None:
    """Pages, script and stylesheet are package data: an installed pool serves them."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH (make env installs it)")
    subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(tmp_path), "--no-build-logs"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("ebook_pool-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "static/dashboard.js",
        "static/dashboard.css",
        "templates/layout.html",
        "templates/overview.html",
        "app.py",
    ):
        assert f"pool_app/dashboard/{name}" in names, name
