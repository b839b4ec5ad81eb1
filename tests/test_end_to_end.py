"""The pool and the real OpenAI generator together, over HTTP against the simulator.

These pin down the promises that cross the two packages: transient API failures cost retries,
not pages; a bad key pauses the pool after one request and it resumes by itself; a rate limit
is waited out rather than turned into failures.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from generator import GeneratorSettings, OpenAIPageGenerator
from generator.simulator import Simulator, SimulatorConfig
from pool import Pool
from pool.keys import Keys
from tests.fakes import failed, fast_settings, job, pages, push, running, status, wait_until

KEYS = Keys()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(latency_s=0.02, seed=7)) as simulator:
        yield simulator


def generator_for(sim: Simulator) -> OpenAIPageGenerator:
    settings = GeneratorSettings(openai_model="gpt-4o-mini", probe_timeout=2_000)
    return OpenAIPageGenerator.from_settings(settings, api_key="sk-test", base_url=sim.base_url)


async def test_transient_api_failures_cost_retries_not_pages(redis: Redis, sim: Simulator) -> None:
    """With 30% of answers 5xx, dropped or malformed, every page still lands, each once."""
    sim.update(error_rate=0.15, drop_rate=0.1, malformed_rate=0.05)
    pool = Pool(
        redis=redis,
        generator=generator_for(sim),
        settings=fast_settings(concurrent_workers=5, max_retries=8, generation_timeout=5_000),
    )
    total = 30
    await push(redis, *[job("t", i, total, pageTitle=f"Chapter {i + 1}") for i in range(total)])
    async with running(pool):
        await wait_until(lambda: _state(redis, "t", "done"), timeout_s=30, what="ebook done")
    got = await pages(redis, "t")
    assert sorted(got) == list(range(total))
    assert all(p["content"].strip() and p["finishReason"] == "stop" for p in got.values())
    assert await failed(redis) == []
    served = sim.stats["by_status"]
    errors = sum(n for code, n in served.items() if code != "200")
    retries = sum(p["attempts"] - 1 for p in got.values())
    assert errors > 0 and retries >= errors  # a dropped connection has no status, but a retry
    assert (await status(redis, "t"))["done"] == str(total)


async def test_bad_key_pauses_after_one_request_and_resumes_after_the_fix(
    redis: Redis, sim: Simulator
) -> None:
    """A revoked key: one request, then the pool pauses with the queue intact; once the key
    works again the probe succeeds and every page is written."""
    sim.update(bad_key=True)
    pool = Pool(
        redis=redis,
        generator=generator_for(sim),
        settings=fast_settings(concurrent_workers=1, pause_probe_interval=200),
    )
    await push(redis, *[job("bk", i, 5) for i in range(5)])
    async with running(pool):
        await wait_until(lambda: _true(pool.paused), what="pause")
        assert sim.stats["requests"] == 1
        assert "401" in (pool.pause_reason or "") and "sk-test" not in (pool.pause_reason or "")
        assert await redis.llen(KEYS.queue) == 5
        assert await failed(redis) == []
        sim.update(bad_key=False)
        await wait_until(lambda: _state(redis, "bk", "done"), timeout_s=20, what="ebook done")
    assert not pool.paused


async def test_rate_limit_is_waited_out(redis: Redis, sim: Simulator) -> None:
    """A 3-requests-per-second limit with 6 workers: 429s happen, no page fails."""
    sim.update(rpm=3, rate_window_s=1.0)
    pool = Pool(
        redis=redis,
        generator=generator_for(sim),
        settings=fast_settings(concurrent_workers=6, max_retries=10),
    )
    await push(redis, *[job("rl", i, 9) for i in range(9)])
    async with running(pool):
        await wait_until(lambda: _state(redis, "rl", "done"), timeout_s=30, what="ebook done")
    assert sim.stats["by_status"].get("429", 0) > 0
    assert await failed(redis) == []


async def test_job_fatal_answer_fails_only_that_page(redis: Redis, sim: Simulator) -> None:
    """A page whose prompt is over the context window is dead-lettered; the others land."""
    sim.update(context_window=3_000)
    pool = Pool(redis=redis, generator=generator_for(sim), settings=fast_settings())
    huge = "word " * 4_000
    await push(redis, job("cf", 0, 2), job("cf", 1, 2, instructions=huge))
    async with running(pool):
        await wait_until(lambda: _state(redis, "cf", "partial"), timeout_s=20, what="partial")
    [entry] = await failed(redis)
    assert entry["errorType"] == "fatal" and "context_length_exceeded" in entry["error"]
    assert entry["attempts"] == 1 and json.loads(entry["payload"])["pageIndex"] == 1


async def _state(redis: Redis, ebook: str, state: str) -> bool:
    return (await status(redis, ebook)).get("state") == state


async def _true(value: bool) -> bool:
    return value
