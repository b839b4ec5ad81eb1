"""The claim loop: take jobs from the queue as workers free up, and hand them over in memory.

    queue ──Store.claim (batch, non-blocking) / claim_blocking (BLMOVE ≤ POLL_INTERVAL)──►
    this process's processing list ──(hand-off queue)──► Worker-1..N

One claim takes as many jobs as there are free workers (the `slots` semaphore), so no job
waits in this process while a worker could run it. Each claimed attempt is counted in Redis
and opened in the `AttemptLedger`. A job the claim script acknowledged without a request (its
page is stored, or a copy is in flight: docs/contract.md, "Idempotency") never reaches a
worker; it is reported as JOB_SKIPPED.

With a rate-limit governor, `room` also bounds the claims: a process holds only a few more
jobs than the requests it may have in flight (the governor's adaptive concurrency), so pages
that could not be sent yet stay on the queue for the other replicas instead of waiting here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from loguru import logger

from pool.attempts import AttemptLedger
from pool.clock import monotonic
from pool.events import EventKind
from pool.job import InvalidJob, PageJob, decode_job
from pool.liveness import Liveness, Pauser
from pool.outage import wait_reason
from pool.queue import Acknowledged, Claim, Ticket
from pool.runtime import PoolContext
from pool.store import EpochChanged

__all__ = ["MAX_CLAIM_BATCH", "Claimed", "Claimer"]

MAX_CLAIM_BATCH = 1_000
_HOLD_RECHECK_S = 0.05  # while recovering lost claims: how often to look whether jobs remain
_ROOM_RECHECK_S = 0.25  # `room` can grow without a job ending (a limit learned or raised)

#: A claimed job: its exact payload, the attempt counted at claim, the epoch it was claimed
#: under, and what the claim learnt of it.
Claimed = tuple[bytes, int, bytes, Ticket]


class Claimer:
    """Claims jobs for free workers and puts them on `handoff`.

    Args:
        ctx: the pool's shared parts.
        liveness: whose epoch claims are made under.
        pauser: claiming waits while the pool is paused.
        ledger: where each claimed attempt is opened.
        slots: one unit per idle worker; a worker releases its unit when done with a job.
        handoff: where claimed jobs go; workers take them from there.
        room: how many more jobs this process should hold now (None: as many as workers).
        room_changed: set when a worker lets go of a job.
    """

    def __init__(
        self,
        ctx: PoolContext,
        *,
        liveness: Liveness,
        pauser: Pauser,
        ledger: AttemptLedger,
        slots: asyncio.Semaphore,
        handoff: asyncio.Queue[Claimed | None],
        room: Callable[[], int | None] | None = None,
        room_changed: asyncio.Event | None = None,
        holds_jobs: Callable[[], bool] | None = None,
    ) -> None:
        self._ctx = ctx
        self._liveness = liveness
        self._pauser = pauser
        self._ledger = ledger
        self._slots = slots
        self._handoff = handoff
        self._room = room
        self._room_changed = room_changed or asyncio.Event()
        # Whether this process still holds a claimed job (in hand-off, at a worker, or being
        # written); a claim whose reply was lost in an outage is recovered once it holds none.
        self._holds_jobs = holds_jobs or (lambda: len(ledger) > 0)
        self._in_doubt = False

    async def run(self) -> None:
        """Claim until cancelled."""
        slots, guard, events = self._slots, self._ctx.guard, self._ctx.events
        while True:
            if self._in_doubt:
                await self._recover_lost_claims()
            await self._pauser.resumed.wait()
            await slots.acquire()
            if self._pauser.paused:  # paused while we waited for a free worker
                slots.release()
                continue
            room = await self._wait_for_room()
            want = 1
            while want < min(MAX_CLAIM_BATCH, room) and not slots.locked():
                await slots.acquire()
                want += 1
            got: list[Claim] = []
            epoch = b""
            try:
                got, acknowledged, epoch = await self._claim(want)
                if acknowledged:
                    self._skipped(acknowledged)
                guard.ok()
            except Exception as exc:
                if wait_reason(exc) is None:
                    raise
                # The claim may have run in Redis and only its reply been lost: its jobs would
                # sit in our processing list with nobody working on them.
                self._in_doubt = True
                await guard.failed(exc)
            finally:
                for _ in range(want - len(got)):
                    slots.release()
            announce = events.wants(EventKind.JOB_CLAIMED)
            for raw, attempt, ticket in got:
                self._ledger.opened(raw)
                if announce:
                    events.emit(EventKind.JOB_CLAIMED, raw=raw, attempt=attempt)
                self._handoff.put_nowait((raw, attempt, epoch, ticket))

    async def _recover_lost_claims(self) -> None:
        """Once this process holds no job, give back whatever its processing list still has:
        jobs claimed in Redis whose reply never arrived (attempt refunded; not their fault)."""
        ctx = self._ctx
        while self._holds_jobs():
            if await ctx.sleep_or_stop(_HOLD_RECHECK_S):
                return
        n = await ctx.guard.persist(ctx.store.requeue_own, ctx.id)
        self._in_doubt = False
        if n:
            logger.warning(
                f"[Worker Pool] {n} jobs claimed while Redis was going away (their reply was "
                "lost) went back to the queue."
            )

    async def _wait_for_room(self) -> int:
        """Wait until this process may hold one more job; how many it may take now."""
        if self._room is None:
            return MAX_CLAIM_BATCH
        while (room := self._room()) is not None and room < 1:
            self._room_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_ROOM_RECHECK_S):
                    await self._room_changed.wait()
        return MAX_CLAIM_BATCH if room is None else room

    async def _claim(self, want: int) -> tuple[list[Claim], list[Acknowledged], bytes]:
        """Claim up to `want` jobs; if none is queued, block up to POLL_INTERVAL for one.

        Returns the claimed jobs, the acknowledged ones and the epoch they were claimed under.
        """
        ctx, liveness = self._ctx, self._liveness
        poll_s = ctx.settings.poll_interval_s
        epoch = liveness.epoch
        try:
            got, acknowledged = await ctx.store.claim(ctx.id, want, epoch=epoch)
        except EpochChanged:
            await liveness.data_lost(epoch)
            return [], [], liveness.epoch
        if got or acknowledged:
            return got, acknowledged, epoch
        started = monotonic()
        raw = await ctx.store.claim_blocking(ctx.id, poll_s)
        if raw is None:
            if monotonic() - started < poll_s / 2:
                # A server whose blocking pop returns at once (fakeredis): don't spin.
                await asyncio.sleep(min(poll_s, 0.05))
            return [], [], epoch
        epoch = liveness.epoch
        try:
            one = await ctx.store.claim_moved(ctx.id, raw, epoch=epoch)
        except EpochChanged:  # the job was pushed after Redis lost its data: it is ours
            await liveness.data_lost(epoch)
            epoch = liveness.epoch
            one = await ctx.store.claim_moved(ctx.id, raw, epoch=epoch)
        if len(one) == 2:
            return [], [one], epoch
        return [one], [], epoch

    def _skipped(self, acknowledged: list[Acknowledged]) -> None:
        max_bytes = self._ctx.settings.max_job_bytes
        for raw, why in acknowledged:
            try:
                job: PageJob | None = decode_job(raw, max_bytes=max_bytes)
            except InvalidJob:
                job = None
            self._ctx.events.emit(EventKind.JOB_SKIPPED, raw=raw, reason=why, job=job)
