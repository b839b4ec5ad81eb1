"""The happy path and the Next.js contract, against a real redis-server."""

from __future__ import annotations

from redis.asyncio import Redis

from pool import Pool
from pool.keys import Keys
from tests.fakes import (
    FakeGenerator,
    failed,
    fast_settings,
    job,
    pages,
    push,
    running,
    status,
    wait_until,
)


async def test_every_page_lands_in_its_ebook_hash(redis: Redis) -> None:
    """Pages of two ebooks are generated, stored per ebook, and each status says done."""
    gen = FakeGenerator(delay_s=0.01)
    pool = Pool(redis=redis, generator=gen, settings=fast_settings())
    await push(redis, *[job("a", i, 6) for i in range(6)], *[job("b", i, 4) for i in range(4)])
    async with running(pool):
        await wait_until(lambda: _done(redis, "a", 6), what="ebook a")
        await wait_until(lambda: _done(redis, "b", 4), what="ebook b")
    got = await pages(redis, "a")
    assert sorted(got) == list(range(6))
    assert got[2]["content"].startswith("# Page 3")
    assert got[2]["jobId"] == "a:2" and got[2]["attempts"] == 1 and got[2]["model"] == "fake-model"
    st = await status(redis, "a")
    assert st["state"] == "done" and st["total"] == "6" and st["done"] == "6"
    assert int(st["finishedAt"]) >= int(st["startedAt"]) >= int(st["createdAt"])
    assert await failed(redis) == []
    assert await redis.llen(Keys().queue) == 0
    assert await redis.hlen(Keys().attempts) == 0
    assert gen.closed


async def _done(redis: Redis, ebook: str, total: int) -> bool:
    return (await status(redis, ebook)).get("done") == str(total)
