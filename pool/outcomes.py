"""Writing a job's outcome: its page stored, its failed entry, or the job given back.

Outcome writes wait out Redis outages (through the pool's `RedisGuard`) and are shielded from
cancellation, so a worker stopped at shutdown still records what it finished. The shutdown waits
for them (`drain`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from loguru import logger

from pool.clock import monotonic, now_ms
from pool.deadletters import FailureKind, failed_entry
from pool.events import EventKind
from pool.job import JobIds, PageJob
from pool.logs import page_line_wanted
from pool.outage import wait_reason
from pool.queue import NO_TICKET, Ticket
from pool.runtime import PoolContext, error_reason
from pool.usage import JobUsage

__all__ = ["OutcomeWriter", "PageWrite"]

T = TypeVar("T")

#: Called when storing a page was refused (not an outage): handled like a crash on the job.
OnRefused = Callable[[int, bytes, bytes, Exception, Ticket], Awaitable[None]]


class PageWrite:
    """A finished page waiting to be stored: what `OutcomeWriter.store_page` writes and logs."""

    __slots__ = (
        "attempts",
        "duration_s",
        "epoch",
        "job",
        "n",
        "now",
        "page_json",
        "prompt_tokens",
        "raw",
        "ticket",
        "tokens",
        "usage",
    )

    def __init__(
        self,
        *,
        n: int,
        raw: bytes,
        job: PageJob,
        page_json: bytes,
        epoch: bytes,
        now: int,
        attempts: int,
        tokens: int,
        duration_s: float,
        prompt_tokens: int = 0,
        ticket: Ticket = NO_TICKET,
        usage: JobUsage | None = None,
    ) -> None:
        self.n = n
        self.raw = raw
        self.job = job
        self.page_json = page_json
        self.epoch = epoch
        self.now = now
        self.attempts = attempts
        self.tokens = tokens
        self.duration_s = duration_s
        self.prompt_tokens = prompt_tokens
        self.ticket = ticket
        self.usage = usage


class OutcomeWriter:
    """Stores pages, fails jobs and gives them back, for one pool process.

    Args:
        ctx: the pool's shared parts.
        on_refused: called (as a task) when Redis refused to store a finished page.
    """

    def __init__(self, ctx: PoolContext, *, on_refused: OnRefused) -> None:
        self._ctx = ctx
        self._on_refused = on_refused
        self.writes: set[asyncio.Future[Any]] = set()  # writes not landed yet

    async def drain(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for the writes still running (and those they hand on to)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.1, timeout_s)
        while self.writes and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self.writes), timeout=left)

    def store_page_soon(self, write: PageWrite) -> None:
        """Store a finished page without waiting for it; `drain` waits for it.

        The write goes out with the next batch of script calls and its reply is handled in a
        callback: a page costs no task of its own. Only when Redis is unreachable does a task
        take over, waiting the outage out (`_store_after_outage`). The job stays in this
        process's processing list until the write lands, so a crash before that loses nothing.
        """
        future = self._send(write)
        self.writes.add(future)
        future.add_done_callback(functools.partial(self._first_reply, write=write))

    def _send(self, w: PageWrite) -> asyncio.Future[Any]:
        """The page's write, out with the next batch: the future of the script's reply."""
        ctx, job = self._ctx, w.job
        return ctx.store.complete_soon(
            ctx.id, w.raw, ebook_id=job.ebook_id, page_index=job.page_index,
            total=job.total_pages, page_json=w.page_json, now_ms=w.now,
            epoch=w.epoch, ticket=w.ticket, usage=w.usage,
        )  # fmt: skip

    def _first_reply(self, future: asyncio.Future[object], *, write: PageWrite) -> None:
        self.writes.discard(future)
        if future.cancelled():
            return
        exc = future.exception()
        if exc is None:
            self._ctx.guard.ok()
            self._stored(write, self._ctx.store.stored(future.result()))
            return
        if isinstance(exc, Exception) and wait_reason(exc) is None:
            self._refused(write, exc)
            return
        task = asyncio.ensure_future(self._store_after_outage(write, exc))
        self.writes.add(task)
        task.add_done_callback(functools.partial(self._write_done, write=write))

    async def _store_after_outage(self, write: PageWrite, exc: BaseException) -> None:
        """The first try met an outage: note it, then store the page waiting it out."""
        guard = self._ctx.guard
        if guard.give_up_at is not None and monotonic() > guard.give_up_at:
            raise exc
        await guard.failed(exc, 0.1)
        await self.store_page(write)

    async def store_page(self, w: PageWrite) -> None:
        """Write a finished page (waiting out Redis outages), then count and log it."""
        reply = await self._ctx.guard.persist(self._send, w)
        self._stored(w, self._ctx.store.stored(reply))

    def _stored(self, w: PageWrite, new: bool | None) -> None:
        """The page's write landed: count and log it (or say it was dropped)."""
        if new is None:
            task = asyncio.ensure_future(self._dropped(w))
            self.writes.add(task)
            task.add_done_callback(self.writes.discard)
            return
        job = w.job
        self._ctx.events.emit(
            EventKind.JOB_SUCCEEDED, raw=w.raw, worker=w.n, attempt=w.attempts,
            duration_s=w.duration_s, job=job, completion_tokens=w.tokens,
            prompt_tokens=w.prompt_tokens, usage=w.usage,
        )  # fmt: skip
        if not page_line_wanted():
            return
        logger.bind(
            worker=w.n, ebook_id=job.ebook_id, page_index=job.page_index, job_id=job.id,
            page_line=True, duration_s=round(w.duration_s, 3), tokens=w.tokens, attempt=w.attempts,
        ).info(
            "[Worker-{}] Completed job: EbookID={}, PageIndex={} in {:.1f}s ({} tokens, attempt {})",
            w.n, job.ebook_id, job.page_index, w.duration_s, w.tokens, w.attempts,
        )  # fmt: skip

    async def _dropped(self, w: PageWrite) -> None:
        """Redis lost its data while the job ran: nothing was written for it."""
        ctx, job = self._ctx, w.job
        if ctx.data_lost is not None:  # say what happened (once) before the first drop
            await ctx.data_lost(w.epoch)
        logger.bind(
            worker=w.n, ebook_id=job.ebook_id, page_index=job.page_index, job_id=job.id
        ).warning(
            "[Worker-{}] Dropped EbookID={}, PageIndex={}: Redis lost its data while it ran",
            w.n, job.ebook_id, job.page_index,
        )  # fmt: skip

    async def fail(
        self,
        raw: bytes,
        job: PageJob | None,
        *,
        reason: str,
        kind: FailureKind,
        attempts: int,
        epoch: bytes,
        ids: JobIds | None = None,
        ticket: Ticket = NO_TICKET,
        usage: JobUsage | None = None,
    ) -> None:
        """Move a job to the failed list (waiting out Redis outages), then count it.

        If updating the ebook's status is refused (say the app wrote one of its keys with
        another type), the job still goes to the failed list, without the status.
        """
        ctx = self._ctx
        now = now_ms()
        entry = failed_entry(
            raw, job, reason=reason, kind=kind, attempts=attempts, now_ms=now,
            pool_id=ctx.id, max_bytes=ctx.settings.max_job_bytes, ids=ids,
        )  # fmt: skip

        async def write(with_status: bool) -> bool:
            return await ctx.guard.persist(
                ctx.store.fail, ctx.id, raw, entry=entry, now_ms=now, epoch=epoch,
                with_status=with_status, ticket=ticket, usage=usage,
            )  # fmt: skip

        try:
            written = await self._shielded(write(True))
        except Exception as exc:
            if wait_reason(exc) is not None:
                raise
            logger.error(f"[Worker Pool] Could not update an ebook's status: {error_reason(exc)}")
            written = await self._shielded(write(False))
        if written:
            ctx.events.emit(
                EventKind.JOB_FAILED, raw=raw, attempt=attempts, reason=reason, job=job,
                error_type=kind, usage=usage,
            )  # fmt: skip

    async def give_back(self, raw: bytes, *, refund: bool) -> None:
        """Return a claimed job to the queue, without waiting out an outage."""
        try:
            # If Redis is down the job stays in our processing list: release() or the reaper
            # returns it later. Never wait here: this runs on the way out.
            await self._ctx.store.give_back(self._ctx.id, raw, refund=refund)
        except Exception as exc:
            if wait_reason(exc) is None:
                logger.error(f"[Worker Pool] Could not give a job back: {error_reason(exc)}")

    async def _shielded(self, write: Awaitable[T]) -> T:
        task = asyncio.ensure_future(write)
        self.writes.add(task)
        task.add_done_callback(self.writes.discard)
        return await asyncio.shield(task)

    def _write_done(self, task: asyncio.Task[None], *, write: PageWrite) -> None:
        self.writes.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if not isinstance(exc, Exception) or wait_reason(exc) is not None:
            # Redis stayed down past the shutdown deadline: the job is still in our
            # processing list, and release() or the reaper returns it.
            return
        self._refused(write, exc)

    def _refused(self, write: PageWrite, exc: Exception) -> None:
        # Storing the page was refused: handled like a crash on the job (twice = poison).
        self._ctx.spawn(self._on_refused(write.n, write.raw, write.epoch, exc, write.ticket))
