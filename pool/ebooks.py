"""An ebook's status hash and pages: the one Python module that knows the status format.

The Lua scripts (`pool/lua/*.lua`, `refresh_state` in particular) write the status hash; the
producer creates it with `initial_status`; everything that reads it goes through `read_status`.

Status hash fields: `total`, `done`, `failed` (counters), `state` (`EbookState`), and the
epoch-millisecond timestamps `createdAt`, `startedAt`, `updatedAt`, `finishedAt`; `skipped`
(copies acknowledged without a request) and the ledger (`LEDGER_FIELDS`, see `pool.ledger`),
absent until they are not zero.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, TypedDict

from redis.asyncio import Redis

from pool.batch import ScriptBatcher
from pool.keys import Keys
from pool.scripts import Scripts

__all__ = [
    "LEDGER_FIELDS",
    "TERMINAL_STATES",
    "EbookState",
    "EbookStatus",
    "EbookStore",
    "delete_ebook",
    "initial_status",
    "read_errors",
    "read_pages",
    "read_status",
    "read_statuses",
]


class EbookState(StrEnum):
    """The `state` field of an ebook's status hash (derived by the pool's Lua scripts)."""

    QUEUED = "queued"
    GENERATING = "generating"
    DONE = "done"
    FAILED = "failed"
    PARTIAL = "partial"


#: States after which no page of the ebook is pending (until a failed page is retried).
TERMINAL_STATES = frozenset({EbookState.DONE, EbookState.FAILED, EbookState.PARTIAL})


#: The ledger's fields in the status hash (written by complete.lua and fail.lua).
LEDGER_FIELDS = (
    "requests",
    "promptTokens",
    "completionTokens",
    "wastedTokens",
    "costUsd",
    "cacheHits",
    "cacheMisses",
    "tokensSaved",
)


class EbookLedger(TypedDict):
    """What an ebook cost (pool.ledger): the status hash's ledger fields, 0 when absent."""

    requests: int
    promptTokens: int
    completionTokens: int
    wastedTokens: int
    costUsd: float
    cacheHits: int
    cacheMisses: int
    tokensSaved: int


class EbookStatus(TypedDict):
    """An ebook's status hash, decoded: counters as ints, timestamps as epoch ms or None."""

    ebook_id: str
    state: str
    total: int
    done: int
    failed: int
    created_at: int | None
    started_at: int | None
    updated_at: int | None
    finished_at: int | None
    skipped: int
    ledger: EbookLedger


def initial_status(total: int, now_ms: int) -> dict[str, str]:
    """The fields a producer sets (with HSETNX) when it enqueues an ebook."""
    created = str(now_ms)
    return {
        "total": str(total),
        "done": "0",
        "failed": "0",
        "state": EbookState.QUEUED.value,
        "createdAt": created,
        "updatedAt": created,
    }


async def read_status(redis: Redis, keys: Keys, ebook_id: str) -> EbookStatus | None:
    """The ebook's status hash, or None if the ebook is unknown."""
    return _decode_status(ebook_id, await redis.hgetall(keys.status(ebook_id)))


async def read_statuses(
    redis: Redis, keys: Keys, ebook_ids: Sequence[str]
) -> dict[str, EbookStatus]:
    """Ebook id → status hash, in one round trip; unknown ebooks are left out."""
    if not ebook_ids:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for ebook_id in ebook_ids:
            pipe.hgetall(keys.status(ebook_id))
        raws = await pipe.execute()
    out = {}
    for ebook_id, raw in zip(ebook_ids, raws, strict=True):
        status = _decode_status(ebook_id, raw)
        if status is not None:
            out[ebook_id] = status
    return out


def _decode_status(ebook_id: str, raw: dict[Any, Any]) -> EbookStatus | None:
    if not raw:
        return None
    data = {_text(k): _text(v) for k, v in raw.items()}
    return EbookStatus(
        ebook_id=ebook_id,
        state=data.get("state", "unknown"),
        total=_int(data.get("total")) or 0,
        done=_int(data.get("done")) or 0,
        failed=_int(data.get("failed")) or 0,
        created_at=_int(data.get("createdAt")),
        started_at=_int(data.get("startedAt")),
        updated_at=_int(data.get("updatedAt")),
        finished_at=_int(data.get("finishedAt")),
        skipped=_int(data.get("skipped")) or 0,
        ledger=EbookLedger(
            requests=_int(data.get("requests")) or 0,
            promptTokens=_int(data.get("promptTokens")) or 0,
            completionTokens=_int(data.get("completionTokens")) or 0,
            wastedTokens=_int(data.get("wastedTokens")) or 0,
            costUsd=_float(data.get("costUsd")),
            cacheHits=_int(data.get("cacheHits")) or 0,
            cacheMisses=_int(data.get("cacheMisses")) or 0,
            tokensSaved=_int(data.get("tokensSaved")) or 0,
        ),
    )


async def read_pages(redis: Redis, keys: Keys, ebook_id: str) -> dict[int, dict[str, Any]]:
    """Page index → stored page record (JSON decoded), in page order."""
    raw = await redis.hgetall(keys.pages(ebook_id))
    pages = {int(_text(k)): json.loads(v) for k, v in raw.items()}
    return dict(sorted(pages.items()))


async def read_errors(redis: Redis, keys: Keys, ebook_id: str) -> dict[int, str]:
    """Page index → reason, for the pages of the ebook that failed for good."""
    raw = await redis.hgetall(keys.page_errors(ebook_id))
    return dict(sorted((int(_text(k)), _text(v)) for k, v in raw.items()))


async def delete_ebook(redis: Redis, keys: Keys, ebook_id: str) -> int:
    """Delete every key of the ebook (`Keys.ebook_keys`) and its progress-event stream (which
    expires on its own, PROGRESS_EVENTS_TTL); returns how many existed."""
    return int(await redis.delete(*keys.ebook_keys(ebook_id), keys.ebook_events(ebook_id)))


class EbookStore:
    """The ebook status operations of the pool (a part of `pool.store.Store`)."""

    redis: Redis
    keys: Keys
    _scripts: Scripts
    _batch: ScriptBatcher

    async def mark_started(self, *, ebook_id: str, total: int, now_ms: int, epoch: bytes) -> None:
        """Record that the ebook's first page started (its state becomes "generating")."""
        await self._batch.call(
            self._scripts.mark_started,
            [self.keys.status(ebook_id), self.keys.epoch],
            [total, now_ms, epoch],
        )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _float(value: str | None) -> float:
    try:
        return float(value) if value is not None else 0.0
    except ValueError:
        return 0.0
