"""What the dashboard's pages, feeds and actions share: app keys, ids, JSON responses."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from pool.job import ID_PATTERN
from pool_app.dashboard.live import Hub

__all__ = [
    "EBOOK_ID",
    "FAILED_ID",
    "HUB",
    "READ_ONLY_WHY",
    "REDIS",
    "TOKEN_HEADER",
    "Handler",
    "ebook_id_param",
    "json_response",
]

TOKEN_HEADER = "X-Dashboard-Token"
READ_ONLY_WHY = (
    "Read-only: DASHBOARD_TOKEN is not set on this server, so retry, purge and pause are off."
)
EBOOK_ID = re.compile(ID_PATTERN)
FAILED_ID = re.compile(r"^[0-9a-f]{20}$")

# Set by the dashboard's start-up (`pool_app.dashboard.app`): the client and the live feed.
REDIS = web.AppKey("dashboard_redis", Redis)
HUB = web.AppKey("dashboard_hub", Hub)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200) -> web.Response:
    """`data` as JSON, non-ASCII text kept as is."""
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


def ebook_id_param(request: web.Request) -> str:
    """The `?id=` of an ebook request; 400 unless it is a valid ebook id."""
    ebook_id = request.query.get("id", "")
    if not EBOOK_ID.match(ebook_id):
        raise web.HTTPBadRequest(
            text="bad or missing ebook id (?id=...)", content_type="text/plain"
        )
    return ebook_id
