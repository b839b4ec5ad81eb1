"""Redis's own conditions, each said in one line and waited out or refused, never a traceback.

Eviction policy, out of memory at start, a Redis that comes back empty, an outage that is not
a process death, and a server that is not Redis. Real redis-server (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from pool import Pool
from pool.keys import Keys
from pool.outage import RedisConfigError
from pool.store import Store
from tests.fakes import (
    FakeGenerator,
    fast_settings,
    job,
    pages,
    push,
    running,
    status,
    wait_until,
)

KEYS = Keys()
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def config(redis: Redis) -> AsyncIterator[Redis]:
    """The test server's client; the settings a test changes are restored afterwards."""
    saved = {k: (await redis.config_get(k))[k] for k in ("maxmemory", "maxmemory-policy")}
    yield redis
    for key, value in saved.items():
        await redis.config_set(key, value)


async def _said(lines: list[str], text: str) -> bool:
    return any(text in line for line in lines)


async def test_an_evicting_redis_gets_a_warning_at_start(
    config: Redis, log_lines: list[str]
) -> None:
    """maxmemory-policy allkeys-lru: one WARNING line naming the risk; the pool still runs."""
    await config.config_set("maxmemory-policy", "allkeys-lru")
    pool = Pool(redis=config, generator=FakeGenerator(), settings=fast_settings())
    await push(config, job("ev", 0, 1))
    async with running(pool):
        await wait_until(lambda: _page_count(config, "ev", 1), what="page")
    (line,) = [x for x in log_lines if "maxmemory-policy" in x]
    assert line.startswith("WARNING") and "allkeys-lru" in line and "vanish" in line


async def test_require_noeviction_refuses_to_start(config: Redis) -> None:
    """REDIS_REQUIRE_NOEVICTION with an evicting Redis: a RedisConfigError, nothing claimed."""
    await config.config_set("maxmemory-policy", "volatile-lru")
    await push(config, job("ev", 0, 1))
    pool = Pool(
        redis=config,
        generator=FakeGenerator(),
        settings=fast_settings(redis_require_noeviction=True),
    )
    with pytest.raises(RedisConfigError, match="volatile-lru"):
        await pool.run(install_signal_handlers=False)
    assert await config.llen(KEYS.queue) == 1


async def test_redis_out_of_memory_at_start_is_waited_out_with_one_line(
    config: Redis, log_lines: list[str]
) -> None:
    """Redis at maxmemory (noeviction) when the pool starts: it says so and waits; once
    memory is freed it starts and writes pages."""
    await config.config_set("maxmemory-policy", "noeviction")
    await push(config, job("oom", 0, 1))
    await config.config_set("maxmemory", "1")  # every write is now refused with OOM
    pool = Pool(redis=config, generator=FakeGenerator(), settings=fast_settings())
    async with running(pool):
        await wait_until(lambda: _said(log_lines, "out of memory"), what="the OOM line")
        await config.config_set("maxmemory", "0")
        await wait_until(lambda: _page_count(config, "oom", 1), what="page after the OOM")
    assert not [x for x in log_lines if "Traceback" in x]
    assert next(x for x in log_lines if "out of memory" in x).startswith("ERROR")


async def test_a_redis_that_comes_back_empty_is_said_and_no_half_ebook_is_recreated(
    redis: Redis, log_lines: list[str]
) -> None:
    """FLUSHALL while a page is being written (what a restart without persistence looks
    like): one ERROR line, the page is dropped rather than re-creating the lost ebook, and
    jobs pushed afterwards are processed as usual."""
    gen = FakeGenerator(delay_s=0.5)
    pool = Pool(redis=redis, generator=gen, settings=fast_settings())
    await push(redis, job("lost", 0, 10))
    async with running(pool):
        await asyncio.wait_for(gen.started.wait(), 5)
        await redis.flushall()
        await wait_until(lambda: _said(log_lines, "Redis lost its data"), what="the loss line")
        await wait_until(lambda: _said(log_lines, "Dropped"), what="the in-flight page dropped")
        await push(redis, job("after", 0, 1))
        await wait_until(lambda: _page_count(redis, "after", 1), what="a page after the loss")
    assert await status(redis, "lost") == {} and await pages(redis, "lost") == {}
    assert (await status(redis, "after"))["state"] == "done"
    (line,) = [x for x in log_lines if "Redis lost its data (" in x]
    assert line.startswith("ERROR")


async def test_nothing_is_reaped_while_redis_has_just_restarted(redis: Redis) -> None:
    """A heartbeat that expired while Redis was down is not a death: the reaper waits until
    Redis has been up for HEARTBEAT_TIMEOUT."""
    store = Store(redis, KEYS)
    await redis.sadd(KEYS.pools, "quiet")
    await redis.lpush(KEYS.processing("quiet"), job("q", 0, 1))
    uptime = int((await redis.info("server"))["uptime_in_seconds"])
    assert await store.reap(min_uptime_s=uptime + 60) == {}
    assert await redis.llen(KEYS.processing("quiet")) == 1
    assert await store.reap(min_uptime_s=0) == {"quiet": 1}


async def test_after_an_outage_the_reaper_waits_for_the_others_to_beat(redis: Redis) -> None:
    """Back from an outage, a process does not reap anyone for HEARTBEAT_TIMEOUT."""
    pool = Pool(redis=redis, generator=FakeGenerator(), settings=fast_settings())
    await redis.sadd(KEYS.pools, "quiet")
    await redis.lpush(KEYS.processing("quiet"), job("q", 0, 1))
    pool._guard.down_since = 0.0  # as if Redis had been unreachable
    pool._guard.ok()
    await pool._reap()
    assert await redis.llen(KEYS.processing("quiet")) == 1


async def _page_count(redis: Redis, ebook: str, n: int) -> bool:
    return int(await redis.hlen(KEYS.pages(ebook))) >= n


async def test_a_claim_whose_reply_was_lost_is_recovered(
    redis: Redis, log_lines: list[str]
) -> None:
    """A claim that ran in Redis while its reply was lost (connection dropped mid-outage) left a
    job in this process's processing list that nobody works on: once the process holds nothing,
    it goes back to the queue with the lost claim's attempt refunded, and is written."""
    gen = FakeGenerator()
    pool = Pool(redis=redis, generator=gen, settings=fast_settings())
    payload = job("orphan", 0, 1)
    await redis.lpush(KEYS.processing(pool.id), payload)  # what the lost claim did
    await redis.hincrby(KEYS.attempts, payload, 1)
    pool._claimer._in_doubt = True  # what the claimer knows after the failed call
    async with running(pool):
        await wait_until(lambda: _page_count(redis, "orphan", 1), what="the orphan's page")
    (page,) = (await pages(redis, "orphan")).values()
    assert page["attempts"] == 1 and len(gen.calls) == 1
    assert any("their reply was lost" in x for x in log_lines)
