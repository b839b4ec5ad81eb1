"""Dead letters: the failed-entry format, and listing, retrying and purging the failed list.

This module is the one place that knows a failed entry's fields (docs/contract.md): the pool
builds entries with `failed_entry`, the `fail.lua` script stores them, and every Python reader
(the CLI, reports) goes through `FailedEntry`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from redis.asyncio import Redis

from pool.batch import ScriptBatcher
from pool.job import JobIds, PageJob
from pool.keys import Keys
from pool.queue import Ticket
from pool.records import json_bytes
from pool.scripts import LOST, Scripts
from pool.usage import NO_USAGE

if TYPE_CHECKING:
    from pool.limits import StoreLimits
    from pool.usage import JobUsage

__all__ = [
    "PAYLOAD_PREFIX_BYTES",
    "DeadLetterStore",
    "FailedEntry",
    "FailureKind",
    "decode_failed",
    "failed_entry",
]

#: Why a job is in the failed list: it broke the contract, the model cannot do it as written,
#: every attempt failed, or handling it crashed the pool twice.
FailureKind = Literal["invalid", "fatal", "exhausted", "poison"]

#: How much of an oversized payload (over MAX_JOB_BYTES) the failed entry keeps.
PAYLOAD_PREFIX_BYTES = 1024


def failed_entry(
    raw: bytes,
    job: PageJob | None,
    *,
    reason: str,
    kind: FailureKind,
    attempts: int,
    now_ms: int,
    pool_id: str,
    max_bytes: int,
    ids: JobIds | None = None,
) -> dict[str, Any]:
    """A dead letter: the payload, why it failed, and the job's ids when they are known.

    The payload is kept losslessly: as text in `payload` when it is valid UTF-8, else in
    `payloadBase64`. One over `max_bytes` (MAX_JOB_BYTES) keeps only its first
    `PAYLOAD_PREFIX_BYTES` bytes and says so with `payloadTruncated`; `payloadBytes` and
    `payloadSha256` always describe the whole payload.

    Args:
        ids: for a payload that is not a valid job, the ids that could still be read, so the
            failure shows in that ebook's status.
    """
    truncated = len(raw) > max_bytes
    kept = raw[:PAYLOAD_PREFIX_BYTES] if truncated else raw
    entry: dict[str, Any] = {}
    try:
        entry["payload"] = kept.decode("utf-8")
    except UnicodeDecodeError:
        if truncated:  # maybe only the cut split a character
            try:
                raw.decode("utf-8")
                entry["payload"] = kept.decode("utf-8", "ignore")
            except UnicodeDecodeError:
                pass
        if "payload" not in entry:
            entry["payloadBase64"] = base64.b64encode(kept).decode("ascii")
    entry |= {
        "payloadBytes": len(raw),
        "payloadSha256": hashlib.sha256(raw).hexdigest(),
        "error": reason,
        "errorType": kind,
        "attempts": attempts,
        "failedAt": now_ms,
        "poolId": pool_id,
    }
    if truncated:
        entry["payloadTruncated"] = True
    if job is not None:
        entry |= {
            "jobId": job.id,
            "ebookId": job.ebook_id,
            "pageIndex": job.page_index,
            "totalPages": job.total_pages,
        }
    elif ids is not None and ids.ebook_id is not None:
        entry["ebookId"] = ids.ebook_id
        if ids.page_index is not None and ids.total_pages is not None:
            entry |= {"pageIndex": ids.page_index, "totalPages": ids.total_pages}
    return entry


@dataclass(frozen=True, slots=True)
class FailedEntry:
    """One dead letter, as stored in the failed list (JSON) and decoded for the CLI."""

    raw: bytes
    data: dict[str, Any]

    @property
    def job_bytes(self) -> bytes | None:
        """The exact payload the producer pushed, or None if the entry kept only a prefix."""
        if self.data.get("payloadTruncated"):
            return None
        text = self.data.get("payload")
        if isinstance(text, str):
            return text.encode()
        encoded = self.data.get("payloadBase64")
        if isinstance(encoded, str):
            try:
                return base64.b64decode(encoded, validate=True)
            except ValueError:
                return None
        return None

    @property
    def ebook_id(self) -> str | None:
        value = self.data.get("ebookId")
        return value if isinstance(value, str) else None

    @property
    def page_index(self) -> int | None:
        value = self.data.get("pageIndex")
        return value if isinstance(value, int) else None

    @property
    def error(self) -> str:
        return str(self.data.get("error", ""))

    @property
    def error_type(self) -> str:
        return str(self.data.get("errorType", "?"))

    @property
    def attempts(self) -> Any:
        return self.data.get("attempts")

    @property
    def failed_at(self) -> Any:
        return self.data.get("failedAt")


def decode_failed(raw: bytes) -> FailedEntry:
    """One stored failed entry (an unreadable one keeps its bytes as the payload)."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = {"payload": raw.decode(errors="replace"), "error": "unreadable entry"}
    return FailedEntry(raw=raw, data=data if isinstance(data, dict) else {})


class DeadLetterStore:
    """The failed list's operations (a part of `pool.store.Store`)."""

    redis: Redis
    keys: Keys
    limits: StoreLimits
    _scripts: Scripts
    _batch: ScriptBatcher

    async def fail(
        self,
        pool_id: str,
        raw: bytes,
        *,
        entry: dict[str, Any],
        now_ms: int,
        epoch: bytes,
        with_status: bool = True,
        ticket: Ticket = b"",
        usage: JobUsage | None = None,
    ) -> bool:
        """Move a job to the failed list with `entry` (which says why), and count it.

        The entry's `ebookId`, `pageIndex`, `totalPages` and `error` are used when present (and
        `with_status`), so the ebook's status shows the failed page and `usage` lands in its
        ledger. The failed list keeps its newest FAILED_LIST_MAX entries. Returns False if the
        job was claimed before Redis lost its data (nothing written).

        Args:
            ticket: what the claim learnt of the job (its in-flight marker is released).
            usage: what the job's attempts cost, for the ebook's ledger.
        """
        keys = [
            self.keys.epoch,
            self.keys.processing(pool_id),
            self.keys.failed,
            self.keys.attempts,
            self.keys.crashes,
            self.keys.deaths,
        ]
        ebook_id = entry.get("ebookId")
        page_index = entry.get("pageIndex")
        total = entry.get("totalPages")
        if (
            with_status
            and isinstance(ebook_id, str)
            and isinstance(page_index, int)
            and isinstance(total, int)
        ):
            keys += [
                self.keys.status(ebook_id),
                self.keys.page_errors(ebook_id),
                self.keys.pages(ebook_id),
            ]
        else:
            page_index, total = "", ""
        limits = self.limits
        args = [
            raw, json_bytes(entry), page_index, entry.get("error", ""), total, now_ms, epoch,
            ticket, limits.failed_list_max, limits.result_ttl_arg,
            usage.argv() if usage else NO_USAGE,
        ]  # fmt: skip
        done = await self._batch.call(self._scripts.fail, keys, args)
        return bool(done != LOST)

    async def failed_count(self) -> int:
        """How many entries the failed list holds."""
        return int(await self.redis.llen(self.keys.failed))

    async def failed(self, start: int = 0, stop: int = -1) -> list[FailedEntry]:
        """Failed entries, newest first."""
        items = await self.redis.lrange(self.keys.failed, start, stop)
        return [decode_failed(_bytes(item)) for item in items]

    async def retry_failed(self, entry: FailedEntry, *, now_ms: int) -> bool:
        """Put a failed job back on the queue (once, even if two operators retry at the same time)."""
        payload = entry.job_bytes
        if payload is None:
            return False
        keys = [self.keys.failed, self.keys.queue]
        ebook_id, page_index = entry.ebook_id, entry.page_index
        if ebook_id is not None and page_index is not None:
            keys += [
                self.keys.page_errors(ebook_id),
                self.keys.status(ebook_id),
                self.keys.pages(ebook_id),
            ]
        done = await self._scripts.retry_failed(
            keys=keys,
            args=[entry.raw, payload, "" if page_index is None else page_index, now_ms],
        )
        return bool(done)

    async def purge_failed(self, entries: Sequence[FailedEntry] | None = None) -> int:
        """Delete the given failed entries (all if None). Returns how many were deleted."""
        if entries is None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.llen(self.keys.failed)
                pipe.delete(self.keys.failed)
                n, _ = await pipe.execute()
            return int(n)
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.lrem(self.keys.failed, 1, cast(str, entry.raw))
            return sum(await pipe.execute())


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
