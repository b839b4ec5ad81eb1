"""Taking one claimed job to its end: stored, failed, or given back.

`JobRunner.handle` decodes the payload and runs a `JobRun`, the small object that carries one
job through its attempts: it counts each retry in Redis (the first attempt was counted at
claim), sends each attempt's request through `pool.pacing.PacedRequests` (the `before_request`
hook and the rate-limit governor, first attempt and retries alike), waits between attempts with
the one retry policy (`pool.retry`), and closes each attempt in the `AttemptLedger` however it
ends, so a shutdown refunds exactly the attempts that did not run to their end. What each
request cost is added to the job's `JobUsage` (written with the outcome: the ebook's ledger),
and, when the result cache is on, the cache is asked once before the first request (a hit is
no request: it is neither paced nor does the `before_request` hook run for it).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import asdict
from typing import TYPE_CHECKING

from loguru import logger
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from pool.attempts import AttemptLedger
from pool.cache import PageCache
from pool.clock import monotonic, now_ms
from pool.deadletters import FailureKind
from pool.events import EventKind
from pool.generation import (
    GeneratedPage,
    JobFatalError,
    PageGenerator,
    PoolFatalError,
    RetryableError,
)
from pool.job import InvalidJob, PageJob, decode_job
from pool.liveness import Pauser
from pool.logs import page_line_wanted
from pool.outcomes import OutcomeWriter, PageWrite
from pool.pacing import BeforeRequest, PacedRequests, no_pacing
from pool.pricing import PriceTable
from pool.queue import NO_TICKET, Ticket, ticket_sha
from pool.ratelimit import BudgetWaitTooLong, Governor
from pool.records import page_record
from pool.retry import is_retryable, wait_policy
from pool.runtime import PoolContext, Stopping, error_reason
from pool.store import EpochChanged
from pool.usage import JobUsage

if TYPE_CHECKING:
    from loguru import Logger

__all__ = ["BeforeRequest", "JobRun", "JobRunner", "no_pacing"]

_STARTED_EBOOKS_KEPT = 10_000  # ebooks this process remembers having marked as started
_CRASHES_TO_POISON = 2  # a job that crashed the pool this often is failed as "poison"


class _OutOfAttempts(Exception):
    def __init__(self, attempts: int) -> None:
        super().__init__(attempts)
        self.attempts = attempts


def _retryable(exc: BaseException) -> bool:
    return is_retryable(exc) and not isinstance(
        exc, _OutOfAttempts | EpochChanged | BudgetWaitTooLong
    )


class JobRunner:
    """Runs claimed jobs to their end, for the workers of one pool process.

    Args:
        ctx: the pool's shared parts.
        generator: writes the pages.
        outcomes: records what became of each job.
        ledger: the open attempts.
        pauser: a `PoolFatalError` pauses the pool through it.
        before_request: the hook run before every API request.
        pricing: what a request costs.
        cache: the result cache, if it is on (looked up before the first attempt: a hit is
            never paced and makes no request).
        governor: the shared rate-limit budget every request waits for (None: unpaced).
    """

    def __init__(
        self,
        ctx: PoolContext,
        *,
        generator: PageGenerator,
        outcomes: OutcomeWriter,
        ledger: AttemptLedger,
        pauser: Pauser,
        before_request: BeforeRequest = no_pacing,
        pricing: PriceTable | None = None,
        cache: PageCache | None = None,
        governor: Governor | None = None,
    ) -> None:
        self.ctx = ctx
        self.pricing = pricing or PriceTable()
        self.cache = cache
        self.generator = generator
        self.outcomes = outcomes
        self.ledger = ledger
        self.pauser = pauser
        self.before_request = before_request
        self.requests = PacedRequests(
            ctx,
            generator=generator,
            governor=governor,
            before_request=before_request,
            pricing=self.pricing,
        )
        self.wait = wait_policy(ctx.settings.retry_backoff_s, ctx.settings.retry_backoff_max_s)
        self._started_ebooks: OrderedDict[str, None] = OrderedDict()

    def forget_started_ebooks(self) -> None:
        """Redis lost its data: every ebook must be marked as started again."""
        self._started_ebooks.clear()

    def decode(self, raw: bytes) -> PageJob:
        """The job in `raw` (raises `InvalidJob`)."""
        return decode_job(raw, max_bytes=self.ctx.settings.max_job_bytes)

    async def handle(
        self, n: int, raw: bytes, claimed_attempt: int, epoch: bytes, ticket: Ticket = NO_TICKET
    ) -> None:
        """Run a claimed job to its end: stored, failed, or given back.

        Args:
            n: the worker's number, for the log.
            raw: the job's exact payload.
            claimed_attempt: the attempt number counted when the job was claimed.
            epoch: the epoch marker the job was claimed under.
            ticket: what the claim learnt of the job (brief, in-flight marker).
        """
        try:
            job = self.decode(raw)
        except InvalidJob as exc:
            self.ledger.ended(raw)
            await self.outcomes.fail(
                raw, None, reason=f"invalid job: {exc}", kind="invalid", attempts=0,
                epoch=epoch, ids=exc.ids, ticket=ticket,
            )  # fmt: skip
            ids = {k: v for k, v in asdict(exc.ids).items() if v is not None}
            logger.bind(worker=n, **ids).warning(
                "[Worker-{}] Invalid job sent to the failed list: {}", n, exc
            )
            return
        if self.pauser.paused:  # claimed just before the pause: hand it back untouched
            await self.outcomes.give_back(raw, refund=self.ledger.ended(raw))
            return
        self._note_started(job, epoch)
        if claimed_attempt > 1 and job.max_tokens is None:
            job = await self._with_grown_limit(job)
        await JobRun(
            self, n=n, raw=raw, job=job, claimed_attempt=claimed_attempt, epoch=epoch, ticket=ticket
        ).run()

    async def _with_grown_limit(self, job: PageJob) -> PageJob:
        """A retried job whose page was cut off at its token limit (in any process) asks for
        the larger limit that attempt chose (`RetryableError.next_max_tokens`)."""
        ctx = self.ctx
        try:
            grown = await ctx.guard.persist(ctx.store.grown_limit, job.id)
        except Exception as exc:  # an odd value under the key: the page goes on without it
            logger.warning(
                f"[Worker Pool] Could not read the token limit of job {job.id}: {error_reason(exc)}"
            )
            return job
        return job if grown is None else job.model_copy(update={"max_tokens": grown})

    async def grow_limit(self, job: PageJob, max_tokens: int) -> None:
        """Keep a cut-off page's larger token limit for its next attempts, in any process."""
        ctx = self.ctx
        try:
            await ctx.guard.persist(ctx.store.grow_limit, job.id, max_tokens)
        except Exception as exc:
            logger.warning(
                f"[Worker Pool] Could not keep the token limit of job {job.id}: {error_reason(exc)}"
            )

    async def crashed(
        self, n: int, raw: bytes, epoch: bytes, exc: Exception, ticket: Ticket = NO_TICKET
    ) -> None:
        """Handling `raw` raised where no failure of a page can: a bug, or a payload that breaks
        the pool. The first time the job goes back to the queue; the second it fails as
        "poison", so no job can keep a worker in a crash loop."""
        refund = self.ledger.ended(raw)
        try:
            crashes = await self.ctx.guard.persist(self.ctx.store.note_crash, raw)
        except Exception:
            crashes = _CRASHES_TO_POISON
        if crashes < _CRASHES_TO_POISON:
            logger.opt(exception=exc).error(
                "[Worker-{}] Crashed on a job ({}); gave it back to the queue", n, error_reason(exc)
            )
            await self.outcomes.give_back(raw, refund=refund)
            return
        reason = f"the pool crashed on this job {crashes} times: {error_reason(exc)}"
        try:
            job: PageJob | None = self.decode(raw)
        except InvalidJob:
            job = None
        await self.outcomes.fail(
            raw, job, reason=reason, kind="poison", attempts=0, epoch=epoch, ticket=ticket
        )
        logger.error("[Worker-{}] Failed job as poison: {}", n, reason)

    def _note_started(self, job: PageJob, epoch: bytes) -> None:
        """Mark the ebook as started, once per ebook per process (bounded memory)."""
        if job.ebook_id in self._started_ebooks:
            self._started_ebooks.move_to_end(job.ebook_id)
            return
        self._started_ebooks[job.ebook_id] = None
        if len(self._started_ebooks) > _STARTED_EBOOKS_KEPT:
            self._started_ebooks.popitem(last=False)
        self.ctx.spawn(self._mark_started(job, epoch, now_ms()))

    async def _mark_started(self, job: PageJob, epoch: bytes, at_ms: int) -> None:
        ctx = self.ctx
        try:
            await ctx.guard.persist(
                ctx.store.mark_started,
                ebook_id=job.ebook_id,
                total=job.total_pages,
                now_ms=at_ms,
                epoch=epoch,
            )
        except Exception as exc:  # a status the app wrote with another type: the page goes on
            logger.warning(
                f"[Worker Pool] Could not mark ebook {job.ebook_id} as started: {error_reason(exc)}"
            )
        else:
            ctx.events.emit(EventKind.EBOOK_STARTED, job=job)


class JobRun:
    """One job's way through its attempts; the state they share lives here, not in closures.

    Attributes:
        attempt: the number of the attempt running or last run (0 before the first).
        next_attempt: the number Redis counted for the next attempt, if already counted (the
            first attempt is counted at claim; each retry is counted when it starts).
    """

    __slots__ = (
        "_replay",
        "attempt",
        "cache_hit",
        "epoch",
        "job",
        "max_attempts",
        "n",
        "next_attempt",
        "raw",
        "runner",
        "started",
        "ticket",
        "usage",
    )

    def __init__(
        self,
        runner: JobRunner,
        *,
        n: int,
        raw: bytes,
        job: PageJob,
        claimed_attempt: int,
        epoch: bytes,
        ticket: Ticket = NO_TICKET,
    ) -> None:
        self.runner = runner
        self.ticket = ticket
        self.usage = JobUsage()
        self.cache_hit = False
        self.n = n
        self.raw = raw
        self.job = job
        self.epoch = epoch
        self.max_attempts = runner.ctx.settings.max_attempts
        self.attempt = 0
        self.next_attempt: int | None = claimed_attempt
        self.started = monotonic()
        self._replay: Exception | None = None

    # The log context and the page's name are built when a line needs them, not per page.
    @property
    def log(self) -> Logger:
        """The logger bound to this job's ids."""
        job = self.job
        return logger.bind(
            worker=self.n, ebook_id=job.ebook_id, page_index=job.page_index, job_id=job.id
        )

    @property
    def where(self) -> str:
        return f"EbookID={self.job.ebook_id}, PageIndex={self.job.page_index}"

    async def run(self) -> None:
        """All attempts, then the outcome: stored (in the background), failed or given back."""
        outcomes, n, raw = self.runner.outcomes, self.n, self.raw
        try:
            page = await self._all_attempts()
        except Stopping:
            await outcomes.give_back(raw, refund=False)
            raise
        except EpochChanged:
            self.log.warning(
                "[Worker-{}] Dropped {}: Redis lost its data while it ran", n, self.where
            )
        except _OutOfAttempts as exc:
            reason = (
                f"gave up: {exc.attempts} attempts were started and none finished "
                "(the process running it died or was stopped each time)"
            )
            await self._fail(reason, "exhausted", exc.attempts)
            self._failed_log(exc.attempts, "exhausted").error(
                "[Worker-{}] Failed job: {}: {}", n, self.where, reason
            )
        except BudgetWaitTooLong as exc:  # the API was busy: not the job's fault, not an attempt
            await outcomes.give_back(raw, refund=True)
            self.log.bind(attempt=self.attempt, waited_s=round(exc.waited_s, 1)).warning(
                "[Worker-{}] Gave {} back to the queue: {}", n, self.where, exc
            )
        except PoolFatalError as exc:
            await outcomes.give_back(raw, refund=True)  # not the job's fault
            self.runner.pauser.pause(exc)
        except JobFatalError as exc:
            await self._fail(error_reason(exc), "fatal", self.attempt)
            self._failed_log(self.attempt, "fatal").error(
                "[Worker-{}] Failed job: {} (not retryable): {}", n, self.where, error_reason(exc)
            )
        except Exception as exc:
            await self._fail(error_reason(exc), "exhausted", self.attempt)
            self._failed_log(self.attempt, "exhausted").error(
                "[Worker-{}] Failed job: {} after {} attempts: {}",
                n, self.where, self.attempt, error_reason(exc),
            )  # fmt: skip
        else:
            self._store(page)

    def _failed_log(self, attempts: int, kind: FailureKind) -> Logger:
        """The job's logger with the numbers of a `Failed job` line as fields."""
        return self.log.bind(attempts=attempts, max_attempts=self.max_attempts, failure=kind)

    async def _fail(self, reason: str, kind: FailureKind, attempts: int) -> None:
        await self.runner.outcomes.fail(
            self.raw, self.job, reason=reason, kind=kind, attempts=attempts, epoch=self.epoch,
            ticket=self.ticket, usage=self.usage,
        )  # fmt: skip

    def _store(self, page: GeneratedPage) -> None:
        # The worker moves on while its page is stored: the job stays in this process's
        # processing list until the write lands, so a crash before that loses nothing.
        duration_s = monotonic() - self.started
        now = now_ms()
        ctx = self.runner.ctx
        page_json = page_record(
            self.job, page, attempts=self.attempt, duration_s=duration_s, now_ms=now,
            pool_id=ctx.id, brief_sha=ticket_sha(self.ticket), cache_hit=self.cache_hit,
        )  # fmt: skip
        self.runner.outcomes.store_page_soon(
            PageWrite(
                n=self.n,
                raw=self.raw,
                job=self.job,
                page_json=page_json,
                epoch=self.epoch,
                now=now,
                attempts=self.attempt,
                tokens=page.completion_tokens,
                duration_s=duration_s,
                prompt_tokens=page.prompt_tokens,
                ticket=self.ticket,
                usage=self.usage,
            )
        )
        cache = self.runner.cache
        if cache is not None and not self.cache_hit:
            ctx.spawn(cache.put(self.job, page))

    async def _all_attempts(self) -> GeneratedPage:
        # Most pages succeed at once, and entering a tenacity loop costs a third of a
        # no-op page; so the first attempt runs bare. If it fails retryably, tenacity
        # takes over from the start: its first "call" re-raises that failure, so the
        # policy (wait, Retry-After, stop) is exactly the one every attempt gets.
        if self.runner.cache is not None:
            cached = await self._from_cache(self.runner.cache)
            if cached is not None:
                return cached
        try:
            return await self._one_attempt()
        except Exception as exc:
            if not _retryable(exc) or self.attempt >= self.max_attempts:
                raise
            self._replay = exc
        retrying = AsyncRetrying(
            stop=self._spent,
            wait=self.runner.wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
            sleep=self._sleep_or_stop,
            before_sleep=self._before_sleep,
        )
        return await retrying(self._replay_then_attempt)

    async def _from_cache(self, cache: PageCache) -> GeneratedPage | None:
        """The page an identical request wrote, in place of the first attempt; None on a miss."""
        page = await cache.get(self.job)
        events = self.runner.ctx.events
        if page is None:
            self.usage.cache_misses += 1
            events.emit(EventKind.CACHE_MISSED, raw=self.raw, worker=self.n, job=self.job)
            return None
        self.attempt, self.next_attempt = self.next_attempt or 1, None
        self.runner.ledger.ended(self.raw)
        self.cache_hit = True
        self.usage.cache_hits += 1
        self.usage.tokens_saved += page.prompt_tokens + page.completion_tokens
        events.emit(
            EventKind.CACHE_HIT, raw=self.raw, worker=self.n, job=self.job,
            prompt_tokens=page.prompt_tokens, completion_tokens=page.completion_tokens,
        )  # fmt: skip
        return page

    async def _replay_then_attempt(self) -> GeneratedPage:
        if self._replay is not None:
            failure, self._replay = self._replay, None
            raise failure
        return await self._one_attempt()

    def _spent(self, _: RetryCallState) -> bool:
        return self.attempt >= self.max_attempts

    async def _sleep_or_stop(self, seconds: float) -> None:
        if await self.runner.ctx.sleep_or_stop(seconds):
            raise Stopping

    def _before_sleep(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait_s = state.upcoming_sleep
        self.log.bind(
            attempt=self.attempt, max_attempts=self.max_attempts, retry_in_s=round(wait_s, 3)
        ).warning(
            "[Worker-{}] Attempt {}/{} failed for {}: {}; retrying in {:.2f}s",
            self.n, self.attempt, self.max_attempts, self.where, error_reason(exc), wait_s,
        )  # fmt: skip
        self.runner.ctx.events.emit(
            EventKind.JOB_RETRIED, raw=self.raw, worker=self.n, attempt=self.attempt,
            wait_s=wait_s, reason=error_reason(exc), job=self.job,
        )  # fmt: skip

    async def _one_attempt(self) -> GeneratedPage:
        runner, raw = self.runner, self.raw
        if self.next_attempt is None:  # a retry: count it (the first was counted at claim)
            ctx = runner.ctx
            self.next_attempt = await ctx.guard.persist(ctx.store.start, raw, epoch=self.epoch)
            runner.ledger.opened(raw)
        self.attempt, self.next_attempt = self.next_attempt, None
        if self.attempt > self.max_attempts:
            runner.ledger.ended(raw)
            raise _OutOfAttempts(self.attempt - 1)
        if page_line_wanted():
            job = self.job
            logger.bind(
                worker=self.n, ebook_id=job.ebook_id, page_index=job.page_index, job_id=job.id,
                page_line=True, attempt=self.attempt, max_attempts=self.max_attempts,
            ).info(
                "[Worker-{}] Processing job: EbookID={}, PageIndex={} (Attempt {}/{})",
                self.n, self.job.ebook_id, self.job.page_index, self.attempt, self.max_attempts,
            )  # fmt: skip
        return await self._generate()

    async def _generate(self) -> GeneratedPage:
        """One attempt's API request (`PacedRequests.send`: the hook, the rate-limit budget,
        refusals waited out). Closes the attempt in the ledger however it ends, except when
        cancelled (release() refunds an interrupted attempt)."""
        runner, raw = self.runner, self.raw
        try:
            page = await runner.requests.send(
                self.job, raw=raw, worker=self.n, attempt=self.attempt, usage=self.usage
            )
        except asyncio.CancelledError:
            raise  # still unfinished: release() refunds this interrupted attempt
        except BaseException as exc:
            runner.ledger.ended(raw)
            if isinstance(exc, RetryableError) and exc.next_max_tokens is not None:
                self._grow(exc.next_max_tokens)
            raise
        runner.ledger.ended(raw)
        return page

    def _grow(self, max_tokens: int) -> None:
        """The page was cut off at its limit: the next attempts ask for `max_tokens`, here
        and in any process that runs them (kept in Redis in the background)."""
        self.job = self.job.model_copy(update={"max_tokens": max_tokens})
        self.runner.ctx.spawn(self.runner.grow_limit(self.job, max_tokens))
