"""Private redis-server processes for the tests (never a shared one): the app's one launcher."""

from __future__ import annotations

from pool_app.redis_server import RedisServer, free_port

__all__ = ["RedisServer", "free_port"]
