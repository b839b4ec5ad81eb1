"""The pool's Redis state, one class over three parts split by what they own.

- `pool.queue.QueueStore`: claim, start, complete, give back, release, reap; heartbeats.
- `pool.ebooks.EbookStore`: an ebook's status hash (the status format) and pages.
- `pool.deadletters.DeadLetterStore`: the failed list (the failed-entry format), retry, purge.

The Lua scripts they run live in `pool/lua/` and are loaded by `pool.scripts`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.asyncio import Redis

from pool.batch import ScriptBatcher
from pool.deadletters import DeadLetterStore, FailedEntry
from pool.ebooks import EbookStore
from pool.keys import Keys
from pool.limits import StoreLimits
from pool.queue import EpochChanged, QueueStore
from pool.scripts import Scripts

if TYPE_CHECKING:
    pass

__all__ = ["EpochChanged", "FailedEntry", "Store", "StoreLimits"]


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
