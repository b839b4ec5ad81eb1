"""/healthz and /readyz: what Railway's deploy health check and a load balancer see."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from pool import Pool, PoolFatalError
from pool_app.health import health_app, serving
from tests.fakes import FakeGenerator, fast_settings, job, push, running, wait_until
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent


async def _get(port: int, path: str) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        return resp.status, await resp.json()


async def test_ready_while_running_and_503_with_the_reason_when_paused(redis: Redis) -> None:
    """/healthz is 200 throughout; /readyz is 200, then 503 naming the pause reason."""
    gen = FakeGenerator(probe_errors=[PoolFatalError("invalid API key")] * 1000)
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(pause_probe_interval=60_000))
    async with running(pool), serving(health_app(pool, redis), host="127.0.0.1", port=0) as port:
        await wait_until(lambda: _status_is(port, "/readyz", 200), what="ready")
        gen.script["k:0"] = [PoolFatalError("invalid API key")]
        await push(redis, job("k", 0, 1))
        await wait_until(lambda: _status_is(port, "/readyz", 503), what="not ready")
        status, body = await _get(port, "/readyz")
        assert status == 503
        assert body["ready"] is False and "paused" in str(body["reason"])
        assert "invalid API key" in str(body["reason"])
        assert (await _get(port, "/healthz"))[0] == 200


async def test_readyz_is_503_when_redis_does_not_answer() -> None:
    """A Redis that cannot be reached: /readyz 503 within about a second, /healthz 200."""
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    pool = Pool(redis=dead, generator=FakeGenerator(), settings=fast_settings())
    async with serving(health_app(pool, dead), host="127.0.0.1", port=0) as port:
        status, body = await _get(port, "/readyz")
        assert status == 503
        assert status == 503 and "redis unreachable" in str(body["reason"])
        assert (await _get(port, "/healthz"))[0] == 200
    await dead.aclose()


def test_ebook_pool_run_serves_healthz_on_port(redis_server: RedisServer) -> None:
    """`ebook-pool run` with PORT set (as on Railway) answers /healthz, then stops on SIGTERM."""
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "KEY_PREFIX": "health-test",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "PORT": str(port),
        "HTTP_HOST": "127.0.0.1",
    }
    env.pop("HTTP_PORT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pool", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        body = b""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    body = r.read()
                    break
            except OSError:
                time.sleep(0.05)
        assert b'"status": "ok"' in body
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()


async def _status_is(port: int, path: str, expected: int) -> bool:
    try:
        return (await _get(port, path))[0] == expected
    except aiohttp.ClientError:
        await asyncio.sleep(0.01)
        return False
