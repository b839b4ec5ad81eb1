"""What the pool writes for the producer to read: a finished page and a failed-job entry.

Both are JSON with camelCase fields, described in docs/contract.md; this module is the one
place that builds them.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pool.generation import GeneratedPage
from pool.job import PageJob

__all__ = ["FailureKind", "failed_entry", "page_record"]

#: Why a job is in the failed list: it broke the contract, the model cannot do it as written,
#: or every attempt failed.
FailureKind = Literal["invalid", "fatal", "exhausted"]


def page_record(
    job: PageJob,
    page: GeneratedPage,
    *,
    attempts: int,
    duration_s: float,
    now_ms: int,
    pool_id: str,
) -> str:
    """The JSON stored in the ebook's pages hash for one finished page."""
    record: dict[str, Any] = {
        "v": 1,
        "jobId": job.id,
        "ebookId": job.ebook_id,
        "pageIndex": job.page_index,
        "pageTitle": job.page_title,
        "content": page.content,
        "model": page.model,
        "finishReason": page.finish_reason,
        "promptTokens": page.prompt_tokens,
        "completionTokens": page.completion_tokens,
        "attempts": attempts,
        "durationMs": round(duration_s * 1000),
        "generatedAt": now_ms,
        "poolId": pool_id,
    }
    if job.metadata is not None:
        record["metadata"] = job.metadata
    return json.dumps(record, ensure_ascii=False)


def failed_entry(
    raw: bytes,
    job: PageJob | None,
    *,
    reason: str,
    kind: FailureKind,
    attempts: int,
    now_ms: int,
    pool_id: str,
) -> dict[str, Any]:
    """A dead letter: the exact payload, why it failed, and the job's ids when they are known.

    For a payload that is not a valid job, the ids that can still be read are kept, so the
    failure shows in that ebook's status.
    """
    entry: dict[str, Any] = {
        "payload": raw.decode(errors="replace"),
        "error": reason,
        "errorType": kind,
        "attempts": attempts,
        "failedAt": now_ms,
        "poolId": pool_id,
    }
    if job is not None:
        entry |= {
            "jobId": job.id,
            "ebookId": job.ebook_id,
            "pageIndex": job.page_index,
            "totalPages": job.total_pages,
        }
    else:
        entry |= _salvage_ids(raw)
    return entry


def _salvage_ids(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    out: dict[str, Any] = {}
    ebook, index, total = data.get("ebookId"), data.get("pageIndex"), data.get("totalPages")
    if isinstance(ebook, str) and ebook and len(ebook) <= 200:
        out["ebookId"] = ebook
        if isinstance(index, int) and isinstance(total, int) and 0 <= index < total <= 10_000:
            out |= {"pageIndex": index, "totalPages": total}
    return out
