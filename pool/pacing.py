"""One API request within the rate limits: what `JobRun` calls for each attempt.

    PacedRequests.send(job) ──► before_request hook ──► Governor.acquire (shared budget)
        ──► generator.generate ──► settle (usage, headers) | refused (cool-down) | failed

A refusal for rate (429 `rate_limit_exceeded`, 503 overloaded: `is_rate_refusal`) is not a
failed attempt: the request is sent again within the same attempt once the budget allows, so
MAX_RETRIES counts real faults only. With the governor, the wait is the shared budget's (every
process honours the cool-down); without it (RATE_LIMIT_GOVERNOR=false), the server's
`retry-after` plus a jitter as long (at least the retry backoff), so that the workers
refused together do not come back together. Either way the whole wait of an attempt is bounded by
RATE_LIMIT_MAX_WAIT: past it `BudgetWaitTooLong` is raised, and the page goes back to the queue
with its attempt refunded. Every request ends in one REQUEST_ENDED event (with its cost at the
pool's prices, `pool.pricing`) and is added to the job's `JobUsage` (the ebook's ledger: a
refused or failed request counts as wasted tokens), every refusal in one JOB_RATE_LIMITED event.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from pool.clock import monotonic
from pool.deadlines import Deadlines
from pool.events import EventKind
from pool.generation import GeneratedPage, GenerationError, JobFatalError, PageGenerator
from pool.job import PageJob
from pool.pricing import PriceTable
from pool.ratelimit import (
    BudgetWaitTooLong,
    Governor,
    Permit,
    is_rate_refusal,
    is_request_too_large,
    job_cost,
    refusal_wait_s,
)
from pool.runtime import PoolContext, Stopping, error_reason
from pool.usage import JobUsage

__all__ = ["BeforeRequest", "PacedRequests", "no_pacing"]

#: Called before every API request with the job and the attempt number about to run.
BeforeRequest = Callable[[PageJob, int], Awaitable[None]]


async def no_pacing(job: PageJob, attempt: int) -> None:
    """The default `before_request` hook: every request goes out at once."""


class PacedRequests:
    """Sends the requests of one pool process, through the governor when there is one.

    Args:
        ctx: the pool's shared parts (settings, events, the Redis-outage guard).
        generator: writes the pages.
        governor: the shared rate-limit budget; None sends unpaced (RATE_LIMIT_GOVERNOR=false).
        before_request: the hook run before every API request.
        pricing: what a request costs (REQUEST_ENDED's `cost_usd`, the ledger).
    """

    def __init__(
        self,
        ctx: PoolContext,
        *,
        generator: PageGenerator,
        governor: Governor | None = None,
        before_request: BeforeRequest = no_pacing,
        pricing: PriceTable | None = None,
    ) -> None:
        self.ctx = ctx
        self.generator = generator
        self.governor = governor
        self.before_request = before_request
        self.pricing = pricing or PriceTable()
        self._default_model = str(getattr(generator, "model", None) or "default")
        self._deadlines = Deadlines()

    async def send(
        self,
        job: PageJob,
        *,
        raw: bytes,
        worker: int,
        attempt: int,
        usage: JobUsage | None = None,
    ) -> GeneratedPage:
        """One attempt's request, sent again after each refusal for rate until it is answered.

        Each request made is added to `usage` (if given): the page's tokens, or wasted ones.

        Raises:
            BudgetWaitTooLong: refusals and the budget kept it waiting RATE_LIMIT_MAX_WAIT.
            RequestTooLarge: it needs more tokens than the whole TPM limit (a JobFatalError).
            Stopping: the pool stopped while it waited out a refusal (no governor).
            what the generator raises, except a refusal for rate.
        """
        since = monotonic()  # RATE_LIMIT_MAX_WAIT bounds the attempt's whole wait
        refusals = 0
        while True:
            if self.before_request is not no_pacing:  # skip a no-op await on the hot path
                await self.before_request(job, attempt)
            permit = await self._acquire(job, since)
            try:
                page = await self._request(
                    job, raw=raw, worker=worker, attempt=attempt, usage=usage
                )
            except asyncio.CancelledError:
                if permit is not None:
                    await permit.failed()  # it may have reached the API
                raise
            except Exception as exc:
                if not is_rate_refusal(exc):
                    if permit is not None:
                        await permit.failed()
                    if is_request_too_large(exc):
                        raise JobFatalError(
                            error_reason(exc), status=429, code="request_too_large"
                        ) from exc
                    raise
                refusals += 1
                await self._refused(exc, permit, since, refusals, raw, worker, attempt, job)
                continue
            if permit is not None:
                await permit.settle_page(page)
            return page

    async def _acquire(self, job: PageJob, since: float) -> Permit | None:
        governor = self.governor
        if governor is None or not governor.enabled:
            return None
        cost = job_cost(self.generator, job, default_model=self._default_model)
        return await self.ctx.guard.persist(governor.acquire, cost, waiting_since=since)

    async def _request(
        self, job: PageJob, *, raw: bytes, worker: int, attempt: int, usage: JobUsage | None
    ) -> GeneratedPage:
        """One HTTP request bounded by GENERATION_TIMEOUT (even if the generator ignores it)."""
        events = self.ctx.events
        timeout_s = self.ctx.settings.generation_timeout_s
        started = monotonic()
        try:
            with self._deadlines.bound(timeout_s + 1.0):
                page = await self.generator.generate(job, timeout_s=timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure: Exception = exc
            if isinstance(exc, TimeoutError):
                failure = TimeoutError(f"generation timed out after {timeout_s:g}s")
            billed = exc if isinstance(exc, GenerationError) else None
            prompt = billed.prompt_tokens if billed else 0
            completion = billed.completion_tokens if billed else 0
            cost = self.pricing.cost_usd(job.model, prompt, completion)
            if usage is not None:
                usage.request_ended(
                    prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost, page=False
                )
            events.emit(
                EventKind.REQUEST_ENDED, raw=raw, worker=worker, attempt=attempt,
                reason=error_reason(failure), job=job, latency_s=monotonic() - started,
                prompt_tokens=billed.prompt_tokens if billed else None,
                completion_tokens=billed.completion_tokens if billed else None, cost_usd=cost,
            )  # fmt: skip
            if failure is not exc:
                raise failure from None
            raise
        prompt, completion = page.prompt_tokens, page.completion_tokens
        cost = self.pricing.cost_usd(page.model, prompt, completion)
        if usage is not None:
            usage.request_ended(
                prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost, page=True
            )
        if events.wants(EventKind.REQUEST_ENDED):
            events.emit(
                EventKind.REQUEST_ENDED, raw=raw, worker=worker, attempt=attempt, job=job,
                latency_s=monotonic() - started, prompt_tokens=prompt,
                completion_tokens=completion, cost_usd=cost,
            )  # fmt: skip
        return page

    async def _refused(
        self,
        exc: Exception,
        permit: Permit | None,
        since: float,
        refusals: int,
        raw: bytes,
        worker: int,
        attempt: int,
        job: PageJob,
    ) -> None:
        """Record a refusal; without a governor, wait it out here (bounded, jittered)."""
        if permit is not None:
            wait_s = await permit.refused(exc)  # the shared cool-down; acquire waits it out
        else:
            settings = self.ctx.settings
            backoff = min(
                settings.retry_backoff_max_s, settings.retry_backoff_s * 2 ** (refusals - 1)
            )
            after = refusal_wait_s(exc) or 0.0
            # Every worker refused at once hears the same retry-after: spread them over as long.
            wait_s = after + random.uniform(0, max(after, backoff))
        self.ctx.events.emit(
            EventKind.JOB_RATE_LIMITED, raw=raw, worker=worker, attempt=attempt, wait_s=wait_s,
            reason=error_reason(exc), job=job,
        )  # fmt: skip
        if permit is not None:
            return
        waited_s = monotonic() - since
        if waited_s + wait_s > self.ctx.settings.rate_limit_max_wait_s:
            raise BudgetWaitTooLong(waited_s, f"refused {refusals} times: {error_reason(exc)}")
        if await self.ctx.sleep_or_stop(wait_s):
            raise Stopping
