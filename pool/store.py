"""The pool's Redis state, one class over three parts split by what they own.

- `pool.queue.QueueStore`: claim, start, complete, give back, release, reap; heartbeats.
- `pool.ebooks.EbookStore`: an ebook's status hash (the status format) and pages.
- `pool.deadletters.DeadLetterStore`: the failed list (the failed-entry format), retry, purge.

The Lua scripts they run live in `pool/lua/` and are loaded by `pool.scripts`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from pool.batch import ScriptBatcher
from pool.deadletters import DeadLetterStore, FailedEntry
from pool.ebooks import EbookStore
from pool.keys import Keys
from pool.queue import EpochChanged, QueueStore
from pool.scripts import Scripts

if TYPE_CHECKING:
    from pool.config import PoolSettings

__all__ = ["EpochChanged", "FailedEntry", "Store", "StoreLimits"]


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """The settings the scripts apply (issue 11): retention, the failed list's length, the
    in-flight marker's lifetime and the attempts a job has (the reaper counts deaths against
    them). The defaults keep everything, as a read-only client (the CLI) needs."""

    result_ttl_ms: int = 0
    failed_list_max: int = 0
    inflight_ttl_ms: int = 600_000
    max_attempts: int = 4
    #: `result_ttl_ms` as the scripts' argument, made once: redis-py passes bytes as they are.
    result_ttl_arg: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "result_ttl_arg", str(self.result_ttl_ms).encode())

    @classmethod
    def from_settings(cls, settings: PoolSettings) -> StoreLimits:
        """From `PoolSettings` (RESULT_TTL, FAILED_LIST_MAX, ...)."""
        return cls(
            result_ttl_ms=settings.result_ttl,
            failed_list_max=settings.failed_list_max,
            inflight_ttl_ms=settings.inflight_ttl_ms,
            max_attempts=settings.max_attempts,
        )


class Store(QueueStore, EbookStore, DeadLetterStore):
    """Atomic queue operations for one key prefix.

    Args:
        redis: a `redis.asyncio.Redis` (or a compatible fake) with `decode_responses=False`.
        keys: the key schema.
        limits: retention and the other limits the scripts apply.
    """

    def __init__(self, redis: Redis, keys: Keys, *, limits: StoreLimits | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.limits = limits or StoreLimits()
        self._inflight_parts = keys.parts(keys.inflight)
        self._admit_parts = [
            *keys.parts(keys.pages),
            *keys.parts(keys.status),
            *self._inflight_parts,
        ]
        self._batch = ScriptBatcher(redis)
        self._scripts = Scripts(redis)
