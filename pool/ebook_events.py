"""Progress events for the app: each page's outcome and each ebook state change, in Redis.

`EbookEventPublisher` subscribes to the pool's event bus and, after the pool's own write has
landed (JOB_SUCCEEDED and JOB_FAILED are emitted only then; JOB_SKIPPED once the claim script
acknowledged a copy), appends the page's event to the ebook's capped stream `{prefix}:ebook:{id}:events` and publishes it on `{prefix}:events`. The
same script (`lua/publish_progress.lua`) reads the ebook's state and appends a state event when
the stream has not recorded it yet, and a finished ebook's state after its last page events;
EBOOK_STARTED announces `generating` when the first page starts. Formats: docs/contract.md,
"Progress events".

Why a subscriber and not the complete/fail scripts themselves: those are the hot path and the
contract's writers of record; the events are a notification beside them, and can be turned off
(PROGRESS_EVENTS) at no cost. Reading the state inside the publishing script keeps what matters
from atomicity: the stream's state events follow the real order of changes even with several
processes. The cost is a window (a crash between the page's write and its event, or Redis
failing in between) where an event is lost; the status hash stays the truth, and the next event
of the ebook carries its current state.

Publishing never slows a worker: events are queued in memory as tuples and sent as one script
call at a time (each event loop turn's events together, the JSON built in Lua); a failure is
logged once and those events are dropped, never retried and never fatal.
"""

from __future__ import annotations

import asyncio
import json

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from pool.clock import now_ms
from pool.events import EventKind, PoolEvent
from pool.keys import Keys
from pool.scripts import lua_source

__all__ = ["EbookEventPublisher"]

_MAX_PENDING = 100_000  # events queued while Redis is slow; beyond this, new ones are dropped
_MAX_BATCH = 500  # events per script call (a script blocks Redis while it runs)

_FIELD, _RECORD = "\x1f", "\x1e"  # separators of the script's one events argument
_NO_SEPARATORS = str.maketrans({_FIELD: " ", _RECORD: " "})


class EbookEventPublisher:
    """Publishes page and state events for one pool process; subscribe `on_event` to its bus.

    The events' JSON is built by the script (`lua/publish_progress.lua`), so a page costs this
    process one tuple, and a batch of pages one script call.

    Args:
        redis: the client to publish with (the pool's own is fine: one call at a time).
        keys: the key schema.
        pool_id: the pool process, named in each page event.
        maxlen: about how many events an ebook's stream keeps (PROGRESS_EVENTS_MAXLEN).
        ttl_ms: the stream expires this long after its last event (PROGRESS_EVENTS_TTL).
    """

    #: The events `on_event` publishes: subscribe it to these only.
    KINDS = (
        EventKind.JOB_SUCCEEDED,
        EventKind.JOB_FAILED,
        EventKind.JOB_SKIPPED,
        EventKind.EBOOK_STARTED,
    )

    def __init__(self, redis: Redis, *, keys: Keys, pool_id: str, maxlen: int, ttl_ms: int) -> None:
        self._redis = redis
        self._keys = keys
        self._maxlen = maxlen
        self._ttl_ms = ttl_ms
        self._pool_json = json.dumps(pool_id)
        self._script = redis.register_script(lua_source("publish_progress"))
        self._pending: list[tuple[str, str]] = []  # (ebook id, record)
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
            record = (
                f"s\x1f{job.page_index}\x1f{job.total_pages}\x1f{job.id}\x1f{event.attempt or ''}"
                f"\x1f{event.prompt_tokens or 0}\x1f{event.completion_tokens or 0}\x1f\x1f"
            )
        elif kind is EventKind.JOB_FAILED:
            reason = (event.reason or "").translate(_NO_SEPARATORS)
            record = (
                f"f\x1f{job.page_index}\x1f{job.total_pages}\x1f{job.id}\x1f{event.attempt or 0}"
                f"\x1f\x1f\x1f{reason}\x1f{event.error_type or ''}"
            )
        elif kind is EventKind.JOB_SKIPPED:  # acknowledged at claim: no attempt, no tokens
            reason = (event.reason or "").translate(_NO_SEPARATORS)
            record = (
                f"k\x1f{job.page_index}\x1f{job.total_pages}\x1f{job.id}\x1f\x1f\x1f"
                f"\x1f{reason}\x1f"
            )
        elif kind is EventKind.EBOOK_STARTED:
            record = "b\x1f0\x1f0\x1f\x1f\x1f\x1f\x1f\x1f"
        else:
            return
        if len(self._pending) >= _MAX_PENDING:
            self.dropped += 1
            return
        self._pending.append((job.ebook_id, record))
        if not self._scheduled and self._sending is None:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

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

    def _flush(self) -> None:
        self._scheduled = False
        if self._sending is not None or not self._pending:
            return
        batch, self._pending = self._pending, []
        self._sending = asyncio.ensure_future(self._send(batch))
        self._sending.add_done_callback(self._sent)

    def _sent(self, _: asyncio.Task[None]) -> None:
        self._sending = None
        if self._pending:  # queued while that call was out: the next one goes now
            self._flush()

    async def _send(self, batch: list[tuple[str, str]]) -> None:
        try:
            for start in range(0, len(batch), _MAX_BATCH):
                await self._call(batch[start : start + _MAX_BATCH])
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

    async def _call(self, batch: list[tuple[str, str]]) -> None:
        keys = self._keys
        script_keys: list[str] = []
        numbers: dict[str, int] = {}  # ebook id → its pair of keys, 1-based
        records = []
        for ebook_id, record in batch:
            number = numbers.get(ebook_id)
            if number is None:
                number = numbers[ebook_id] = len(numbers) + 1
                script_keys.append(keys.status(ebook_id))
                script_keys.append(keys.ebook_events(ebook_id))
            records.append(f"{number}{_FIELD}{ebook_id}{_FIELD}{record}")
        args: list[str | int] = [
            keys.events_channel, self._maxlen, self._ttl_ms, now_ms(), self._pool_json,
            _RECORD.join(records),
        ]  # fmt: skip
        try:
            await self._redis.evalsha(self._script.sha, len(script_keys), *script_keys, *args)
        except NoScriptError:  # a restarted Redis forgot the script
            await self._redis.script_load(self._script.script)
            await self._redis.evalsha(self._script.sha, len(script_keys), *script_keys, *args)
