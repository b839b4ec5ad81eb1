"""The producer's side of the contract: enqueue an ebook, then read its status and pages.

This is what the Next.js app does (docs/contract.md), in Python, for `ebook-pool enqueue`,
`ebook-pool status`, the demo and the tests. Every key comes from `pool.keys.Keys`.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis

from pool.clock import now_ms
from pool.ebooks import (
    TERMINAL_STATES,
    EbookState,
    EbookStatus,
    initial_status,
    read_errors,
    read_pages,
    read_status,
)
from pool.job import OUTLINE_RADIUS, InvalidJob, PageJob
from pool.keys import Keys
from pool.shared import error_line

__all__ = [
    "TERMINAL_STATES",
    "EbookExists",
    "EbookState",
    "EbookStatus",
    "build_jobs",
    "enqueue_ebook",
    "new_ebook_id",
    "outline_window",
    "read_errors",
    "read_pages",
    "read_status",
]


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
        outline: one heading per page; when given, page i gets `pageTitle = outline[i]` and
            the window of the outline its prompt shows (`outline_window`), not the whole
            outline, so a job's size does not grow with the book.

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
        per_page: dict[str, Any] = {"page_index": index}
        if headings is not None:
            start, window = outline_window(headings, index)
            per_page |= {"page_title": headings[index], "outline": window}
            if start:
                per_page["outline_start"] = start
        try:
            jobs.append(PageJob(**per_page, **fields))
        except ValidationError as exc:
            raise InvalidJob(error_line(exc.errors(include_url=False)[0], subject="job")) from None
    return jobs


def outline_window(outline: Sequence[str], index: int) -> tuple[int, list[str]]:
    """The part of `outline` page `index` needs (OUTLINE_RADIUS entries each side) and where it
    starts: the job's `outlineStart` and `outline`."""
    start = max(0, index - OUTLINE_RADIUS)
    return start, list(outline[start : index + OUTLINE_RADIUS + 1])


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
        status = await read_status(redis, keys, ebook_id)
        shown = (status["state"] if status is not None else "") or "unknown"
        raise EbookExists(f"ebook {ebook_id} already exists (state: {shown})")
    async with redis.pipeline(transaction=True) as pipe:
        for field, value in initial_status(jobs[0].total_pages, now_ms()).items():
            pipe.hsetnx(status_key, field, value)
        pipe.lpush(keys.queue, *(job.to_wire() for job in jobs))
        await pipe.execute()
