"""A page cut off at its token limit asks for the larger limit on its next attempts, in this
process and in any other that runs them (after a redeploy or a crash)."""

from __future__ import annotations

from redis.asyncio import Redis

from pool import GeneratedPage, PageJob, Pool, RetryableError
from pool.keys import Keys
from tests.fakes import fast_settings, job, pages, push, running, wait_until

KEYS = Keys()
GROWN = 400


class CutUnlessGrown:
    """A generator whose pages fit only in `GROWN` tokens; it records the limits asked for."""

    def __init__(self) -> None:
        self.limits: list[int | None] = []

    async def generate(self, job: PageJob, *, timeout_s: float) -> GeneratedPage:
        self.limits.append(job.max_tokens)
        if job.max_tokens != GROWN:
            err = RetryableError("length: cut off", code="length")
            err.next_max_tokens = GROWN
            raise err
        return GeneratedPage(content="A page that fits.", model="fake")

    async def probe(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


async def _stored(redis: Redis, ebook: str) -> bool:
    return await redis.hlen(KEYS.pages(ebook)) == 1


async def test_the_next_attempt_in_the_same_process_asks_for_the_grown_limit(redis: Redis) -> None:
    gen = CutUnlessGrown()
    await push(redis, job("g", 0, 1))
    async with running(Pool(redis=redis, generator=gen, settings=fast_settings())):
        await wait_until(lambda: _stored(redis, "g"), what="the page")
    assert gen.limits == [None, GROWN]
    assert (await pages(redis, "g"))[0]["attempts"] == 2


async def test_an_attempt_in_another_process_asks_for_the_grown_limit(redis: Redis) -> None:
    """The first process is stopped while it waits to retry (the job goes back to the queue);
    the second runs attempt 2 with the limit the first chose."""
    first = CutUnlessGrown()
    await push(redis, job("h", 0, 1))
    slow_retry = fast_settings(retry_backoff=60_000, retry_backoff_max=60_000)
    async with running(Pool(redis=redis, generator=first, settings=slow_retry)):

        async def grown_kept() -> bool:
            return await redis.get(KEYS.grown("h:0")) == str(GROWN).encode()

        await wait_until(grown_kept, what="the grown limit in Redis")
    assert first.limits == [None]
    assert await redis.pttl(KEYS.grown("h:0")) > 3_600_000
    second = CutUnlessGrown()
    async with running(Pool(redis=redis, generator=second, settings=fast_settings())):
        await wait_until(lambda: _stored(redis, "h"), what="the page")
    assert second.limits == [GROWN]
    assert (await pages(redis, "h"))[0]["attempts"] == 2
