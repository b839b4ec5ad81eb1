"""What the parts of one pool process share: its id, settings, store, Redis guard, events, tasks.

`PoolContext` is built once by `pool.worker.Pool` and handed to the claimer, the job runner,
the outcome writer and liveness, so none of them reaches into another.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from pool.config import PoolSettings
from pool.events import PoolEvents
from pool.generation import GenerationError
from pool.outage import RedisGuard
from pool.store import Store

__all__ = ["PoolContext", "Stopping", "cancel_all", "error_reason"]

T = TypeVar("T")


class Stopping(Exception):
    """Raised inside a worker when the pool stops during a wait that would outlast it."""


class PoolContext:
    """The collaborators every part of one pool process uses.

    Args:
        pool_id: this process's id in Redis.
        settings: the pool's settings.
        store: the queue operations.
        events: the process's event bus.
    """

    def __init__(
        self, *, pool_id: str, settings: PoolSettings, store: Store, events: PoolEvents
    ) -> None:
        self.id = pool_id
        self.settings = settings
        self.store = store
        self.events = events
        self.stopping = asyncio.Event()
        #: The one place that waits out Redis outages (see `pool.outage`).
        self.guard = RedisGuard(stopping=self.stopping)
        self.tasks: set[asyncio.Task[Any]] = set()
        #: Called with the epoch a job was claimed under when a write finds Redis lost its
        #: data, before the job is dropped (set by the Pool to Liveness.data_lost).
        self.data_lost: Callable[[bytes], Awaitable[None]] | None = None

    def spawn(self, coro: Awaitable[T]) -> asyncio.Task[T]:
        """Run `coro` as a task the pool cancels when it stops."""
        task: asyncio.Task[T] = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def sleep_or_stop(self, seconds: float) -> bool:
        """Sleep, but wake early when the pool stops. Returns True if it is stopping."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stopping.wait()
        return self.stopping.is_set()


async def cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel tasks and wait for them, cancelling again until they end.

    redis-py (seen with 8.1) sometimes swallows a CancelledError that lands while it reads a
    reply, and the task carries on; a single cancel() is not enough to stop a loop doing I/O.
    """
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.05)


def error_reason(exc: BaseException | None) -> str:
    """One line saying why `exc` happened, for logs and the failed list."""
    if exc is None:
        return "unknown error"
    if isinstance(exc, GenerationError):
        return exc.reason
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return text if text and name in text else (f"{name}: {text}" if text else name)
