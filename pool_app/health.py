"""The pool process's HTTP surface: `/healthz` and `/readyz` for Railway and load balancers.

Served by `ebook-pool run` on `$PORT` when it is set (Railway sets it) or on `HTTP_PORT`, and
not at all otherwise. Neither endpoint shows a secret: only the pool id, the state and reasons.

- `GET /healthz`: 200 while the process and its event loop answer. This is what Railway's
  deploy health check calls: a pool paused on a bad API key is still a healthy deployment.
- `GET /readyz`: 200 when Redis answers a PING (within a second) and the pool is not paused;
  else 503 with the reason in JSON, e.g. `{"ready": false, "reason": "paused: ..."}`.

With `settings` given and DASHBOARD_ENABLED true, the same server also serves the dashboard at
`/` (see `pool_app.dashboard`); with `metrics` given, Prometheus `/metrics` (`pool_app.metrics`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from aiohttp import web
from loguru import logger
from redis.asyncio import Redis

from pool.config import PoolSettings
from pool_app.dashboard import add_dashboard
from pool_app.metrics import PoolMetrics, add_metrics_route

__all__ = ["PoolState", "health_app", "serving"]

_PING_TIMEOUT_S = 1.0


class PoolState(Protocol):
    """What the endpoints read of a running pool."""

    id: str

    @property
    def paused(self) -> bool: ...

    @property
    def pause_reason(self) -> str | None: ...


def health_app(
    pool: PoolState,
    redis: Redis,
    *,
    settings: PoolSettings | None = None,
    metrics: PoolMetrics | None = None,
) -> web.Application:
    """The aiohttp application with `/healthz` and `/readyz` for `pool`, the dashboard
    when `settings` are given and enable it, and `/metrics` when `metrics` are given."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "poolId": pool.id})

    async def readyz(_: web.Request) -> web.Response:
        reason: str | None = None
        try:
            await asyncio.wait_for(redis.ping(), _PING_TIMEOUT_S)
        except Exception as exc:  # any failure to answer means "not ready", never a 500
            reason = f"redis unreachable: {type(exc).__name__}"
        if reason is None and pool.paused:
            reason = f"paused: {pool.pause_reason}"
        body = {"ready": reason is None, "poolId": pool.id}
        if reason is not None:
            body["reason"] = reason
        return web.json_response(body, status=200 if reason is None else 503)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if settings is not None and settings.dashboard_enabled:
        add_dashboard(app, settings)
    if metrics is not None:
        add_metrics_route(app, metrics)
    return app


@asynccontextmanager
async def serving(
    app: web.Application, *, host: str, port: int, what: str = "/healthz and /readyz"
) -> AsyncIterator[int]:
    """Serve `app` on host:port while the block runs; yields the port (useful with port 0).

    `what` names what is served, in the log line.
    """
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = site._server  # aiohttp exposes the bound sockets only here
    if port == 0 and server is not None:
        sockets = getattr(server, "sockets", None) or []
        bound = int(sockets[0].getsockname()[1]) if sockets else port
    logger.info(f"[Worker Pool] HTTP: {what} on http://{host}:{bound}")
    try:
        yield bound
    finally:
        await runner.cleanup()
