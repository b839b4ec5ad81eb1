"""No payload can hurt the pool: undecodable text, crashes on one job, a bad write in a batch.

Real redis-server (tests/conftest.py), the real Pool in-process, a fake generator.
"""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from pool import Pool
from pool.batch import ScriptBatcher
from pool.job import InvalidJob, decode_job
from pool.keys import Keys
from tests.fakes import FakeGenerator, failed, fast_settings, job, pages, push, running, wait_until

KEYS = Keys()


async def _count(redis: Redis, key: str, n: int) -> bool:
    return int(await redis.llen(key)) >= n


# The two payloads of the issue: an encoded lone surrogate (invalid UTF-8), and the JSON
# escape JavaScript writes for half an emoji, in an id and in the metadata.
RAW_SURROGATE = b'{"ebookId": "\xed\xa0\x80"}'
ESCAPED_IN_ID = b'{"ebookId": "e\\ud83d", "pageIndex": 0, "totalPages": 1, "title": "T"}'
ESCAPED_IN_METADATA = (
    b'{"ebookId": "meta", "pageIndex": 0, "totalPages": 1, "title": "T \\ud83d",'
    b' "metadata": {"k\\udc00": "\\ud83d"}}'
)


async def test_surrogate_payloads_fail_with_a_reason_and_twenty_valid_jobs_land(
    redis: Redis, log_lines: list[str]
) -> None:
    """The issue's case: bad payloads among 20 valid jobs; no worker restarts."""
    gen = FakeGenerator()
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(concurrent_workers=8))
    valid = [job("good", i, 20) for i in range(20)]
    await push(redis, *valid[:10], RAW_SURROGATE, ESCAPED_IN_ID, *valid[10:])
    async with running(pool):
        await wait_until(lambda: _count(redis, KEYS.failed, 2), what="bad payloads failed")
        await wait_until(
            lambda: _hlen_at_least(redis, KEYS.pages("good"), 20), what="20 valid pages"
        )
    entries = {e["payloadSha256"][:8]: e for e in await failed(redis)}
    assert len(entries) == 2
    raw = next(e for e in entries.values() if "payloadBase64" in e)
    assert "not valid UTF-8" in raw["error"] and raw["errorType"] == "invalid"
    escaped = next(e for e in entries.values() if "payload" in e)
    assert escaped["payload"].encode() == ESCAPED_IN_ID
    assert "ebookId" in escaped["error"] and escaped["errorType"] == "invalid"
    assert not [line for line in log_lines if "Crashed" in line or "Traceback" in line]
    assert len(gen.calls) == 20  # each valid page generated once: no neighbour redone


async def test_a_lone_surrogate_in_text_is_replaced_and_the_page_is_stored_once(
    redis: Redis,
) -> None:
    """Title and metadata with lone surrogates: stored with U+FFFD, generated once."""
    gen = FakeGenerator()
    pool = Pool(redis=redis, generator=gen, settings=fast_settings())
    await push(redis, ESCAPED_IN_METADATA)
    async with running(pool):
        await wait_until(lambda: _hlen_at_least(redis, KEYS.pages("meta"), 1), what="page")
    (page,) = (await pages(redis, "meta")).values()
    assert page["metadata"] == {"k\ufffd": "\ufffd"}
    assert len(gen.calls) == 1 and await redis.llen(KEYS.failed) == 0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"ebookId": "a", "pageIndex": "0", "totalPages": 1, "title": "T"}', "pageIndex"),
        (b'{"ebookId": "a", "pageIndex": 0.0, "totalPages": 1, "title": "T"}', "pageIndex"),
        (b'{"ebookId": "a", "pageIndex": true, "totalPages": 2, "title": "T"}', "pageIndex"),
        (b'{"ebookId": "a\\u200b", "pageIndex": 0, "totalPages": 1, "title": "T"}', "ebookId"),
        (b'{"ebookId": "a\\u202e", "pageIndex": 0, "totalPages": 1, "title": "T"}', "ebookId"),
        (b'{"ebookId": "a\\u0000", "pageIndex": 0, "totalPages": 1, "title": "T"}', "ebookId"),
        (b'{"ebookId": "a", "ebookId": "b", "pageIndex": 0, "totalPages": 1}', "twice"),
        (b'{"ebookId": "a", "pageIndex": 0, "totalPages": 1, "title": "T", "temperature": NaN}',
         "NaN"),
        (b'{"metadata": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "nested deeper"),
        (b'{"metadata": ' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}", "nested deeper"),
        (b"\xef\xbb\xbf{}", "BOM"),
        (b'{"ebookId": "\xed\xa0\x80"}', "not valid UTF-8"),
    ],
)  # fmt: skip
def test_the_contract_is_as_strict_as_it_says(payload: bytes, reason: str) -> None:
    """Coercions, key-unsafe ids, duplicates, NaN, deep nesting and bad bytes are invalid."""
    with pytest.raises(InvalidJob, match=reason):
        decode_job(payload, max_bytes=1 << 20)


async def test_a_job_that_crashes_the_pool_twice_fails_as_poison(
    redis: Redis, log_lines: list[str]
) -> None:
    """The app wrote an ebook's status key as a string: storing its page is refused (not an
    outage). The job is given back once, then failed as poison; no worker restarts."""
    await redis.set(KEYS.status("clash"), "not a hash")
    gen = FakeGenerator()
    pool = Pool(redis=redis, generator=gen, settings=fast_settings())
    await push(redis, job("clash", 0, 1), job("fine", 0, 1))
    async with running(pool):
        await wait_until(lambda: _count(redis, KEYS.failed, 1), what="poison entry")
        await wait_until(lambda: _hlen_at_least(redis, KEYS.pages("fine"), 1), what="fine page")
    (entry,) = await failed(redis)
    assert entry["errorType"] == "poison" and "WRONGTYPE" in entry["error"]
    assert "crashed on this job 2 times" in entry["error"]
    assert len(gen.attempts_of("clash:0")) == 2
    assert not [line for line in log_lines if "Crashed; restarting" in line]
    assert await redis.hlen(KEYS.crashes) == 0
    assert await redis.llen(KEYS.queue) == 0 and await redis.llen(KEYS.processing(pool.id)) == 0


async def test_a_write_that_cannot_be_encoded_fails_alone_in_its_batch(redis: Redis) -> None:
    """One call in a batch cannot be sent; the others in the same pipeline still land."""
    batcher = ScriptBatcher(redis)
    script = redis.register_script("return redis.call('SET', KEYS[1], ARGV[1])")
    await script(keys=["warm"], args=["up"])  # loaded, so the batch can use EVALSHA
    calls = [batcher.call(script, [f"k{i}"], [f"v{i}"]) for i in range(9)]
    calls.insert(4, batcher.call(script, ["bad"], ["\ud800"]))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[4], UnicodeEncodeError)
    assert [r for i, r in enumerate(results) if i != 4] == [b"OK"] * 9
    assert await redis.mget([f"k{i}" for i in range(9)]) == [f"v{i}".encode() for i in range(9)]


async def _hlen_at_least(redis: Redis, key: str, n: int) -> bool:
    return int(await redis.hlen(key)) >= n
