"""The dashboard's HTTP routes, mounted on the pool's HTTP server or served alone.

Pages (server-rendered HTML, a little JS, no CDN: everything loads from `/assets/`):

- `GET /`: queue, throughput chart, live processes, pause/resume, ebooks, failed jobs.
- `GET /ebook?id=ID`: one ebook's progress, its failures and its pages rendered;
  `GET /ebook/export.{md,html,epub}?id=ID` downloads it as a book (`pool_app.export`, the
  same files as `ebook-pool export`).
- `GET /failed/{fid}`: one failed job, with retry and purge.

Data: `GET /api/overview`, `/api/ebook?id=ID`, `/api/failed/{fid}`, and `GET /events`
(server-sent events: a JSON snapshot every second; `?ebook=ID` adds that ebook's status).

Actions (`POST /api/...`: retry, purge, pause, resume) need `DASHBOARD_TOKEN` in an
`X-Dashboard-Token` header (compared in constant time), a JSON body, and a same-origin request
(the browser's `Origin`, else `Referer`, must name this host, and `Sec-Fetch-Site` must not say
cross-site). A cross-site form cannot set that header or content type without a CORS preflight,
which this server never grants. Without a token set, the dashboard is read-only.

Nothing here reads the Redis URL or an API key into a response: the data comes from
`pool_app.dashboard.data`, which never touches settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from string import Template
from typing import Any, cast
from urllib.parse import urlsplit

from aiohttp import web
from loguru import logger
from pydantic import SecretStr
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from pool.clock import iso, now_ms
from pool.config import PoolSettings
from pool.connections import command_redis
from pool.control import pause_pool, read_operator_pause, resume_pool
from pool.ebooks import read_status
from pool.job import ID_PATTERN
from pool.keys import Keys
from pool.store import Store
from pool_app.dashboard.data import (
    ebook_detail,
    ebook_row,
    failed_row,
    find_failed,
    overview,
)
from pool_app.dashboard.live import Hub
from pool_app.export import Format, read_book, render

__all__ = ["READ_ONLY_WHY", "TOKEN_HEADER", "add_dashboard", "dashboard_app"]

TOKEN_HEADER = "X-Dashboard-Token"
READ_ONLY_WHY = (
    "Read-only: DASHBOARD_TOKEN is not set on this server, so retry, purge and pause are off."
)
_KEEPALIVE_S = 15.0
_NONE = "\u2013"  # an en dash: what a missing value shows
_ID = re.compile(ID_PATTERN)
_FID = re.compile(r"^[0-9a-f]{20}$")
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_ASSET_TYPES = {".css": "text/css", ".js": "text/javascript"}
_EXPORT_TYPES: dict[Format, str] = {
    "md": "text/markdown",
    "html": "text/html",
    "epub": "application/epub+zip",
}

_REDIS = web.AppKey("dashboard_redis", Redis)
_HUB = web.AppKey("dashboard_hub", Hub)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def dashboard_app(
    settings: PoolSettings, *, redis: Redis | None = None, interval_s: float = 1.0
) -> web.Application:
    """An application serving only the dashboard (`ebook-pool dashboard`)."""
    app = web.Application()
    add_dashboard(app, settings, redis=redis, interval_s=interval_s)
    return app


def add_dashboard(
    app: web.Application,
    settings: PoolSettings,
    *,
    redis: Redis | None = None,
    interval_s: float = 1.0,
) -> None:
    """Add the dashboard's routes to `app` (before it starts).

    Args:
        settings: read for KEY_PREFIX, DASHBOARD_TOKEN, DASHBOARD_MAX_EBOOKS and, when `redis`
            is None, REDIS_URL (the dashboard then opens its own small client, so it never
            takes a connection the pool's workers need).
        redis: a client to use instead (the caller closes it).
        interval_s: between two samples of the live feed.
    """
    keys = Keys(settings.key_prefix)
    token = settings.dashboard_token
    assets = _load_assets()
    templates = {name: Template(_read(f"templates/{name}.html")) for name in ("layout", "overview")}

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        own = redis is None
        client = command_redis(settings) if redis is None else redis
        hub = Hub(client, keys, max_ebooks=settings.dashboard_max_ebooks, interval_s=interval_s)
        app[_REDIS] = client
        app[_HUB] = hub
        sampler = asyncio.create_task(hub.run())
        mode = "actions need DASHBOARD_TOKEN" if token else "read-only: DASHBOARD_TOKEN is not set"
        logger.info(f"[Dashboard] Serving / ({mode})")
        try:
            yield
        finally:
            await hub.stop()
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            if own:
                await client.aclose()

    async def stop_streams(app: web.Application) -> None:
        if _HUB in app:
            await app[_HUB].stop()

    def page(
        request: web.Request, *, title: str, name: str, body: str, **attrs: str
    ) -> web.Response:
        extra = " ".join(f'data-{k}="{html.escape(v)}"' for k, v in attrs.items())
        text = templates["layout"].substitute(
            title=html.escape(title),
            page=name,
            readonly="1" if token is None else "0",
            readonly_why=html.escape(READ_ONLY_WHY),
            attrs=extra,
            token_disabled="disabled" if token is None else "",
            token_state="read-only" if token is None else "",
            body=body,
        )
        return web.Response(text=text, content_type="text/html")

    # --- pages ----------------------------------------------------------------------------

    async def index(request: web.Request) -> web.Response:
        return page(
            request, title="Overview", name="overview", body=templates["overview"].substitute()
        )

    async def ebook_page(request: web.Request) -> web.Response:
        ebook_id = _ebook_id(request)
        detail = await ebook_detail(request.app[_REDIS], keys, ebook_id)
        if detail is None:
            raise web.HTTPNotFound(
                text=f"Unknown ebook {ebook_id}: it has no status hash.", content_type="text/plain"
            )
        body = _ebook_body(ebook_id, detail)
        return page(request, title=f"Ebook {ebook_id}", name="ebook", body=body, ebook=ebook_id)

    async def ebook_fragment(request: web.Request) -> web.Response:
        ebook_id = _ebook_id(request)
        detail = await ebook_detail(request.app[_REDIS], keys, ebook_id)
        if detail is None:
            raise web.HTTPNotFound(text="unknown ebook", content_type="text/plain")
        return web.Response(text=_ebook_live(ebook_id, detail), content_type="text/html")

    async def ebook_export(request: web.Request) -> web.Response:
        ebook_id = _ebook_id(request)
        fmt = cast(Format, request.path.rsplit(".", 1)[1])
        book = await read_book(request.app[_REDIS], keys, ebook_id)
        if book is None:
            raise web.HTTPNotFound(text="unknown ebook", content_type="text/plain")
        filename = re.sub(r"[^A-Za-z0-9_.-]", "_", ebook_id) + f".{fmt}"
        return web.Response(
            body=await asyncio.to_thread(render, book, fmt),  # an EPUB is zipped: off the loop
            content_type=_EXPORT_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    async def failed_page(request: web.Request) -> web.Response:
        fid = request.match_info["fid"]
        entry = (
            await find_failed(Store(request.app[_REDIS], keys), fid) if _FID.match(fid) else None
        )
        if entry is None:
            body = (
                '<p><a href="/">← overview</a></p><h1>Failed job</h1><p class="empty">'
                "This job is not in the failed list any more: it was retried or purged.</p>"
            )
            return page(request, title="Failed job", name="failed", body=body, fid=fid)
        row = failed_row(entry, full=True)
        return page(
            request, title="Failed job", name="failed", body=_failed_body(row), fid=row["id"]
        )

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in assets:
            raise web.HTTPNotFound()
        text, ctype = assets[name]
        return web.Response(text=text, content_type=ctype, headers={"Cache-Control": "no-cache"})

    # --- data -----------------------------------------------------------------------------

    async def api_overview(request: web.Request) -> web.Response:
        data = await overview(request.app[_REDIS], keys, max_ebooks=settings.dashboard_max_ebooks)
        data["readOnly"] = token is None
        return _json(data)

    async def api_ebook(request: web.Request) -> web.Response:
        detail = await ebook_detail(request.app[_REDIS], keys, _ebook_id(request))
        if detail is None:
            return _json({"error": "unknown ebook"}, status=404)
        return _json(detail)

    async def api_failed(request: web.Request) -> web.Response:
        fid = request.match_info["fid"]
        entry = (
            await find_failed(Store(request.app[_REDIS], keys), fid) if _FID.match(fid) else None
        )
        if entry is None:
            return _json({"error": "not in the failed list (retried or purged)"}, status=404)
        return _json(failed_row(entry, full=True))

    async def events(request: web.Request) -> web.StreamResponse:
        ebook_id = request.query.get("ebook")
        if ebook_id is not None and not _ID.match(ebook_id):
            raise web.HTTPBadRequest(text="bad ebook id", content_type="text/plain")
        hub = request.app[_HUB]
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # no buffering in a proxy (nginx and alike)
            }
        )
        await response.prepare(request)
        hub.viewers += 1
        try:
            snapshot = await hub.fresh()
            version = hub.version
            first = True
            while not hub.stopping:
                data = dict(snapshot)
                data["readOnly"] = token is None
                if first:
                    data["history"] = list(hub.history)
                    first = False
                if ebook_id is not None and "error" not in data:
                    status = await read_status(request.app[_REDIS], keys, ebook_id)
                    data["ebook"] = None if status is None else ebook_row(status)
                await response.write(f"data: {json.dumps(data)}\n\n".encode())
                newer = await hub.wait_newer(version, _KEEPALIVE_S)
                while newer == version and not hub.stopping:
                    await response.write(b": keep-alive\n\n")
                    newer = await hub.wait_newer(version, _KEEPALIVE_S)
                version = newer
                snapshot = hub.latest or snapshot
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the browser went away, or the server is stopping
        finally:
            hub.viewers -= 1
        return response

    # --- actions --------------------------------------------------------------------------

    def guarded(action: Handler) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            refused = _refuse(request, token)
            if refused is not None:
                return refused
            return await action(request)

        return handler

    async def auth(request: web.Request) -> web.Response:
        return _json({"ok": True})

    async def retry_one(request: web.Request) -> web.Response:
        store = Store(request.app[_REDIS], keys)
        entry = await find_failed(store, request.match_info["fid"])
        if entry is None:
            return _json({"error": "not in the failed list (retried or purged)"}, status=404)
        row = failed_row(entry)
        if not row["retryable"]:
            return _json(
                {"error": "an invalid or truncated payload would fail again: fix the producer"},
                status=409,
            )
        if not await store.retry_failed(entry, now_ms=now_ms()):
            return _json({"error": "someone else retried or purged it first"}, status=409)
        _audit(request, f"retried failed job {row['id']} ({_where(row)})")
        return _json({"ok": True, "message": f"Put {_where(row)} back on the queue."})

    async def purge_one(request: web.Request) -> web.Response:
        store = Store(request.app[_REDIS], keys)
        entry = await find_failed(store, request.match_info["fid"])
        if entry is None:
            return _json({"error": "not in the failed list (retried or purged)"}, status=404)
        n = await store.purge_failed([entry])
        row = failed_row(entry)
        _audit(request, f"purged failed job {row['id']} ({_where(row)})")
        return _json({"ok": True, "message": f"Deleted {n} failed job."})

    async def retry_all(request: web.Request) -> web.Response:
        store = Store(request.app[_REDIS], keys)
        retried = skipped = 0
        for entry in await store.failed():
            if not failed_row(entry)["retryable"]:
                skipped += 1
            elif await store.retry_failed(entry, now_ms=now_ms()):
                retried += 1
        _audit(request, f"retried {retried} failed jobs ({skipped} invalid left)")
        message = f"Put {retried} failed jobs back on the queue."
        if skipped:
            message += f" Left {skipped} invalid payloads (they would fail again)."
        return _json({"ok": True, "message": message, "retried": retried, "skipped": skipped})

    async def purge_all(request: web.Request) -> web.Response:
        n = await Store(request.app[_REDIS], keys).purge_failed(None)
        _audit(request, f"purged all {n} failed jobs")
        return _json({"ok": True, "message": f"Deleted {n} failed jobs.", "purged": n})

    async def pause(request: web.Request) -> web.Response:
        body = await _body(request)
        reason = body.get("reason") if isinstance(body.get("reason"), str) else ""
        flag = await pause_pool(request.app[_REDIS], keys, str(reason), now_ms=now_ms())
        _audit(request, f"paused the pool: {flag['reason']}")
        return _json({"ok": True, "message": f"Pool paused: {flag['reason']}", "pause": flag})

    async def resume(request: web.Request) -> web.Response:
        redis_ = request.app[_REDIS]
        was = await read_operator_pause(redis_, keys)
        await resume_pool(redis_, keys)
        if was is not None:
            _audit(request, f"resumed the pool (was: {was['reason']})")
        return _json({"ok": True, "message": "Pool resumed." if was else "It was not paused."})

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(stop_streams)
    app.on_response_prepare.append(_security_headers)
    r = app.router
    for path, get_handler in (
        ("/", index),
        ("/ebook", ebook_page),
        ("/ebook/fragment", ebook_fragment),
        ("/ebook/export.md", ebook_export),
        ("/ebook/export.html", ebook_export),
        ("/ebook/export.epub", ebook_export),
        ("/failed/{fid}", failed_page),
        ("/assets/{name}", asset),
        ("/api/overview", api_overview),
        ("/api/ebook", api_ebook),
        ("/api/failed/{fid}", api_failed),
        ("/events", events),
    ):
        r.add_get(path, _redis_errors(get_handler))
    for path, post_handler in (
        ("/api/auth", auth),
        ("/api/failed/retry-all", retry_all),
        ("/api/failed/purge-all", purge_all),
        ("/api/failed/{fid}/retry", retry_one),
        ("/api/failed/{fid}/purge", purge_one),
        ("/api/pause", pause),
        ("/api/resume", resume),
    ):
        r.add_post(path, _redis_errors(guarded(post_handler)))


# --- security -------------------------------------------------------------------------------


def _refuse(request: web.Request, token: SecretStr | None) -> web.Response | None:
    """Why this action request is refused (a response to send), or None to let it through."""
    if token is None:
        return _json({"error": READ_ONLY_WHY}, status=403)
    if not _same_origin(request):
        return _json({"error": "cross-site request refused"}, status=403)
    if request.content_type != "application/json":
        return _json({"error": "send the action as JSON (Content-Type: application/json)"}, 415)
    given = request.headers.get(TOKEN_HEADER, "")
    if not given:
        return _json(
            {"error": "this action needs the operator token (DASHBOARD_TOKEN)"}, status=401
        )
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        return _json({"error": "wrong operator token"}, status=403)
    return None


def _same_origin(request: web.Request) -> bool:
    """The request comes from a page of this server (or from a non-browser client)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in {"same-origin", "none"}:
        return False
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if source is None:
        return True  # not a browser (curl, a script): CSRF needs a browser, which sends Origin
    if source == "null":
        return False
    try:
        return urlsplit(source).netloc.lower() == request.host.lower()
    except ValueError:
        return False


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    path = request.path
    if path in {"/healthz", "/readyz", "/metrics"}:
        return
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not path.startswith("/assets/"):
        response.headers.setdefault("Cache-Control", "no-store")


def _redis_errors(handler: Handler) -> Handler:
    """A Redis error becomes 503 with its type only (never a message that may name a host)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except (
            OSError,
            TimeoutError,
            redis_errors.ConnectionError,
            redis_errors.TimeoutError,
        ) as exc:
            return _json({"error": f"Redis unavailable ({type(exc).__name__})"}, status=503)
        except redis_errors.RedisError as exc:
            return _json({"error": f"Redis error ({type(exc).__name__})"}, status=503)

    return wrapped


def _audit(request: web.Request, what: str) -> None:
    logger.info(f"[Dashboard] {what} (from {request.remote})")


# --- helpers --------------------------------------------------------------------------------


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _ebook_id(request: web.Request) -> str:
    ebook_id = request.query.get("id", "")
    if not _ID.match(ebook_id):
        raise web.HTTPBadRequest(
            text="bad or missing ebook id (?id=...)", content_type="text/plain"
        )
    return ebook_id


def _where(row: dict[str, Any]) -> str:
    if row.get("ebookId") is None:
        return "a job of an unknown ebook"
    page = row.get("pageIndex")
    return f"ebook {row['ebookId']} page {'?' if page is None else page + 1}"


def _read(name: str) -> str:
    return resources.files("pool_app.dashboard").joinpath(name).read_text(encoding="utf-8")


def _load_assets() -> dict[str, tuple[str, str]]:
    out = {}
    for name in ("dashboard.css", "dashboard.js"):
        suffix = name[name.rindex(".") :]
        out[name] = (_read(f"static/{name}"), _ASSET_TYPES[suffix])
    return out


def _when(ms: Any) -> str:
    return iso(ms).replace("T", " ")[:19] + " UTC" if isinstance(ms, int) else _NONE


def _e(value: Any) -> str:
    return html.escape(_NONE if value is None else str(value))


def _progress(done: int, failed: int, total: int) -> str:
    """A progress bar the page's script draws (the CSP allows no inline style)."""
    return (
        f'<div class="bar" data-done="{done}" data-failed="{failed}" data-total="{total}" '
        f'title="{done}/{total} done, {failed} failed"></div>'
    )


def _ebook_body(ebook_id: str, d: dict[str, Any]) -> str:
    q = html.escape(ebook_id)
    ledger = d["ledger"]
    cost = (
        f"${d['cost']:.4f}</b><small>{ledger['requests']:,} requests, "
        f"{ledger['wastedTokens']:,} tokens wasted</small>"
    )
    return f"""<p><a href="/">← overview</a></p>
<h1>Ebook <code>{_e(ebook_id)}</code></h1>
<section class="cards">
  <div class="card"><h3>State</h3><b id="e-state" class="state {_e(d["state"])}">{_e(d["state"])}</b>
    <small id="e-when">created {_when(d["createdAt"])}</small></div>
  <div class="card wide"><h3>Progress</h3>
    <div id="e-bar">{_progress(d["done"], d["failed"], d["total"])}</div>
    <small id="e-counts">{d["done"]}/{d["total"]} pages done, {d["failed"]} failed, {d["pending"]} pending</small></div>
  <div class="card"><h3>Cost</h3><b id="e-cost">{cost}</div>
  <div class="card"><h3>Export</h3><b><a id="e-export" href="/ebook/export.md?id={q}" download>Markdown ↓</a></b>
    <small>the pages written so far, also as <a href="/ebook/export.html?id={q}" download>HTML</a>
    and <a href="/ebook/export.epub?id={q}" download>EPUB</a></small></div>
</section>
<div id="ebook-live">{_ebook_live(ebook_id, d)}</div>"""


def _ebook_live(ebook_id: str, d: dict[str, Any]) -> str:
    """The part of the ebook page that is re-rendered as pages land: failures and pages."""
    tokens = f"{d['promptTokens']:,} prompt + {d['completionTokens']:,} completion tokens"
    failures = []
    for p in d["pages"]:
        if p["status"] == "failed":
            failures.append(
                f'<tr><td>{p["pageIndex"] + 1}</td><td class="err">{_e(p.get("error"))}</td></tr>'
            )
    jobs = [
        f"<tr><td>{_when(j['failedAt'])}</td><td>{_e(j['errorType'])}</td>"
        f"<td>{_NONE if j['pageIndex'] is None else j['pageIndex'] + 1}</td>"
        f'<td class="err">{_e(j["error"])}</td>'
        f'<td><a class="open" href="/failed/{_e(j["id"])}">open</a></td></tr>'
        for j in d["failedJobs"]
    ]
    parts = [f'<p class="muted" id="e-tokens">{tokens}</p>']
    if failures or jobs:
        parts.append('<section class="panel"><h2>Failures</h2>')
        if failures:
            parts.append(
                '<table class="grid"><thead><tr><th>Page</th><th>Reason</th></tr></thead>'
                f"<tbody>{''.join(failures)}</tbody></table>"
            )
        if jobs:
            parts.append(
                '<h3>In the failed list</h3><table class="grid" id="e-failed"><thead><tr>'
                "<th>Failed at</th><th>Type</th><th>Page</th><th>Error</th><th></th></tr></thead>"
                f"<tbody>{''.join(jobs)}</tbody></table>"
            )
        parts.append("</section>")
    pages = []
    for p in d["pages"]:
        n = p["pageIndex"] + 1
        if p["status"] != "done":
            continue
        pages.append(
            f'<article class="page" id="page-{n}"><header>Page {n}'
            f"<small>{_e(p.get('model'))} · attempt {_e(p.get('attempts'))} · "
            f"{_e(p.get('completionTokens'))} tokens</small></header>"
            f"{p['html']}</article>"
        )
    parts.append(
        f'<section class="panel"><h2>Pages <small class="muted">{len(pages)} written</small></h2>'
    )
    parts.append("".join(pages) or '<p class="empty">No page written yet.</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _failed_body(row: dict[str, Any]) -> str:
    fields = [
        ("Error", row["error"]),
        ("Type", row["errorType"]),
        ("Attempts", row["attempts"]),
        ("Failed at", _when(row["failedAt"])),
        ("Pool process", row["poolId"]),
        ("Job id", row["jobId"]),
        ("Page", None if row["pageIndex"] is None else row["pageIndex"] + 1),
        ("Payload", f"{row['payloadBytes']} bytes, SHA-256 {row['payloadSha256']}"),
    ]
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in fields)
    ebook = row["ebookId"]
    ebook_link = (
        f'<dt>Ebook</dt><dd><a href="/ebook?id={html.escape(ebook)}">{_e(ebook)}</a></dd>'
        if isinstance(ebook, str) and _ID.match(ebook)
        else ""
    )
    payload = row["payload"]
    if isinstance(payload, str):
        with contextlib.suppress(ValueError):
            payload = json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    else:
        payload = f"(not UTF-8; base64) {row['payloadBase64']}"
    note = " (only its first 1 KiB was kept)" if row["payloadTruncated"] else ""
    why_not = (
        ""
        if row["retryable"]
        else (
            '<p class="muted">Retry is off for this job: its payload is invalid or truncated and '
            "would fail again. Fix the producer, then purge it.</p>"
        )
    )
    retry_attr = "" if row["retryable"] else " data-never"
    return f"""<p><a href="/">← overview</a></p>
<h1>Failed job <code>{_e(row["id"])}</code></h1>
<div class="toolbar">
  <span class="action"><button type="button" id="retry-btn" data-action="retry"{retry_attr}>Retry</button></span>
  <span class="action"><button type="button" id="purge-btn" data-action="purge" class="danger">Purge</button></span>
</div>
{why_not}
<section class="panel"><dl class="fields">{ebook_link}{items}</dl></section>
<section class="panel"><h2>Payload{note}</h2><pre class="payload">{_e(payload)}</pre></section>"""
