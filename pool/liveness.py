"""Staying alive and noticing who is not: heartbeat, reaper, lost-data epoch, pause and probe.

- Heartbeat: every HEARTBEAT_INTERVAL the process says it is alive (with a stats snapshot for
  `ebook-pool stats`) and reads Redis's epoch marker; a changed marker means Redis lost its
  data (`Liveness.data_lost`).
- Reaper: the processing lists of processes whose heartbeat expired go back to the queue, but
  not right after an outage, when the live processes have not had time to beat again.
- Pause: a `PoolFatalError` stops claiming; the generator is probed every
  PAUSE_PROBE_INTERVAL and the pool resumes on its own when the probe succeeds.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from typing import Any

from loguru import logger

from pool.attempts import AttemptLedger
from pool.clock import monotonic
from pool.control import operator_pause_reason
from pool.events import EventKind
from pool.generation import PageGenerator, PoolFatalError
from pool.outage import RedisConfigError, wait_reason
from pool.runtime import PoolContext, error_reason

__all__ = ["Liveness", "Pauser"]


class Liveness:
    """Heartbeat, reaper and the epoch marker of one pool process.

    Args:
        ctx: the pool's shared parts.
        ledger: the open attempts (counted when saying what a loss of data dropped).
        snapshot: the heartbeat's payload.
    """

    def __init__(
        self,
        ctx: PoolContext,
        *,
        ledger: AttemptLedger,
        snapshot: Callable[[], dict[str, Any]],
        pauser: Pauser,
    ) -> None:
        self._ctx = ctx
        self._ledger = ledger
        self._snapshot = snapshot
        self._pauser = pauser
        # The epoch marker this process works under (see Keys.epoch), and when the reaper may
        # run again: not until every live process has had time to beat after an outage.
        self.epoch = secrets.token_hex(8).encode()
        self._reap_after = 0.0
        self._epoch_lock = asyncio.Lock()
        #: Called after Redis lost its data and a new epoch was taken up.
        self.on_data_lost: list[Callable[[], None]] = []
        ctx.guard.on_back.append(self._after_outage)

    async def connect(self) -> None:
        """Start-up: check how Redis evicts, take up the epoch marker, beat once."""
        ctx = self._ctx
        policy = await ctx.store.eviction_policy()
        if policy is not None and policy != "noeviction":
            risk = (
                f"Redis's maxmemory-policy is {policy}: when Redis is full it deletes keys, so "
                "queued jobs, pages and statuses can vanish without a trace. Set it to noeviction"
            )
            if ctx.settings.redis_require_noeviction:
                raise RedisConfigError(f"{risk} (REDIS_REQUIRE_NOEVICTION is set).")
            logger.warning(
                f"[Worker Pool] {risk}, or set REDIS_REQUIRE_NOEVICTION=true to refuse to start."
            )
        self.epoch = await ctx.store.init_epoch(self.epoch)
        await self.beat()

    async def heartbeat_loop(self) -> None:
        """Beat and reap every HEARTBEAT_INTERVAL, waiting out Redis outages."""
        guard = self._ctx.guard
        while True:
            await asyncio.sleep(self._ctx.settings.heartbeat_interval_s)
            try:
                await self.beat()
                await self.reap()
                guard.ok()
            except Exception as exc:
                if wait_reason(exc) is None:
                    raise
                await guard.failed(exc, 0)

    async def beat(self) -> None:
        """Say we are alive; notice if Redis lost its data (the epoch marker changed)."""
        ctx = self._ctx
        known = self.epoch
        epoch, paused = await ctx.store.heartbeat(
            ctx.id, self._snapshot(), ctx.settings.heartbeat_timeout
        )
        if epoch != known:
            await self.data_lost(known)
        self._pauser.by_operator(operator_pause_reason(paused))

    async def reap(self) -> None:
        """Return the jobs of processes whose heartbeat expired to the queue."""
        if monotonic() < self._reap_after:  # just back from an outage: others may not have beaten
            return
        ctx = self._ctx
        reaped = await ctx.store.reap(exclude=ctx.id, min_uptime_s=ctx.settings.heartbeat_timeout_s)
        for pool_id, n in reaped.items():
            logger.bind(dead_pool_id=pool_id, jobs=n).warning(
                f"[Worker Pool] Pool {pool_id} stopped sending heartbeats; "
                f"returned its {n} unfinished jobs to the queue."
            )

    def _after_outage(self) -> None:
        """Redis answers again: give every live process time to beat before reaping any."""
        self._reap_after = monotonic() + self._ctx.settings.heartbeat_timeout_s

    async def data_lost(self, stale: bytes) -> None:
        """Redis came back without our epoch marker `stale`: its data is gone. Say what was
        lost, take up a new marker, and let the jobs claimed before end without writing."""
        async with self._epoch_lock:
            if self.epoch == stale:  # else another task of this process has seen to it
                await self._take_up_new_epoch()

    async def _take_up_new_epoch(self) -> None:
        logger.error(
            "[Worker Pool] Redis lost its data (restarted without persistence, flushed, or failed "
            "over to an empty replica): every queued job, page, status and failed entry written "
            "before is gone, and the app sees those ebooks as unknown. Pages this process was "
            "still writing for them are dropped (one line each); jobs pushed from now on are "
            "processed as usual. Keep AOF on and maxmemory-policy noeviction (README, Reliability)."
        )
        for callback in self.on_data_lost:
            callback()
        self.epoch = await self._ctx.store.init_epoch(secrets.token_hex(8).encode())


class Pauser:
    """Pauses claiming, for one of two reasons, and resumes when neither holds.

    - A `PoolFatalError` (bad key, no quota): the generator is probed every
      PAUSE_PROBE_INTERVAL and the pool resumes on its own when the probe succeeds.
    - An operator's pause flag in Redis (`pool.control`, read with each heartbeat).

    Args:
        ctx: the pool's shared parts.
        generator: the generator to probe.
    """

    def __init__(self, ctx: PoolContext, *, generator: PageGenerator) -> None:
        self._ctx = ctx
        self._generator = generator
        self.resumed = asyncio.Event()
        self.resumed.set()
        self._fatal: str | None = None
        self._operator: str | None = None

    @property
    def paused(self) -> bool:
        return not self.resumed.is_set()

    @property
    def reason(self) -> str | None:
        """Why claiming is paused (the operator's reason first), or None."""
        return self._operator or self._fatal

    def pause(self, exc: PoolFatalError) -> None:
        """Stop claiming (once) and start probing."""
        if self._fatal is not None:
            return
        self._fatal = error_reason(exc).rstrip(".")
        logger.error(
            f"[Worker Pool] PAUSED: {self._fatal}. No job was failed and the queue is left "
            f"intact. Fix it (e.g. OPENAI_API_KEY, billing); the pool probes every "
            f"{self._ctx.settings.pause_probe_interval_s:.0f}s and resumes on its own."
        )
        self._update()
        self._ctx.spawn(self._probe_until_resumed())

    def by_operator(self, reason: str | None) -> None:
        """Follow the operator's pause flag: `reason` while it is set, None once it is cleared."""
        if reason == self._operator:
            return
        if reason is not None:
            logger.warning(
                f"[Worker Pool] PAUSED: {reason}. Running jobs finish; no new job is claimed "
                "until the flag is cleared (the dashboard's Resume, or DEL of the key)."
            )
        else:
            logger.info(
                f"[Worker Pool] Resumed: the operator's pause was lifted (was: {self._operator})"
            )
        self._operator = reason
        self._update()

    def _update(self) -> None:
        events = self._ctx.events
        if self.reason is not None and self.resumed.is_set():
            self.resumed.clear()
            events.emit(EventKind.POOL_PAUSED, reason=self.reason)
        elif self.reason is None and not self.resumed.is_set():
            self.resumed.set()
            events.emit(EventKind.POOL_RESUMED)

    async def _probe_until_resumed(self) -> None:
        ctx = self._ctx
        while not await ctx.sleep_or_stop(ctx.settings.pause_probe_interval_s):
            try:
                await self._generator.probe()
            except PoolFatalError as exc:
                self._fatal = error_reason(exc).rstrip(".")
                logger.error(f"[Worker Pool] Still paused: {self._fatal}")
            except Exception as exc:
                logger.warning(f"[Worker Pool] Still paused; probe failed: {error_reason(exc)}")
            else:
                logger.info(f"[Worker Pool] Resumed: the probe succeeded (was: {self._fatal})")
                self._fatal = None
                self._update()
                return
