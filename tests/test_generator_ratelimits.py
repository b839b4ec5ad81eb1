"""Reading when to come back from a 429: headers, messages and reset durations."""

from __future__ import annotations

from email.utils import formatdate

import httpx2
import pytest

from generator import parse_duration_s, rate_limit_headers, redact, retry_after_s

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("1.5s", 1.5),
        ("20ms", 0.02),
        ("6m0s", 360.0),
        ("1m30.5s", 90.5),
        ("1h2m3s", 3723.0),
        ("2", 2.0),
        ("0.25", 0.25),
        ("", None),
        ("soon", None),
        ("-1", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    """Go-style durations as OpenAI prints them, and bare seconds."""
    result = parse_duration_s(text)
    if seconds is None:
        assert result is None
    else:
        assert result == pytest.approx(seconds)


def test_retry_after_ms_wins() -> None:
    """retry-after-ms is the most precise hint and is read first."""
    headers = {"retry-after-ms": "1500", "retry-after": "2", "x-ratelimit-reset-requests": "9s"}
    assert retry_after_s(headers, "Please try again in 7s.", now_s=NOW) == 1.5


def test_retry_after_seconds_then_http_date() -> None:
    """retry-after in seconds, or as an HTTP date counted from now."""
    assert retry_after_s({"retry-after": "2"}, "", now_s=NOW) == 2.0
    date = formatdate(NOW + 5, usegmt=True)
    assert retry_after_s({"retry-after": date}, "", now_s=NOW) == pytest.approx(5.0)
    past = formatdate(NOW - 5, usegmt=True)
    assert retry_after_s({"retry-after": past}, "", now_s=NOW) == 0.0


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("Rate limit reached ... Please try again in 1.5s. Visit ...", 1.5),
        ("Rate limit reached ... Please try again in 20ms. Visit ...", 0.02),
        ("Please try again in 6m0s.", 360.0),
    ],
)
def test_retry_after_from_message(message: str, seconds: float) -> None:
    """Without headers, 'try again in …' in the message."""
    assert retry_after_s({}, message, now_s=NOW) == pytest.approx(seconds)


def test_retry_after_from_reset_headers_prefers_the_exhausted_limit() -> None:
    """Then the reset time of the limit that ran out (remaining 0), else the longest."""
    headers = {
        "x-ratelimit-remaining-requests": "10",
        "x-ratelimit-reset-requests": "120ms",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert retry_after_s(headers, "", now_s=NOW) == 360.0
    headers["x-ratelimit-remaining-tokens"] = "5"
    headers["x-ratelimit-remaining-requests"] = "0"
    assert retry_after_s(headers, "", now_s=NOW) == pytest.approx(0.12)


def test_no_hint_is_none() -> None:
    """Nothing said, nothing assumed."""
    assert retry_after_s({"retry-after": "whenever"}, "Slow down.", now_s=NOW) is None


def test_rate_limit_headers_are_filtered_and_lower_cased() -> None:
    """Only x-ratelimit-* headers are handed back, names lower-cased."""
    headers = {"X-RateLimit-Limit-Requests": "60", "content-type": "application/json"}
    assert rate_limit_headers(headers) == {"x-ratelimit-limit-requests": "60"}


def test_rate_limit_headers_of_an_answer_read_as_its_items() -> None:
    """On httpx2 headers (read from the raw bytes) the same as on their `items()`."""
    headers = httpx2.Headers(
        [
            ("X-RateLimit-Limit-Requests", "60"),
            ("content-type", "application/json"),
            ("x-ratelimit-remaining-tokens", "10"),
            ("X-Ratelimit-Remaining-Tokens", "9"),
            ("x-ratelimit", "not one"),
        ]
    )
    expected = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-tokens": "10, 9"}
    assert rate_limit_headers(headers) == expected
    assert rate_limit_headers(dict(headers.items())) == expected


def test_redact_removes_the_key_and_key_shaped_strings() -> None:
    """The configured key and anything shaped like an OpenAI key become ***."""
    text = "bad key sk-proj-abc123def456 and secret-token-XYZ."
    assert redact(text, ["secret-token-XYZ"]) == "bad key sk-*** and ***."
