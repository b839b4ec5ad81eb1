"""The operator's pause flag (dashboard Pause/Resume, or `SET {prefix}:paused` by hand)."""

from __future__ import annotations

from redis.asyncio import Redis

from pool import Pool
from pool.control import pause_pool, resume_pool
from pool.keys import Keys
from tests.fakes import FakeGenerator, fast_settings, job, push, running, wait_until

KEYS = Keys()


async def _true(value: bool) -> bool:
    return value


async def test_a_paused_pool_claims_nothing_until_resumed(
    redis: Redis, log_lines: list[str]
) -> None:
    """While the flag is set no job is claimed and the pool says why; clearing it resumes."""
    gen = FakeGenerator()
    pool = Pool(redis=redis, generator=gen, settings=fast_settings())
    async with running(pool):
        await pause_pool(redis, KEYS, "maintenance window", now_ms=1)
        await wait_until(lambda: _true(pool.paused), what="paused within a heartbeat")
        assert pool.pause_reason == "paused by an operator: maintenance window"
        await push(redis, job("held", 0, 1))
        await wait_until(
            lambda: _true(any("PAUSED: paused by an operator" in x for x in log_lines)),
            what="the PAUSED line",
        )
        assert await redis.llen(KEYS.queue) == 1 and gen.calls == []
        await resume_pool(redis, KEYS)
        await wait_until(lambda: _true(len(gen.calls) == 1), what="the job after resuming")
    assert not pool.paused
    assert any("operator's pause was lifted" in x for x in log_lines)
