"""`pool.deadlines`: the coarse timeout around every API request, and the pool's use of it."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from pool import Pool
from pool.deadlines import Deadline, Deadlines
from pool.keys import Keys
from tests.fakes import FakeGenerator, failed, fast_settings, job, push, running, wait_until

KEYS = Keys()


async def test_a_task_past_its_deadline_gets_timeout_error_at_most_one_resolution_late() -> None:
    deadlines = Deadlines(resolution_s=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError), deadlines.bound(0.1):
        await asyncio.Event().wait()  # never set: only the deadline ends this
    waited = loop.time() - started
    assert 0.1 <= waited < 0.1 + 0.05 + 0.1  # one resolution late at most, plus scheduling
    assert len(deadlines) == 0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_work_that_ends_in_time_is_untouched_and_leaves_no_deadline() -> None:
    deadlines = Deadlines(resolution_s=0.01)
    with deadlines.bound(5.0) as deadline:
        await asyncio.sleep(0)
        result = 42
    assert result == 42 and not deadline.expired
    assert len(deadlines) == 0
    assert deadlines._timer is not None  # armed until its next sweep finds nothing
    await wait_until(lambda: _disarmed(deadlines), timeout_s=2, what="the timer to disarm")


async def _disarmed(deadlines: Deadlines) -> bool:
    return deadlines._timer is None


async def test_many_tasks_share_one_timer_and_each_gets_its_own_deadline() -> None:
    deadlines = Deadlines(resolution_s=0.02)

    async def bounded(timeout_s: float, work_s: float) -> str:
        with deadlines.bound(timeout_s):
            await asyncio.sleep(work_s)
        return "done"

    results = await asyncio.gather(
        *(bounded(0.05, 10.0) for _ in range(50)),
        *(bounded(10.0, 0.01) for _ in range(50)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, TimeoutError) for r in results) == 50
    assert results[50:] == ["done"] * 50
    assert len(deadlines) == 0


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    """A shutdown cancelling a bounded task is not turned into a timeout."""
    deadlines = Deadlines(resolution_s=0.02)
    inside = asyncio.Event()

    async def bounded() -> None:
        with deadlines.bound(10.0):
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.ensure_future(bounded())
    await inside.wait()
    task.cancel()
    await wait_until(lambda: _done(task), timeout_s=2, what="the task to end")
    assert task.cancelled()
    assert len(deadlines) == 0


async def test_a_deadline_and_a_shutdown_at_once_stay_a_cancellation() -> None:
    deadlines = Deadlines(
        resolution_s=10.0
    )  # no sweep in this test: the deadline is expired by hand
    inside = asyncio.Event()
    held: list[Deadline] = []

    async def bounded() -> None:
        with deadlines.bound(10.0) as deadline:
            held.append(deadline)
            inside.set()
            await asyncio.Event().wait()

    task = asyncio.ensure_future(bounded())
    await inside.wait()
    held[0].expire()  # the deadline's cancel ...
    task.cancel()  # ... and the shutdown's, before the task runs again
    await wait_until(lambda: _done(task), timeout_s=2, what="the task to end")
    assert task.cancelled()


async def _done(task: asyncio.Task[None]) -> bool:
    return task.done()


class _IgnoresTimeouts(FakeGenerator):
    """A generator that never returns for one job: it ignores its timeout_s."""

    async def generate(self, job, *, timeout_s):  # type: ignore[no-untyped-def]
        if job.id == "stuck:0":
            self.calls.append((job.id, asyncio.get_running_loop().time()))
            await asyncio.Event().wait()
        return await super().generate(job, timeout_s=timeout_s)


async def test_a_generator_that_ignores_its_timeout_is_cut_off_by_the_pool(redis: Redis) -> None:
    """GENERATION_TIMEOUT (+1 s) bounds every attempt even if the generator does not: the
    stuck attempts fail as timeouts, the job ends in the failed list, the others are written."""
    gen = _IgnoresTimeouts()
    pool = Pool(
        redis=redis, generator=gen, settings=fast_settings(generation_timeout=100, max_retries=1)
    )
    await push(redis, job("stuck", 0, 1), job("fine", 0, 1))
    async with running(pool):
        await wait_until(
            lambda: _failed_count(redis, 1), timeout_s=15, what="the stuck job to fail"
        )
    [entry] = await failed(redis)
    assert entry["jobId"] == "stuck:0" and entry["attempts"] == 2
    assert entry["error"] == "TimeoutError: generation timed out after 0.1s"
    assert len(gen.attempts_of("stuck:0")) == 2
    assert await redis.hlen(KEYS.pages("fine")) == 1


async def _failed_count(redis: Redis, n: int) -> bool:
    return await redis.llen(KEYS.failed) >= n
