"""Job payloads for the chaos fuzz: valid page jobs and malformed ones of many kinds.

`malformed_payloads(n, seed)` returns `n` `(kind, bytes)` pairs, round-robin over `KINDS`, each
kind cycling through its own variants. It is deterministic for a given `(n, seed)`:

- the structured kinds (every field missing or wrong in turn, surrogates, sizes, nesting...)
  are built by hand, with a `random.Random(seed)` for the few choices they make;
- the generated part (`random_bytes`, `random_json`) is drawn with hypothesis strategies by
  `draw(strategy, count, seed)`: a `@given` function run with `@seed(seed)`, only the generate
  phase, no example database, no deadline, so the same seed and hypothesis version give the
  same payloads without `strategy.example()`.

Every malformed payload breaks docs/contract.md on purpose: none of them may be stored. Their
ebook ids (when they have one) start with `fuzz-bad-`, so they never touch a valid ebook.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from functools import partial
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

__all__ = ["KINDS", "MAX_JOB_BYTES", "draw", "half_emoji_job", "malformed_payloads", "valid_job"]

#: The pool's default MAX_JOB_BYTES.
MAX_JOB_BYTES = 65_536

Variant = Callable[[int, random.Random], bytes]


def valid_job(ebook_id: str, page_index: int, total_pages: int, **extra: Any) -> bytes:
    """A page job that follows the contract (small pages: 50 words)."""
    job: dict[str, Any] = {
        "v": 1,
        "ebookId": ebook_id,
        "pageIndex": page_index,
        "totalPages": total_pages,
        "title": f"Chaos book {ebook_id}",
        "pageTitle": f"Section {page_index + 1}",
        "targetWords": 50,
        **extra,
    }
    return json.dumps(job, separators=(",", ":")).encode()


def half_emoji_job(ebook_id: str, page_index: int, total_pages: int) -> bytes:
    """A valid job whose text holds lone surrogate escapes, as JavaScript's JSON.stringify
    writes a string cut between the two halves of an emoji: the pool replaces each with U+FFFD
    and stores the page (docs/contract.md)."""
    job = valid_job(ebook_id, page_index, total_pages, metadata={"cut": "ok"}).decode()
    job = job.replace('"title":"Chaos book', '"title":"Chaos book \\ud83d')
    job = job.replace('"pageTitle":"Section', '"pageTitle":"\\ude00 Section')
    job = job.replace('{"cut":"ok"}', '{"cut\\udc00":"ok \\ud83d"}')
    return job.encode()


def draw(strategy: st.SearchStrategy[Any], count: int, seed: int) -> list[Any]:
    """`count` values of `strategy`, deterministic for `seed` (repeats if hypothesis runs out)."""
    out: list[Any] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis_seed(seed)
    @given(strategy)
    def collect(value: Any) -> None:
        out.append(value)

    collect()
    if not out:
        raise RuntimeError("hypothesis drew nothing")
    return [out[i % len(out)] for i in range(count)]


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


def _base(i: int) -> dict[str, Any]:
    """A job that would be valid, under a `fuzz-bad-` id; each kind breaks it its own way."""
    return {"ebookId": f"fuzz-bad-{i}", "pageIndex": 0, "totalPages": 2, "title": "Bad book"}


def _dump(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _with(i: int, **fields: Any) -> bytes:
    return _dump(_base(i) | fields)


def _splice(i: int, field: str, raw_value: bytes) -> bytes:
    """The base job with `field` set to `raw_value`, raw bytes spliced into the JSON text."""
    marker = "@@SPLICE@@"
    text = _dump(_base(i) | {field: marker})
    return text.replace(json.dumps(marker).encode(), raw_value)


_REQUIRED = ["ebookId", "pageIndex", "totalPages", "title"]

_WRONG_TYPES: list[tuple[str, Any]] = [
    ("ebookId", 123), ("ebookId", None), ("ebookId", ["a"]), ("ebookId", {"id": "a"}),
    ("pageIndex", None), ("pageIndex", "zero"), ("pageIndex", 0.5), ("pageIndex", [0]),
    ("totalPages", "2"), ("totalPages", 2.0), ("totalPages", True), ("totalPages", None),
    ("title", 5), ("title", None), ("title", ["T"]), ("title", {"t": 1}),
    ("v", "1"), ("v", 1.0), ("v", True), ("jobId", 7), ("jobId", ""),
    ("topic", 3), ("pageTitle", []), ("outline", "a, b"), ("outline", [1, 2]),
    ("instructions", {}), ("language", 1), ("style", 2), ("audience", True),
    ("targetWords", "100"), ("targetWords", 100.0), ("targetWords", True),
    ("model", 4), ("maxTokens", "100"), ("maxTokens", 100.5), ("maxTokens", False),
    ("temperature", "0.7"), ("temperature", [0.7]), ("metadata", []), ("metadata", "x"),
]  # fmt: skip

_OUT_OF_RANGE: list[dict[str, Any]] = [
    {"pageIndex": 2, "totalPages": 2}, {"pageIndex": 5, "totalPages": 2},
    {"pageIndex": -1}, {"totalPages": 0, "pageIndex": 0}, {"totalPages": 10_001},
    {"pageIndex": 10_000, "totalPages": 10_000}, {"v": 2}, {"v": 0},
    {"title": ""}, {"title": "   "}, {"title": "T" * 501}, {"language": "E"},
    {"targetWords": 49}, {"targetWords": 5_001}, {"maxTokens": 15}, {"temperature": 2.5},
    {"temperature": -0.1}, {"ebookId": "has space"}, {"ebookId": ""}, {"ebookId": "x" * 201},
    {"outline": ["o" * 501]}, {"pageIndex": 10**30}, {"totalPages": 10**30},
]  # fmt: skip

_INVISIBLE = ["\u200b", "\u200d", "\ufeff", "\u202e", "\u2066", "\u0007", "\u001b", "\u007f"]


def _random_bytes(count: int, seed: int) -> list[bytes]:
    return list(draw(st.binary(min_size=1, max_size=200), count, seed))


def _random_json(count: int, seed: int) -> list[bytes]:
    return [_dump(v) for v in draw(_JSON_VALUES, count, seed + 1)]


def _without(field: str, i: int, r: random.Random) -> bytes:
    return _dump({k: v for k, v in _base(i).items() if k != field})


def _with_fields(fields: dict[str, Any], i: int, r: random.Random) -> bytes:
    return _with(i, **fields)


def _id_escaped(char: str, i: int, r: random.Random) -> bytes:
    return _with(i, ebookId=f"fuzz-bad-{i}{char}x")  # json.dumps escapes it (\u200b)


def _id_raw(char: str, i: int, r: random.Random) -> bytes:
    return _splice(i, "ebookId", f'"fuzz-bad-{i}{char}x"'.encode())


def _nested(depth: int, open_: str, close: str, leaf: str) -> str:
    return open_ * depth + leaf + close * depth


_VARIANTS: dict[str, list[Variant]] = {
    "not_object": [
        lambda i, r: b"[]",
        lambda i, r: b"[1, 2, 3]",
        lambda i, r: b'"ebook"',
        lambda i, r: b"null",
        lambda i, r: b"true",
        lambda i, r: b"42",
        lambda i, r: _dump([_base(i)]),
    ],
    "missing_field": [partial(_without, f) for f in _REQUIRED] + [lambda i, r: b"{}"],
    "wrong_type": [partial(_with_fields, {f: v}) for f, v in _WRONG_TYPES],
    "page_index_not_int": [
        lambda i, r: _with(i, pageIndex="0"),
        lambda i, r: _with(i, pageIndex=0.0),
        lambda i, r: _with(i, pageIndex=True),
        lambda i, r: _with(i, pageIndex=False),
        lambda i, r: _with(i, pageIndex="1"),
        lambda i, r: _with(i, pageIndex=1.0),
    ],
    "out_of_range": [partial(_with_fields, d) for d in _OUT_OF_RANGE],
    "size_at_limit": [
        # Exactly MAX_JOB_BYTES, invalid by an unknown padding field (the size alone is fine).
        lambda i, r: _padded(i, MAX_JOB_BYTES, "padding"),
        # Exactly MAX_JOB_BYTES, invalid by an `instructions` over 20,000 characters.
        lambda i, r: _padded(i, MAX_JOB_BYTES, "instructions"),
    ],
    "size_over_limit": [
        lambda i, r: _padded(i, MAX_JOB_BYTES + 1, "instructions"),
        lambda i, r: _padded(i, 100_000, "topic"),
        lambda i, r: _padded(i, 262_144, "metadata"),
        lambda i, r: _padded(i, 1 << 20, "topic"),  # 1 MB
    ],
    "deep_nesting": [
        lambda i, r: _splice(i, "metadata", _nested(10_000, '{"a":', "}", "1").encode()),
        lambda i, r: _nested(10_000, "[", "]", "0").encode(),
        lambda i, r: _splice(i, "outline", _nested(10_000, "[", "]", '"x"').encode()),
        lambda i, r: _nested(10_000, '{"ebookId":', "}", '"x"').encode(),
    ],
    "surrogate_raw": [  # an encoded lone surrogate (invalid UTF-8) inside a string
        lambda i, r: b'{"ebookId": "\xed\xa0\x80"}',
        lambda i, r: _splice(i, "ebookId", b'"fuzz-bad-\xed\xa0\x80"'),
        lambda i, r: _splice(i, "title", b'"Title \xed\xb2\xa9"'),
        lambda i, r: _splice(i, "pageTitle", b'"\xed\xa0\xbd cut emoji"'),
    ],
    # Valid JSON, what JSON.stringify writes for a half emoji: in an id it makes the id invalid
    # (in text it is replaced with U+FFFD and the job is valid: see half_emoji_job).
    "surrogate_escaped": [
        lambda i, r: _splice(i, "ebookId", b'"fuzz-bad-\\ud83d"'),
        lambda i, r: _splice(i, "ebookId", b'"fuzz-bad-\\udfff"'),
        lambda i, r: _splice(i, "jobId", b'"job-\\udfff"'),
    ],
    "surrogate_in_metadata": [  # encoded (invalid UTF-8), in a value and in a key
        lambda i, r: _splice(i, "metadata", b'{"k": ["\xed\xa0\x80"]}'),
        lambda i, r: _splice(i, "metadata", b'{"\xed\xb0\x80": 1}'),
    ],
    "nul_bytes": [
        lambda i, r: _splice(i, "ebookId", b'"fuzz-bad\\u0000x"'),
        lambda i, r: _splice(i, "jobId", b'"job\\u0000"'),
        lambda i, r: _splice(i, "ebookId", b'"fuzz-bad\x00raw"'),
        lambda i, r: _dump(_base(i)) + b"\x00",
        lambda i, r: b"\x00" * 16,
    ],
    "invisible_in_id": [partial(_id_escaped, c) for c in _INVISIBLE]
    + [
        partial(_id_raw, c)
        for c in _INVISIBLE[:4]  # the same characters raw (UTF-8)
    ],
    "duplicate_keys": [
        lambda i, r: _dump(_base(i))[:-1] + b', "ebookId": "fuzz-bad-dup"}',
        lambda i, r: _dump(_base(i))[:-1] + b', "pageIndex": 1}',
        lambda i, r: _dump(_base(i))[:-1] + b', "title": "Second title"}',
        lambda i, r: _splice(i, "metadata", b'{"k": 1, "k": 2}'),
    ],
    "nan_infinity": [
        lambda i, r: _splice(i, "pageIndex", b"NaN"),
        lambda i, r: _splice(i, "totalPages", b"Infinity"),
        lambda i, r: _splice(i, "temperature", b"NaN"),
        lambda i, r: _splice(i, "temperature", b"-Infinity"),
        lambda i, r: _splice(i, "metadata", b'{"x": NaN}'),
        lambda i, r: _splice(i, "targetWords", b"Infinity"),
    ],
    "unknown_field": [
        lambda i, r: _with(i, colour="red"),
        lambda i, r: _with(i, tittle="typo"),
        lambda i, r: _with(i, pageindex=0),
        lambda i, r: _with(i, ebook_id="snake"),
        lambda i, r: _with(i, **{"": 1}),
        lambda i, r: _with(i, __proto__={"x": 1}),
    ],
    "empty": [lambda i, r: b"", lambda i, r: b" ", lambda i, r: b"\n", lambda i, r: b"\t\r\n "],
    "truncated_json": [
        lambda i, r: (lambda t: t[: r.randrange(1, len(t))])(_dump(_base(i))),
    ],
    "bom_prefixed": [  # a BOM is not part of JSON text (RFC 8259); the job behind it is fine
        lambda i, r: b"\xef\xbb\xbf" + _dump(_base(i)),
        lambda i, r: b"\xff\xfe" + _dump(_base(i)).decode().encode("utf-16-le"),
    ],
    "invalid_utf8": [
        lambda i, r: b"\xff\xfe\xfa",
        lambda i, r: _splice(i, "title", b'"caf\xe9"'),  # Latin-1
        lambda i, r: _splice(i, "title", b'"over\xc0\xaflong"'),
        lambda i, r: _splice(i, "ebookId", b'"fuzz-bad-\xe2\x82"'),  # cut multibyte
        lambda i, r: _splice(i, "title", b'"\xf4\x90\x80\x80 above U+10FFFF"'),
    ],
    "trailing_garbage": [
        lambda i, r: _dump(_base(i)) + b" x",
        lambda i, r: _dump(_base(i)) + _dump(_base(i)),
        lambda i, r: _dump(_base(i)) + b",",
    ],
    "not_json": [
        lambda i, r: b"this is not json",
        lambda i, r: b"{'ebookId': 'single quotes'}",
        lambda i, r: b"{ebookId: unquoted}",
        lambda i, r: b"<job/>",
        lambda i, r: _dump(_base(i)).replace(b'"pageIndex": 0', b'"pageIndex": 0,'),
    ],
    "wrong_encoding": [
        lambda i, r: _dump(_base(i)).decode().encode("utf-16"),
        lambda i, r: _dump(_base(i)).decode().encode("utf-32"),
    ],
}

#: Every malformed kind, in the order they are dealt.
KINDS: list[str] = ["random_bytes", "random_json", *_VARIANTS]


def _padded(i: int, size: int, field: str) -> bytes:
    """The base job with `field` padded so the payload is exactly `size` bytes."""

    def build(n: int) -> bytes:
        value: Any = {"pad": "p" * n} if field == "metadata" else "p" * n
        return _with(i, **{field: value})

    return build(size - len(build(0)))


def malformed_payloads(n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """`n` malformed payloads as `(kind, bytes)`, round-robin over `KINDS` (deterministic)."""
    rng = random.Random(seed)
    per_kind = {kind: len(range(k, n, len(KINDS))) for k, kind in enumerate(KINDS)}
    generated = {
        "random_bytes": _random_bytes(max(per_kind["random_bytes"], 1), seed),
        "random_json": _random_json(max(per_kind["random_json"], 1), seed),
    }
    seen: dict[str, int] = {}
    out: list[tuple[str, bytes]] = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        k = seen[kind] = seen.get(kind, -1) + 1
        if kind in generated:
            out.append((kind, generated[kind][k]))
        else:
            variants = _VARIANTS[kind]
            out.append((kind, variants[k % len(variants)](i, rng)))
    return out
