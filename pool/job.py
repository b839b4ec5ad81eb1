"""The page job: the wire contract between the producer (the Next.js app) and the pool.

One JSON object per page, camelCase, LPUSHed onto the queue list. `PageJob` is the single
source of truth: `ebook-pool schema` prints its JSON Schema, and `decode_job` is the only place
a raw payload becomes a job.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from pool.shared import error_line

__all__ = [
    "CONTRACT_VERSION",
    "ID_PATTERN",
    "MAX_DEPTH",
    "OUTLINE_RADIUS",
    "InvalidJob",
    "JobIds",
    "PageJob",
    "decode_job",
]

#: Bumped when a change to the wire format would break an existing producer or reader.
CONTRACT_VERSION = 1

#: What an id (ebookId, jobId) may hold: it becomes part of Redis key names, so ASCII letters,
#: digits and `_ . : @ + = / -` only; no whitespace, control, zero-width or bidi characters.
ID_PATTERN = r"^[A-Za-z0-9_.:@+=/-]{1,200}$"
_ID_RE = re.compile(ID_PATTERN)
#: Deepest nesting of arrays and objects a payload may have (the job itself is depth 1).
MAX_DEPTH = 32
#: Outline entries the prompts show on each side of a page: a producer needs to send only
#: this window of the outline (with `outlineStart`), so a long book's jobs stay small.
OUTLINE_RADIUS = 3
#: Largest oversized payload whose ids are still read (to count its page as failed).
_SALVAGE_MAX_BYTES = 4 * 1024 * 1024
#: Largest |pageIndex| of an invalid job that is still counted against its ebook.
_SALVAGE_MAX_INDEX = 2**53 - 1

_Id = Annotated[str, Field(min_length=1, max_length=200, pattern=ID_PATTERN)]
_Text = Annotated[str, Field(max_length=20_000)]
# Strings are trimmed before the limits apply, so "required text" means "not blank".
_NOT_BLANK = r"\S"
# Integers are integers: no "0", 0.0 or true (pydantic would otherwise coerce them).
_Int = Annotated[int, Field(strict=True)]


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

    v: _Int = Field(
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
    page_index: _Int = Field(ge=0, le=9_999, description="0-based index of the page.")
    total_pages: _Int = Field(ge=1, le=10_000, description="Number of pages in the ebook.")
    title: Annotated[str, Field(min_length=1, max_length=500, pattern=_NOT_BLANK)] = Field(
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
        description=(
            "The book's outline, one entry per page, so a page knows its neighbours: the whole "
            "outline, or only a window of it starting at page outlineStart (the prompts show "
            f"{OUTLINE_RADIUS} entries on each side of the page)."
        ),
    )
    outline_start: _Int = Field(
        default=0,
        ge=0,
        le=9_999,
        description="Index of the page that outline[0] is the entry of (0: the whole outline).",
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
    target_words: _Int | None = Field(
        default=None, ge=50, le=5_000, description="Approximate length of the page in words."
    )
    model: Annotated[str, Field(min_length=1, max_length=200, pattern=_NOT_BLANK)] | None = Field(
        default=None, description="Model to use for this page; defaults to OPENAI_MODEL."
    )
    max_tokens: _Int | None = Field(
        default=None, ge=16, le=128_000, description="Completion token limit for this page."
    )
    temperature: Annotated[float, Field(strict=True)] | None = Field(
        default=None, ge=0.0, le=2.0, description="Sampling temperature for this page."
    )
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="Opaque data for the producer; copied unchanged into the stored page.",
    )
    regenerate: Annotated[bool, Field(strict=True)] = Field(
        default=False,
        description="Write the page even if it is stored for this jobId with the same brief.",
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

    def outline_entry(self, index: int) -> str | None:
        """The outline's entry of page `index`, or None if the job does not carry it."""
        if self.outline is None:
            return None
        at = index - self.outline_start
        return self.outline[at] if 0 <= at < len(self.outline) else None

    def to_wire(self) -> str:
        """The JSON a producer would push for this job (camelCase, without unset fields)."""
        return self.model_dump_json(by_alias=True, exclude_none=True)


@dataclass(frozen=True, slots=True)
class JobIds:
    """The ids that could still be read from a payload that is not a valid job.

    `ebook_id` is set only when it is a valid id; `page_index` and `total_pages` only when
    `totalPages` is an integer from 1 to 10,000 and `pageIndex` an integer (even out of range:
    a page pushed as index 12 of 12 still counts as one failed page of that ebook, so the ebook
    ends). The errors hash is keyed by the index, so the same bad index is counted once.
    """

    ebook_id: str | None = None
    page_index: int | None = None
    total_pages: int | None = None


class InvalidJob(ValueError):
    """A payload that cannot become a `PageJob`; the message says why, in one line.

    Attributes:
        ids: what could be read of the job's ids, for the failed entry and the ebook's status.
    """

    def __init__(self, message: str, ids: JobIds | None = None) -> None:
        super().__init__(message)
        self.ids = ids or JobIds()


def decode_job(raw: bytes | str, *, max_bytes: int) -> PageJob:
    """Turn one raw queue entry into a `PageJob`.

    The payload must be UTF-8 JSON text holding one object, at most `max_bytes` long and
    `MAX_DEPTH` deep, with no duplicate keys and no NaN or Infinity. A lone UTF-16 surrogate
    written as a JSON escape (`"\\ud83d"`, what JavaScript's JSON.stringify writes for half an
    emoji) is replaced with U+FFFD in text, as JavaScript's TextEncoder does; in an id it makes
    the id invalid.

    Raises:
        InvalidJob: the payload is too large, not UTF-8, not JSON, not an object, too deep, or
            breaks the contract.
    """
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        raise InvalidJob(
            f"payload is {len(data)} bytes, over the {max_bytes}-byte limit",
            _salvage_oversized(data),
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJob(
            f"payload is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None
    parsed = _parsed_quickly(data)
    if parsed is None:
        parsed = _parsed_exactly(text)
    if _SURROGATE_ESCAPE.search(text):
        parsed = _replace_surrogates(parsed)
    try:
        return PageJob.model_validate(parsed)
    except ValidationError as exc:
        raise InvalidJob(_describe(exc), _salvage_ids(parsed)) from None


def _parsed_exactly(text: str) -> dict[str, Any]:
    """The object in `text`, or the `InvalidJob` that says what is wrong with it."""
    if text.startswith("\ufeff"):
        raise InvalidJob("payload is not JSON: it starts with a UTF-8 BOM")
    try:
        parsed = _DECODER.decode(text)
    except RecursionError:
        raise InvalidJob(f"payload is nested deeper than {MAX_DEPTH} levels") from None
    except _DuplicateKey as exc:
        raise InvalidJob(f"payload has the key {str(exc)!r} twice") from None
    except ValueError as exc:
        raise InvalidJob(f"payload is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidJob(f"payload is JSON {type(parsed).__name__}, expected an object")
    if _shape(parsed)[1] > MAX_DEPTH:
        raise InvalidJob(f"payload is nested deeper than {MAX_DEPTH} levels")
    return parsed


def _parsed_quickly(data: bytes) -> dict[str, Any] | None:
    """The object in `data` parsed by orjson, when that is provably what `_parsed_exactly`
    would return; None when only the exact parser can say (then it decides).

    orjson is as strict as the contract (UTF-8, no BOM, no NaN, no lone surrogate escape) but
    keeps the last of two equal keys and reads an integer over 64 bits as a float. So: no
    run of 19 digits in the payload, and exactly as many keys in the result as places in the
    text that can end a key (a quote, spaces, a colon: every key ends so, and a string can
    only add more), else the exact parser reads it.
    """
    if _LONG_NUMBER.search(data):
        return None
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict):
        return None
    keys, depth = _shape(parsed)
    if keys != len(_KEY_END.findall(data)):
        return None
    if depth > MAX_DEPTH:
        raise InvalidJob(f"payload is nested deeper than {MAX_DEPTH} levels")
    return parsed


_LONG_NUMBER = re.compile(rb"\d{19}")
_KEY_END = re.compile(rb'"[ \t\n\r]*:')


# A JSON escape of a UTF-16 surrogate; text without one cannot hold a lone surrogate, because
# strict UTF-8 decoding already refused the raw bytes of one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class _DuplicateKey(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(_SURROGATE.sub("\ufffd", key))
            seen.add(key)
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# One decoder for every payload: `json.loads` with hooks builds a new one (and its scanner)
# on each call.
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_no_constant)


def _shape(value: Any) -> tuple[int, int]:
    """How many keys the objects in `value` hold in all, and how deep arrays and objects nest
    (iterative: no recursion). Parsed JSON holds plain dicts and lists only."""
    keys = 0
    deepest = 1
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if depth > deepest:
            deepest = depth
        if type(item) is dict:
            keys += len(item)
            item = item.values()
        for child in item:
            if type(child) in _CONTAINERS:
                push((child, depth + 1))
    return keys, deepest


_CONTAINERS = (dict, list)


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    return value


def _salvage_ids(data: dict[str, Any]) -> JobIds:
    ebook = data.get("ebookId")
    if not (isinstance(ebook, str) and _ID_RE.match(ebook)):
        return JobIds()
    index, total = data.get("pageIndex"), data.get("totalPages")
    if (
        type(index) is int
        and type(total) is int
        and 1 <= total <= 10_000
        and abs(index) <= _SALVAGE_MAX_INDEX
    ):
        return JobIds(ebook, index, total)
    return JobIds(ebook)


def _salvage_oversized(data: bytes) -> JobIds:
    """The ids of a payload over MAX_JOB_BYTES, if it is still a JSON object (of bounded size)."""
    if len(data) > _SALVAGE_MAX_BYTES:
        return JobIds()
    try:
        parsed = json.loads(data.decode("utf-8"), object_pairs_hook=_object)
    except (ValueError, RecursionError):
        return JobIds()
    return _salvage_ids(parsed) if isinstance(parsed, dict) else JobIds()


def _describe(exc: ValidationError) -> str:
    return "; ".join(error_line(err, subject="payload") for err in exc.errors(include_url=False))
