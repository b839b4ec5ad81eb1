"""Recovery inside one process: the reaper, stop while idle, blocking pick-up."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from pool import Pool
from pool.keys import Keys
from tests.fakes import FakeGenerator, fast_settings, job, push, running, status, wait_until

KEYS = Keys()


async def test_reaper_returns_the_jobs_of_a_dead_process(redis: Redis) -> None:
    """A process that registered, claimed two jobs and died (no heartbeat) is reaped: its
    jobs go back to the queue and are finished; it is unregistered."""
    await redis.sadd(KEYS.pools, "dead-1")
    await redis.lpush(KEYS.processing("dead-1"), job("rp", 0, 2), job("rp", 1, 2))
    gen = FakeGenerator()
    pool = Pool(redis=redis, generator=gen, settings=fast_settings())
    async with running(pool):
        await wait_until(lambda: _done(redis, "rp"), what="reaped pages done")
    assert await redis.exists(KEYS.processing("dead-1")) == 0
    assert await redis.sismember(KEYS.pools, "dead-1") == 0


async def test_a_live_process_is_not_reaped(redis: Redis) -> None:
    """A process whose heartbeat key exists keeps its jobs, however long they take."""
    await redis.sadd(KEYS.pools, "alive-1")
    await redis.set(KEYS.heartbeat("alive-1"), "{}", px=60_000)
    await redis.lpush(KEYS.processing("alive-1"), job("lv", 0, 1))
    pool = Pool(redis=redis, generator=FakeGenerator(), settings=fast_settings())
    async with running(pool):
        await wait_until(lambda: _registered(redis, pool.id), what="registration")
        await pool._reap()
    assert await redis.llen(KEYS.processing("alive-1")) == 1
    assert await redis.llen(KEYS.queue) == 0


async def test_idle_pool_picks_up_a_job_without_waiting_for_the_poll_interval(
    redis: Redis,
) -> None:
    """With POLL_INTERVAL=5 s the pool still starts a new job within milliseconds (BLMOVE)."""
    gen = FakeGenerator()
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(poll_interval=5_000))
    async with running(pool):
        await wait_until(lambda: _registered(redis, pool.id), what="registration")
        await wait_until(lambda: _blocked_on_queue(redis), what="the claimer to block")
        pushed = time.monotonic()
        await push(redis, job("idle", 0, 1))
        await asyncio.wait_for(gen.started.wait(), timeout=2)
    assert gen.calls[0][1] - pushed < 1.0


async def test_stop_while_idle_returns_promptly(redis: Redis) -> None:
    """stop() on an idle pool blocked on the queue returns well before POLL_INTERVAL."""
    pool = Pool(
        redis=redis, generator=FakeGenerator(), settings=fast_settings(poll_interval=30_000)
    )
    task = asyncio.create_task(pool.run(install_signal_handlers=False))
    await wait_until(lambda: _registered(redis, pool.id), what="registration")
    t0 = time.monotonic()
    pool.stop()
    pool.stop()  # twice is fine
    await asyncio.wait_for(task, timeout=5)
    assert time.monotonic() - t0 < 2.0
    assert await redis.sismember(KEYS.pools, pool.id) == 0


async def _done(redis: Redis, ebook: str) -> bool:
    return (await status(redis, ebook)).get("state") == "done"


async def _blocked_on_queue(redis: Redis) -> bool:
    return any(c.get("cmd") == "blmove" for c in await redis.client_list())


async def _registered(redis: Redis, pool_id: str) -> bool:
    return bool(await redis.sismember(KEYS.pools, pool_id))
