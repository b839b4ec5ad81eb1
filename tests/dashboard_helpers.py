"""Shared helpers of the dashboard tests: seed Redis the way the pool writes it, read SSE."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from pool import GeneratedPage, PoolSettings
from pool.deadletters import failed_entry
from pool.keys import Keys
from pool.records import page_record
from pool.store import Store
from pool.usage import JobUsage
from pool_app.dashboard import dashboard_app
from pool_app.producer import build_jobs, enqueue_ebook

KEYS = Keys()
TOKEN = "test-token-0123456789abcdef"
POOL_ID = "host-1-abc123"
#: Page 0 of "book-1": Markdown with HTML that must never reach the browser as markup.
PAGE_0 = (
    "## The **first** page\n\nPlain *text* <script>alert('page')</script> "
    '<img src=x onerror="alert(1)">\n\n- one\n- two\n\n[a link](javascript:alert(2))'
)


async def seed(redis: Redis, keys: Keys = KEYS) -> dict[str, Any]:
    """What a pool leaves behind: ebook "book-1" (3 pages: 0 stored, 1 failed for good, 2 in
    flight), one more queued ebook, an invalid payload in the failed list, a live process."""
    jobs = build_jobs(ebook_id="book-1", title="Book one", pages=3)
    await enqueue_ebook(redis, keys, jobs)
    await enqueue_ebook(redis, keys, build_jobs(ebook_id="book-2", title="Book two", pages=2))
    store = Store(redis, keys)
    epoch = await store.init_epoch(b"epoch-1")
    claimed, _ = await store.claim(POOL_ID, 3, epoch=epoch)
    raws = sorted((raw for raw, _, _ in claimed), key=lambda raw: json.loads(raw)["pageIndex"])
    assert [json.loads(r)["ebookId"] for r in raws] == ["book-1"] * 3
    page = GeneratedPage(content=PAGE_0, model="fake-model", prompt_tokens=11, completion_tokens=22)
    usage = JobUsage()  # what the ledger adds: one request at a made-up price
    usage.request_ended(prompt_tokens=11, completion_tokens=22, cost_usd=0.25, page=True)
    await store.complete(
        POOL_ID,
        raws[0],
        ebook_id="book-1",
        page_index=0,
        total=3,
        page_json=page_record(
            jobs[0], page, attempts=1, duration_s=0.5, now_ms=1_000, pool_id=POOL_ID
        ),
        now_ms=1_000,
        epoch=epoch,
        usage=usage,
    )
    await store.fail(
        POOL_ID,
        raws[1],
        entry=failed_entry(
            raws[1],
            jobs[1],
            reason="HTTP 400 content_filter: <b>refused</b>",
            kind="fatal",
            attempts=1,
            now_ms=2_000,
            pool_id=POOL_ID,
            max_bytes=65_536,
        ),
        now_ms=2_000,
        epoch=epoch,
    )
    invalid = b'{"ebookId": "book-3", "pageIndex": "x"}'
    await redis.lpush(keys.processing(POOL_ID), invalid)
    await store.fail(
        POOL_ID,
        invalid,
        entry=failed_entry(
            invalid,
            None,
            reason="pageIndex: Input should be a valid integer",
            kind="invalid",
            attempts=0,
            now_ms=3_000,
            pool_id=POOL_ID,
            max_bytes=65_536,
        ),
        now_ms=3_000,
        epoch=epoch,
    )
    snapshot = {
        "id": POOL_ID,
        "host": "host-1",
        "pid": 42,
        "workers": 5,
        "active": 1,
        "processed": 2,
        "success": 1,
        "failed": 1,
        "pages_per_min": 6.0,
        "p50_s": 0.5,
        "p95_s": 0.5,
        "uptime_s": 30.0,
        "paused": None,
        "at": 3_000,
    }
    await store.heartbeat(POOL_ID, snapshot, ttl_ms=60_000)
    return {"jobs": jobs, "raws": raws}


def settings_for(url: str, **overrides: Any) -> PoolSettings:
    """Settings of a dashboard on `url`, without reading the test machine's environment."""
    return PoolSettings(redis_url=url, **overrides)


@asynccontextmanager
async def dashboard(
    settings: PoolSettings, *, interval_s: float = 0.05
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A test client of `ebook-pool dashboard`'s application."""
    async with TestClient(TestServer(dashboard_app(settings, interval_s=interval_s))) as client:
        yield client


async def next_event(resp: ClientResponse, timeout_s: float = 5.0) -> dict[str, Any]:
    """The next `data:` event of a server-sent event stream, decoded."""
    async with asyncio.timeout(timeout_s):
        while True:
            line = await resp.content.readline()
            if not line:
                raise AssertionError("the event stream ended")
            if line.startswith(b"data: "):
                data: dict[str, Any] = json.loads(line[len(b"data: ") :])
                return data


async def event_where(
    resp: ClientResponse, predicate: Any, *, timeout_s: float = 5.0, what: str = "an event"
) -> dict[str, Any]:
    """Read events until one satisfies `predicate`; fail after `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                event = await next_event(resp, timeout_s)
                if predicate(event):
                    return event
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout_s}s") from None
