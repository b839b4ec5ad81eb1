"""Progress events: each page's outcome and each ebook state change, in a capped stream per
ebook and on a pub/sub channel, against a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from pool import JobFatalError, Pool
from pool.ebook_events import EbookEventPublisher
from pool.events import EventKind, PoolEvent
from pool.job import decode_job
from pool_app.wiring import build_publisher
from tests.fakes import KEYS, FakeGenerator, fast_settings, job, push, running, wait_until


async def _stream(redis: Redis, ebook: str) -> list[tuple[str, dict[str, Any], str]]:
    """(id, event, state field) of every entry of the ebook's stream, oldest first."""
    entries = await redis.xrange(KEYS.ebook_events(ebook))
    return [(i.decode(), json.loads(f[b"data"]), f[b"state"].decode()) for i, f in entries]


@contextlib.asynccontextmanager
async def _listening(redis: Redis) -> AsyncIterator[list[dict[str, Any]]]:
    """Collect every message published on the events channel while the block runs."""
    received: list[dict[str, Any]] = []
    pubsub = redis.pubsub()
    await pubsub.subscribe(KEYS.events_channel)

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                received.append(json.loads(message["data"]))

    task = asyncio.create_task(listen())
    try:
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pubsub.aclose()


async def _run_ebook(
    redis: Redis, pool: Pool, publisher: EbookEventPublisher, ebook: str, total: int
) -> None:
    async with running(pool):
        await push(redis, *[job(ebook, i, total) for i in range(total)])

        async def ended() -> bool:
            events = await _stream(redis, ebook)
            return bool(events) and events[-1][1].get("state") in {"done", "partial", "failed"}

        await wait_until(ended, what=f"the final state event of {ebook}")
    await publisher.drain(5.0)


async def test_an_ebook_run_yields_page_events_then_done_in_the_stream_and_live(
    redis: Redis,
) -> None:
    """Three pages: the stream holds generating, one succeeded event per page with its tokens,
    then done; a channel subscriber received the same events live, with their stream ids."""
    settings = fast_settings()
    pool = Pool(redis=redis, generator=FakeGenerator(delay_s=0.05), settings=settings)
    publisher = build_publisher(pool, redis, settings)
    assert publisher is not None
    async with _listening(redis) as received:
        await _run_ebook(redis, pool, publisher, "live", 3)
        await wait_until(lambda: _at_least(received, 5), what="the events on the channel")
    entries = await _stream(redis, "live")
    states = [e for _, e, _ in entries if e["type"] == "state"]
    # A page event published after the ebook finished repeats its final state.
    changes = [s for s in states if s["state"] != s["previous"]]
    assert [(s["previous"], s["state"]) for s in changes] == [
        (None, "generating"),
        ("generating", "done"),
    ]
    assert entries[-1][1] == {
        "v": 1, "type": "state", "ebookId": "live", "state": "done",
        "previous": entries[-1][1]["previous"], "total": 3, "done": 3, "failed": 0,
        "at": entries[-1][1]["at"],
    }  # fmt: skip
    page_events = [e for _, e, _ in entries if e["type"] == "page"]
    assert sorted(e["pageIndex"] for e in page_events) == [0, 1, 2]
    for event in page_events:
        assert event["outcome"] == "succeeded" and event["ebookId"] == "live"
        assert (event["promptTokens"], event["completionTokens"]) == (5, 7)
        assert event["attempts"] == 1 and event["reason"] is None and event["poolId"] == pool.id
    assert [m.pop("id") for m in received] == [i for i, _, _ in entries]
    assert received == [e for _, e, _ in entries]
    ttl_ms = await redis.pttl(KEYS.ebook_events("live"))
    assert 0 < ttl_ms <= settings.progress_events_ttl


async def test_a_failed_page_has_its_reason_and_the_ebook_ends_partial(redis: Redis) -> None:
    """A page that fails for good: a failed event with its reason and errorType, then partial."""
    gen = FakeGenerator(script={"half:1": [JobFatalError("HTTP 400 context_length_exceeded")]})
    settings = fast_settings()
    pool = Pool(redis=redis, generator=gen, settings=settings)
    publisher = build_publisher(pool, redis, settings)
    assert publisher is not None
    await _run_ebook(redis, pool, publisher, "half", 2)
    events = [e for _, e, _ in await _stream(redis, "half")]
    failed = [e for e in events if e["type"] == "page" and e["outcome"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["pageIndex"] == 1 and failed[0]["errorType"] == "fatal"
    assert "context_length_exceeded" in failed[0]["reason"]
    assert failed[0]["promptTokens"] is None
    assert events[-1]["state"] == "partial"
    assert (events[-1]["done"], events[-1]["failed"]) == (1, 1)


async def test_a_copy_pushed_again_is_a_skipped_page_event_then_the_final_state(
    redis: Redis,
) -> None:
    """The same jobs pushed again after the ebook is done: one `skipped` page event per copy
    (reason "stored", no attempts, no tokens), no request, and the stream still ends on done."""
    gen = FakeGenerator()
    settings = fast_settings()
    pool = Pool(redis=redis, generator=gen, settings=settings)
    publisher = build_publisher(pool, redis, settings)
    assert publisher is not None
    async with running(pool):
        await push(redis, *[job("again", i, 2) for i in range(2)])

        async def done() -> bool:
            return await redis.hget(KEYS.status("again"), "state") == b"done"

        await wait_until(done, what="the ebook")
        await push(redis, *[job("again", i, 2) for i in range(2)])

        async def skipped() -> bool:
            events = [e for _, e, _ in await _stream(redis, "again")]
            return sum(e.get("outcome") == "skipped" for e in events) == 2

        await wait_until(skipped, what="two skipped page events")
    await publisher.drain(5.0)
    assert len(gen.calls) == 2
    events = [e for _, e, _ in await _stream(redis, "again")]
    skips = [e for e in events if e.get("outcome") == "skipped"]
    assert sorted(e["pageIndex"] for e in skips) == [0, 1]
    for event in skips:
        assert event["reason"] == "stored" and event["attempts"] is None
        assert event["promptTokens"] is None and event["errorType"] is None
    assert events[-1]["type"] == "state" and events[-1]["state"] == "done"


async def test_a_late_listener_catches_up_from_an_id(redis: Redis) -> None:
    """XREAD from the id of an event returns exactly the events after it, in order."""
    settings = fast_settings()
    pool = Pool(redis=redis, generator=FakeGenerator(), settings=settings)
    publisher = build_publisher(pool, redis, settings)
    assert publisher is not None
    await _run_ebook(redis, pool, publisher, "late", 4)
    entries = await _stream(redis, "late")
    seen = entries[1][0]
    reply = await redis.xread({KEYS.ebook_events("late"): seen})
    [(_, rest)] = reply
    assert [i.decode() for i, _ in rest] == [i for i, _, _ in entries[2:]]


async def test_the_stream_is_capped(redis: Redis) -> None:
    """PROGRESS_EVENTS_MAXLEN bounds each ebook's stream (approximately, as XADD MAXLEN ~)."""
    settings = fast_settings(progress_events_maxlen=10)
    pool = Pool(redis=redis, generator=FakeGenerator(), settings=settings)
    publisher = build_publisher(pool, redis, settings)
    assert publisher is not None
    await _run_ebook(redis, pool, publisher, "capped", 300)
    length = await redis.xlen(KEYS.ebook_events("capped"))
    assert 10 <= length < 200


async def test_progress_events_off_publishes_nothing(redis: Redis) -> None:
    """PROGRESS_EVENTS=false: no publisher, no stream."""
    settings = fast_settings(progress_events=False)
    pool = Pool(redis=redis, generator=FakeGenerator(), settings=settings)
    assert build_publisher(pool, redis, settings) is None
    async with running(pool):
        await push(redis, job("quiet", 0, 1))

        async def done() -> bool:
            return await redis.hget(KEYS.status("quiet"), "state") == b"done"

        await wait_until(done, what="the page")
    assert not await redis.exists(KEYS.ebook_events("quiet"))


async def test_a_failing_redis_drops_events_without_failing_the_pool(redis: Redis) -> None:
    """Publishing into a Redis that refuses: the events are dropped and counted, never raised."""
    publisher = EbookEventPublisher(redis, keys=KEYS, pool_id="p", maxlen=10, ttl_ms=60_000)
    await redis.set(KEYS.ebook_events("wrong"), "a string, not a stream")
    await redis.hset(KEYS.status("wrong"), mapping={"state": "generating", "total": 1})
    page_job = decode_job(job("wrong", 0, 1).encode(), max_bytes=65_536)
    publisher.on_event(PoolEvent(EventKind.JOB_SUCCEEDED, job=page_job, attempt=1))
    await publisher.drain(5.0)
    assert publisher.dropped == 1


async def _at_least(received: list[dict[str, Any]], n: int) -> bool:
    return len(received) >= n


async def test_the_publisher_subscribes_to_exactly_the_kinds_it_publishes(redis: Redis) -> None:
    """`KINDS` (what the bus sends it) is exactly what `on_event` turns into an event: a kind
    left out would never be published, an extra one would be built for nothing."""
    publisher = EbookEventPublisher(redis, keys=KEYS, pool_id="p", maxlen=10, ttl_ms=60_000)
    page_job = decode_job(job("kinds", 0, 1).encode(), max_bytes=65_536)
    published = set()
    for kind in EventKind:
        before = len(publisher._pending)
        publisher.on_event(PoolEvent(kind, job=page_job, attempt=1, reason="r"))
        if len(publisher._pending) > before:
            published.add(kind)
    assert published == set(EbookEventPublisher.KINDS)
    await publisher.drain(5.0)
