"""The dashboard's read-only routes: the HTML pages, their assets, the JSON data and the feed.

`DashboardPages` holds what every page needs (the key schema, whether actions are on, the
templates and assets, loaded once); the Redis client and the live feed's `Hub` come from the
application (`common.REDIS`, `common.HUB`), set when the server starts.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from importlib import resources
from string import Template
from typing import cast

from aiohttp import web
from pydantic import SecretStr

from pool.ebooks import read_status
from pool.keys import Keys
from pool.store import Store
from pool_app.dashboard.common import (
    EBOOK_ID,
    FAILED_ID,
    HUB,
    READ_ONLY_WHY,
    REDIS,
    ebook_id_param,
    json_response,
)
from pool_app.dashboard.data import (
    ebook_detail,
    ebook_row,
    failed_row,
    find_failed,
    overview,
)
from pool_app.dashboard.render import ebook_body, ebook_live, failed_body
from pool_app.export import Format, read_book, render

__all__ = ["DashboardPages"]

_KEEPALIVE_S = 15.0
_ASSET_TYPES = {".css": "text/css", ".js": "text/javascript"}
_EXPORT_TYPES: dict[Format, str] = {
    "md": "text/markdown",
    "html": "text/html",
    "epub": "application/epub+zip",
}


class DashboardPages:
    """One method per read-only route (GET), each an aiohttp handler.

    Args:
        keys: the key schema.
        token: DASHBOARD_TOKEN; None shows the pages read-only.
        max_ebooks: how many ebooks the overview lists.
    """

    def __init__(self, keys: Keys, *, token: SecretStr | None, max_ebooks: int) -> None:
        self._keys = keys
        self._read_only = token is None
        self._max_ebooks = max_ebooks
        self._assets = _load_assets()
        self._templates = {
            name: Template(_read(f"templates/{name}.html")) for name in ("layout", "overview")
        }

    def _page(self, *, title: str, name: str, body: str, **attrs: str) -> web.Response:
        """`body` inside the layout; `attrs` become `data-*` attributes for the page's script."""
        extra = " ".join(f'data-{k}="{html.escape(v)}"' for k, v in attrs.items())
        text = self._templates["layout"].substitute(
            title=html.escape(title),
            page=name,
            readonly="1" if self._read_only else "0",
            readonly_why=html.escape(READ_ONLY_WHY),
            attrs=extra,
            token_disabled="disabled" if self._read_only else "",
            token_state="read-only" if self._read_only else "",
            body=body,
        )
        return web.Response(text=text, content_type="text/html")

    # --- pages ----------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        """`GET /`: the overview (filled in by the page's script from `/events`)."""
        return self._page(
            title="Overview", name="overview", body=self._templates["overview"].substitute()
        )

    async def ebook_page(self, request: web.Request) -> web.Response:
        """`GET /ebook?id=ID`: one ebook's progress, failures and pages."""
        ebook_id = ebook_id_param(request)
        detail = await ebook_detail(request.app[REDIS], self._keys, ebook_id)
        if detail is None:
            raise web.HTTPNotFound(
                text=f"Unknown ebook {ebook_id}: it has no status hash.", content_type="text/plain"
            )
        body = ebook_body(ebook_id, detail)
        return self._page(title=f"Ebook {ebook_id}", name="ebook", body=body, ebook=ebook_id)

    async def ebook_fragment(self, request: web.Request) -> web.Response:
        """`GET /ebook/fragment?id=ID`: the live part of the ebook page, re-rendered."""
        ebook_id = ebook_id_param(request)
        detail = await ebook_detail(request.app[REDIS], self._keys, ebook_id)
        if detail is None:
            raise web.HTTPNotFound(text="unknown ebook", content_type="text/plain")
        return web.Response(text=ebook_live(ebook_id, detail), content_type="text/html")

    async def ebook_export(self, request: web.Request) -> web.Response:
        """`GET /ebook/export.{md,html,epub}?id=ID`: the ebook as a file to download."""
        ebook_id = ebook_id_param(request)
        fmt = cast(Format, request.path.rsplit(".", 1)[1])
        book = await read_book(request.app[REDIS], self._keys, ebook_id)
        if book is None:
            raise web.HTTPNotFound(text="unknown ebook", content_type="text/plain")
        filename = re.sub(r"[^A-Za-z0-9_.-]", "_", ebook_id) + f".{fmt}"
        return web.Response(
            body=await asyncio.to_thread(render, book, fmt),  # an EPUB is zipped: off the loop
            content_type=_EXPORT_TYPES[fmt],
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    async def failed_page(self, request: web.Request) -> web.Response:
        """`GET /failed/{fid}`: one failed job, with retry and purge."""
        fid = request.match_info["fid"]
        entry = (
            await find_failed(Store(request.app[REDIS], self._keys), fid)
            if FAILED_ID.match(fid)
            else None
        )
        if entry is None:
            body = (
                '<p><a href="/">← overview</a></p><h1>Failed job</h1><p class="empty">'
                "This job is not in the failed list any more: it was retried or purged.</p>"
            )
            return self._page(title="Failed job", name="failed", body=body, fid=fid)
        row = failed_row(entry, full=True)
        return self._page(title="Failed job", name="failed", body=failed_body(row), fid=row["id"])

    async def asset(self, request: web.Request) -> web.Response:
        """`GET /assets/{name}`: the stylesheet and the script."""
        name = request.match_info["name"]
        if name not in self._assets:
            raise web.HTTPNotFound()
        text, ctype = self._assets[name]
        return web.Response(text=text, content_type=ctype, headers={"Cache-Control": "no-cache"})

    # --- data -----------------------------------------------------------------------------

    async def api_overview(self, request: web.Request) -> web.Response:
        """`GET /api/overview`: the overview as JSON."""
        data = await overview(request.app[REDIS], self._keys, max_ebooks=self._max_ebooks)
        data["readOnly"] = self._read_only
        return json_response(data)

    async def api_ebook(self, request: web.Request) -> web.Response:
        """`GET /api/ebook?id=ID`: one ebook as JSON."""
        detail = await ebook_detail(request.app[REDIS], self._keys, ebook_id_param(request))
        if detail is None:
            return json_response({"error": "unknown ebook"}, status=404)
        return json_response(detail)

    async def api_failed(self, request: web.Request) -> web.Response:
        """`GET /api/failed/{fid}`: one failed job as JSON."""
        fid = request.match_info["fid"]
        entry = (
            await find_failed(Store(request.app[REDIS], self._keys), fid)
            if FAILED_ID.match(fid)
            else None
        )
        if entry is None:
            return json_response(
                {"error": "not in the failed list (retried or purged)"}, status=404
            )
        return json_response(failed_row(entry, full=True))

    async def events(self, request: web.Request) -> web.StreamResponse:
        """`GET /events[?ebook=ID]`: server-sent events, a snapshot each time the hub has one.

        The first event also carries the chart's history; `?ebook=ID` adds that ebook's row.
        A comment line keeps the stream open while nothing changes.
        """
        ebook_id = request.query.get("ebook")
        if ebook_id is not None and not EBOOK_ID.match(ebook_id):
            raise web.HTTPBadRequest(text="bad ebook id", content_type="text/plain")
        hub = request.app[HUB]
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
                data["readOnly"] = self._read_only
                if first:
                    data["history"] = list(hub.history)
                    first = False
                if ebook_id is not None and "error" not in data:
                    status = await read_status(request.app[REDIS], self._keys, ebook_id)
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


def _read(name: str) -> str:
    return resources.files("pool_app.dashboard").joinpath(name).read_text(encoding="utf-8")


def _load_assets() -> dict[str, tuple[str, str]]:
    out = {}
    for name in ("dashboard.css", "dashboard.js"):
        suffix = name[name.rindex(".") :]
        out[name] = (_read(f"static/{name}"), _ASSET_TYPES[suffix])
    return out
