"""No page lost: pool processes killed with SIGKILL, stopped with SIGTERM, and Redis restarted.

These run real pool processes (tests/pool_process.py) against a private redis-server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from pool.keys import Keys
from tests.fakes import job
from tests.redis_server import RedisServer

KEYS = Keys()
ROOT = Path(__file__).resolve().parent.parent


def start_pool(url: str, log: Path, **env: str) -> subprocess.Popen[bytes]:
    settings = {
        "REDIS_URL": url,
        "CONCURRENT_WORKERS": "5",
        "PROCESSING_DELAY": "0",
        "POLL_INTERVAL": "100",
        "HEARTBEAT_INTERVAL": "200",
        "HEARTBEAT_TIMEOUT": "1000",
        "RETRY_BACKOFF": "50",
        "RETRY_BACKOFF_MAX": "500",
        "STATS_INTERVAL": "1000",
        "SHUTDOWN_GRACE": "2000",
        "PAGE_DELAY_MS": "100",
        **env,
    }
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "tests.pool_process"],
            cwd=ROOT,
            env={**os.environ, **settings},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for(predicate, *, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass  # Redis restarting
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def stored_pages(r: Redis, ebook: str) -> int:
    return int(r.hlen(KEYS.pages(ebook)))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(workdir=tmp_path, aof=True).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: RedisServer) -> Iterator[Redis]:
    r = Redis.from_url(server.url, socket_timeout=5)
    yield r
    r.close()


def test_kill_9_one_of_two_pools_loses_nothing(
    server: RedisServer, client: Redis, tmp_path: Path
) -> None:
    """Two pool processes share a queue; one is SIGKILLed mid-run. The survivor reaps its
    jobs: every page lands in the results hash, none fails, none is left in flight."""
    total = 60
    client.lpush(KEYS.queue, *[job("k9", i, total) for i in range(total)])
    a = start_pool(server.url, tmp_path / "a.log", PAGE_DELAY_MS="300")
    b = start_pool(server.url, tmp_path / "b.log", PAGE_DELAY_MS="300")
    try:
        # Kill A while it holds jobs.
        victim = None

        def a_holds_jobs() -> bool:
            nonlocal victim
            for member in client.smembers(KEYS.pools):
                pool_id = member.decode()
                if pool_id.split("-")[-2] == str(a.pid) and client.llen(KEYS.processing(pool_id)):
                    victim = pool_id
                    return True
            return False

        wait_for(a_holds_jobs, timeout_s=20, what="pool A to hold jobs")
        held = client.llen(KEYS.processing(victim))
        a.send_signal(signal.SIGKILL)
        a.wait(timeout=10)
        assert held > 0
        wait_for(lambda: stored_pages(client, "k9") == total, timeout_s=60, what="all pages")
        assert client.llen(KEYS.failed) == 0
        assert client.llen(KEYS.processing(victim)) == 0
        assert client.llen(KEYS.queue) == 0
        assert victim.encode() not in client.smembers(KEYS.pools)
        status = {k.decode(): v.decode() for k, v in client.hgetall(KEYS.status("k9")).items()}
        assert status["done"] == str(total) and status["state"] == "done"
        assert "returned its" in (tmp_path / "b.log").read_text()
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_sigterm_gives_unfinished_jobs_back_and_exits_0(
    server: RedisServer, client: Redis, tmp_path: Path
) -> None:
    """SIGTERM with pages that outlast the grace period: the process exits 0 quickly, the
    unfinished jobs are back at the head of the queue, and their attempts are not counted."""
    client.lpush(KEYS.queue, *[job("st", i, 20) for i in range(20)])
    p = start_pool(server.url, tmp_path / "p.log", PAGE_DELAY_MS="30000", SHUTDOWN_GRACE="500")
    try:
        wait_for(lambda: client.hlen(KEYS.attempts) == 5, timeout_s=20, what="5 jobs started")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 3.0
    finally:
        if p.poll() is None:
            p.kill()
    assert client.llen(KEYS.queue) == 20
    assert client.hlen(KEYS.attempts) == 0
    assert client.scard(KEYS.pools) == 0
    assert client.keys(KEYS.processing("*")) == []
    # The five that had started are next in line (the right end is the head).
    head = [json.loads(x)["pageIndex"] for x in client.lrange(KEYS.queue, -5, -1)]
    assert sorted(head) == [0, 1, 2, 3, 4]
    log = (tmp_path / "p.log").read_text()
    assert "Gave 5 unfinished jobs back to the queue" in log


def test_sigterm_lets_in_flight_pages_finish_within_the_grace(
    server: RedisServer, client: Redis, tmp_path: Path
) -> None:
    """SIGTERM while pages that finish within the grace period run: they are stored."""
    client.lpush(KEYS.queue, *[job("g", i, 10) for i in range(10)])
    p = start_pool(server.url, tmp_path / "p.log", PAGE_DELAY_MS="800", SHUTDOWN_GRACE="5000")
    try:
        wait_for(lambda: client.hlen(KEYS.attempts) == 5, timeout_s=20, what="5 jobs started")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=15) == 0
    finally:
        if p.poll() is None:
            p.kill()
    assert stored_pages(client, "g") == 5
    assert client.llen(KEYS.queue) == 5


def test_redis_restart_mid_run_loses_nothing(
    server: RedisServer, client: Redis, tmp_path: Path
) -> None:
    """Redis (AOF, fsync always) is killed and restarted while pages are being generated:
    the pool reconnects, pages generated during the outage are written when it returns."""
    total = 40
    client.lpush(KEYS.queue, *[job("rr", i, total) for i in range(total)])
    p = start_pool(server.url, tmp_path / "p.log", PAGE_DELAY_MS="400")
    try:
        wait_for(lambda: stored_pages(client, "rr") >= 5, timeout_s=20, what="first pages")
        server.stop(kill=True)
        time.sleep(1.0)  # the outage itself: pages finish while Redis is away
        server.start()
        wait_for(lambda: stored_pages(client, "rr") == total, timeout_s=60, what="all pages")
        assert client.llen(KEYS.failed) == 0
        assert client.llen(KEYS.queue) == 0
        wait_for(lambda: client.hlen(KEYS.attempts) == 0, timeout_s=5, what="attempts cleared")
        log = (tmp_path / "p.log").read_text()
        assert "Redis unavailable" in log and "Redis is back" in log
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
