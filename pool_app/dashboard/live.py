"""The dashboard's live feed: one sampler per server, fanned out to every `/events` stream.

The sampler reads Redis once a second. With nobody watching it only takes the cheap sample the
chart needs (queue depth, jobs in flight, pages per minute: one LLEN and the heartbeats), so the
chart has a history when someone opens the page; with a viewer it builds the whole overview,
re-listing the ebooks (a capped SCAN) at each sample on a small database, every few seconds on
a big one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from redis.asyncio import Redis

from pool.clock import monotonic, now_ms
from pool.keys import Keys
from pool.store import Store
from pool_app.dashboard.data import EbookList, list_ebooks, overview

__all__ = ["Hub"]

_HISTORY_POINTS = 600  # ten minutes at one sample a second
_EBOOK_LIST_EVERY_S = 5.0


class Hub:
    """Samples Redis on a timer and wakes the `/events` streams when a new snapshot is ready.

    Args:
        redis: the dashboard's client.
        keys: the key schema.
        max_ebooks: how many ebooks the overview lists.
        interval_s: between two samples.
    """

    def __init__(self, redis: Redis, keys: Keys, *, max_ebooks: int, interval_s: float) -> None:
        self.redis = redis
        self.keys = keys
        self.max_ebooks = max_ebooks
        self.interval_s = interval_s
        self.history: deque[list[float]] = deque(maxlen=_HISTORY_POINTS)
        self.latest: dict[str, Any] | None = None
        self.latest_at = 0.0
        self._latest_full = False
        self.version = 0
        self.viewers = 0
        self.stopping = False
        self._changed = asyncio.Condition()
        self._ebooks: EbookList | None = None
        self._ebooks_at = 0.0
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        """Sample until cancelled; a Redis error becomes an `error` snapshot, not a crash."""
        while not self.stopping:
            await self.tick()
            await asyncio.sleep(self.interval_s)

    async def tick(self, *, full: bool = False) -> None:
        """Take one sample (a whole snapshot when someone watches) and wake the streams."""
        async with self._lock:
            full = full or self.viewers > 0 or not self._latest_full
            try:
                snapshot = await (self._full() if full else self._light())
            except Exception as exc:  # Redis down or refusing: say so, keep sampling
                full = False
                snapshot = {"at": now_ms(), "error": f"Redis unavailable ({type(exc).__name__})"}
            else:
                self.history.append(
                    [snapshot["at"], snapshot["queueDepth"], snapshot["inFlight"],
                     snapshot["pagesPerMin"]]
                )  # fmt: skip
            snapshot["sample"] = self.history[-1] if self.history else None
            self.latest = snapshot
            self.latest_at = monotonic()
            self._latest_full = full
        async with self._changed:
            self.version += 1
            self._changed.notify_all()

    async def fresh(self) -> dict[str, Any]:
        """The latest whole snapshot, taken now if the last one is partial or stale."""
        stale = monotonic() - self.latest_at > 2 * self.interval_s
        if self.latest is None or not self._latest_full or stale:
            await self.tick(full=True)
        assert self.latest is not None
        return self.latest

    async def wait_newer(self, version: int, timeout_s: float) -> int:
        """Wait until a snapshot newer than `version` exists (or `timeout_s`); the version now."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.version > version or self.stopping),
                    timeout_s,
                )
            return self.version

    async def stop(self) -> None:
        """Make every stream end (the server is shutting down)."""
        self.stopping = True
        async with self._changed:
            self._changed.notify_all()

    async def _full(self) -> dict[str, Any]:
        # A small database (one SCAN call) is listed afresh each time; a big one every few s.
        ebooks = self._ebooks
        if (
            ebooks is None
            or ebooks.scan_calls <= 1
            or monotonic() - self._ebooks_at > _EBOOK_LIST_EVERY_S
        ):
            self._ebooks = await list_ebooks(self.redis, self.keys, limit=self.max_ebooks)
            self._ebooks_at = monotonic()
        return await overview(self.redis, self.keys, ebooks=self._ebooks)

    async def _light(self) -> dict[str, Any]:
        """Only what the chart needs; the rest of the last full snapshot is kept as it was."""
        store = Store(self.redis, self.keys)
        pools = await store.live_pools()
        depth = int(await self.redis.llen(self.keys.queue))
        rate = sum(
            float(p.get("pages_per_min") or 0)
            for p in pools.values()
            if isinstance(p.get("pages_per_min"), int | float)
        )
        base = dict(self.latest or {})
        base.update(
            at=now_ms(),
            queueDepth=depth,
            inFlight=await store.in_flight(list(pools)),
            pagesPerMin=round(rate, 2),
        )
        base.pop("error", None)
        return base
