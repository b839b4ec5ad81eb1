"""Redis clients, sized and timed for what each caller does with them.

Two redis-py 8 defaults do not fit the pool:

- `socket_timeout` of 5 s: the claimer blocks on BLMOVE for up to POLL_INTERVAL, and a read
  timeout shorter than that turns every idle poll into a connection error. We use
  `max(10, POLL_INTERVAL + 5 s)`.
- an asyncio pool of up to 100 connections that raises once they are all taken: the pool needs
  about `min(CONCURRENT_WORKERS, 64) + 4` (one blocking claimer, the heartbeat, the stats
  line, and one short script per busy worker). We use a `BlockingConnectionPool` of that size,
  so with more workers than connections a worker waits a moment for one instead of failing.

Both clients take REDIS_URL and then the TLS and password settings on top of it
(`redis_options`): REDIS_PASSWORD replaces the URL's password, REDIS_CA_CERT becomes
`ssl_ca_certs` (a path) or `ssl_ca_data` (PEM text), and REDIS_TLS_INSECURE turns certificate
and hostname checks off. What the URL's query says (`?ssl_ca_certs=...`) still applies unless a
setting replaces it; with no CA at all, the system's CAs (or SSL_CERT_FILE) are used.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import hiredis
from loguru import logger
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
    parse_url,
)
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from pool.config import PoolSettings

__all__ = [
    "command_redis",
    "pool_max_connections",
    "pool_redis",
    "pool_socket_timeout_s",
    "redis_options",
]

_CONNECT_TIMEOUT_S = 5.0
_HEALTH_CHECK_INTERVAL_S = 30
_SHARED_CONNECTIONS = 4  # claimer, heartbeat, stats, and one spare for shutdown
_MAX_WORKER_CONNECTIONS = 64
_WAIT_FOR_CONNECTION_S = 30.0


def pool_max_connections(concurrent_workers: int) -> int:
    """Connections a pool process with this many workers needs at most."""
    return min(concurrent_workers, _MAX_WORKER_CONNECTIONS) + _SHARED_CONNECTIONS


def pool_socket_timeout_s(settings: PoolSettings) -> float:
    """A read timeout that outlasts the claimer's blocking wait."""
    return max(10.0, settings.poll_interval_s + 5.0)


def redis_options(settings: PoolSettings) -> dict[str, Any]:
    """Connection options that REDIS_PASSWORD, REDIS_CA_CERT and REDIS_TLS_INSECURE add to the URL.

    The TLS ones only for a rediss:// URL (the settings refuse them with any other).
    """
    options: dict[str, Any] = {}
    if settings.redis_password is not None:
        options["password"] = settings.redis_password.get_secret_value()
    if urlsplit(settings.redis_url).scheme != "rediss":
        return options
    if settings.redis_ca_path is not None:
        options["ssl_ca_certs"] = settings.redis_ca_path
    if settings.redis_ca_pem is not None:
        options["ssl_ca_data"] = settings.redis_ca_pem
    if settings.redis_tls_insecure:
        options["ssl_cert_reqs"] = "none"
        options["ssl_check_hostname"] = False
    return options


class _HiredisPacking(AbstractConnection):
    """Commands encoded by hiredis (C) instead of redis-py's Python encoder.

    redis-py's asyncio connection packs every argument in Python: for the pool's scripts
    (some twenty arguments a page) that was a fifth of a no-op page's CPU. The bytes on the
    wire are the same; any argument hiredis does not take (a memoryview, a bool, a str that
    is not valid UTF-8) goes through redis-py's own packer, which raises its usual error.
    """

    def pack_command(self, *args: Any) -> list[bytes]:
        head = args[0]
        if isinstance(head, str) and " " in head:  # "CONFIG GET": the words go separately
            args = (*head.split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except (TypeError, UnicodeError):
            return super().pack_command(*args)


class _FastConnection(_HiredisPacking, Connection):
    pass


class _FastSSLConnection(_HiredisPacking, SSLConnection):
    pass


class _FastUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


_FAST = {
    Connection: _FastConnection,
    SSLConnection: _FastSSLConnection,
    UnixDomainSocketConnection: _FastUnixConnection,
}


def _connection_kwargs(settings: PoolSettings, **defaults: Any) -> dict[str, Any]:
    """`defaults`, then what the URL says, then the settings: the later one wins.

    With the default UTF-8 encoding, commands are packed by hiredis (`_HiredisPacking`).
    """
    kwargs = {**defaults, **parse_url(settings.redis_url), **redis_options(settings)}
    kind = kwargs.get("connection_class", Connection)
    if kind in _FAST and kwargs.get("encoding", "utf-8").lower().replace("_", "-") in (
        "utf-8",
        "utf8",
    ):
        kwargs["connection_class"] = _FAST[kind]
    return kwargs


def pool_redis(settings: PoolSettings) -> Redis:
    """The client of a pool process (`ebook-pool run`, the demo). The caller closes it.

    Logs a WARNING when REDIS_TLS_INSECURE turns certificate verification off.
    """
    if settings.redis_tls_insecure:
        logger.warning(
            "[Worker Pool] REDIS_TLS_INSECURE is on: the Redis server's TLS certificate is not "
            "verified, so the connection is encrypted but not authenticated."
        )
    pool = BlockingConnectionPool(
        **_connection_kwargs(
            settings,
            max_connections=pool_max_connections(settings.concurrent_workers),
            timeout=_WAIT_FOR_CONNECTION_S,
            socket_timeout=pool_socket_timeout_s(settings),
            socket_connect_timeout=_CONNECT_TIMEOUT_S,
            health_check_interval=_HEALTH_CHECK_INTERVAL_S,
        )
    )
    return Redis.from_pool(pool)


def command_redis(settings: PoolSettings) -> Redis:
    """A small client for one-shot commands (`status`, `stats`, `enqueue`...).

    It retries a failed connection once, so an unreachable Redis is reported within seconds.
    """
    pool = ConnectionPool(
        **_connection_kwargs(
            settings,
            max_connections=4,
            socket_timeout=10.0,
            socket_connect_timeout=_CONNECT_TIMEOUT_S,
            retry=Retry(ExponentialWithJitterBackoff(base=0.2, cap=1.0), retries=1),
        )
    )
    return Redis.from_pool(pool)
