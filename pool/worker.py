"""The pool process: start-up, signals, N worker coroutines and the ordered shutdown.

    Claimer ──(in-memory hand-off)──► Worker-1..N ──► JobRunner ──► generator
       ▲ Store.claim / claim_blocking             └──► OutcomeWriter: Store.complete / fail
    Liveness: heartbeat + reaper + epoch every HEARTBEAT_INTERVAL; Pauser: pause and probe
    PoolEvents ──► Stats (the [Stats] line every STATS_INTERVAL) and any other subscriber

A claimed job is in Redis (this process's processing list) until a script completes, fails or
gives it back, so no in-memory state can lose it. Shutdown, in this order: stop claiming, let
in-flight pages finish within SHUTDOWN_GRACE, cancel the rest, let outcome writes drain, stop
housekeeping, give everything still held back to the queue (refunding the open attempts).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
from typing import Any

from loguru import logger
from redis.asyncio import Redis

from pool.attempts import AttemptLedger
from pool.cache import PageCache
from pool.claimer import Claimed, Claimer
from pool.clock import monotonic, now_ms
from pool.config import PoolSettings
from pool.events import EventKind, PoolEvents
from pool.generation import PageGenerator
from pool.jobrun import BeforeRequest, JobRunner, no_pacing
from pool.keys import Keys
from pool.ledger import LedgerStats
from pool.liveness import Liveness, Pauser
from pool.logs import flush_page_lines
from pool.outage import RedisGuard, wait_reason
from pool.outcomes import OutcomeWriter
from pool.pricing import PriceTable
from pool.queue import Ticket
from pool.ratelimit import BudgetSnapshot, Governor, read_budgets
from pool.ratelimit.tokens import preload as preload_vocabularies
from pool.runtime import PoolContext, Stopping, cancel_all
from pool.stats import Stats, format_stats, stats_fields
from pool.store import Store, StoreLimits

__all__ = ["Pool"]

_WRITE_DRAIN_S = 5.0  # after the grace period, how long pending result writes may still take
_RESTART_BACKOFF_MAX_S = 30.0
_CLAIM_AHEAD = 1  # jobs held beyond the governor's concurrency limit


class Pool:
    """One pool process.

    Args:
        redis: the Redis client (created by the caller, closed by the caller).
        generator: turns a `PageJob` into a page; see `pool.generation.PageGenerator`.
        settings: the pool's settings.
        keys: the key schema; defaults to `Keys(settings.key_prefix)`.
        pool_id: this process's id in Redis; defaults to host-pid-random.
        events: the event bus to emit on (one is made if None); `Stats` subscribes to it.
        before_request: awaited before every API request, first attempts and retries alike;
            the default returns at once.
        governor: the rate-limit budget shared by every process (`pool.ratelimit.Governor`);
            every request waits for it, and CONCURRENT_WORKERS becomes a ceiling of the
            requests in flight. None: requests go out unpaced (RATE_LIMIT_GOVERNOR=false).
        pricing: the price table of the ledger (`pool.pricing`); the built-in one if None.
        cache: the result cache (CACHE_TTL), None when it is off; a hit is neither paced nor
            a request.
    """

    def __init__(
        self,
        *,
        redis: Redis,
        generator: PageGenerator,
        settings: PoolSettings,
        keys: Keys | None = None,
        pool_id: str | None = None,
        events: PoolEvents | None = None,
        before_request: BeforeRequest = no_pacing,
        governor: Governor | None = None,
        pricing: PriceTable | None = None,
        cache: PageCache | None = None,
    ) -> None:
        self.settings = settings
        self.governor = governor
        self.pricing = pricing or PriceTable()  # the ledger's prices (metrics use them too)
        self._redis = redis
        self.generator = generator
        self.keys = keys or Keys(settings.key_prefix)
        self.store = Store(redis, self.keys, limits=StoreLimits.from_settings(settings))
        self.id = pool_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.events = events or PoolEvents()
        self.stats = Stats()
        self.events.subscribe(self.stats.on_event, Stats.KINDS)
        self.ledger_stats = LedgerStats()
        self.events.subscribe(self.ledger_stats.on_event, LedgerStats.KINDS)
        ctx = self._ctx = PoolContext(
            pool_id=self.id, settings=settings, store=self.store, events=self.events
        )
        self._guard: RedisGuard = ctx.guard
        self._guard.on_down.append(lambda: self.events.emit(EventKind.REDIS_DOWN))
        self._guard.on_back.append(lambda: self.events.emit(EventKind.REDIS_UP))
        self._slots = asyncio.Semaphore(settings.concurrent_workers)
        self._handoff: asyncio.Queue[Claimed | None] = asyncio.Queue()
        self._ledger = AttemptLedger()
        self._pauser = Pauser(ctx, generator=generator)
        self._liveness = Liveness(
            ctx, ledger=self._ledger, snapshot=self._snapshot, pauser=self._pauser
        )
        ctx.data_lost = self._liveness.data_lost
        self._outcomes = OutcomeWriter(ctx, on_refused=self._crashed)
        self._runner = JobRunner(
            ctx,
            generator=generator,
            outcomes=self._outcomes,
            ledger=self._ledger,
            pauser=self._pauser,
            before_request=before_request,
            pricing=self.pricing,
            cache=cache,
            governor=governor,
        )
        self._liveness.on_data_lost.append(self._runner.forget_started_ebooks)
        self._room_changed = asyncio.Event()
        self._claimer = Claimer(
            ctx,
            liveness=self._liveness,
            pauser=self._pauser,
            ledger=self._ledger,
            slots=self._slots,
            handoff=self._handoff,
            room=self._claim_room if governor is not None and governor.enabled else None,
            room_changed=self._room_changed,
            holds_jobs=self._holds_jobs,
        )

    def _holds_jobs(self) -> bool:
        """Whether a claimed job is still in hand-off, at a worker, or being written."""
        return len(self._ledger) > 0 or self.stats.active > 0 or bool(self._outcomes.writes)

    # --- public -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the pool to shut down gracefully. Safe to call more than once, from a signal."""
        if not self._ctx.stopping.is_set():
            logger.info("[Worker Pool] Stop requested: no new jobs will be claimed.")
            self._ctx.stopping.set()

    @property
    def paused(self) -> bool:
        return self._pauser.paused

    @property
    def pause_reason(self) -> str | None:
        return self._pauser.reason

    async def run(self, *, install_signal_handlers: bool = True) -> None:
        """Run until `stop()` (or SIGTERM/SIGINT when `install_signal_handlers`)."""
        s, ctx = self.settings, self._ctx
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if install_signal_handlers else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.stop)
        try:
            logger.info(f"[Worker Pool] Initializing with {s.concurrent_workers} workers...")
            logger.info(f"[Worker Pool] Config: {s.describe()}")
            if self.governor is not None and self.governor.enabled:
                # The governor counts every request's prompt tokens, the first count loading
                # the BPE vocabularies (~0.4 s, seconds on a busy CPU). Loaded on the event
                # loop at the first page, they would stall every worker and the heartbeat,
                # and a peer could take this live process for dead and requeue its jobs.
                # So: now, before this process says it is alive, and off the event loop.
                await asyncio.to_thread(preload_vocabularies)
            try:
                await self._guard.until_up(self._liveness.connect)
            except Exception as exc:
                if wait_reason(exc) is None:
                    raise
                logger.error("[Worker Pool] Stopped before Redis answered.")
                return
            logger.info(f"[Worker Pool] Redis connection successful. Pool id: {self.id}")
            await self._reap()
            workers = [ctx.spawn(self._supervise(n)) for n in range(1, s.concurrent_workers + 1)]
            claimer = ctx.spawn(self._claimer.run())
            housekeeping = [ctx.spawn(self._liveness.heartbeat_loop())]
            if s.stats_interval_s > 0:
                housekeeping.append(ctx.spawn(self._stats_loop()))
            if self.governor is not None and self.governor.enabled:
                housekeeping.append(ctx.spawn(self._budget_loop()))
            logger.info(
                f"[Worker Pool] All {s.concurrent_workers} workers started. Press Ctrl+C to stop."
            )
            await ctx.stopping.wait()
            await self._shutdown(claimer, workers, housekeeping)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            await cancel_all(ctx.tasks)
            await self.generator.aclose()

    async def _reap(self) -> None:
        await self._liveness.reap()

    # --- shutdown ---------------------------------------------------------------------------

    async def _shutdown(
        self,
        claimer: asyncio.Task[None],
        workers: list[asyncio.Task[None]],
        housekeeping: list[asyncio.Task[None]],
    ) -> None:
        """The shutdown order: claimer, workers (grace, then cancel), writes, housekeeping,
        then give back what is still held."""
        grace = self.settings.shutdown_grace_s
        hard_deadline = monotonic() + grace + _WRITE_DRAIN_S
        self._guard.give_up_at = hard_deadline
        await cancel_all([claimer])
        # Jobs claimed but not started stay in the processing list and are given back below.
        while not self._handoff.empty():
            self._handoff.get_nowait()
        for _ in workers:
            self._handoff.put_nowait(None)
        busy = self.stats.active
        if busy:
            logger.info(f"[Worker Pool] Waiting up to {grace:.0f}s for {busy} in-flight jobs...")
        _, pending = await asyncio.wait(workers, timeout=grace)
        await cancel_all(pending)
        await self._outcomes.drain(hard_deadline - monotonic())
        await cancel_all(housekeeping)
        try:
            n = await asyncio.wait_for(
                self.store.release(self.id, refund=self._ledger.open_jobs()),
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
        flush_page_lines()  # the count of per-page lines held back, before the last [Stats]
        self._log_stats(
            await self._queue_depth(), await self._budgets(), prefix="[Worker Pool] Stopped. "
        )

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
                if await self._ctx.sleep_or_stop(backoff):
                    return
                backoff = min(backoff * 2, _RESTART_BACKOFF_MAX_S)

    async def _work(self, n: int) -> None:
        delay = self.settings.processing_delay_s
        events, stats = self.events, self.stats
        while True:
            claimed = await self._handoff.get()
            if claimed is None:
                return
            raw, attempt, epoch, ticket = claimed
            announce = events.wants(EventKind.JOB_STARTED)  # skip building unwanted events
            try:
                stats.active += 1
                if announce:
                    events.emit(EventKind.JOB_STARTED, raw=raw, worker=n, attempt=attempt)
                try:
                    await self._runner.handle(n, raw, attempt, epoch, ticket)
                except (Stopping, asyncio.CancelledError):
                    raise
                except Exception as exc:
                    # Not a failure of the page (those are handled) but of the pool on this job.
                    await self._crashed(n, raw, epoch, exc, ticket)
                finally:
                    stats.active -= 1
                    if announce:
                        events.emit(EventKind.JOB_ENDED, raw=raw, worker=n)
                if delay and await self._ctx.sleep_or_stop(delay):
                    return
            except Stopping:
                return
            finally:
                self._slots.release()
                self._room_changed.set()

    def _claim_room(self) -> int:
        """Jobs this process may still claim: one more than the governor lets it have in
        flight (the next page is ready when a request ends), less those it holds."""
        assert self.governor is not None
        budgets = self.governor.snapshot()["budgets"]
        limit = max((b["concurrency"] for b in budgets), default=1)  # first: the scout alone
        return limit + _CLAIM_AHEAD - (self.stats.active + self._handoff.qsize())

    async def _crashed(
        self, n: int, raw: bytes, epoch: bytes, exc: Exception, ticket: Ticket
    ) -> None:
        await self._runner.crashed(n, raw, epoch, exc, ticket)

    # --- stats ------------------------------------------------------------------------------

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.stats_interval_s)
            self._log_stats(await self._queue_depth(), await self._budgets())

    async def _budget_loop(self) -> None:
        """BUDGET_SNAPSHOT every HEARTBEAT_INTERVAL, for whoever listens (metrics)."""
        assert self.governor is not None
        while True:
            await asyncio.sleep(self.settings.heartbeat_interval_s)
            if self.events.wants(EventKind.BUDGET_SNAPSHOT):
                budgets = await self._budgets()
                self.events.emit(
                    EventKind.BUDGET_SNAPSHOT,
                    governor=self.governor.snapshot(),
                    budgets=budgets or [],
                )

    async def _queue_depth(self) -> int | None:
        try:
            return await asyncio.wait_for(self.store.queue_depth(), 2.0)
        except Exception as exc:
            if wait_reason(exc) is None and not isinstance(exc, TimeoutError):
                raise
            return None

    async def _budgets(self) -> list[BudgetSnapshot] | None:
        """The shared budgets as Redis has them (None without a governor, or if Redis is down)."""
        if self.governor is None or not self.governor.enabled:
            return None
        try:
            return await asyncio.wait_for(read_budgets(self._redis, self.keys), 2.0)
        except Exception as exc:
            if wait_reason(exc) is None and not isinstance(exc, TimeoutError):
                raise
            return None

    def _log_stats(
        self, depth: int | None, budgets: list[BudgetSnapshot] | None = None, *, prefix: str = ""
    ) -> None:
        """The `[Stats]` line; in JSON its numbers are fields too."""
        snap = self.stats.snapshot()
        line = format_stats(snap, queue_depth=depth, budgets=budgets)
        if self.paused:
            line = f"{line} | PAUSED: {self.pause_reason}"
        fields = stats_fields(snap, queue_depth=depth, budgets=budgets)
        logger.bind(**fields, paused=self.paused).info(prefix + line)

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
            **self.ledger_stats.snapshot(),
            **({"governor": self.governor.snapshot()} if self.governor is not None else {}),
        }
