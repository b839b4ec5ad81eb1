"""Redis clients, sized and timed for what each caller does with them.

Two redis-py 8 defaults do not fit the pool:

- `socket_timeout` of 5 s: the claimer blocks on BLMOVE for up to POLL_INTERVAL, and a read
  timeout shorter than that turns every idle poll into a connection error. We use
  `max(10, POLL_INTERVAL + 5 s)`.
- an asyncio pool of up to 100 connections that raises once they are all taken: the pool needs
  about `min(CONCURRENT_WORKERS, 64) + 4` (one blocking claimer, the heartbeat, the stats
  line, and one short script per busy worker). We use a `BlockingConnectionPool` of that size,
  so with more workers than connections a worker waits a moment for one instead of failing.
"""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from pool.config import PoolSettings

__all__ = ["command_redis", "pool_max_connections", "pool_redis", "pool_socket_timeout_s"]

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


def pool_redis(settings: PoolSettings) -> Redis:
    """The client of a pool process (`ebook-pool run`, the demo). The caller closes it."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=pool_max_connections(settings.concurrent_workers),
        timeout=_WAIT_FOR_CONNECTION_S,
        socket_timeout=pool_socket_timeout_s(settings),
        socket_connect_timeout=_CONNECT_TIMEOUT_S,
        health_check_interval=_HEALTH_CHECK_INTERVAL_S,
    )
    return Redis.from_pool(pool)


def command_redis(url: str) -> Redis:
    """A small client for one-shot commands (`status`, `stats`, `enqueue`...).

    It retries a failed connection once, so an unreachable Redis is reported within seconds.
    """
    return Redis.from_url(
        url,
        max_connections=4,
        socket_timeout=10.0,
        socket_connect_timeout=_CONNECT_TIMEOUT_S,
        retry=Retry(ExponentialWithJitterBackoff(base=0.2, cap=1.0), retries=1),
    )
