"""The producer's side of the contract: enqueue an ebook, then read its status and pages.

This is what the Next.js app does (docs/contract.md), in Python, for `ebook-pool enqueue`,
`ebook-pool status`, the demo and the tests. Every key comes from `pool.keys.Keys`.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, TypedDict

from pydantic import ValidationError
from redis.asyncio import Redis

from pool.clock import now_ms
from pool.job import InvalidJob, PageJob
from pool.keys import Keys

__all__ = [
    "TERMINAL_STATES",
    "EbookExists",
    "EbookState",
    "EbookStatus",
    "build_jobs",
    "enqueue_ebook",
    "new_ebook_id",
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


class EbookExists(Exception):
    """The ebook id already has a status hash; enqueueing again would mix two books."""


def new_ebook_id() -> str:
    """A fresh id in the seed's shape: epoch milliseconds, a dash, six random characters."""
    alphabet = string.ascii_lowercase + string.digits
    return f"{now_ms()}-{''.join(random.choices(alphabet, k=6))}"


def build_jobs(
    *,
    ebook_id: str,
    title: str,
    pages: int | None = None,
    outline: Sequence[str] | None = None,
    topic: str | None = None,
    language: str | None = None,
    style: str | None = None,
    audience: str | None = None,
    instructions: str | None = None,
    model: str | None = None,
    target_words: int | None = None,
) -> list[PageJob]:
    """The page jobs of one ebook, validated against the contract.

    Args:
        pages: number of pages; may be left out when `outline` is given.
        outline: one heading per page; when given, page i gets `pageTitle = outline[i]`.

    Raises:
        InvalidJob: the pieces do not make a valid ebook (one line saying why).
    """
    headings = [h.strip() for h in outline] if outline is not None else None
    if headings is not None and not headings:
        raise InvalidJob("the outline is empty")
    if pages is None:
        if headings is None:
            raise InvalidJob("give the number of pages or an outline")
        pages = len(headings)
    if headings is not None and len(headings) != pages:
        raise InvalidJob(f"the outline has {len(headings)} entries but pages is {pages}")
    if pages < 1:
        raise InvalidJob(f"pages must be at least 1, not {pages}")
    fields: dict[str, Any] = {
        "ebook_id": ebook_id,
        "total_pages": pages,
        "title": title,
        "topic": topic,
        "outline": headings,
        "style": style,
        "audience": audience,
        "instructions": instructions,
        "model": model,
        "target_words": target_words,
    }
    if language is not None:
        fields["language"] = language
    fields = {k: v for k, v in fields.items() if v is not None}
    jobs = []
    for index in range(pages):
        page_title = headings[index] if headings is not None else None
        try:
            jobs.append(PageJob(page_index=index, page_title=page_title, **fields))
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"]) or "job"
            raise InvalidJob(f"{where}: {err['msg'].removeprefix('Value error, ')}") from None
    return jobs


async def enqueue_ebook(redis: Redis, keys: Keys, jobs: Sequence[PageJob]) -> None:
    """Write the ebook's status hash and push all its pages, in one MULTI/EXEC.

    The status fields are set with HSETNX, so this never overwrites what a pool wrote. The
    pages are pushed with one LPUSH in page order: the pool takes from the right end, so page 0
    comes out first.

    Raises:
        EbookExists: the ebook already has a status hash.
        ValueError: `jobs` is empty or mixes ebooks.
    """
    if not jobs:
        raise ValueError("no jobs to enqueue")
    ebook_id = jobs[0].ebook_id
    if any(j.ebook_id != ebook_id for j in jobs):
        raise ValueError("all jobs of one call must belong to the same ebook")
    status_key = keys.status(ebook_id)
    if await redis.exists(status_key):
        state = await redis.hget(status_key, "state")
        shown = state.decode() if isinstance(state, bytes) else state
        raise EbookExists(f"ebook {ebook_id} already exists (state: {shown or 'unknown'})")
    created = str(now_ms())
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hsetnx(status_key, "total", str(jobs[0].total_pages))
        pipe.hsetnx(status_key, "done", "0")
        pipe.hsetnx(status_key, "failed", "0")
        pipe.hsetnx(status_key, "state", EbookState.QUEUED.value)
        pipe.hsetnx(status_key, "createdAt", created)
        pipe.hsetnx(status_key, "updatedAt", created)
        pipe.lpush(keys.queue, *(job.to_wire() for job in jobs))
        await pipe.execute()


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


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None
