"""The queue in Redis: claim, start, complete and give back page jobs, and reap the dead.

Every multi-key step is one Lua script, so a crash between two commands can never leave a job
half-moved. A claimed job sits in this process's processing list until the script that
completes, fails or gives it back removes it; the reaper returns the processing list of a
process whose heartbeat expired to the queue. That is the whole "never lose a page" argument.

The queue is a list: producers LPUSH, the pool takes from the right end, and jobs given back go
onto the right end again so they are next.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from pool.batch import ScriptBatcher
from pool.keys import Keys
from pool.records import json_bytes
from pool.scripts import LOST, Scripts
from pool.usage import NO_USAGE

if TYPE_CHECKING:
    from pool.limits import StoreLimits
    from pool.usage import JobUsage

__all__ = [
    "DEATHS_KEPT_MS",
    "GROWN_KEPT_MS",
    "NO_TICKET",
    "Acknowledged",
    "Claim",
    "EpochChanged",
    "QueueStore",
    "Ticket",
    "ticket_sha",
]


#: What the claim script learnt of a job (docs/contract.md, "Idempotency"): the brief's SHA-1
#: (40 hex digits), b"+" if the claim took the job's in-flight marker (else b" "), and that
#: marker's key; b"" for a payload it could not read. Kept as the bytes Redis returned and
#: handed back to `complete`/`fail` as they are (`pool/lua/admit.lua`, end_ticket): no
#: decoding on the hot path.
Ticket = bytes

NO_TICKET: Ticket = b""


def ticket_sha(ticket: Ticket) -> str:
    """The brief's SHA-1 in a ticket ('' if none)."""
    return ticket[:40].decode() if ticket else ""


#: How long the reaper keeps the deaths hash after the last death it counts. Nothing clears a
#: job's count when it ends (that would cost every page a command): the hash expires instead,
#: and a job that keeps killing its process is reaped far more often than this.
DEATHS_KEPT_MS = 86_400_000
#: How long a grown token limit is kept for the job's next attempts (`QueueStore.grow_limit`).
GROWN_KEPT_MS = 86_400_000

#: A claimed job: its payload, the attempt number counted, and its ticket.
Claim = tuple[bytes, int, Ticket]
#: A job the claim acknowledged without a request: its payload and why ("stored", "in flight").
Acknowledged = tuple[bytes, str]


class EpochChanged(Exception):
    """Redis's epoch marker is not the one this process knows: Redis lost its data."""


class QueueStore:
    """The queue and process operations (a part of `pool.store.Store`)."""

    redis: Redis
    keys: Keys
    limits: StoreLimits
    _scripts: Scripts
    _batch: ScriptBatcher
    _admit_parts: list[str]
    _inflight_parts: tuple[str, str]

    # --- claiming -------------------------------------------------------------------------

    async def init_epoch(self, token: bytes) -> bytes:
        """Set the epoch marker to `token` unless there is one; return the marker in force."""
        return _bytes(await self._scripts.init_epoch(keys=[self.keys.epoch], args=[token]))

    async def claim(
        self, pool_id: str, count: int, *, epoch: bytes
    ) -> tuple[list[Claim], list[Acknowledged]]:
        """Move up to `count` jobs into the processing list of `pool_id`, without waiting.

        Each job's attempt is counted as it is claimed, and its in-flight marker taken; a job
        whose page is stored for the same jobId and brief, or a copy of one in flight, is
        acknowledged instead (taken off the queue, not counted, `skipped` in its status).

        Returns the claimed jobs and the acknowledged ones.

        Raises:
            EpochChanged: Redis lost its data since this process read `epoch`; nothing moved.
        """
        flat = await self._scripts.claim(
            keys=[
                self.keys.queue,
                self.keys.processing(pool_id),
                self.keys.attempts,
                self.keys.epoch,
            ],
            args=[count, epoch, self.limits.inflight_ttl_ms, *self._admit_parts],
        )
        if len(flat) % 3:
            raise EpochChanged
        claimed: list[Claim] = []
        acknowledged: list[Acknowledged] = []
        for i in range(0, len(flat), 3):
            attempt = flat[i + 1]
            if attempt:
                claimed.append((flat[i], attempt, flat[i + 2]))
            else:
                acknowledged.append((flat[i], _text(flat[i + 2])))
        return claimed, acknowledged

    async def claim_blocking(self, pool_id: str, timeout_s: float) -> bytes | None:
        """Wait up to `timeout_s` for one job and move it into the processing list.

        Its attempt is not counted yet: call `claim_moved` next.
        """
        # Redis takes a fractional timeout; redis-py's annotation says int.
        item = await self.redis.blmove(
            self.keys.queue, self.keys.processing(pool_id), cast(int, timeout_s), "RIGHT", "LEFT"
        )
        return None if item is None else _bytes(item)

    async def claim_moved(self, pool_id: str, raw: bytes, *, epoch: bytes) -> Claim | Acknowledged:
        """`claim`'s check and count for a job `claim_blocking` moved: the claimed job, or the
        acknowledged one (then taken out of the processing list).

        Raises:
            EpochChanged: Redis lost its data since this process read `epoch`.
        """
        out = await self._scripts.claim_one(
            keys=[self.keys.processing(pool_id), self.keys.attempts, self.keys.epoch],
            args=[raw, epoch, self.limits.inflight_ttl_ms, *self._admit_parts],
        )
        if len(out) == 1:
            raise EpochChanged
        if int(out[0]) == 0:
            return raw, _text(out[1])
        return raw, int(out[0]), _bytes(out[1])

    # --- one job's life -------------------------------------------------------------------

    async def start(self, raw: bytes, *, epoch: bytes) -> int:
        """Count one more attempt of a claimed job (in Redis, so it survives crashes).

        Returns the number of the attempt now starting, 1-based.

        Raises:
            EpochChanged: Redis lost its data since this process read `epoch`.
        """
        n = int(
            await self._batch.call(
                self._scripts.start, [self.keys.attempts, self.keys.epoch], [raw, epoch]
            )
        )
        if n == LOST:
            raise EpochChanged
        return n

    async def grow_limit(self, job_id: str, max_tokens: int) -> None:
        """Remember that the next attempts of `job_id` ask for `max_tokens` (a day)."""
        await self.redis.set(self.keys.grown(job_id), max_tokens, px=GROWN_KEPT_MS)

    async def grown_limit(self, job_id: str) -> int | None:
        """The token limit `grow_limit` set for `job_id`, if any."""
        value = await self.redis.get(self.keys.grown(job_id))
        return None if value is None else int(value)

    async def note_crash(self, raw: bytes) -> int:
        """Count one more crash of the pool on this job; returns how many so far."""
        return int(await self.redis.hincrby(self.keys.crashes, cast(str, raw), 1))

    async def complete(self, pool_id: str, raw: bytes, **page: Any) -> bool | None:
        """Store a finished page, add its cost to the ebook's ledger and release its job
        (`complete_soon`'s arguments), and wait for it.

        Returns True if the page is new, False if it was already stored, None if the job was
        claimed before Redis lost its data (nothing written).
        """
        return self.stored(await self.complete_soon(pool_id, raw, **page))

    def complete_soon(
        self,
        pool_id: str,
        raw: bytes,
        *,
        ebook_id: str,
        page_index: int,
        total: int,
        page_json: bytes,
        now_ms: int,
        epoch: bytes,
        ticket: Ticket = NO_TICKET,
        usage: JobUsage | None = None,
    ) -> asyncio.Future[Any]:
        """Store a finished page, add its cost to the ebook's ledger and release its job, with
        the next batch of script calls: the future of the script's reply, which `stored`
        reads. The pool stores a page this way without a task.

        Args:
            ticket: what the claim learnt of the job (brief, in-flight marker).
            usage: what the job cost, for the ledger.
        """
        # Main's eight keys and six arguments, plus three: the ticket (it names the in-flight
        # marker, so the script needs no key or id for it), RESULT_TTL and the ledger, both
        # already bytes. Each argument costs an encode on the hot path.
        keys = self.keys
        return self._batch.submit(
            self._scripts.complete,
            [
                keys.processing(pool_id),
                keys.queue,
                keys.pages(ebook_id),
                keys.status(ebook_id),
                keys.page_errors(ebook_id),
                keys.attempts,
                keys.crashes,
                keys.epoch,
            ],
            [
                raw, page_index, page_json, total, now_ms, epoch, ticket,
                self.limits.result_ttl_arg, usage.argv() if usage else NO_USAGE,
            ],
        )  # fmt: skip

    @staticmethod
    def stored(reply: Any) -> bool | None:
        """What a `complete_soon` reply says: True a new page, False one already stored, None
        nothing written (the job was claimed before Redis lost its data)."""
        return None if reply == LOST else bool(reply)

    async def give_back(self, pool_id: str, raw: bytes, *, refund: bool) -> bool:
        """Return a claimed job to the head of the queue; `refund` un-counts its last attempt."""
        moved = await self._scripts.give_back(
            keys=[self.keys.processing(pool_id), self.keys.queue, self.keys.attempts],
            args=[raw, "1" if refund else "", *self._inflight_parts],
        )
        return bool(moved)

    # --- the process's life ---------------------------------------------------------------

    async def heartbeat(
        self, pool_id: str, snapshot: dict[str, Any], ttl_ms: int
    ) -> tuple[bytes | None, bytes | None]:
        """Say this process is alive for `ttl_ms`, with a snapshot for `ebook-pool stats`.

        Returns the epoch marker (so a loss of data is noticed) and the operator's pause flag
        (`Keys.paused`, see `pool.control`), each None if absent: one round trip for all three.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.heartbeat(pool_id), json_bytes(snapshot), px=ttl_ms)
            pipe.sadd(self.keys.pools, pool_id)
            pipe.get(self.keys.epoch)
            pipe.get(self.keys.paused)
            *_, epoch, paused = await pipe.execute()
        return (None if epoch is None else _bytes(epoch)), (
            None if paused is None else _bytes(paused)
        )

    async def release(self, pool_id: str, *, refund: Sequence[bytes] = ()) -> int:
        """Give back every job this process holds and unregister it. Returns how many.

        `refund` lists the jobs whose last counted attempt did not run to its end.
        """
        n = await self._scripts.release(
            keys=[
                self.keys.processing(pool_id),
                self.keys.queue,
                self.keys.attempts,
                self.keys.heartbeat(pool_id),
                self.keys.pools,
            ],
            args=[pool_id, *self._inflight_parts, *refund],
        )
        return int(n)

    async def requeue_own(self, pool_id: str) -> int:
        """Give every job in this process's processing list back to the queue, its attempt
        refunded (after a claim's reply was lost, once the process holds no job). Returns how
        many."""
        n = await self._scripts.requeue(
            keys=[self.keys.processing(pool_id), self.keys.queue, self.keys.attempts],
            args=[*self._inflight_parts],
        )
        return int(n)

    async def reap(self, *, exclude: str | None = None, min_uptime_s: float = 0) -> dict[str, int]:
        """Return the jobs of every registered process whose heartbeat expired to the queue.

        A heartbeat also expires while Redis itself is down (its key's TTL runs out across a
        restart), so nothing is reaped while Redis has been up for less than `min_uptime_s`:
        the live processes get that long to beat again.

        Returns pool id → jobs given back, for the processes reaped.
        """
        members = [_text(m) for m in await self.redis.smembers(self.keys.pools)]
        candidates = [m for m in members if m != exclude]
        if not candidates:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for m in candidates:
                pipe.exists(self.keys.heartbeat(m))
            alive = await pipe.execute()
        if all(alive):
            return {}
        if min_uptime_s > 0:
            info = await self.redis.info("server")
            if float(info.get("uptime_in_seconds", min_uptime_s)) < min_uptime_s:
                return {}
        reaped = {}
        for pool_id, is_alive in zip(candidates, alive, strict=True):
            if is_alive:
                continue
            n = await self._scripts.reap(
                keys=[
                    self.keys.heartbeat(pool_id),
                    self.keys.processing(pool_id),
                    self.keys.queue,
                    self.keys.pools,
                    self.keys.attempts,
                    self.keys.deaths,
                ],
                args=[pool_id, self.limits.max_attempts, *self._inflight_parts, DEATHS_KEPT_MS],
            )
            if int(n) >= 0:
                reaped[pool_id] = int(n)
        return reaped

    async def queue_depth(self) -> int:
        """How many jobs wait in the queue."""
        return int(await self.redis.llen(self.keys.queue))

    async def eviction_policy(self) -> str | None:
        """Redis's maxmemory-policy, or None if the server does not say (INFO disabled)."""
        try:
            info = await self.redis.info("memory")
        except ResponseError:
            return None
        policy = info.get("maxmemory_policy")
        return _text(policy) if isinstance(policy, bytes | str) else None

    async def live_pools(self) -> dict[str, dict[str, Any]]:
        """Pool id → last heartbeat snapshot, for every registered process still alive."""
        members = sorted(_text(m) for m in await self.redis.smembers(self.keys.pools))
        if not members:
            return {}
        values = await self.redis.mget([self.keys.heartbeat(m) for m in members])
        return {m: json.loads(v) for m, v in zip(members, values, strict=True) if v is not None}

    async def in_flight(self, pool_ids: Sequence[str]) -> int:
        """Jobs held in the processing lists of these processes."""
        if not pool_ids:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for pool_id in pool_ids:
                pipe.llen(self.keys.processing(pool_id))
            return sum(await pipe.execute())


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
