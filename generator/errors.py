"""One function that sorts what the openai SDK raises into the pool's three error classes.

| what happened                                         | raised as        |
|-------------------------------------------------------|------------------|
| 429 `insufficient_quota`                               | PoolFatalError   |
| 429 any other code (`rate_limit_exceeded`)             | RateLimitedError (a RetryableError), `retry_after_s` from the headers/message, `rate_limits` the x-ratelimit-* headers |
| 408, 409, 5xx, connection error, timeout               | RetryableError   |
| 401, 403, 404 (unknown model, wrong base URL)          | PoolFatalError   |
| 400 (`context_length_exceeded`, `invalid_prompt`, `content_policy_violation`, …), 422, other 4xx | JobFatalError |
| malformed body (not JSON, fails the schema)            | RetryableError   |
| anything else                                          | RetryableError   |

Reasons are one line, start with the HTTP status and API code when there are some, and have the
API key (and anything shaped like an OpenAI key) replaced by `***`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

import openai

from generator.ratelimits import rate_limit_headers, retry_after_s
from pool.generation import GenerationError, JobFatalError, PoolFatalError, RetryableError
from pool.shared import replace_secrets

__all__ = ["MALFORMED", "RateLimitedError", "classify_error", "redact"]

#: The `code` of errors about an answer that is not a well-formed chat completion.
MALFORMED = "malformed_response"

_KEY_SHAPED = re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_*\-]{4,}")
_SPACES = re.compile(r"\s+")
_HTML_TITLE = re.compile(r"<title>([^<]{1,200})</title>", re.IGNORECASE)
_MAX_REASON = 400

_POOL_FATAL_HINTS = {
    401: "authentication failed; check OPENAI_API_KEY",
    403: "permission denied; check the key's project, organization and model access",
    404: "not found; check OPENAI_MODEL (or the job's model) and OPENAI_BASE_URL",
}


class RateLimitedError(RetryableError):
    """A 429 refusal for rate, with the answer's `x-ratelimit-*` headers in `rate_limits`.

    A `RetryableError` like any 429; the rate-limit governor reads the headers to learn the
    limits and the cool-down (`pool.ratelimit.refusal_headers`).
    """

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
        rate_limits: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(reason, status=status, code=code, retry_after_s=retry_after_s)
        self.rate_limits: Mapping[str, str] = dict(rate_limits or {})


def classify_error(
    exc: BaseException,
    *,
    secrets: Iterable[str] = (),
    now_s: float,
    timeout_s: float | None = None,
) -> GenerationError:
    """The pool error to raise for `exc`, an exception of one attempt at the API.

    Args:
        exc: what the openai SDK (or JSON decoding of its answer) raised.
        secrets: strings that must not appear in the reason (the API key).
        now_s: the current Unix time, to read a `retry-after` HTTP date.
        timeout_s: the timeout of the attempt, for the reason of a timeout.
    """
    secrets = tuple(s for s in secrets if s)
    if isinstance(exc, GenerationError):
        return exc
    if isinstance(exc, openai.APIResponseValidationError):
        return RetryableError(
            _line(f"HTTP {exc.status_code} {MALFORMED}: {exc.message}", secrets),
            status=exc.status_code,
            code=MALFORMED,
        )
    if isinstance(exc, openai.APIStatusError):
        return _from_status(exc, secrets, now_s=now_s)
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        within = f" within {timeout_s:g}s" if timeout_s is not None else " in time"
        return RetryableError(f"timeout: no answer from the API{within}", code="timeout")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        detail = f"{type(cause).__name__}: {cause}" if cause is not None else exc.message
        return RetryableError(
            _line(f"connection error: {detail}", secrets), code="connection_error"
        )
    if isinstance(exc, json.JSONDecodeError):
        return RetryableError(
            _line(f"{MALFORMED}: body is not JSON: {exc.msg} (char {exc.pos})", secrets),
            code=MALFORMED,
        )
    return RetryableError(_line(f"unexpected {type(exc).__name__}: {exc}", secrets))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each secret, and anything shaped like an OpenAI key, replaced by `***`."""
    return _KEY_SHAPED.sub(r"\1-***", replace_secrets(text, secrets))


def _from_status(
    exc: openai.APIStatusError, secrets: tuple[str, ...], *, now_s: float
) -> GenerationError:
    status = exc.status_code
    code = exc.code or None
    message = _api_message(exc)
    label = f"HTTP {status}" + (f" {code}" if code else "")
    if status == 429 and code == "insufficient_quota":
        return PoolFatalError(
            _line(f"{label}: quota exhausted; add credit or raise the limit: {message}", secrets),
            status=status,
            code=code,
        )
    if status == 429:
        wait_s = retry_after_s(exc.response.headers, message, now_s=now_s)
        hint = f" (retry after {wait_s:g}s)" if wait_s is not None else ""
        return RateLimitedError(
            _line(f"{label}: rate limited{hint}: {message}", secrets),
            status=status,
            code=code or "rate_limit_exceeded",
            retry_after_s=wait_s,
            rate_limits=rate_limit_headers(exc.response.headers),
        )
    if status in _POOL_FATAL_HINTS:
        return PoolFatalError(
            _line(f"{label}: {_POOL_FATAL_HINTS[status]}: {message}", secrets),
            status=status,
            code=code,
        )
    if status in (408, 409) or status >= 500:
        return RetryableError(_line(f"{label}: {message}", secrets), status=status, code=code)
    if 400 <= status < 500:
        return JobFatalError(_line(f"{label}: {message}", secrets), status=status, code=code)
    return RetryableError(_line(f"{label}: {message}", secrets), status=status, code=code)


def _api_message(exc: openai.APIStatusError) -> str:
    # The SDK keeps the body's "error" object in `body`; a non-JSON body stays a string.
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    if isinstance(body, str) and body.strip():
        title = _HTML_TITLE.search(body)
        return f"HTML page '{title.group(1).strip()}'" if title else body.strip()
    return "no message"


def _line(text: str, secrets: tuple[str, ...]) -> str:
    text = _SPACES.sub(" ", redact(text, secrets)).strip()
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"
