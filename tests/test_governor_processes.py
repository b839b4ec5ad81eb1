"""Two real processes, one budget, an OpenAI-like server: counted at the server, none refused."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from generator.simulator import Simulator, SimulatorConfig
from pool.keys import Keys
from pool.ratelimit import read_budgets
from tests.redis_server import RedisServer

PAGES = 40  # per process


@pytest.fixture
async def openai_like() -> AsyncIterator[Simulator]:
    """600 RPM with a 2 s bucket, refused requests counted, 0.2 s a page."""
    config = SimulatorConfig(
        rpm=600, tpm=2_000_000, rate_bucket_s=2.0, count_refused=True, latency_s=0.2
    )
    async with Simulator(config) as sim:
        yield sim


async def run_process(sim: Simulator, redis_url: str, workers: int) -> dict[str, Any]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "KEY_PREFIX": "two",
        "CONCURRENT_WORKERS": str(workers),
        "RATE_LIMIT_BURST": "500",
    }
    for name in ("OPENAI_RPM_LIMIT", "OPENAI_TPM_LIMIT"):
        env.pop(name, None)  # learned from the simulator's headers
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.governor_process",
        sim.base_url,
        str(PAGES),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return report


async def test_two_processes_share_a_learned_budget_without_refusals(
    openai_like: Simulator, redis_server: RedisServer, redis: Redis
) -> None:
    """20 + 5 workers in two processes: limits learned, every page written, no 429 at the server."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    big, small = await asyncio.gather(
        run_process(openai_like, redis_server.url, 20),
        run_process(openai_like, redis_server.url, 5),
    )
    elapsed = loop.time() - started
    stats = openai_like.stats
    assert big["written"] == small["written"] == PAGES
    assert stats["by_status"] == {"200": 2 * PAGES}  # the server refused nothing
    # 80 pages at 10 a second, less the server's 2 s bucket (20) it may spend at once.
    assert elapsed >= (2 * PAGES - 20) / 10 - 0.5
    [budget] = await read_budgets(redis, Keys("two"))
    assert (budget["rpm"], budget["rpm_source"]) == (600, "learned")
    assert (budget["tpm"], budget["tpm_source"]) == (2_000_000, "learned")
    assert budget["requests_last_min"] == 2 * PAGES
