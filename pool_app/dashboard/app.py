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

The routes live in `pages.DashboardPages` (GET: pages, data, feed) and `actions.DashboardActions`
(POST, with the checks above); this module wires them, the Redis client and the live feed.

Nothing here reads the Redis URL or an API key into a response: the data comes from
`pool_app.dashboard.data`, which never touches settings.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from loguru import logger
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from pool.config import PoolSettings
from pool.connections import command_redis
from pool.keys import Keys
from pool_app.dashboard.actions import DashboardActions
from pool_app.dashboard.common import (
    HUB,
    READ_ONLY_WHY,
    REDIS,
    TOKEN_HEADER,
    Handler,
    json_response,
)
from pool_app.dashboard.live import Hub
from pool_app.dashboard.pages import DashboardPages

__all__ = ["READ_ONLY_WHY", "TOKEN_HEADER", "add_dashboard", "dashboard_app"]

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


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
    pages = DashboardPages(keys, token=token, max_ebooks=settings.dashboard_max_ebooks)
    actions = DashboardActions(keys, token=token)

    app.cleanup_ctx.append(_lifecycle(settings, keys, redis=redis, interval_s=interval_s))
    app.on_shutdown.append(_stop_streams)
    app.on_response_prepare.append(_security_headers)
    r = app.router
    for path, get_handler in (
        ("/", pages.index),
        ("/ebook", pages.ebook_page),
        ("/ebook/fragment", pages.ebook_fragment),
        ("/ebook/export.md", pages.ebook_export),
        ("/ebook/export.html", pages.ebook_export),
        ("/ebook/export.epub", pages.ebook_export),
        ("/failed/{fid}", pages.failed_page),
        ("/assets/{name}", pages.asset),
        ("/api/overview", pages.api_overview),
        ("/api/ebook", pages.api_ebook),
        ("/api/failed/{fid}", pages.api_failed),
        ("/events", pages.events),
    ):
        r.add_get(path, _redis_errors(get_handler))
    for path, post_handler in (
        ("/api/auth", actions.auth),
        ("/api/failed/retry-all", actions.retry_all),
        ("/api/failed/purge-all", actions.purge_all),
        ("/api/failed/{fid}/retry", actions.retry_one),
        ("/api/failed/{fid}/purge", actions.purge_one),
        ("/api/pause", actions.pause),
        ("/api/resume", actions.resume),
    ):
        r.add_post(path, _redis_errors(actions.guarded(post_handler)))


def _lifecycle(
    settings: PoolSettings, keys: Keys, *, redis: Redis | None, interval_s: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The dashboard's client and live feed, from the server's start to its cleanup."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        own = redis is None
        client = command_redis(settings) if redis is None else redis
        hub = Hub(client, keys, max_ebooks=settings.dashboard_max_ebooks, interval_s=interval_s)
        app[REDIS] = client
        app[HUB] = hub
        sampler = asyncio.create_task(hub.run())
        mode = (
            "actions need DASHBOARD_TOKEN"
            if settings.dashboard_token
            else "read-only: DASHBOARD_TOKEN is not set"
        )
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

    return lifecycle


async def _stop_streams(app: web.Application) -> None:
    if HUB in app:
        await app[HUB].stop()


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
            return json_response({"error": f"Redis unavailable ({type(exc).__name__})"}, status=503)
        except redis_errors.RedisError as exc:
            return json_response({"error": f"Redis error ({type(exc).__name__})"}, status=503)

    return wrapped
