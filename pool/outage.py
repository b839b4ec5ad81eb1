"""Redis going away, told apart from a bug, and from a setting that will not fix itself.

Every Redis call the pool makes goes through one of three answers:

- `wait_reason(exc)` is not None: Redis cannot serve us *for now* (unreachable, restarting,
  loading its data, out of memory, a read-only replica after a failover, unable to persist).
  The pool waits with backoff, says so in one line, repeats that line every
  `_REPEAT_EVERY_S` while it lasts, and says when Redis is back. Nothing is dropped.
- `fatal_reason(exc)` is not None: Redis refuses us in a way only an operator can fix (a wrong
  password, no password, a TLS certificate that does not verify, a server that is not Redis).
  At start-up `ebook-pool run` stops with that one line and exit code 2.
- neither: a bug (or a payload that breaks a script); the caller handles it as such.

`RedisGuard` is the one place that waits out outages; the pool's loops and writes use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from loguru import logger
from redis import exceptions as redis_errors

from pool.clock import monotonic

__all__ = ["RedisConfigError", "RedisGuard", "fatal_reason", "wait_reason"]

T = TypeVar("T")

_REPEAT_EVERY_S = 30.0

# Error replies that mean "not now". redis-py turns some into their own classes (and strips
# the code from the message); the others stay ResponseErrors whose text starts with the code.
_WAIT_CLASSES: tuple[tuple[type[Exception], str], ...] = (
    (redis_errors.OutOfMemoryError, "Redis is out of memory (OOM: maxmemory reached)"),
    (redis_errors.ReadOnlyError, "Redis is a read-only replica (READONLY), e.g. after a failover"),
    (redis_errors.BusyLoadingError, "Redis is loading its data set into memory (LOADING)"),
    (redis_errors.MasterDownError, "Redis's primary is down (MASTERDOWN)"),
    (redis_errors.ClusterDownError, "the Redis cluster is down (CLUSTERDOWN)"),
    (redis_errors.TryAgainError, "Redis asked to try again (TRYAGAIN)"),
)
_WAIT_CODES = (
    ("MISCONF", "Redis cannot save to disk (MISCONF) and refuses writes until it can"),
    ("BUSY", "Redis is busy running a script (BUSY)"),
    ("OOM", "Redis is out of memory (OOM: maxmemory reached)"),
    ("READONLY", "Redis is a read-only replica (READONLY), e.g. after a failover"),
    ("LOADING", "Redis is loading its data set into memory (LOADING)"),
)


class RedisConfigError(Exception):
    """Redis refuses this process in a way that will not fix itself; the message is one line."""


def fatal_reason(exc: BaseException) -> str | None:
    """One line saying why Redis will never accept us as configured, or None."""
    text = _one_line(exc)
    if isinstance(exc, redis_errors.AuthenticationError) or text.startswith(
        ("WRONGPASS", "NOAUTH", "invalid password", "invalid username-password")
    ):
        if "NOAUTH" in text or "Authentication required" in text or "HELLO must be" in text:
            return (
                "Redis requires a password and none was given: put it in REDIS_URL "
                "(redis://:PASSWORD@host:port) or REDIS_PASSWORD"
            )
        return "Redis refused the password: check the one in REDIS_URL or REDIS_PASSWORD"
    if isinstance(exc, redis_errors.AuthorizationError | redis_errors.NoPermissionError):
        return f"the Redis user may not run the commands the pool needs: {text}"
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return (
            "Redis's TLS certificate did not verify: set REDIS_CA_CERT to the CA that signed it "
            "(a path or the PEM text), or REDIS_TLS_INSECURE=true to skip verification"
        )
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return "the server at REDIS_URL does not speak TLS: use redis:// instead of rediss://"
    if isinstance(exc, redis_errors.InvalidResponse) or "Protocol error" in text:
        return f"the server at REDIS_URL does not speak the Redis protocol ({text})"
    return None


def wait_reason(exc: BaseException) -> str | None:
    """One line saying why Redis cannot serve us for now, or None if waiting will not help."""
    if fatal_reason(exc) is not None:
        return None
    for cls, meaning in _WAIT_CLASSES:
        if isinstance(exc, cls):
            return meaning
    text = _one_line(exc)
    if isinstance(exc, redis_errors.ResponseError):
        for code, meaning in _WAIT_CODES:
            if text.startswith(code):
                return meaning
        return None
    if isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError | OSError):
        return f"Redis is unreachable ({text})"
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return first or type(exc).__name__


class RedisGuard:
    """Waits out Redis outages for one process, and keeps its log about them to a few lines.

    Args:
        stopping: set when the process stops; start-up waits end early then.
    """

    def __init__(self, *, stopping: asyncio.Event) -> None:
        self._stopping = stopping
        self.down_since: float | None = None
        self._reason = ""
        self._said_at = 0.0
        self.up_since = monotonic()
        #: Once set (at shutdown), `persist` stops waiting past this monotonic time.
        self.give_up_at: float | None = None
        #: Called once when an outage starts, and once each time Redis answers again after one.
        self.on_down: list[Callable[[], None]] = []
        self.on_back: list[Callable[[], None]] = []

    @property
    def up(self) -> bool:
        return self.down_since is None

    async def persist(self, op: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run a Redis call, waiting out outages; gives up (re-raises) only past `give_up_at`.

        Raises:
            Exception: what `op` raised, if it is not an outage (a bug, a refused write).
        """
        backoff = 0.1
        while True:
            try:
                result = await op(*args, **kwargs)
            except Exception as exc:
                if wait_reason(exc) is None or (
                    self.give_up_at is not None and monotonic() > self.give_up_at
                ):
                    raise
                await self.failed(exc, backoff)
                backoff = min(backoff * 2, 5.0)
            else:
                self.ok()
                return result

    async def until_up(self, op: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Like `persist`, for start-up: a stop request ends the wait (re-raising the error).

        Raises:
            RedisConfigError: Redis refuses us for a reason waiting cannot fix.
        """
        backoff = 0.5
        while True:
            try:
                result = await op(*args)
            except Exception as exc:
                fatal = fatal_reason(exc)
                if fatal is not None:
                    raise RedisConfigError(fatal) from None
                if wait_reason(exc) is None:
                    raise
                await self.failed(exc, backoff)
                if self._stopping.is_set():
                    raise
                backoff = min(backoff * 2, 10.0)
            else:
                self.ok()
                return result

    async def failed(self, exc: BaseException, backoff: float = 1.0) -> None:
        """Note an outage (one line now, another every half minute), then sleep `backoff`."""
        now = monotonic()
        reason = wait_reason(exc) or fatal_reason(exc) or _one_line(exc)
        if self.down_since is None:
            self.down_since = now
            self._said_at = now
            self._reason = reason
            logger.error(f"[Worker Pool] Redis unavailable: {reason}; retrying with backoff")
            for callback in self.on_down:
                callback()
        elif now - self._said_at >= _REPEAT_EVERY_S:
            self._said_at = now
            self._reason = reason
            logger.bind(down_s=round(now - self.down_since, 1)).error(
                f"[Worker Pool] Still waiting for Redis after {now - self.down_since:.0f}s: "
                f"{reason}"
            )
        await asyncio.sleep(backoff)

    def ok(self) -> None:
        """Note that Redis answered; says so once if it had been down."""
        if self.down_since is None:
            return
        now = monotonic()
        down_s = now - self.down_since
        logger.bind(down_s=round(down_s, 1)).info(
            f"[Worker Pool] Redis is back after {down_s:.1f}s"
        )
        self.down_since = None
        self.up_since = now
        for callback in self.on_back:
            callback()
