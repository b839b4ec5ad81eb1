"""The pool process: one claimer, CONCURRENT_WORKERS worker coroutines, a heartbeat and stats.

    claimer ──(in-memory hand-off)──► Worker-1..N ──► generator ──► Store.complete / Store.fail
       ▲ Store.claim (batch) / claim_blocking (BLMOVE, waits POLL_INTERVAL)
    heartbeat: every HEARTBEAT_INTERVAL, say we are alive and reap the dead
    stats:     every STATS_INTERVAL, the [Stats] line

A claimed job is in Redis (this process's processing list) until a script completes, fails or
gives it back, so no in-memory state can lose it. Shutdown: stop claiming, let in-flight pages
finish within SHUTDOWN_GRACE, cancel the rest, give everything still held back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import signal
import socket
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from loguru import logger
from redis.asyncio import Redis
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from pool.clock import monotonic, now_ms
from pool.config import PoolSettings
from pool.generation import (
    GeneratedPage,
    GenerationError,
    JobFatalError,
    PageGenerator,
    PoolFatalError,
)
from pool.job import InvalidJob, JobIds, PageJob, decode_job
from pool.keys import Keys
from pool.outage import RedisConfigError, RedisGuard, wait_reason
from pool.records import FailureKind, failed_entry, page_record
from pool.retry import is_retryable, wait_policy
from pool.stats import Stats, format_stats
from pool.store import EpochChanged, Store

__all__ = ["Pool"]

T = TypeVar("T")

_MAX_CLAIM_BATCH = 1_000
_WRITE_DRAIN_S = 5.0  # after the grace period, how long pending result writes may still take
_RESTART_BACKOFF_MAX_S = 30.0
_STARTED_EBOOKS_KEPT = 10_000  # ebooks this process remembers having marked as started
_CRASHES_TO_POISON = 2  # a job that crashed the pool this often is failed as "poison"


class _Stopping(Exception):
    """Raised inside a worker when the pool stops during a wait that would outlast it."""


class Pool:
    """One pool process.

    Args:
        redis: the Redis client (created by the caller, closed by the caller).
        generator: turns a `PageJob` into a page; see `pool.generation.PageGenerator`.
        settings: the pool's settings.
        keys: the key schema; defaults to `Keys(settings.key_prefix)`.
        pool_id: this process's id in Redis; defaults to host-pid-random.
    """

    def __init__(
        self,
        *,
        redis: Redis,
        generator: PageGenerator,
        settings: PoolSettings,
        keys: Keys | None = None,
        pool_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.generator = generator
        self.keys = keys or Keys(settings.key_prefix)
        self.store = Store(redis, self.keys)
        self.id = pool_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.stats = Stats()
        self._stopping = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self.pause_reason: str | None = None
        self._slots = asyncio.Semaphore(settings.concurrent_workers)
        self._handoff: asyncio.Queue[tuple[bytes, int, bytes] | None] = asyncio.Queue()
        # Jobs whose counted attempt has not run to its end (claimed, or generating): if the
        # pool stops now, those attempts are refunded as the jobs are given back.
        self._unfinished: Counter[bytes] = Counter()
        self._started_ebooks: OrderedDict[str, None] = OrderedDict()
        self._writes: set[asyncio.Task[Any]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._guard = RedisGuard(stopping=self._stopping)
        self._guard.on_back.append(self._after_outage)
        # The epoch marker this process works under (see Keys.epoch), and when the reaper may
        # run again: not until every live process has had time to beat after an outage.
        self._epoch = secrets.token_hex(8).encode()
        self._reap_after = 0.0
        self._epoch_lock = asyncio.Lock()
        self._hard_deadline: float | None = None
        self._wait = wait_policy(settings.retry_backoff_s, settings.retry_backoff_max_s)

    # --- public -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the pool to shut down gracefully. Safe to call more than once, from a signal."""
        if not self._stopping.is_set():
            logger.info("[Worker Pool] Stop requested: no new jobs will be claimed.")
            self._stopping.set()

    @property
    def paused(self) -> bool:
        return not self._resumed.is_set()

    async def run(self, *, install_signal_handlers: bool = True) -> None:
        """Run until `stop()` (or SIGTERM/SIGINT when `install_signal_handlers`)."""
        s = self.settings
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if install_signal_handlers else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.stop)
        try:
            logger.info(f"[Worker Pool] Initializing with {s.concurrent_workers} workers...")
            logger.info(f"[Worker Pool] Config: {s.describe()}")
            try:
                await self._guard.until_up(self._connect)
            except Exception as exc:
                if wait_reason(exc) is None:
                    raise
                logger.error("[Worker Pool] Stopped before Redis answered.")
                return
            logger.info(f"[Worker Pool] Redis connection successful. Pool id: {self.id}")
            await self._reap()
            workers = [self._spawn(self._supervise(n)) for n in range(1, s.concurrent_workers + 1)]
            claimer = self._spawn(self._claim_loop())
            housekeeping = [self._spawn(self._heartbeat_loop())]
            if s.stats_interval_s > 0:
                housekeeping.append(self._spawn(self._stats_loop()))
            logger.info(
                f"[Worker Pool] All {s.concurrent_workers} workers started. Press Ctrl+C to stop."
            )
            await self._stopping.wait()
            await self._shutdown(claimer, workers, housekeeping)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            await _cancel_all(self._tasks)
            await self.generator.aclose()

    async def _connect(self) -> None:
        """Start-up: check how Redis evicts, take up the epoch marker, beat once."""
        policy = await self.store.eviction_policy()
        if policy is not None and policy != "noeviction":
            risk = (
                f"Redis's maxmemory-policy is {policy}: when Redis is full it deletes keys, so "
                "queued jobs, pages and statuses can vanish without a trace. Set it to noeviction"
            )
            if self.settings.redis_require_noeviction:
                raise RedisConfigError(f"{risk} (REDIS_REQUIRE_NOEVICTION is set).")
            logger.warning(
                f"[Worker Pool] {risk}, or set REDIS_REQUIRE_NOEVICTION=true to refuse to start."
            )
        self._epoch = await self.store.init_epoch(self._epoch)
        await self._beat()

    # --- shutdown ---------------------------------------------------------------------------

    async def _shutdown(
        self,
        claimer: asyncio.Task[None],
        workers: list[asyncio.Task[None]],
        housekeeping: list[asyncio.Task[None]],
    ) -> None:
        grace = self.settings.shutdown_grace_s
        self._hard_deadline = monotonic() + grace + _WRITE_DRAIN_S
        self._guard.give_up_at = self._hard_deadline
        await _cancel_all([claimer])
        # Jobs claimed but not started stay in the processing list and are given back below.
        while not self._handoff.empty():
            self._handoff.get_nowait()
        for _ in workers:
            self._handoff.put_nowait(None)
        busy = self.stats.active
        if busy:
            logger.info(f"[Worker Pool] Waiting up to {grace:.0f}s for {busy} in-flight jobs...")
        _, pending = await asyncio.wait(workers, timeout=grace)
        await _cancel_all(pending)
        if self._writes:
            await asyncio.wait(self._writes, timeout=max(0.1, self._hard_deadline - monotonic()))
        await _cancel_all(housekeeping)
        try:
            n = await asyncio.wait_for(
                self.store.release(self.id, refund=list(self._unfinished.elements())),
                timeout=_WRITE_DRAIN_S,
            )
        except Exception as exc:
            if wait_reason(exc) is None and not isinstance(exc, TimeoutError):
                raise
            logger.error(
                f"[Worker Pool] Could not give jobs back ({type(exc).__name__}); "
                f"another process will reclaim them within {self.settings.heartbeat_timeout_s:.0f}s."
            )
        else:
            if n:
                logger.info(f"[Worker Pool] Gave {n} unfinished jobs back to the queue.")
        logger.info(f"[Worker Pool] Stopped. {self._stats_line(await self._queue_depth())}")

    # --- claiming ---------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        while True:
            await self._resumed.wait()
            await self._slots.acquire()
            if self.paused:  # paused while we waited for a free worker
                self._slots.release()
                continue
            want = 1
            while want < _MAX_CLAIM_BATCH and not self._slots.locked():
                await self._slots.acquire()
                want += 1
            got: list[tuple[bytes, int]] = []
            epoch = b""
            try:
                got, epoch = await self._claim(want)
                self._guard.ok()
            except Exception as exc:
                if wait_reason(exc) is None:
                    raise
                await self._guard.failed(exc)
            finally:
                for _ in range(want - len(got)):
                    self._slots.release()
            for raw, attempt in got:
                self._unfinished[raw] += 1
                self._handoff.put_nowait((raw, attempt, epoch))

    async def _claim(self, want: int) -> tuple[list[tuple[bytes, int]], bytes]:
        """Claim up to `want` jobs; if none is queued, block up to POLL_INTERVAL for one.

        Returns the (job, attempt) pairs and the epoch they were claimed under.
        """
        poll_s = self.settings.poll_interval_s
        epoch = self._epoch
        try:
            got = await self.store.claim(self.id, want, epoch=epoch)
        except EpochChanged:
            await self._data_lost(epoch)
            return [], self._epoch
        if got:
            return got, epoch
        started = monotonic()
        raw = await self.store.claim_blocking(self.id, poll_s)
        if raw is None:
            if monotonic() - started < poll_s / 2:
                # A server whose blocking pop returns at once (fakeredis): don't spin.
                await asyncio.sleep(min(poll_s, 0.05))
            return [], epoch
        epoch = self._epoch
        try:
            return [(raw, await self.store.start(raw, epoch=epoch))], epoch
        except EpochChanged:  # the job was pushed after Redis lost its data: it is ours
            await self._data_lost(epoch)
            epoch = self._epoch
            return [(raw, await self.store.start(raw, epoch=epoch))], epoch

    # --- workers ----------------------------------------------------------------------------

    async def _supervise(self, n: int) -> None:
        """Run worker `n`, restarting it with backoff if it raises (the pool keeps N workers)."""
        backoff = 1.0
        while True:
            try:
                await self._work(n)
                return
            except Exception:
                logger.exception(f"[Worker-{n}] Crashed; restarting in {backoff:.0f}s")
                if await self._sleep_or_stop(backoff):
                    return
                backoff = min(backoff * 2, _RESTART_BACKOFF_MAX_S)

    async def _work(self, n: int) -> None:
        delay = self.settings.processing_delay_s
        while True:
            claimed = await self._handoff.get()
            if claimed is None:
                return
            raw, attempt, epoch = claimed
            try:
                self.stats.active += 1
                try:
                    await self._handle(n, raw, attempt, epoch)
                except (_Stopping, asyncio.CancelledError):
                    raise
                except Exception as exc:
                    # Not a failure of the page (those are handled) but of the pool on this job.
                    await self._crashed(n, raw, epoch, exc)
                finally:
                    self.stats.active -= 1
                if delay and await self._sleep_or_stop(delay):
                    return
            except _Stopping:
                return
            finally:
                self._slots.release()

    async def _crashed(self, n: int, raw: bytes, epoch: bytes, exc: Exception) -> None:
        """Handling `raw` raised where no failure of a page can: a bug, or a payload that breaks
        the pool. The first time the job goes back to the queue; the second it fails as
        "poison", so no job can keep a worker in a crash loop."""
        refund = self._attempt_ended(raw)
        try:
            crashes = await self._guard.persist(self.store.note_crash, raw)
        except Exception:
            crashes = _CRASHES_TO_POISON
        if crashes < _CRASHES_TO_POISON:
            logger.opt(exception=exc).error(
                "[Worker-{}] Crashed on a job ({}); gave it back to the queue", n, _reason(exc)
            )
            await self._give_back(raw, refund=refund)
            return
        reason = f"the pool crashed on this job {crashes} times: {_reason(exc)}"
        try:
            job: PageJob | None = decode_job(raw, max_bytes=self.settings.max_job_bytes)
        except InvalidJob:
            job = None
        await self._fail(raw, job, reason=reason, kind="poison", attempts=0, epoch=epoch)
        logger.error("[Worker-{}] Failed job as poison: {}", n, reason)

    async def _handle(self, n: int, raw: bytes, claimed_attempt: int, epoch: bytes) -> None:
        """Run a claimed job to its end: stored, failed, or given back.

        Args:
            n: the worker's number, for the log.
            raw: the job's exact payload.
            claimed_attempt: the attempt number counted when the job was claimed.
            epoch: the epoch marker the job was claimed under.
        """
        try:
            job = decode_job(raw, max_bytes=self.settings.max_job_bytes)
        except InvalidJob as exc:
            self._attempt_ended(raw)
            await self._fail(
                raw, None, reason=f"invalid job: {exc}", kind="invalid", attempts=0,
                epoch=epoch, ids=exc.ids,
            )  # fmt: skip
            logger.warning("[Worker-{}] Invalid job sent to the failed list: {}", n, exc)
            return
        if self.paused:  # claimed just before the pause: hand it back untouched
            await self._give_back(raw, refund=self._attempt_ended(raw))
            return
        self._note_started(job, epoch)
        log = logger.bind(worker=n, ebook_id=job.ebook_id, page_index=job.page_index, job_id=job.id)
        where = f"EbookID={job.ebook_id}, PageIndex={job.page_index}"
        max_attempts = self.settings.max_attempts
        attempt = 0
        next_attempt: int | None = claimed_attempt
        started = monotonic()

        def spent(_: RetryCallState) -> bool:
            return attempt >= max_attempts

        async def before_sleep_or_stop(seconds: float) -> None:
            if await self._sleep_or_stop(seconds):
                raise _Stopping

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait_s = state.upcoming_sleep
            log.warning(
                "[Worker-{}] Attempt {}/{} failed for {}: {}; retrying in {:.2f}s",
                n, attempt, max_attempts, where, _reason(exc), wait_s,
            )  # fmt: skip

        def retryable(exc: BaseException) -> bool:
            return is_retryable(exc) and not isinstance(exc, _OutOfAttempts | EpochChanged)

        async def one_attempt() -> GeneratedPage:
            nonlocal attempt, next_attempt
            if next_attempt is None:  # a retry: count it (the first was counted at claim)
                next_attempt = await self._guard.persist(self.store.start, raw, epoch=epoch)
                self._unfinished[raw] += 1
            attempt, next_attempt = next_attempt, None
            if attempt > max_attempts:
                self._attempt_ended(raw)
                raise _OutOfAttempts(attempt - 1)
            log.info(
                "[Worker-{}] Processing job: EbookID={}, PageIndex={} (Attempt {}/{})",
                n, job.ebook_id, job.page_index, attempt, max_attempts,
            )  # fmt: skip
            return await self._generate(raw, job)

        async def all_attempts() -> GeneratedPage:
            # Most pages succeed at once, and entering a tenacity loop costs a third of a
            # no-op page; so the first attempt runs bare. If it fails retryably, tenacity
            # takes over from the start: its first "call" re-raises that failure, so the
            # policy (wait, Retry-After, stop) is exactly the one every attempt gets.
            try:
                return await one_attempt()
            except Exception as exc:
                if not retryable(exc) or attempt >= max_attempts:
                    raise
                first: Exception | None = exc

            async def replay_then_attempt() -> GeneratedPage:
                nonlocal first
                if first is not None:
                    failure, first = first, None
                    raise failure
                return await one_attempt()

            retrying = AsyncRetrying(
                stop=spent,
                wait=self._wait,
                retry=retry_if_exception(retryable),
                reraise=True,
                sleep=before_sleep_or_stop,
                before_sleep=before_sleep,
            )
            return await retrying(replay_then_attempt)

        try:
            page = await all_attempts()
        except _Stopping:
            await self._give_back(raw, refund=False)
            raise
        except EpochChanged:
            log.warning("[Worker-{}] Dropped {}: Redis lost its data while it ran", n, where)
        except _OutOfAttempts as exc:
            reason = (
                f"gave up: {exc.attempts} attempts were started and none finished "
                "(the process running it died or was stopped each time)"
            )
            await self._fail(
                raw, job, reason=reason, kind="exhausted", attempts=exc.attempts, epoch=epoch
            )
            log.error("[Worker-{}] Failed job: {}: {}", n, where, reason)
        except PoolFatalError as exc:
            await self._give_back(raw, refund=True)  # not the job's fault
            self._pause(exc)
        except JobFatalError as exc:
            await self._fail(
                raw, job, reason=_reason(exc), kind="fatal", attempts=attempt, epoch=epoch
            )
            log.error("[Worker-{}] Failed job: {} (not retryable): {}", n, where, _reason(exc))
        except Exception as exc:
            await self._fail(
                raw, job, reason=_reason(exc), kind="exhausted", attempts=attempt, epoch=epoch
            )
            log.error(
                "[Worker-{}] Failed job: {} after {} attempts: {}", n, where, attempt, _reason(exc)
            )
        else:
            # The worker moves on while its page is stored: the job stays in this process's
            # processing list until the write lands, so a crash before that loses nothing.
            duration_s = monotonic() - started
            now = now_ms()
            page_json = page_record(
                job, page, attempts=attempt, duration_s=duration_s, now_ms=now, pool_id=self.id
            )
            write = self._store_page(
                raw,
                job,
                page_json,
                epoch=epoch,
                now=now,
                n=n,
                attempts=attempt,
                tokens=page.completion_tokens,
                duration_s=duration_s,
            )
            self._background_write(write, n=n, raw=raw, epoch=epoch)

    async def _generate(self, raw: bytes, job: PageJob) -> GeneratedPage:
        """One attempt, bounded by GENERATION_TIMEOUT even if the generator ignores it."""
        timeout_s = self.settings.generation_timeout_s
        try:
            async with asyncio.timeout(timeout_s + 1.0):
                page = await self.generator.generate(job, timeout_s=timeout_s)
        except asyncio.CancelledError:
            raise  # still unfinished: release() refunds this interrupted attempt
        except TimeoutError:
            self._attempt_ended(raw)
            raise TimeoutError(f"generation timed out after {timeout_s:.0f}s") from None
        except BaseException:
            self._attempt_ended(raw)
            raise
        self._attempt_ended(raw)
        return page

    def _attempt_ended(self, raw: bytes) -> bool:
        """Forget a counted attempt of `raw` that ended; True if one was still open."""
        if self._unfinished[raw] <= 0:
            return False
        self._unfinished[raw] -= 1
        if not self._unfinished[raw]:
            del self._unfinished[raw]
        return True

    def _note_started(self, job: PageJob, epoch: bytes) -> None:
        """Mark the ebook as started, once per ebook per process (bounded memory)."""
        if job.ebook_id in self._started_ebooks:
            self._started_ebooks.move_to_end(job.ebook_id)
            return
        self._started_ebooks[job.ebook_id] = None
        if len(self._started_ebooks) > _STARTED_EBOOKS_KEPT:
            self._started_ebooks.popitem(last=False)
        self._spawn(self._mark_started(job, epoch, now_ms()))

    async def _mark_started(self, job: PageJob, epoch: bytes, at_ms: int) -> None:
        try:
            await self._guard.persist(
                self.store.mark_started,
                ebook_id=job.ebook_id,
                total=job.total_pages,
                now_ms=at_ms,
                epoch=epoch,
            )
        except Exception as exc:  # a status the app wrote with another type: the page goes on
            logger.warning(
                f"[Worker Pool] Could not mark ebook {job.ebook_id} as started: {_reason(exc)}"
            )

    # --- outcomes (written even if the worker is cancelled) ----------------------------------

    async def _store_page(
        self,
        raw: bytes,
        job: PageJob,
        page_json: bytes,
        *,
        epoch: bytes,
        now: int,
        n: int,
        attempts: int,
        tokens: int,
        duration_s: float,
    ) -> None:
        """Write a finished page (waiting out Redis outages), then count and log it."""
        new = await self._guard.persist(
            self.store.complete,
            self.id,
            raw,
            ebook_id=job.ebook_id,
            page_index=job.page_index,
            total=job.total_pages,
            page_json=page_json,
            now_ms=now,
            epoch=epoch,
        )
        log = logger.bind(worker=n, ebook_id=job.ebook_id, page_index=job.page_index, job_id=job.id)
        if new is None:
            log.warning(
                "[Worker-{}] Dropped EbookID={}, PageIndex={}: Redis lost its data while it ran",
                n, job.ebook_id, job.page_index,
            )  # fmt: skip
            return
        self.stats.record_success(duration_s)
        log.info(
            "[Worker-{}] Completed job: EbookID={}, PageIndex={} in {:.1f}s ({} tokens, attempt {})",
            n, job.ebook_id, job.page_index, duration_s, tokens, attempts,
        )  # fmt: skip

    async def _fail(
        self,
        raw: bytes,
        job: PageJob | None,
        *,
        reason: str,
        kind: FailureKind,
        attempts: int,
        epoch: bytes,
        ids: JobIds | None = None,
    ) -> None:
        """Move a job to the failed list (waiting out Redis outages), then count it.

        If updating the ebook's status is refused (say the app wrote one of its keys with
        another type), the job still goes to the failed list, without the status.
        """
        now = now_ms()
        entry = failed_entry(
            raw, job, reason=reason, kind=kind, attempts=attempts, now_ms=now,
            pool_id=self.id, max_bytes=self.settings.max_job_bytes, ids=ids,
        )  # fmt: skip

        async def write(with_status: bool) -> bool:
            return await self._guard.persist(
                self.store.fail, self.id, raw, entry=entry, now_ms=now, epoch=epoch,
                with_status=with_status,
            )  # fmt: skip

        try:
            written = await self._shielded(write(True))
        except Exception as exc:
            if wait_reason(exc) is not None:
                raise
            logger.error(f"[Worker Pool] Could not update an ebook's status: {_reason(exc)}")
            written = await self._shielded(write(False))
        if written:
            self.stats.record_failure()

    async def _give_back(self, raw: bytes, *, refund: bool) -> None:
        try:
            # If Redis is down the job stays in our processing list: release() or the reaper
            # returns it later. Never wait here: this runs on the way out.
            await self.store.give_back(self.id, raw, refund=refund)
        except Exception as exc:
            if wait_reason(exc) is None:
                logger.error(f"[Worker Pool] Could not give a job back: {_reason(exc)}")

    async def _shielded(self, write: Awaitable[T]) -> T:
        task = asyncio.ensure_future(write)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)

    def _background_write(
        self, write: Awaitable[None], *, n: int, raw: bytes, epoch: bytes
    ) -> None:
        """Run a write without waiting for it; shutdown waits for it (`_writes`)."""
        task = asyncio.ensure_future(write)
        self._writes.add(task)
        task.add_done_callback(functools.partial(self._write_done, n=n, raw=raw, epoch=epoch))

    def _write_done(self, task: asyncio.Task[None], *, n: int, raw: bytes, epoch: bytes) -> None:
        self._writes.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if not isinstance(exc, Exception) or wait_reason(exc) is not None:
            # Redis stayed down past the shutdown deadline: the job is still in our
            # processing list, and release() or the reaper returns it.
            return
        # Storing the page was refused: handled like a crash on the job (twice = poison).
        self._spawn(self._crashed(n, raw, epoch, exc))

    # --- Redis outages and lost data ------------------------------------------------------

    def _after_outage(self) -> None:
        """Redis answers again: give every live process time to beat before reaping any."""
        self._reap_after = monotonic() + self.settings.heartbeat_timeout_s

    async def _data_lost(self, stale: bytes) -> None:
        """Redis came back without our epoch marker `stale`: its data is gone. Say what was
        lost, take up a new marker, and let the jobs claimed before end without writing."""
        async with self._epoch_lock:
            if self._epoch == stale:  # else another task of this process has seen to it
                await self._take_up_new_epoch()

    async def _take_up_new_epoch(self) -> None:
        held = sum(self._unfinished.values())
        logger.error(
            "[Worker Pool] Redis lost its data (restarted without persistence, flushed, or failed "
            "over to an empty replica): every queued job, page, status and failed entry written "
            f"before is gone. The {held} jobs this process was running are dropped as they end "
            "(their ebooks are unknown now); jobs pushed from now on are processed as usual. "
            "Keep AOF on and maxmemory-policy noeviction (see README, Reliability)."
        )
        self._started_ebooks.clear()
        self._epoch = await self.store.init_epoch(secrets.token_hex(8).encode())

    # --- pausing on pool-fatal errors -------------------------------------------------------

    def _pause(self, exc: PoolFatalError) -> None:
        if self.paused:
            return
        self._resumed.clear()
        self.pause_reason = _reason(exc).rstrip(".")
        logger.error(
            f"[Worker Pool] PAUSED: {self.pause_reason}. No job was failed and the queue is left "
            f"intact. Fix it (e.g. OPENAI_API_KEY, billing); the pool probes every "
            f"{self.settings.pause_probe_interval_s:.0f}s and resumes on its own."
        )
        self._spawn(self._probe_until_resumed())

    async def _probe_until_resumed(self) -> None:
        while not await self._sleep_or_stop(self.settings.pause_probe_interval_s):
            try:
                await self.generator.probe()
            except PoolFatalError as exc:
                self.pause_reason = _reason(exc).rstrip(".")
                logger.error(f"[Worker Pool] Still paused: {self.pause_reason}")
            except Exception as exc:
                logger.warning(f"[Worker Pool] Still paused; probe failed: {_reason(exc)}")
            else:
                logger.info(
                    f"[Worker Pool] Resumed: the probe succeeded (was: {self.pause_reason})"
                )
                self.pause_reason = None
                self._resumed.set()
                return

    # --- housekeeping -----------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval_s)
            try:
                await self._beat()
                await self._reap()
                self._guard.ok()
            except Exception as exc:
                if wait_reason(exc) is None:
                    raise
                await self._guard.failed(exc, 0)

    async def _beat(self) -> None:
        """Say we are alive; notice if Redis lost its data (the epoch marker changed)."""
        s = self.settings
        known = self._epoch
        epoch = await self.store.heartbeat(self.id, self._snapshot(), s.heartbeat_timeout)
        if epoch != known:
            await self._data_lost(known)

    async def _reap(self) -> None:
        if monotonic() < self._reap_after:  # just back from an outage: others may not have beaten
            return
        reaped = await self.store.reap(
            exclude=self.id, min_uptime_s=self.settings.heartbeat_timeout_s
        )
        for pool_id, n in reaped.items():
            logger.warning(
                f"[Worker Pool] Pool {pool_id} stopped sending heartbeats; "
                f"returned its {n} unfinished jobs to the queue."
            )

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_interval_s)
            logger.info(self._stats_line(await self._queue_depth()))

    async def _queue_depth(self) -> int | None:
        try:
            return int(await asyncio.wait_for(self.store.redis.llen(self.keys.queue), 2.0))
        except Exception as exc:
            if wait_reason(exc) is None and not isinstance(exc, TimeoutError):
                raise
            return None

    def _stats_line(self, depth: int | None) -> str:
        line = format_stats(self.stats.snapshot(), queue_depth=depth)
        return f"{line} | PAUSED: {self.pause_reason}" if self.paused else line

    def _snapshot(self) -> dict[str, Any]:
        snap = self.stats.snapshot()
        return {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "workers": self.settings.concurrent_workers,
            "paused": self.pause_reason,
            "at": now_ms(),
            **snap,
        }

    # --- helpers ----------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[T]) -> asyncio.Task[T]:
        task: asyncio.Task[T] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _sleep_or_stop(self, seconds: float) -> bool:
        """Sleep, but wake early when the pool stops. Returns True if it is stopping."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        return self._stopping.is_set()


async def _cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel tasks and wait for them, cancelling again until they end.

    redis-py (seen with 8.1) sometimes swallows a CancelledError that lands while it reads a
    reply, and the task carries on; a single cancel() is not enough to stop a loop doing I/O.
    """
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.05)


class _OutOfAttempts(Exception):
    def __init__(self, attempts: int) -> None:
        super().__init__(attempts)
        self.attempts = attempts


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, GenerationError):
        return exc.reason
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return text if text and name in text else (f"{name}: {text}" if text else name)
