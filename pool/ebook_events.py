"""Progress events for the app: each page's outcome and each ebook state change, in Redis.

`EbookEventPublisher` subscribes to the pool's event bus and, after the pool's own write has
landed (JOB_SUCCEEDED and JOB_FAILED are emitted only then), appends the page's event to the
ebook's capped stream `{prefix}:ebook:{id}:events` and publishes it on `{prefix}:events`. The
same script (`lua/publish_progress.lua`) reads the ebook's state and appends a state event when
it differs from the state the stream last recorded; EBOOK_STARTED runs it without a page event,
so `queued` → `generating` shows when the first page starts. Formats: docs/contract.md,
"Progress events".

Why a subscriber and not the complete/fail scripts themselves: those are the hot path, batched
for every page, and the contract's writers of record; the events are a notification beside
them. Reading the state inside the publishing script keeps what matters from atomicity: the
stream's state events follow the real order of changes even with several processes, and never
repeat a state. The cost is a window (a crash between the page's write and its event, or Redis
failing in between) where an event is lost; the status hash stays the truth, and the next event
of the ebook carries its current state.

Publishing never slows a worker: events are queued in memory and sent in one pipeline at a
time (each event loop turn's events together); a failure is logged once and those events are
dropped, never retried and never fatal.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from pool.clock import now_ms
from pool.events import EventKind, PoolEvent
from pool.job import PageJob
from pool.keys import Keys
from pool.records import json_bytes
from pool.scripts import lua_source

__all__ = ["EbookEventPublisher", "page_event"]

_MAX_PENDING = 100_000  # events queued while Redis is slow; beyond this, new ones are dropped


def page_event(
    job: PageJob,
    *,
    outcome: str,
    attempts: int | None,
    at_ms: int,
    pool_id: str,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    reason: str | None = None,
    error_type: str | None = None,
) -> bytes:
    """The JSON of one page's event (docs/contract.md, "Progress events")."""
    return json_bytes(
        {
            "v": 1,
            "type": "page",
            "ebookId": job.ebook_id,
            "pageIndex": job.page_index,
            "totalPages": job.total_pages,
            "jobId": job.id,
            "outcome": outcome,
            "attempts": attempts,
            "promptTokens": prompt_tokens,
            "completionTokens": completion_tokens,
            "reason": reason,
            "errorType": error_type,
            "at": at_ms,
            "poolId": pool_id,
        }
    )


class EbookEventPublisher:
    """Publishes page and state events for one pool process; subscribe `on_event` to its bus.

    Args:
        redis: the client to publish with (the pool's own is fine: one pipeline at a time).
        keys: the key schema.
        pool_id: the pool process, named in each page event.
        maxlen: about how many events an ebook's stream keeps (PROGRESS_EVENTS_MAXLEN).
        ttl_ms: the stream expires this long after its last event (PROGRESS_EVENTS_TTL).
    """

    def __init__(self, redis: Redis, *, keys: Keys, pool_id: str, maxlen: int, ttl_ms: int) -> None:
        self._redis = redis
        self._keys = keys
        self._pool_id = pool_id
        self._maxlen = maxlen
        self._ttl_ms = ttl_ms
        self._script = redis.register_script(lua_source("publish_progress"))
        self._pending: list[tuple[str, bytes]] = []  # (ebook id, page event JSON or b"")
        self._sending: asyncio.Task[None] | None = None
        self._scheduled = False
        self._failing = False
        self.dropped = 0  #: events lost to a failed send or a full queue

    def on_event(self, event: PoolEvent) -> None:
        """Queue the event a pool event calls for (a bus subscriber: quick, never raises)."""
        kind, job = event.kind, event.job
        if job is None:  # an invalid payload: no ebook to tell
            return
        if kind is EventKind.JOB_SUCCEEDED:
            data = page_event(
                job, outcome="succeeded", attempts=event.attempt, at_ms=now_ms(),
                pool_id=self._pool_id, prompt_tokens=event.prompt_tokens,
                completion_tokens=event.completion_tokens,
            )  # fmt: skip
        elif kind is EventKind.JOB_FAILED:
            data = page_event(
                job, outcome="failed", attempts=event.attempt, at_ms=now_ms(),
                pool_id=self._pool_id, reason=event.reason, error_type=event.error_type,
            )  # fmt: skip
        elif kind is EventKind.EBOOK_STARTED:
            data = b""
        else:
            return
        self._queue(job.ebook_id, data)

    async def drain(self, timeout_s: float) -> None:
        """Send what is queued, waiting up to `timeout_s` (call after the pool stopped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._pending or self._sending is not None:
            left = deadline - loop.time()
            if left <= 0:
                return
            if self._sending is None:
                self._flush()
            if self._sending is not None:
                await asyncio.wait({self._sending}, timeout=left)

    def _queue(self, ebook_id: str, data: bytes) -> None:
        if len(self._pending) >= _MAX_PENDING:
            self.dropped += 1
            return
        self._pending.append((ebook_id, data))
        if not self._scheduled and self._sending is None:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._sending is not None or not self._pending:
            return
        batch, self._pending = self._pending, []
        self._sending = asyncio.ensure_future(self._send(batch))
        self._sending.add_done_callback(self._sent)

    def _sent(self, _: asyncio.Task[None]) -> None:
        self._sending = None
        if self._pending:  # queued while that pipeline was out: the next one goes now
            self._flush()

    async def _send(self, batch: list[tuple[str, bytes]]) -> None:
        try:
            results = await self._execute(batch)
            if any(isinstance(r, NoScriptError) for r in results):  # a restarted Redis
                await self._redis.script_load(self._script.script)
                results = await self._execute(batch)
            errors = [r for r in results if isinstance(r, Exception)]
            if errors:
                raise errors[0]
        except Exception as exc:
            self.dropped += len(batch)
            if not self._failing:
                self._failing = True
                logger.warning(
                    f"[Worker Pool] Could not publish progress events ({type(exc).__name__}); "
                    "dropped them (the status hash is unaffected)"
                )
            return
        if self._failing:
            self._failing = False
            logger.info("[Worker Pool] Publishing progress events again")

    async def _execute(self, batch: list[tuple[str, bytes]]) -> list[Any]:
        keys, sha = self._keys, self._script.sha
        channel, maxlen, ttl_ms = keys.events_channel, self._maxlen, self._ttl_ms
        now = now_ms()
        async with self._redis.pipeline(transaction=False) as pipe:
            for ebook_id, data in batch:
                pipe.evalsha(
                    sha, 2, keys.status(ebook_id), keys.ebook_events(ebook_id),
                    channel, maxlen, ttl_ms, now, ebook_id, data,
                )  # fmt: skip
            return list(await pipe.execute(raise_on_error=False))
