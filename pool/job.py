"""The page job: the wire contract between the producer (the Next.js app) and the pool.

One JSON object per page, camelCase, LPUSHed onto the queue list. `PageJob` is the single
source of truth: `ebook-pool schema` prints its JSON Schema, and `decode_job` is the only place
a raw payload becomes a job.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

__all__ = ["CONTRACT_VERSION", "InvalidJob", "PageJob", "decode_job", "job_schema"]

#: Bumped when a change to the wire format would break an existing producer or reader.
CONTRACT_VERSION = 1

_Id = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\s]+$")]
_Text = Annotated[str, Field(max_length=20_000)]


class PageJob(BaseModel):
    """One page of one ebook to be written.

    Field names on the wire are camelCase (`ebookId`); Python code uses snake_case.
    Unknown fields are rejected so that a producer's typo does not silently drop a brief.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
    )

    v: int = Field(
        default=CONTRACT_VERSION,
        ge=1,
        le=CONTRACT_VERSION,
        description="Contract version the producer wrote; defaults to the current one.",
    )
    job_id: _Id | None = Field(
        default=None,
        description="Unique id of this page job. Defaults to 'ebookId:pageIndex'.",
    )
    ebook_id: _Id = Field(description="Id of the ebook this page belongs to.")
    page_index: int = Field(ge=0, le=9_999, description="0-based index of the page.")
    total_pages: int = Field(ge=1, le=10_000, description="Number of pages in the ebook.")
    title: Annotated[str, Field(min_length=1, max_length=500)] = Field(
        description="Title of the ebook."
    )
    topic: _Text | None = Field(
        default=None, description="What the whole ebook is about (a sentence or a paragraph)."
    )
    page_title: Annotated[str, Field(max_length=500)] | None = Field(
        default=None, description="Heading of this page: its entry in the outline."
    )
    outline: list[Annotated[str, Field(max_length=500)]] | None = Field(
        default=None,
        max_length=10_000,
        description="The whole book's outline, one entry per page, so a page knows its neighbours.",
    )
    instructions: _Text | None = Field(
        default=None, description="Extra instructions for this page (what to cover, examples)."
    )
    language: Annotated[str, Field(min_length=2, max_length=50)] = Field(
        default="English", description="Language to write in, e.g. 'English' or 'pt-BR'."
    )
    style: Annotated[str, Field(max_length=500)] | None = Field(
        default=None, description="Tone and style, e.g. 'friendly, practical'."
    )
    audience: Annotated[str, Field(max_length=500)] | None = Field(
        default=None, description="Who the book is for."
    )
    target_words: int | None = Field(
        default=None, ge=50, le=5_000, description="Approximate length of the page in words."
    )
    model: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="Model to use for this page; defaults to OPENAI_MODEL."
    )
    max_tokens: int | None = Field(
        default=None, ge=16, le=128_000, description="Completion token limit for this page."
    )
    temperature: float | None = Field(
        default=None, ge=0.0, le=2.0, description="Sampling temperature for this page."
    )
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Opaque data for the producer; copied unchanged into the stored page.",
    )

    @model_validator(mode="after")
    def _check(self) -> PageJob:
        if self.page_index >= self.total_pages:
            raise ValueError(
                f"pageIndex {self.page_index} is out of range for totalPages {self.total_pages}"
            )
        if self.job_id is None:
            object.__setattr__(self, "job_id", f"{self.ebook_id}:{self.page_index}")
        return self

    @property
    def id(self) -> str:
        """The job id, never None after validation."""
        assert self.job_id is not None
        return self.job_id

    def to_wire(self) -> str:
        """The JSON a producer would push for this job (camelCase, without unset fields)."""
        return self.model_dump_json(by_alias=True, exclude_none=True)


class InvalidJob(ValueError):
    """A payload that cannot become a `PageJob`; the message says why, in one line."""


def decode_job(raw: bytes | str, *, max_bytes: int) -> PageJob:
    """Turn one raw queue entry into a `PageJob`.

    Raises:
        InvalidJob: the payload is too large, not JSON, not an object, or breaks the contract.
    """
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > max_bytes:
        raise InvalidJob(f"payload is {size} bytes, over the {max_bytes}-byte limit")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidJob(f"payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidJob(f"payload is JSON {type(data).__name__}, expected an object")
    try:
        return PageJob.model_validate(data)
    except ValidationError as exc:
        raise InvalidJob(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def job_schema() -> dict[str, Any]:
    """The JSON Schema of a page job as a producer writes it (camelCase)."""
    schema = PageJob.model_json_schema(by_alias=True, mode="validation")
    schema["x-contract-version"] = CONTRACT_VERSION
    return schema
