"""What the pool writes for the producer to read: a finished page (the failed entry lives in
`pool.deadletters`).

JSON with camelCase fields, described in docs/contract.md; this module is the one place that
builds a page record, and `json_bytes` is how every JSON value the pool stores is encoded.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from pool.generation import GeneratedPage
from pool.job import PageJob

__all__ = ["json_bytes", "page_record"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def json_bytes(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON, always encodable.

    Encoded by orjson; what it refuses goes through the standard library's encoder: a lone
    UTF-16 surrogate, which cannot be encoded in UTF-8 (Redis would never receive the
    command), and slipped into a string (an exception message, an odd API answer), is
    replaced with U+FFFD rather than failing the write; an integer over 64 bits (in a job's
    metadata) is written as it is.
    """
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        pass
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
    brief_sha: str = "",
    cache_hit: bool = False,
) -> bytes:
    """The JSON stored in the ebook's pages hash for one finished page.

    Args:
        brief_sha: SHA-1 of the job's brief as the claim script read it (idempotency).
        cache_hit: the page came from the result cache, not from a request.
    """
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
        "title": job.title,
    }
    if brief_sha:
        record["briefSha1"] = brief_sha
    if cache_hit:
        record["cacheHit"] = True
    if job.metadata is not None:
        record["metadata"] = job.metadata
    return json_bytes(record)
