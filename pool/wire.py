"""Every record on the wire between the pool and its producers, as pydantic models.

One module, one model per record: the page job (`pool.job.PageJob`), the page record, the
status hash, the failed entry, the progress event and the `ebook-pool stats --json` report.
`ebook-pool schema --all` prints `wire_schemas()`, the `schemas/` folder holds the same JSON
Schemas (kept in sync by a test), and the TypeScript client's zod schemas are generated from
that folder, so Python and TypeScript cannot drift.

Rules every record follows (docs/contract.md):

- Field names are camelCase.
- An optional field that is absent or `null` is unset: the pool accepts `null` in a job as
  "not given", and writes `null` only where a field is documented "or null".
- A reader ignores fields it does not know: every record the pool writes allows additional
  properties, so adding a field is not a breaking change. Only the page job, which the pool
  reads, rejects unknown fields (a typo must not silently drop part of a brief).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from pydantic.alias_generators import to_camel

from pool.job import CONTRACT_VERSION, ID_PATTERN, PageJob

__all__ = [
    "SCHEMA_DIALECT",
    "WIRE_MODELS",
    "EbookStatusHash",
    "FailedEntryRecord",
    "LedgerTotals",
    "PageEvent",
    "PageJob",
    "PageRecord",
    "PoolSnapshot",
    "PoolStats",
    "ProgressEvent",
    "StateEvent",
    "job_schema",
    "schema_files",
    "wire_schemas",
]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_Id = Annotated[str, Field(pattern=ID_PATTERN)]
_Count = Annotated[int, Field(strict=True, ge=0)]
_EpochMs = Annotated[int, Field(strict=True, ge=0, description="Epoch milliseconds.")]
# Status hash values are strings: counters and times as decimal digits.
_Digits = Annotated[str, Field(pattern=r"^[0-9]+$")]
_Decimal = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$")]
_Usd = Annotated[float, Field(ge=0)]
EbookStateName = Literal["queued", "generating", "done", "failed", "partial"]
FailureKindName = Literal["invalid", "fatal", "exhausted", "poison"]


class _Record(BaseModel):
    """A record the pool writes: camelCase, extra fields allowed (readers ignore them)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class PageRecord(_Record):
    """One stored page: a value of the `{prefix}:ebook:{ebookId}:pages` hash (JSON)."""

    v: Annotated[int, Field(strict=True, ge=1, le=CONTRACT_VERSION)] = Field(
        description="Record version."
    )
    job_id: _Id = Field(description="The job's id.")
    ebook_id: _Id = Field(description="The ebook's id.")
    page_index: Annotated[int, Field(strict=True, ge=0, le=9_999)] = Field(
        description="The page's index (the field of the pages hash, as a decimal string)."
    )
    page_title: str | None = Field(description="The job's pageTitle, or null if it had none.")
    content: Annotated[str, Field(min_length=1)] = Field(description="The page, Markdown.")
    model: str = Field(description="The model that wrote it, as the API reported it.")
    finish_reason: str = Field(description="The API's finish reason, normally 'stop'.")
    prompt_tokens: _Count = Field(description="Prompt tokens (0 if the API did not say).")
    completion_tokens: _Count = Field(description="Completion tokens (0 if the API did not say).")
    attempts: Annotated[int, Field(strict=True, ge=1)] = Field(
        description="Attempts it took, 1 = first try."
    )
    duration_ms: _Count = Field(description="From the first attempt's start to the page.")
    generated_at: _EpochMs = Field(description="When it was stored, epoch ms.")
    pool_id: str = Field(description="The pool process that wrote it.")
    title: str | None = Field(default=None, description="The ebook's title, as the job gave it.")
    brief_sha1: Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")] | None = Field(
        default=None,
        description="SHA-1 of the job's brief (idempotency: a copy with the same jobId and brief "
        "is skipped).",
    )
    cache_hit: bool | None = Field(
        default=None, description="True when the page came from the result cache (CACHE_TTL)."
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="The job's metadata, only if it had one."
    )


class EbookStatusHash(_Record):
    """The `{prefix}:ebook:{ebookId}:status` hash as stored: every value is a string."""

    total: _Digits = Field(description="Pages in the ebook (totalPages).")
    done: _Digits | None = Field(default=None, description="Pages stored (each index once).")
    failed: _Digits | None = Field(default=None, description="Pages that failed for good.")
    state: EbookStateName | None = Field(
        default=None, description="Derived by the pool; done, failed and partial are terminal."
    )
    created_at: _Digits | None = Field(default=None, description="Epoch ms of the enqueue.")
    started_at: _Digits | None = Field(default=None, description="Epoch ms of the first attempt.")
    updated_at: _Digits | None = Field(default=None, description="Epoch ms of the last change.")
    finished_at: _Digits | None = Field(
        default=None, description="Epoch ms the state last became terminal; absent while pending."
    )
    # The ledger (docs/contract.md, "The ledger"): each field absent until it is not zero.
    skipped: _Digits | None = Field(
        default=None, description="Copies of a job acknowledged without an API request."
    )
    requests: _Digits | None = Field(default=None, description="API requests made, failed too.")
    prompt_tokens: _Digits | None = Field(
        default=None, description="Prompt tokens of the requests that wrote a stored page."
    )
    completion_tokens: _Digits | None = Field(
        default=None, description="Completion tokens of the requests that wrote a stored page."
    )
    wasted_tokens: _Digits | None = Field(
        default=None, description="Tokens billed for requests that gave no page."
    )
    cost_usd: _Decimal | None = Field(
        default=None, description="All of the above at the pool's prices, US dollars."
    )
    cache_hits: _Digits | None = Field(default=None, description="Pages from the result cache.")
    cache_misses: _Digits | None = Field(default=None, description="Result cache misses.")
    tokens_saved: _Digits | None = Field(
        default=None, description="Tokens the result cache's hits would have cost."
    )


class FailedEntryRecord(_Record):
    """One dead letter: an entry of the `{prefix}:failed` list (JSON), newest first."""

    model_config = ConfigDict(title="FailedEntry")

    payload: str | None = Field(
        default=None, description="The exact payload pushed, as text, when it is valid UTF-8."
    )
    payload_base64: str | None = Field(
        default=None, description="Instead of payload when the bytes are not UTF-8: base64."
    )
    payload_bytes: _Count = Field(description="Size of the whole payload in bytes.")
    payload_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] = Field(
        description="Hex SHA-256 of the whole payload's bytes."
    )
    payload_truncated: bool | None = Field(
        default=None,
        description="True when the payload was over MAX_JOB_BYTES and only its start is kept.",
    )
    error: str = Field(description="One-line reason.")
    error_type: FailureKindName = Field(description="Why: invalid, fatal, exhausted or poison.")
    attempts: _Count = Field(description="Attempts made (0 for invalid).")
    failed_at: _EpochMs = Field(description="When it failed, epoch ms.")
    pool_id: str = Field(description="The pool process that gave up.")
    job_id: str | None = Field(default=None, description="When known.")
    ebook_id: _Id | None = Field(default=None, description="When known (readable and valid).")
    page_index: Annotated[int, Field(strict=True)] | None = Field(
        default=None,
        description="When known; for an invalid job it may be out of range (it still counts).",
    )
    total_pages: Annotated[int, Field(strict=True, ge=1, le=10_000)] | None = Field(
        default=None, description="When known."
    )


class PageEvent(_Record):
    """A page's outcome, in `{prefix}:ebook:{ebookId}:events` (the `data` field, JSON) and on
    `{prefix}:events` (with one more field, `id`: the stream id)."""

    v: Annotated[int, Field(strict=True, ge=1)] = Field(description="Event version (1).")
    type: Literal["page"] = Field(description="A page event.")
    ebook_id: _Id = Field(description="The job's ebookId.")
    page_index: Annotated[int, Field(strict=True)] = Field(description="The job's pageIndex.")
    total_pages: Annotated[int, Field(strict=True, ge=1, le=10_000)] = Field(
        description="The job's totalPages."
    )
    job_id: _Id = Field(description="The job's id.")
    outcome: Literal["succeeded", "failed", "skipped"] = Field(
        description=(
            "succeeded: stored in the pages hash; failed: in the failed list and the errors "
            "hash; skipped: already stored."
        )
    )
    attempts: _Count = Field(description="Attempts it took (0 for an invalid job).")
    prompt_tokens: _Count | None = Field(
        description="Prompt tokens of the request that wrote the page; null when it failed."
    )
    completion_tokens: _Count | None = Field(
        description="Completion tokens of the request that wrote the page; null when it failed."
    )
    reason: str | None = Field(description="Why it failed, one line; null otherwise.")
    error_type: FailureKindName | None = Field(
        description="invalid, fatal, exhausted or poison when it failed; null otherwise."
    )
    at: _EpochMs = Field(description="When it was published, epoch ms.")
    pool_id: str = Field(description="The pool process that published it.")


class StateEvent(_Record):
    """An ebook's state as announced on its events stream (and on `{prefix}:events`)."""

    v: Annotated[int, Field(strict=True, ge=1)] = Field(description="Event version (1).")
    type: Literal["state"] = Field(description="A state event.")
    ebook_id: _Id = Field(description="The ebook.")
    state: EbookStateName = Field(description="generating, done, failed or partial.")
    previous: EbookStateName | None = Field(
        description="The state announced before it on this stream (null on the first)."
    )
    total: _Count = Field(description="The status hash's total when it was read.")
    done: _Count = Field(description="The status hash's done when it was read.")
    failed: _Count = Field(description="The status hash's failed when it was read.")
    at: _EpochMs = Field(description="When it was published, epoch ms.")


class ProgressEvent(RootModel[Annotated[PageEvent | StateEvent, Field(discriminator="type")]]):
    """A progress event (docs/contract.md, section 8): a page's outcome or an ebook's state,
    the `data` of an entry of `{prefix}:ebook:{ebookId}:events`."""


class PoolSnapshot(_Record):
    """One live pool process in `ebook-pool stats --json` (its last heartbeat)."""

    id: str = Field(description="Pool id.")
    host: str | None = None
    pid: int | None = None
    workers: _Count | None = None
    active: _Count | None = None
    processed: _Count | None = None
    success: _Count | None = None
    failed: _Count | None = None
    pages_per_min: float | None = None
    p50_seconds: float | None = Field(default=None, description="Median page time.")
    p95_seconds: float | None = None
    uptime_seconds: float | None = None
    paused: str | None = Field(default=None, description="Why it is paused, null if it is not.")
    at: _EpochMs | None = Field(default=None, description="When it sent this heartbeat.")
    # The process's ledger since it started (pool.ledger.LedgerStats).
    requests: _Count | None = Field(default=None, description="API requests, failed ones too.")
    prompt_tokens: _Count | None = None
    completion_tokens: _Count | None = None
    wasted_tokens: _Count | None = Field(
        default=None, description="Tokens billed for requests that gave no page."
    )
    cost_usd: _Usd | None = Field(default=None, description="US dollars at the pool's prices.")
    skipped: _Count | None = Field(default=None, description="Copies acknowledged, no request.")
    cache_hits: _Count | None = None
    cache_misses: _Count | None = None
    tokens_saved: _Count | None = None


class LedgerTotals(_Record):
    """The live pool processes' ledgers added up (`ebook-pool stats`)."""

    requests: _Count
    prompt_tokens: _Count
    completion_tokens: _Count
    wasted_tokens: _Count
    cost_usd: _Usd
    skipped: _Count
    cache_hits: _Count
    cache_misses: _Count
    tokens_saved: _Count


class PoolStats(_Record):
    """The output of `ebook-pool stats --json`."""

    queue_depth: _Count = Field(description="Jobs waiting in the queue.")
    in_flight: _Count = Field(description="Jobs claimed by a pool process and not finished.")
    failed: _Count = Field(description="Entries in the failed list.")
    ledger: LedgerTotals | None = Field(
        default=None, description="The live processes' ledgers added up, since they started."
    )
    pools: list[PoolSnapshot] = Field(description="Live pool processes.")


#: Schema name → model: the names are the type names of the generated clients.
WIRE_MODELS: dict[str, type[BaseModel]] = {
    "PageJob": PageJob,
    "PageRecord": PageRecord,
    "EbookStatusHash": EbookStatusHash,
    "FailedEntry": FailedEntryRecord,
    "ProgressEvent": ProgressEvent,
    "PoolStats": PoolStats,
}

_NULL_NOTE = (
    "Optional fields: absent and null both mean unset. Readers ignore properties they do not "
    "know (a record the pool writes may gain fields)."
)
_COMMENTS = {
    "PageJob": (
        "The pool also enforces what JSON Schema cannot say: pageIndex < totalPages; strings "
        "are trimmed before the length limits apply; the payload is at most MAX_JOB_BYTES "
        "(65536 by default) UTF-8 bytes, no duplicate keys, nested at most 32 levels. "
        "Optional fields: absent and null both mean unset. Unknown fields are rejected."
    ),
    "ProgressEvent": (
        "Tell the two kinds apart by `type`. Every field is always present: one documented "
        "'or null' is null when it does not apply. Readers ignore properties they do not know "
        "(an event may gain fields); on the {prefix}:events channel each event has one more, "
        "`id`, its stream id."
    ),
}


def wire_schemas() -> dict[str, dict[str, Any]]:
    """Schema name → JSON Schema (draft 2020-12) of every wire record, camelCase."""
    out = {}
    for name, model in WIRE_MODELS.items():
        schema = model.model_json_schema(by_alias=True, mode="validation")
        _drop_property_titles(schema)
        out[name] = {
            "$schema": SCHEMA_DIALECT,
            "$id": f"https://ebook-pool.dev/schemas/v{CONTRACT_VERSION}/{name}.json",
            **schema,
            "title": name,
            "$comment": _COMMENTS.get(name, _NULL_NOTE),
            "x-contract-version": CONTRACT_VERSION,
        }
    return out


def schema_files(schemas: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
    """File name → text of the `schemas/` folder: one `<Name>.json` per wire record."""
    schemas = wire_schemas() if schemas is None else schemas
    return {
        f"{name}.json": json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        for name, schema in schemas.items()
    }


def _drop_property_titles(node: Any) -> None:
    """Remove pydantic's per-property titles ("Jobid"): generators turn them into type names."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for prop in props.values():
                if isinstance(prop, dict):
                    prop.pop("title", None)
        for value in node.values():
            _drop_property_titles(value)
    elif isinstance(node, list):
        for value in node:
            _drop_property_titles(value)


def job_schema() -> dict[str, Any]:
    """The JSON Schema of a page job as a producer writes it (camelCase)."""
    return wire_schemas()["PageJob"]
