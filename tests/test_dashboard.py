"""The dashboard's routes against a real redis-server: what they show, live updates, actions
and their protection (token, same origin, read-only without a token)."""

from __future__ import annotations

import json
import re
from typing import Any, cast

from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from pool.control import pool_paused_by_operator
from pool.ratelimit import BudgetSnapshot
from pool.store import Store
from pool_app.dashboard import READ_ONLY_WHY, TOKEN_HEADER
from pool_app.dashboard.data import budget_tile, failed_id
from pool_app.export import read_book, render_markdown
from tests.dashboard_helpers import (
    KEYS,
    PAGE_0,
    POOL_ID,
    TOKEN,
    dashboard,
    event_where,
    next_event,
    seed,
    settings_for,
)
from tests.redis_server import RedisServer

Client = TestClient[web.Request, web.Application]
EXTERNAL = re.compile(
    r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import"""
)


async def _failed_ids(redis: Redis) -> dict[str, str]:
    """errorType → failed id, for the entries in the failed list."""
    return {str(e.data.get("errorType")): failed_id(e) for e in await Store(redis, KEYS).failed()}


async def _post(client: Client, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    resp = await client.post(path, json=body or {}, headers=headers)
    return resp.status, await resp.json()


async def test_pages_and_assets_load_nothing_from_outside(
    redis_server: RedisServer, redis: Redis
) -> None:
    """Every page and asset is served by the process; none refers to another host."""
    await seed(redis)
    fid = (await _failed_ids(redis))["fatal"]
    async with dashboard(settings_for(redis_server.url)) as client:
        for path in ("/", "/ebook?id=book-1", f"/failed/{fid}"):
            resp = await client.get(path)
            assert resp.status == 200, path
            text = await resp.text()
            assert "/assets/dashboard.js" in text and "/assets/dashboard.css" in text
            assert not EXTERNAL.search(text), path
            assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        for name, ctype in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
            resp = await client.get(f"/assets/{name}")
            assert resp.status == 200 and resp.content_type == ctype
            assert not EXTERNAL.search(await resp.text()), name
        assert (await client.get("/assets/..%2Fapp.py")).status == 404
        assert (await client.get("/assets/nope.js")).status == 404


async def test_overview_shows_queue_processes_ebooks_and_failed_jobs(
    redis_server: RedisServer, redis: Redis
) -> None:
    await seed(redis)
    async with dashboard(settings_for(redis_server.url)) as client:
        resp = await client.get("/api/overview")
        data = await resp.json()
    assert data["queueDepth"] == 2  # book-2's pages; book-1's three were claimed
    assert data["inFlight"] == 1  # book-1 page 2
    assert data["failedCount"] == 2
    assert data["pagesPerMin"] == 6.0
    assert data["budget"] is None  # the slot for the governor's rate-limit budget
    assert data["operatorPause"] is None and data["readOnly"] is True
    (pool,) = data["pools"]
    assert pool["id"] == POOL_ID and pool["workers"] == 5 and pool["paused"] is None
    books = {b["ebookId"]: b for b in data["ebooks"]}
    assert books["book-1"] | {"createdAt": 0, "updatedAt": 0} == {
        "ebookId": "book-1",
        "state": "generating",
        "total": 3,
        "done": 1,
        "failed": 1,
        "pending": 1,
        "createdAt": 0,
        "updatedAt": 0,
        "finishedAt": None,
        "cost": 0.25,
    }
    assert books["book-2"]["state"] == "queued" and books["book-2"]["cost"] == 0
    fatal, invalid = sorted(data["failed"], key=lambda f: f["errorType"])
    assert fatal["ebookId"] == "book-1" and fatal["pageIndex"] == 1 and fatal["retryable"]
    assert invalid["errorType"] == "invalid" and not invalid["retryable"]


async def test_ebook_list_is_capped_newest_first(redis_server: RedisServer, redis: Redis) -> None:
    for n in range(5):
        await redis.hset(KEYS.status(f"b-{n}"), mapping={"total": 1, "createdAt": 1_000 + n})
    async with dashboard(settings_for(redis_server.url, dashboard_max_ebooks=3)) as client:
        data = await (await client.get("/api/overview")).json()
    assert [b["ebookId"] for b in data["ebooks"]] == ["b-4", "b-3", "b-2"]
    assert data["ebooksTruncated"] is True


async def test_events_stream_a_snapshot_then_every_change(
    redis_server: RedisServer, redis: Redis
) -> None:
    """/events sends the whole picture at once (with the chart's history), then what changes."""
    await seed(redis)
    async with (
        dashboard(settings_for(redis_server.url)) as client,
        client.get("/events?ebook=book-2") as resp,
    ):
        assert resp.headers["Content-Type"] == "text/event-stream"
        first = await next_event(resp)
        assert first["queueDepth"] == 2 and isinstance(first["history"], list)
        assert first["ebook"]["ebookId"] == "book-2" and first["ebook"]["state"] == "queued"
        await redis.hset(KEYS.status("book-2"), mapping={"done": 2, "state": "done"})
        await redis.lpush(KEYS.queue, b"{}")
        later = await event_where(
            resp,
            lambda e: e.get("queueDepth") == 3 and e["ebook"]["state"] == "done",
            what="the new queue depth and state",
        )
        assert "history" not in later and later["sample"][1] == 3


async def test_ebook_page_renders_markdown_and_never_its_html(
    redis_server: RedisServer, redis: Redis
) -> None:
    await seed(redis)
    async with dashboard(settings_for(redis_server.url)) as client:
        text = await (await client.get("/ebook?id=book-1")).text()
        fragment = await (await client.get("/ebook/fragment?id=book-1")).text()
        api = await (await client.get("/api/ebook?id=book-1")).json()
        assert (await client.get("/ebook?id=nope")).status == 404
        assert (await client.get("/ebook?id=bad%20id")).status == 400
    for html in (text, fragment):
        assert "<h2>The <strong>first</strong> page</h2>" in html
        assert "<ul><li>one</li><li>two</li></ul>" in html
        assert "&lt;script&gt;alert(&#x27;page&#x27;)&lt;/script&gt;" in html
        assert "<script>alert" not in html and "<img" not in html
        assert 'href="javascript' not in html
        assert "HTTP 400 content_filter: &lt;b&gt;refused&lt;/b&gt;" in html  # the failure
        assert "33 prompt" not in html and "11 prompt + 22 completion tokens" in html
    assert api["pages"][0]["content"] == PAGE_0  # the Markdown itself, as JSON text
    assert api["cost"] == 0.25 and api["failedJobs"][0]["errorType"] == "fatal"
    assert api["ledger"]["requests"] == 1 and api["ledger"]["promptTokens"] == 11
    assert '<b id="e-cost">$0.2500</b><small>1 requests, 0 tokens wasted</small>' in text


async def test_export_is_the_pages_in_order_with_the_gaps_named(
    redis_server: RedisServer, redis: Redis
) -> None:
    """The export buttons serve `pool_app.export`'s files: the CLI's Markdown, HTML and EPUB."""
    await seed(redis)
    async with dashboard(settings_for(redis_server.url)) as client:
        resp = await client.get("/ebook/export.md?id=book-1")
        text = await resp.text()
        html_resp = await client.get("/ebook/export.html?id=book-1")
        html_text = await html_resp.text()
        epub_resp = await client.get("/ebook/export.epub?id=book-1")
        epub_bytes = await epub_resp.read()
        assert (await client.get("/ebook/export.pdf?id=book-1")).status == 404
        assert (await client.get("/ebook/export.md?id=nope")).status == 404
    assert resp.content_type == "text/markdown"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="book-1.md"'
    book = await read_book(redis, KEYS, "book-1")
    assert book is not None and text == render_markdown(book)
    assert text.startswith("# Book one\n")
    assert text.index("## The **first** page") < text.index("could not be written: HTTP 400")
    assert "> This page is not written yet." in text
    assert html_resp.content_type == "text/html"
    assert "&lt;script&gt;alert" in html_text and "<script>alert" not in html_text
    assert epub_resp.content_type == "application/epub+zip" and epub_bytes[:2] == b"PK"


async def test_without_a_token_the_dashboard_is_read_only(
    redis_server: RedisServer, redis: Redis
) -> None:
    await seed(redis)
    fid = (await _failed_ids(redis))["fatal"]
    async with dashboard(settings_for(redis_server.url)) as client:
        page = await (await client.get("/")).text()
        assert 'data-readonly="1"' in page and READ_ONLY_WHY in page
        for path in (f"/api/failed/{fid}/retry", "/api/pause", "/api/failed/purge-all"):
            status, body = await _post(client, path, {}, **{TOKEN_HEADER: "anything-at-all"})
            assert (status, body["error"]) == (403, READ_ONLY_WHY), path
    assert await redis.llen(KEYS.failed) == 2 and await redis.get(KEYS.paused) is None


async def test_actions_need_the_token_json_and_the_same_origin(
    redis_server: RedisServer, redis: Redis
) -> None:
    await seed(redis)
    fid = (await _failed_ids(redis))["fatal"]
    retry = f"/api/failed/{fid}/retry"
    async with dashboard(settings_for(redis_server.url, dashboard_token=TOKEN)) as client:
        own = f"http://{client.host}:{client.port}"
        assert (await _post(client, retry))[0] == 401
        assert (await _post(client, retry, {}, **{TOKEN_HEADER: TOKEN + "x"}))[0] == 403
        assert (await _post(client, retry, {}, **{TOKEN_HEADER: TOKEN[:-1]}))[0] == 403
        evil = {TOKEN_HEADER: TOKEN, "Origin": "http://evil.example"}
        assert (await _post(client, retry, {}, **evil)) == (
            403,
            {"error": "cross-site request refused"},
        )
        cross = {TOKEN_HEADER: TOKEN, "Sec-Fetch-Site": "cross-site"}
        assert (await _post(client, retry, {}, **cross))[0] == 403
        referer = {TOKEN_HEADER: TOKEN, "Referer": "http://evil.example/page"}
        assert (await _post(client, retry, {}, **referer))[0] == 403
        form = await client.post(retry, data={"a": "1"}, headers={TOKEN_HEADER: TOKEN})
        assert form.status == 415  # what a cross-site HTML form can send
        assert (await client.get(retry)).status == 405
        assert await redis.llen(KEYS.failed) == 2  # nothing happened so far

        ok = {TOKEN_HEADER: TOKEN, "Origin": own, "Sec-Fetch-Site": "same-origin"}
        status, body = await _post(client, retry, {}, **ok)
        assert status == 200 and body["message"] == "Put ebook book-1 page 2 back on the queue."
        assert (await _post(client, retry, {}, **ok))[0] == 404  # already retried
    assert await redis.llen(KEYS.failed) == 1
    assert await redis.hget(KEYS.status("book-1"), "failed") == b"0"
    assert await redis.hlen(KEYS.page_errors("book-1")) == 0
    assert (await redis.lindex(KEYS.queue, 0) or b"").startswith(b"{")


async def test_invalid_payloads_are_not_retried_and_purge_deletes(
    redis_server: RedisServer, redis: Redis
) -> None:
    await seed(redis)
    ids = await _failed_ids(redis)
    auth = {TOKEN_HEADER: TOKEN}
    async with dashboard(settings_for(redis_server.url, dashboard_token=TOKEN)) as client:
        assert (await _post(client, f"/api/failed/{ids['invalid']}/retry", {}, **auth))[0] == 409
        status, body = await _post(client, "/api/failed/retry-all", {}, **auth)
        assert status == 200 and (body["retried"], body["skipped"]) == (1, 1)
        assert await redis.llen(KEYS.failed) == 1
        status, _ = await _post(client, f"/api/failed/{ids['invalid']}/purge", {}, **auth)
        assert status == 200 and await redis.llen(KEYS.failed) == 0
        await seed_failed_again(redis)
        status, body = await _post(client, "/api/failed/purge-all", {}, **auth)
        assert (status, body["purged"]) == (200, 1)
    assert await redis.llen(KEYS.failed) == 0


async def seed_failed_again(redis: Redis) -> None:
    await redis.lpush(KEYS.failed, json.dumps({"error": "x", "errorType": "exhausted"}))


async def test_pause_and_resume_the_whole_pool(redis_server: RedisServer, redis: Redis) -> None:
    """The flag pool processes read with `pool_paused_by_operator`, and the overview's banner."""
    auth = {TOKEN_HEADER: TOKEN}
    async with dashboard(settings_for(redis_server.url, dashboard_token=TOKEN)) as client:
        assert await pool_paused_by_operator(redis, KEYS) is None
        status, body = await _post(client, "/api/pause", {"reason": "API  maintenance\n"}, **auth)
        assert status == 200 and body["pause"]["reason"] == "API maintenance"
        assert await pool_paused_by_operator(redis, KEYS) == (
            "paused by an operator: API maintenance"
        )
        data = await (await client.get("/api/overview")).json()
        assert data["operatorPause"]["reason"] == "API maintenance"
        status, body = await _post(client, "/api/resume", {}, **auth)
        assert (status, body["message"]) == (200, "Pool resumed.")
    assert await pool_paused_by_operator(redis, KEYS) is None
    await redis.set(KEYS.paused, "by hand in redis-cli")  # a plain string works too
    assert (
        await pool_paused_by_operator(redis, KEYS) == "paused by an operator: by hand in redis-cli"
    )


async def test_failed_job_page_and_api(redis_server: RedisServer, redis: Redis) -> None:
    await seed(redis)
    ids = await _failed_ids(redis)
    async with dashboard(settings_for(redis_server.url, dashboard_token=TOKEN)) as client:
        page = await (await client.get(f"/failed/{ids['fatal']}")).text()
        assert "HTTP 400 content_filter: &lt;b&gt;refused&lt;/b&gt;" in page
        assert 'href="/ebook?id=book-1"' in page and 'id="retry-btn"' in page
        invalid = await (await client.get(f"/failed/{ids['invalid']}")).text()
        assert "data-never" in invalid  # its retry button stays off
        api = await (await client.get(f"/api/failed/{ids['fatal']}")).json()
        assert json.loads(api["payload"])["pageIndex"] == 1 and api["attempts"] == 1
        gone = await client.get("/failed/0123456789abcdef0123")
        assert gone.status == 200 and "not in the failed list" in await gone.text()
        assert (await client.get("/api/failed/0123456789abcdef0123")).status == 404


def test_the_budget_card_shows_the_busiest_limit_in_use() -> None:
    """The overview's budget card: none before any budget; else the larger share in use."""

    from pool.ratelimit import BudgetSnapshot

    def budget(rpm_pct: float | None, tpm_pct: float | None) -> BudgetSnapshot:
        fields: dict[str, Any] = {
            "model": "gpt-4o-mini", "rpm_use_pct": rpm_pct, "tpm_use_pct": tpm_pct,
            "cooldown_s": 0.0,
        }  # fmt: skip
        return cast(BudgetSnapshot, fields)

    assert budget_tile([]) is None
    tile = budget_tile([budget(98.7, 41.0), budget(None, 12.0)])
    assert tile is not None and tile["used"] == 0.987
    assert tile["note"] == "gpt-4o-mini 98.7% RPM 41.0% TPM, gpt-4o-mini RPM ? 12.0% TPM"
