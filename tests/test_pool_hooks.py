"""The pool's extension points: the before-request hook and the pool events."""

from __future__ import annotations

from loguru import logger
from redis.asyncio import Redis

from pool import PageJob, Pool, RetryableError
from pool.events import EventKind, PoolEvent, PoolEvents
from pool.keys import Keys
from tests.fakes import FakeGenerator, fast_settings, job, pages, push, running, wait_until

KEYS = Keys()


async def test_before_request_runs_before_every_attempt(redis: Redis) -> None:
    """The hook is awaited before the first attempt and before each retry, with its number."""
    gen = FakeGenerator(script={"h:0": [RetryableError("HTTP 500", status=500), None]})
    seen: list[tuple[str, int, int]] = []

    async def before_request(page_job: PageJob, attempt: int) -> None:
        seen.append((page_job.id, attempt, len(gen.calls)))

    pool = Pool(redis=redis, generator=gen, settings=fast_settings(), before_request=before_request)
    await push(redis, job("h", 0, 1))
    async with running(pool):
        await wait_until(lambda: _has_page(redis, "h"), what="page")
    # Attempt 1 before any call, attempt 2 after the first call failed.
    assert seen == [("h:0", 1, 0), ("h:0", 2, 1)]


async def test_before_request_runs_before_a_request_resent_after_a_refusal(redis: Redis) -> None:
    """A 429 is sent again within the same attempt, and the hook runs before each request."""
    refusal = RetryableError("HTTP 429", status=429, code="rate_limit_exceeded", retry_after_s=0)
    gen = FakeGenerator(script={"r:0": [refusal, None]})
    seen: list[tuple[str, int, int]] = []

    async def before_request(page_job: PageJob, attempt: int) -> None:
        seen.append((page_job.id, attempt, len(gen.calls)))

    pool = Pool(redis=redis, generator=gen, settings=fast_settings(), before_request=before_request)
    await push(redis, job("r", 0, 1))
    async with running(pool):
        await wait_until(lambda: _has_page(redis, "r"), what="page")
    assert seen == [("r:0", 1, 0), ("r:0", 1, 1)]
    assert (await pages(redis, "r"))[0]["attempts"] == 1


async def test_events_reach_subscribers_and_a_failing_one_is_harmless(redis: Redis) -> None:
    """Subscribers see a job's events in order; one that raises is logged, the job still lands."""
    events = PoolEvents()
    kinds: list[EventKind] = []
    logged: list[str] = []

    def broken(event: PoolEvent) -> None:
        raise RuntimeError("subscriber bug")

    events.subscribe(broken)
    events.subscribe(lambda event: kinds.append(event.kind))
    gen = FakeGenerator(script={"e:0": [RetryableError("HTTP 429", status=429), None]})
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(), events=events)
    sink = logger.add(lambda m: logged.append(str(m)), level="ERROR")
    try:
        await push(redis, job("e", 0, 1))
        async with running(pool):
            await wait_until(lambda: _has_page(redis, "e"), what="page")
            await wait_until(lambda: _true(pool.stats.success == 1), what="stats")
    finally:
        logger.remove(sink)
    # The ebook's start is announced once, whenever its status write lands.
    assert kinds.count(EventKind.EBOOK_STARTED) == 1
    assert [k for k in kinds if k is not EventKind.EBOOK_STARTED] == [
        EventKind.JOB_CLAIMED,
        EventKind.JOB_STARTED,
        EventKind.REQUEST_ENDED,  # the 429
        EventKind.JOB_RATE_LIMITED,  # not an attempt: sent again, no JOB_RETRIED
        EventKind.REQUEST_ENDED,  # the page
        EventKind.JOB_ENDED,
        EventKind.JOB_SUCCEEDED,
    ]
    assert pool.stats.active == 0
    assert any("subscriber" in line and "subscriber bug" in line for line in logged)


async def _has_page(redis: Redis, ebook: str) -> bool:
    return len(await pages(redis, ebook)) == 1


async def _true(value: bool) -> bool:
    return value
