"""Reading OpenAI's rate-limit hints: `retry-after*` headers, messages and `x-ratelimit-*`.

OpenAI (and compatible servers) say when to come back in several ways, most precise first:
`retry-after-ms: 1500`, `retry-after: 2` or an HTTP date, "Please try again in 1.5s." in the
error message, and `x-ratelimit-reset-requests|tokens: 6m0s` (time until the limit is full
again). `retry_after_s` reads them in that order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import httpx2

__all__ = ["RATE_LIMIT_PREFIX", "parse_duration_s", "rate_limit_headers", "retry_after_s"]

RATE_LIMIT_PREFIX = "x-ratelimit-"
_PREFIX_BYTES = RATE_LIMIT_PREFIX.encode()
_PREFIX_LEN = len(_PREFIX_BYTES)

# Go-style durations as OpenAI prints them: "20ms", "1.5s", "6m0s", "1h2m3s", "2d3h".
_DURATION = re.compile(
    r"^(?:(?P<d>\d+(?:\.\d+)?)d)?(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m(?!s))?"
    r"(?:(?P<s>\d+(?:\.\d+)?)s)?(?:(?P<ms>\d+(?:\.\d+)?)ms)?$"
)
_UNIT_S = {"d": 86_400.0, "h": 3_600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_TRY_AGAIN = re.compile(r"try again in\s+(?P<d>\d[\d.hdms]*)", re.IGNORECASE)


def parse_duration_s(text: str) -> float | None:
    """Seconds in a duration like "20ms", "1.5s", "6m0s" or a bare number of seconds."""
    text = text.strip().lower()
    if not text:
        return None
    try:
        return _finite(float(text))
    except ValueError:
        pass
    match = _DURATION.match(text)
    if match is None or not any(match.groupdict().values()):
        return None
    return sum(float(v) * _UNIT_S[k] for k, v in match.groupdict().items() if v is not None)


def retry_after_s(headers: Mapping[str, str], message: str, *, now_s: float) -> float | None:
    """How long the server asked us to wait, in seconds, or None if it did not say.

    Args:
        headers: the response headers (case-insensitive mapping, e.g. httpx's).
        message: the error message of the body.
        now_s: the current Unix time, to read `retry-after` given as an HTTP date.
    """
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None:
        return ms / 1000
    value = headers.get("retry-after")
    if value is not None:
        seconds = _number(value)
        if seconds is not None:
            return seconds
        when = _http_date_s(value)
        if when is not None:
            return max(0.0, when - now_s)
    match = _TRY_AGAIN.search(message)
    if match is not None:
        seconds = parse_duration_s(match.group("d").rstrip("."))
        if seconds is not None:
            return seconds
    return _reset_s(headers)


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The `x-ratelimit-*` headers, names lower-cased (a repeated one joined with ", ")."""
    if isinstance(headers, httpx2.Headers):
        # Picked from the raw bytes: `items()` would decode every header of the answer.
        found: dict[str, str] = {}
        encoding = headers.encoding
        for name, value in headers.raw:
            if name[:_PREFIX_LEN].lower() == _PREFIX_BYTES:
                key, text = name.decode(encoding).lower(), value.decode(encoding)
                found[key] = f"{found[key]}, {text}" if key in found else text
        return found
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith(RATE_LIMIT_PREFIX)}


def _reset_s(headers: Mapping[str, str]) -> float | None:
    # The limit that ran out (remaining 0) is the one to wait for; if none says 0, the longest.
    resets: dict[str, float] = {}
    for kind in ("requests", "tokens"):
        raw = headers.get(f"{RATE_LIMIT_PREFIX}reset-{kind}")
        seconds = parse_duration_s(raw) if raw is not None else None
        if seconds is not None:
            resets[kind] = seconds
    exhausted = [
        s for k, s in resets.items() if headers.get(f"{RATE_LIMIT_PREFIX}remaining-{k}") == "0"
    ]
    candidates = exhausted or list(resets.values())
    longest = max(candidates, default=0.0)
    return longest if longest > 0 else None  # "resets in 0ms" says nothing about a refusal


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return _finite(float(value.strip()))
    except ValueError:
        return None


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) and value >= 0 else None


def _http_date_s(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
