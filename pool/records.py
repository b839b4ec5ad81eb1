"""What the pool writes for the producer to read: a finished page and a failed-job entry.

Both are JSON with camelCase fields, described in docs/contract.md; this module is the one
place that builds them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any, Literal

from pool.generation import GeneratedPage
from pool.job import JobIds, PageJob

__all__ = ["PAYLOAD_PREFIX_BYTES", "FailureKind", "failed_entry", "json_bytes", "page_record"]

#: Why a job is in the failed list: it broke the contract, the model cannot do it as written,
#: every attempt failed, or handling it crashed the pool twice.
FailureKind = Literal["invalid", "fatal", "exhausted", "poison"]

#: How much of an oversized payload (over MAX_JOB_BYTES) the failed entry keeps.
PAYLOAD_PREFIX_BYTES = 1024

_SURROGATE = re.compile("[\ud800-\udfff]")


def json_bytes(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON, always encodable.

    A lone UTF-16 surrogate cannot be encoded in UTF-8 (Redis would never receive the
    command); one that slipped into a string (an exception message, an odd API answer) is
    replaced with U+FFFD rather than failing the write.
    """
    try:
        return json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(_scrub(value), ensure_ascii=False).encode()


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def page_record(
    job: PageJob,
    page: GeneratedPage,
    *,
    attempts: int,
    duration_s: float,
    now_ms: int,
    pool_id: str,
) -> bytes:
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
    return json_bytes(record)


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
