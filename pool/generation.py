"""What the pool needs from a page generator: one async call, a page out, typed errors out.

The pool owns this interface; `generator.OpenAIPageGenerator` implements it, and tests pass
doubles that follow it. The pool never imports the openai SDK.

How the pool treats each error:

- `RetryableError`: the attempt failed but another may succeed. The pool retries with
  exponential backoff and full jitter, waiting at least `retry_after_s` when it is set.
- `JobFatalError`: this job can never succeed as written (context too long, content policy).
  The pool fails the job at once, with the reason, and moves on.
- `PoolFatalError`: nothing will succeed until an operator acts (bad API key, quota
  exhausted, unknown model). The pool gives the job back untouched, stops claiming, and calls
  `probe()` until it stops raising, then resumes on its own.

Any other exception from `generate` is treated as retryable: a bug in one page must not stop the
pool, and the attempt count in Redis bounds how often it is tried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pool.job import PageJob

__all__ = [
    "GeneratedPage",
    "GenerationError",
    "JobFatalError",
    "PageGenerator",
    "PoolFatalError",
    "RetryableError",
]


@dataclass(frozen=True, slots=True)
class GeneratedPage:
    """One finished page and what it cost.

    Attributes:
        content: the page text (Markdown), never empty.
        model: the model that wrote it, as the API reported it.
        finish_reason: the API's finish reason, normally "stop".
        prompt_tokens / completion_tokens: usage as reported by the API (0 if not reported).
        latency_s: wall time of the successful HTTP call.
        rate_limits: the `x-ratelimit-*` headers of the answer, lower-cased names.
    """

    content: str
    model: str
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    rate_limits: Mapping[str, str] = field(default_factory=dict)


class GenerationError(Exception):
    """Base of the errors a generator raises; `str(err)` is a one-line reason without secrets.

    Args:
        reason: why the attempt failed, for logs and the failed list.
        status: the HTTP status if there was one.
        code: the API's error code if there was one (e.g. "rate_limit_exceeded").
        retry_after_s: how long the server asked us to wait, if it said.
    """

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        #: Tokens the API billed for this failed attempt, when it said (e.g. a page cut off
        #: by `length`); the generator sets them, the ledger counts them as wasted.
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s


class RetryableError(GenerationError):
    """This attempt failed; a later one may succeed (429 rate limit, 5xx, timeout, truncation).

    Attributes:
        next_max_tokens: for a page cut off at the token limit, the larger limit its next
            attempts should ask for; the pool keeps it in Redis, so an attempt that another
            process runs (after a redeploy or a crash) asks for it too.
    """

    next_max_tokens: int | None = None


class JobFatalError(GenerationError):
    """This job cannot succeed as written (400 context length, content policy, 422)."""


class PoolFatalError(GenerationError):
    """No job can succeed until an operator acts (401/403, insufficient_quota, unknown model)."""


@runtime_checkable
class PageGenerator(Protocol):
    """Turns one page job into one page."""

    async def generate(self, job: PageJob, *, timeout_s: float) -> GeneratedPage:
        """Write one page. One attempt: no retries inside; raise a `GenerationError`."""
        ...

    async def probe(self) -> None:
        """Cheaply check that generation can work again; raise `PoolFatalError` while it cannot."""
        ...

    async def aclose(self) -> None:
        """Release connections. Called once when the pool stops."""
        ...
