"""Telling a refusal for rate ("come back later") from a failed attempt.

What `generator.errors.classify_error` raises, and what it means here:

| the API answered                                  | raised as                              | here |
|---------------------------------------------------|----------------------------------------|------|
| 429 `rate_limit_exceeded` (or a 429 without code)  | RetryableError(status=429, code, retry_after_s from `retry-after-ms`, `retry-after`, "try again in", `x-ratelimit-reset-*`) | refusal |
| 429 "Request too large … TPM" (no retry hint)      | RetryableError(status=429)             | not a refusal: `is_request_too_large` |
| 429 `insufficient_quota`                           | PoolFatalError                         | not a refusal (the pool pauses) |
| 503 (overloaded, "slow down"), any body             | RetryableError(status=503)             | refusal |
| other 5xx, timeouts, connection errors             | RetryableError                         | a real fault: spends an attempt |

A refusal does not spend one of MAX_RETRIES: the page waits for budget and is sent again.
"""

from __future__ import annotations

from collections.abc import Mapping

from pool.generation import RetryableError

__all__ = ["is_rate_refusal", "is_request_too_large", "refusal_headers", "refusal_wait_s"]

_REFUSAL_CODES = frozenset(
    {"rate_limit_exceeded", "slow_down", "overloaded", "server_overloaded", "engine_overloaded"}
)


def is_request_too_large(exc: BaseException) -> bool:
    """A 429 saying the request is larger than the whole limit: it can never pass."""
    return (
        isinstance(exc, RetryableError)
        and exc.status == 429
        and "request too large" in exc.reason.lower()
    )


def is_rate_refusal(exc: BaseException) -> bool:
    """The API refused for rate or load (429 rate limit, 503 overloaded): wait, do not count."""
    if not isinstance(exc, RetryableError) or is_request_too_large(exc):
        return False
    return exc.status in (429, 503) or (exc.code or "") in _REFUSAL_CODES


def refusal_wait_s(exc: BaseException) -> float | None:
    """How long the API asked to wait, if it said (the error's `retry_after_s`)."""
    wait = getattr(exc, "retry_after_s", None)
    return float(wait) if isinstance(wait, int | float) and wait >= 0 else None


def refusal_headers(exc: BaseException) -> Mapping[str, str]:
    """The refusal's `x-ratelimit-*` headers when the generator kept them (else empty)."""
    headers = getattr(exc, "rate_limits", None)
    return headers if isinstance(headers, Mapping) else {}
