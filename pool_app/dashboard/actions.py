"""The dashboard's actions (`POST /api/...`): retry, purge, pause, resume, and who may ask.

An action needs DASHBOARD_TOKEN in an `X-Dashboard-Token` header (compared in constant time),
a JSON body and a same-origin request; without a token set, every action is refused
(`guarded`). Each action done is logged with the address that asked for it.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from loguru import logger
from pydantic import SecretStr

from pool.clock import now_ms
from pool.control import pause_pool, read_operator_pause, resume_pool
from pool.keys import Keys
from pool.store import Store
from pool_app.dashboard.common import (
    READ_ONLY_WHY,
    REDIS,
    TOKEN_HEADER,
    Handler,
    json_response,
)
from pool_app.dashboard.data import failed_row, find_failed

__all__ = ["DashboardActions"]

_GONE = "not in the failed list (retried or purged)"


class DashboardActions:
    """One method per action route, each an aiohttp handler; wrap each in `guarded`.

    Args:
        keys: the key schema.
        token: DASHBOARD_TOKEN; None refuses every action (read-only dashboard).
    """

    def __init__(self, keys: Keys, *, token: SecretStr | None) -> None:
        self._keys = keys
        self._token = token

    def guarded(self, action: Handler) -> Handler:
        """`action`, run only for a same-origin JSON request with the right token."""

        async def handler(request: web.Request) -> web.StreamResponse:
            refused = _refuse(request, self._token)
            if refused is not None:
                return refused
            return await action(request)

        return handler

    async def auth(self, request: web.Request) -> web.Response:
        """`POST /api/auth`: whether the token is right (the guard answers when it is not)."""
        return json_response({"ok": True})

    async def retry_one(self, request: web.Request) -> web.Response:
        """`POST /api/failed/{fid}/retry`: one failed job back on the queue."""
        store = Store(request.app[REDIS], self._keys)
        entry = await find_failed(store, request.match_info["fid"])
        if entry is None:
            return json_response({"error": _GONE}, status=404)
        row = failed_row(entry)
        if not row["retryable"]:
            return json_response(
                {"error": "an invalid or truncated payload would fail again: fix the producer"},
                status=409,
            )
        if not await store.retry_failed(entry, now_ms=now_ms()):
            return json_response({"error": "someone else retried or purged it first"}, status=409)
        _audit(request, f"retried failed job {row['id']} ({_where(row)})")
        return json_response({"ok": True, "message": f"Put {_where(row)} back on the queue."})

    async def purge_one(self, request: web.Request) -> web.Response:
        """`POST /api/failed/{fid}/purge`: one failed job deleted."""
        store = Store(request.app[REDIS], self._keys)
        entry = await find_failed(store, request.match_info["fid"])
        if entry is None:
            return json_response({"error": _GONE}, status=404)
        n = await store.purge_failed([entry])
        row = failed_row(entry)
        _audit(request, f"purged failed job {row['id']} ({_where(row)})")
        return json_response({"ok": True, "message": f"Deleted {n} failed job."})

    async def retry_all(self, request: web.Request) -> web.Response:
        """`POST /api/failed/retry-all`: every retryable failed job back on the queue."""
        store = Store(request.app[REDIS], self._keys)
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
        return json_response(
            {"ok": True, "message": message, "retried": retried, "skipped": skipped}
        )

    async def purge_all(self, request: web.Request) -> web.Response:
        """`POST /api/failed/purge-all`: the failed list emptied."""
        n = await Store(request.app[REDIS], self._keys).purge_failed(None)
        _audit(request, f"purged all {n} failed jobs")
        return json_response({"ok": True, "message": f"Deleted {n} failed jobs.", "purged": n})

    async def pause(self, request: web.Request) -> web.Response:
        """`POST /api/pause` (`{"reason": ...}`): the operator's pause flag set."""
        body = await _body(request)
        reason = body.get("reason") if isinstance(body.get("reason"), str) else ""
        flag = await pause_pool(request.app[REDIS], self._keys, str(reason), now_ms=now_ms())
        _audit(request, f"paused the pool: {flag['reason']}")
        return json_response(
            {"ok": True, "message": f"Pool paused: {flag['reason']}", "pause": flag}
        )

    async def resume(self, request: web.Request) -> web.Response:
        """`POST /api/resume`: the operator's pause flag cleared."""
        redis = request.app[REDIS]
        was = await read_operator_pause(redis, self._keys)
        await resume_pool(redis, self._keys)
        if was is not None:
            _audit(request, f"resumed the pool (was: {was['reason']})")
        return json_response(
            {"ok": True, "message": "Pool resumed." if was else "It was not paused."}
        )


def _refuse(request: web.Request, token: SecretStr | None) -> web.Response | None:
    """Why this action request is refused (a response to send), or None to let it through."""
    if token is None:
        return json_response({"error": READ_ONLY_WHY}, status=403)
    if not _same_origin(request):
        return json_response({"error": "cross-site request refused"}, status=403)
    if request.content_type != "application/json":
        return json_response(
            {"error": "send the action as JSON (Content-Type: application/json)"}, 415
        )
    given = request.headers.get(TOKEN_HEADER, "")
    if not given:
        return json_response(
            {"error": "this action needs the operator token (DASHBOARD_TOKEN)"}, status=401
        )
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        return json_response({"error": "wrong operator token"}, status=403)
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


def _audit(request: web.Request, what: str) -> None:
    logger.info(f"[Dashboard] {what} (from {request.remote})")


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _where(row: dict[str, Any]) -> str:
    if row.get("ebookId") is None:
        return "a job of an unknown ebook"
    page = row.get("pageIndex")
    return f"ebook {row['ebookId']} page {'?' if page is None else page + 1}"
