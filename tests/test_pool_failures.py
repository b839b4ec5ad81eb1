"""How the pool treats bad input and every class of generation failure (real redis-server)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from typing import Any

import pytest
from redis.asyncio import Redis

from pool import GeneratedPage, JobFatalError, Pool, PoolFatalError, RetryableError
from pool.deadletters import PAYLOAD_PREFIX_BYTES
from pool.keys import Keys
from tests.fakes import (
    FakeGenerator,
    attempts_field,
    failed,
    fast_settings,
    job,
    pages,
    push,
    running,
    status,
    wait_until,
)

KEYS = Keys()

BAD_PAYLOADS = {
    "not json": b"this is not json",
    "truncated json": b'{"ebookId": "x", "pageIndex": 0',
    "json array": b"[1, 2, 3]",
    "json string": b'"ebook"',
    "json null": b"null",
    "empty": b"",
    "not utf-8": b"\xff\xfe\xfa",
    "missing fields": json.dumps({"ebookId": "m"}).encode(),
    "wrong types": json.dumps(
        {"ebookId": "w", "pageIndex": "zero", "totalPages": 3, "title": "T"}
    ).encode(),
    "negative index": json.dumps(
        {"ebookId": "n", "pageIndex": -1, "totalPages": 3, "title": "T"}
    ).encode(),
    "index past total": json.dumps(
        {"ebookId": "p", "pageIndex": 3, "totalPages": 3, "title": "T"}
    ).encode(),
    "unknown field": json.dumps(
        {"ebookId": "u", "pageIndex": 0, "totalPages": 1, "title": "T", "tittle": "x"}
    ).encode(),
    "temperature out of range": json.dumps(
        {"ebookId": "t", "pageIndex": 0, "totalPages": 1, "title": "T", "temperature": 9}
    ).encode(),
    "over the size limit": json.dumps(
        {
            "ebookId": "big",
            "pageIndex": 0,
            "totalPages": 1,
            "title": "T",
            "instructions": "x" * 5000,
        }
    ).encode(),
}


async def test_bad_payloads_go_to_the_failed_list_and_the_pool_keeps_going(redis: Redis) -> None:
    """Every kind of bad payload is dead-lettered with its reason; good jobs around it finish."""
    gen = FakeGenerator()
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(max_job_bytes=4096))
    await push(redis, job("good", 0, 2), *BAD_PAYLOADS.values(), job("good", 1, 2))
    async with running(pool):
        await wait_until(
            lambda: _count(redis, KEYS.failed, len(BAD_PAYLOADS)), what="all bad payloads failed"
        )
        await wait_until(lambda: _hlen(redis, KEYS.pages("good"), 2), what="good pages")
    entries = await failed(redis)
    assert len(entries) == len(BAD_PAYLOADS)
    # Every payload is kept exactly (as text, or in base64 when it is not UTF-8), but for an
    # oversized one: its first PAYLOAD_PREFIX_BYTES, its size and its hash.
    big = BAD_PAYLOADS["over the size limit"]
    assert {_payload(e) for e in entries if not e.get("payloadTruncated")} == {
        p for p in BAD_PAYLOADS.values() if p != big
    }
    (cut,) = [e for e in entries if e.get("payloadTruncated")]
    assert _payload(cut) == big[:PAYLOAD_PREFIX_BYTES]
    assert cut["payloadBytes"] == len(big)
    assert cut["payloadSha256"] == hashlib.sha256(big).hexdigest()
    assert [e for e in entries if "payloadBase64" in e] == [
        e for e in entries if _payload(e) == b"\xff\xfe\xfa"
    ]
    for e in entries:
        assert e["errorType"] == "invalid" and e["error"].startswith("invalid job: ")
        assert e["attempts"] == 0 and e["failedAt"] > 0
    reasons = {_payload(e).decode(errors="replace"): e["error"] for e in entries}
    assert "not JSON" in reasons["this is not json"]
    assert "expected an object" in reasons["[1, 2, 3]"]
    assert "totalPages: Field required" in reasons['{"ebookId": "m"}']
    assert "over the 4096-byte limit" in next(v for k, v in reasons.items() if '"big"' in k)
    assert gen.attempts_of("good:0") and gen.attempts_of("good:1")
    # An invalid page of a known ebook shows in that ebook's status.
    st = await status(redis, "u")
    assert st["failed"] == "1" and st["state"] == "failed"
    assert await redis.llen(KEYS.processing(pool.id)) == 0


async def test_retryable_errors_are_retried_and_attempts_recorded(redis: Redis) -> None:
    """Two retryable failures, then success: one page, written once, with attempts = 3."""
    gen = FakeGenerator(script={"r:0": [RetryableError("HTTP 503"), TimeoutError("slow"), None]})
    pool = Pool(redis=redis, generator=gen, settings=fast_settings())
    await push(redis, job("r", 0, 1))
    async with running(pool):
        await wait_until(lambda: _hlen(redis, KEYS.pages("r"), 1), what="page")
    assert len(gen.attempts_of("r:0")) == 3
    page = (await pages(redis, "r"))[0]
    assert page["attempts"] == 3
    assert (await status(redis, "r"))["state"] == "done"
    assert await redis.hlen(KEYS.attempts) == 0


async def test_max_retries_three_means_four_attempts_then_failed(redis: Redis) -> None:
    """MAX_RETRIES=3: four attempts, then the job is dead-lettered with the last reason."""
    gen = FakeGenerator(script={"x:0": [RetryableError(f"HTTP 500 #{i}") for i in range(10)]})
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(max_retries=3))
    await push(redis, job("x", 0, 1))
    async with running(pool):
        await wait_until(lambda: _count(redis, KEYS.failed, 1), what="dead letter")
    assert len(gen.attempts_of("x:0")) == 4
    [entry] = await failed(redis)
    assert entry["errorType"] == "exhausted" and entry["attempts"] == 4
    assert entry["error"] == "HTTP 500 #3" and entry["jobId"] == "x:0"
    st = await status(redis, "x")
    assert st["state"] == "failed" and st["failed"] == "1" and st.get("done", "0") == "0"
    assert await redis.hget(KEYS.page_errors("x"), "0") == b"HTTP 500 #3"


async def test_backoff_honours_retry_after(redis: Redis) -> None:
    """A 429 that says 'retry after 0.4 s' is not retried sooner, though the backoff is 10 ms."""
    gen = FakeGenerator(script={"w:0": [RetryableError("HTTP 429", status=429, retry_after_s=0.4)]})
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(retry_backoff=10))
    await push(redis, job("w", 0, 1))
    async with running(pool):
        await wait_until(lambda: _hlen(redis, KEYS.pages("w"), 1), what="page")
    first, second = gen.attempts_of("w:0")
    assert second - first >= 0.4


async def test_exponential_backoff_grows(redis: Redis) -> None:
    """Without Retry-After, waits are drawn from a growing window capped by RETRY_BACKOFF_MAX."""
    errors: list[BaseException | GeneratedPage | None] = [RetryableError("boom") for _ in range(5)]
    gen = FakeGenerator(script={"e:0": errors})
    settings = fast_settings(retry_backoff=40, retry_backoff_max=400, max_retries=5)
    pool = Pool(redis=redis, generator=gen, settings=settings)
    await push(redis, job("e", 0, 1))
    async with running(pool):
        await wait_until(lambda: _hlen(redis, KEYS.pages("e"), 1), what="page")
    times = gen.attempts_of("e:0")
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 5
    assert max(gaps) <= 0.4 + 0.2  # capped (plus scheduling slack)
    # Full jitter over windows 40, 80, 160, 320, 400 ms: the total is well above the first window.
    assert sum(gaps) > 0.04


async def test_job_fatal_error_fails_the_job_at_once(redis: Redis) -> None:
    """A 400 context_length_exceeded is not retried: one attempt, dead-lettered with the reason."""
    err = JobFatalError(
        "HTTP 400 context_length_exceeded", status=400, code="context_length_exceeded"
    )
    gen = FakeGenerator(script={"f:1": [err]})
    pool = Pool(redis=redis, generator=gen, settings=fast_settings())
    await push(redis, job("f", 0, 2), job("f", 1, 2))
    async with running(pool):
        await wait_until(lambda: _count(redis, KEYS.failed, 1), what="dead letter")
        await wait_until(lambda: _hlen(redis, KEYS.pages("f"), 1), what="the other page")
    assert len(gen.attempts_of("f:1")) == 1
    [entry] = await failed(redis)
    assert entry["errorType"] == "fatal" and "context_length_exceeded" in entry["error"]
    assert entry["attempts"] == 1
    st = await status(redis, "f")
    assert st["state"] == "partial" and st["done"] == "1" and st["failed"] == "1"


async def test_pool_fatal_error_pauses_without_burning_the_queue(redis: Redis) -> None:
    """A bad API key pauses claiming: the queue stays intact, nothing fails, and after the probe
    succeeds the pool resumes on its own and finishes every page."""
    bad_key = PoolFatalError("HTTP 401 invalid_api_key: check OPENAI_API_KEY", status=401)
    gen = FakeGenerator(
        script={"k:0": [bad_key]},
        probe_errors=[PoolFatalError("HTTP 401 still bad"), PoolFatalError("HTTP 401 still bad")],
    )
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(concurrent_workers=1))
    await push(redis, *[job("k", i, 10) for i in range(10)])
    async with running(pool):
        await wait_until(lambda: _is(pool.paused), what="pause")
        # The failed job went back; one call was made, no job failed, no attempt was spent.
        assert await redis.llen(KEYS.queue) == 10
        assert await failed(redis) == []
        assert await redis.hget(KEYS.attempts, attempts_field(job("k", 0, 10))) is None
        await wait_until(lambda: _hlen(redis, KEYS.pages("k"), 10), what="all pages after resume")
    assert gen.probes == 3
    assert len(gen.calls) == 11  # the one that hit the bad key, then each page once
    assert pool.pause_reason is None
    assert (await pages(redis, "k"))[0]["attempts"] == 1


async def test_attempt_count_survives_crashes(redis: Redis) -> None:
    """A job whose earlier attempts all died with their process is failed, not looped forever."""
    # Four attempts started by processes that died.
    await redis.hset(KEYS.attempts, attempts_field(job("c", 0, 1)), 4)
    gen = FakeGenerator()
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(max_retries=3))
    await push(redis, job("c", 0, 1))
    async with running(pool):
        await wait_until(lambda: _count(redis, KEYS.failed, 1), what="dead letter")
    assert gen.calls == []
    [entry] = await failed(redis)
    assert entry["errorType"] == "exhausted" and "4 attempts were started" in entry["error"]
    assert await redis.hlen(KEYS.attempts) == 0


async def test_a_crashing_worker_is_restarted_and_its_job_given_back(
    redis: Redis, capfd: pytest.CaptureFixture[str]
) -> None:
    """A bug inside the pool (here: a generator returning garbage) crashes one worker; the job
    goes back to the queue, the worker restarts, and the job then completes."""
    gen = FakeGenerator(script={"b:0": [_NotAPage()]})  # type: ignore[list-item]
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(concurrent_workers=1))
    await push(redis, job("b", 0, 2), job("b", 1, 2))
    async with running(pool):
        await wait_until(lambda: _hlen(redis, KEYS.pages("b"), 2), timeout_s=15, what="pages")
    assert len(gen.attempts_of("b:0")) == 2
    assert await failed(redis) == []


async def test_processing_delay_spaces_a_workers_jobs(redis: Redis) -> None:
    """PROCESSING_DELAY=200 ms: one worker starts its jobs at least 200 ms apart."""
    gen = FakeGenerator()
    settings = fast_settings(concurrent_workers=1, processing_delay=200)
    pool = Pool(redis=redis, generator=gen, settings=settings)
    await push(redis, *[job("d", i, 3) for i in range(3)])
    async with running(pool):
        await wait_until(lambda: _hlen(redis, KEYS.pages("d"), 3), what="pages")
    starts = sorted(t for _, t in gen.calls)
    assert all(b - a >= 0.2 for a, b in itertools.pairwise(starts))


async def test_workers_run_concurrently_up_to_the_limit(redis: Redis) -> None:
    """CONCURRENT_WORKERS=4 with 0.3 s pages: 8 pages take ~2 rounds, never 5 at once."""
    gen = FakeGenerator(delay_s=0.3)
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(concurrent_workers=4))
    peak = 0

    async def track() -> bool:
        nonlocal peak
        peak = max(peak, pool.stats.active)
        return await _hlen(redis, KEYS.pages("c4"), 8)

    await push(redis, *[job("c4", i, 8) for i in range(8)])
    async with running(pool):
        await wait_until(track, what="pages")
    assert peak == 4
    starts = sorted(t for _, t in gen.calls)
    assert starts[3] - starts[0] < 0.2 and starts[4] - starts[0] >= 0.25


async def test_rerun_of_a_finished_page_does_not_count_twice(redis: Redis) -> None:
    """The same page pushed twice is generated once (the copy is skipped); done stays right."""
    gen = FakeGenerator()
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(concurrent_workers=1))
    await push(redis, job("d2", 0, 2), job("d2", 0, 2), job("d2", 1, 2))
    async with running(pool):
        await wait_until(lambda: _status_is(redis, "d2", "done"), what="done")
    st = await status(redis, "d2")
    assert st["done"] == "2" and st["total"] == "2" and st["skipped"] == "1"
    assert len(gen.calls) == 2


async def test_a_failed_page_that_later_succeeds_is_no_longer_counted_failed(redis: Redis) -> None:
    """Failed, then re-pushed and finished: failed goes back to 0 and the ebook is done."""
    gen = FakeGenerator(script={"z:0": [JobFatalError("HTTP 400 invalid_prompt")]})
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(concurrent_workers=1))
    await push(redis, job("z", 0, 1))
    async with running(pool):
        await wait_until(lambda: _status_is(redis, "z", "failed"), what="failed")
        await push(redis, job("z", 0, 1))
        await wait_until(lambda: _status_is(redis, "z", "done"), what="done")
    st = await status(redis, "z")
    assert st["failed"] == "0" and st["done"] == "1"
    assert await redis.hlen(KEYS.page_errors("z")) == 0


class _NotAPage:
    """Not a GeneratedPage: using it as one raises inside the pool's own code."""


async def _count(redis: Redis, key: str, n: int) -> bool:
    return int(await redis.llen(key)) >= n


async def _hlen(redis: Redis, key: str, n: int) -> bool:
    return int(await redis.hlen(key)) >= n


async def _is(value: bool) -> bool:
    return value


async def _len_calls(gen: FakeGenerator, n: int) -> bool:
    return len(gen.calls) >= n


async def _status_is(redis: Redis, ebook: str, state: str) -> bool:
    return (await status(redis, ebook)).get("state") == state


def _payload(entry: dict[str, Any]) -> bytes:
    """The exact payload a failed entry keeps (text, or base64 for bytes that are not UTF-8)."""
    if "payloadBase64" in entry:
        return base64.b64decode(entry["payloadBase64"])
    return str(entry["payload"]).encode()
