"""The queue in Redis: claim, start, complete, fail and give back page jobs, atomically.

Every multi-key step is one Lua script, so a crash between two commands can never leave a job
half-moved. A claimed job sits in this process's processing list until the script that
completes, fails or gives it back removes it; the reaper returns the processing list of a
process whose heartbeat expired to the queue. That is the whole "never lose a page" argument.

The queue is a list: producers LPUSH, the pool takes from the right end, and jobs given back go
onto the right end again so they are next.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from pool.batch import ScriptBatcher
from pool.keys import Keys
from pool.records import json_bytes

__all__ = ["EpochChanged", "FailedEntry", "Store"]

# Derives an ebook's state from its counters; shared by the scripts that change them.
_REFRESH_STATE = """
local function refresh_state(st, now)
  local v = redis.call('HMGET', st, 'total', 'done', 'failed', 'startedAt')
  local total = tonumber(v[1]) or 0
  local done = tonumber(v[2]) or 0
  local failed = tonumber(v[3]) or 0
  local state
  if total > 0 and done + failed >= total then
    if failed == 0 then state = 'done' elseif done == 0 then state = 'failed' else state = 'partial' end
    redis.call('HSETNX', st, 'finishedAt', now)
  else
    redis.call('HDEL', st, 'finishedAt')
    if v[4] then state = 'generating' else state = 'queued' end
  end
  redis.call('HSET', st, 'state', state, 'updatedAt', now)
end
-- A script that fails half-way keeps its first writes (Lua has no rollback), so the scripts
-- check the ebook's keys (which the app writes too) before writing anything.
local function not_hashes(a, b, c)
  for _, k in ipairs({a, b, c}) do
    local t = redis.call('TYPE', k)['ok']
    if t ~= 'none' and t ~= 'hash' then
      return redis.error_reply('WRONGTYPE ' .. k .. ' holds a ' .. t .. ', not a hash')
    end
  end
  return nil
end
local function ensure_status(st, total, now)
  redis.call('HSETNX', st, 'total', total)
  redis.call('HSETNX', st, 'createdAt', now)
end
"""

# Attempts are counted per payload, the exact bytes being the hash field: Lua needs no JSON to
# find it, and the count survives crashes (a job that keeps killing its process runs out).
# Only jobs in progress have a field; it is deleted when the job ends.

# Every script that writes a job's outcome first checks the epoch marker: a job claimed before
# Redis lost its data (the marker vanished or changed) writes nothing, so a lost ebook is not
# re-created half-done. They return -1 then (`_LOST`).
_LOST = -1

# KEYS: epoch. ARGV: a new token. Sets the marker if there is none; returns the marker.
_INIT_EPOCH = """
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
"""

# KEYS: queue, processing, attempts, epoch. ARGV: max count, epoch.
# Moves up to ARGV[1] jobs, oldest first, and counts an attempt of each.
# Returns job 1, its attempt number, job 2, its attempt number, ... or {-1} if the epoch changed.
_CLAIM = """
if redis.call('GET', KEYS[4]) ~= ARGV[2] then return {-1} end
local items = redis.call('RPOP', KEYS[1], ARGV[1])
if not items then return {} end
local out = {}
for i, raw in ipairs(items) do
  redis.call('LPUSH', KEYS[2], raw)
  out[2 * i - 1] = raw
  out[2 * i] = redis.call('HINCRBY', KEYS[3], raw, 1)
end
return out
"""

# KEYS: attempts, epoch. ARGV: raw job, epoch. Counts one more attempt; returns its number.
_START = """
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return -1 end
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
"""

# KEYS: status, epoch. ARGV: total, now, epoch. The ebook's first page has started.
_MARK_STARTED = (
    _REFRESH_STATE
    + """
if redis.call('GET', KEYS[2]) ~= ARGV[3] then return -1 end
local bad = not_hashes(KEYS[1], KEYS[1], KEYS[1])
if bad then return bad end
ensure_status(KEYS[1], ARGV[1], ARGV[2])
if redis.call('HSETNX', KEYS[1], 'startedAt', ARGV[2]) == 1 then refresh_state(KEYS[1], ARGV[2]) end
return 1
"""
)

# KEYS: processing, queue, pages, status, errors, attempts, crashes, epoch.
# ARGV: raw job, page index, page json, total, now, epoch. Returns 1 if the page is new.
_COMPLETE = (
    _REFRESH_STATE
    + """
if redis.call('GET', KEYS[8]) ~= ARGV[6] then return -1 end
local bad = not_hashes(KEYS[3], KEYS[4], KEYS[5])
if bad then return bad end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  -- We were taken for dead and the job went back to the queue: don't generate it twice.
  redis.call('LREM', KEYS[2], -1, ARGV[1])
end
local new = redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('HDEL', KEYS[6], ARGV[1])
redis.call('HDEL', KEYS[7], ARGV[1])
ensure_status(KEYS[4], ARGV[4], ARGV[5])
redis.call('HSETNX', KEYS[4], 'startedAt', ARGV[5])
if new == 1 then redis.call('HINCRBY', KEYS[4], 'done', 1) end
if redis.call('HDEL', KEYS[5], ARGV[2]) == 1 then redis.call('HINCRBY', KEYS[4], 'failed', -1) end
refresh_state(KEYS[4], ARGV[5])
return new
"""
)

# KEYS: epoch, processing, failed, attempts, crashes [, status, errors, pages].
# ARGV: raw job, failed entry, page index, reason, total, now, epoch.
_FAIL = (
    _REFRESH_STATE
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[7] then return -1 end
if #KEYS == 8 then
  local bad = not_hashes(KEYS[6], KEYS[7], KEYS[8])
  if bad then return bad end
end
redis.call('LREM', KEYS[2], 1, ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[2])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
if #KEYS == 8 then
  ensure_status(KEYS[6], ARGV[5], ARGV[6])
  if redis.call('HEXISTS', KEYS[8], ARGV[3]) == 0 then
    if redis.call('HSET', KEYS[7], ARGV[3], ARGV[4]) == 1 then
      redis.call('HINCRBY', KEYS[6], 'failed', 1)
    end
  end
  refresh_state(KEYS[6], ARGV[6])
end
return 1
"""
)

# Un-counts an attempt that was counted but did not run to its end (given back on shutdown or
# on a pool-wide error): those must not bring a job closer to the failed list.
_REFUND = """
local function refund(attempts, raw)
  if redis.call('HINCRBY', attempts, raw, -1) <= 0 then redis.call('HDEL', attempts, raw) end
end
"""

# KEYS: processing, queue, attempts. ARGV: raw job, '1' to refund its attempt.
_GIVE_BACK = (
    _REFUND
    + """
local moved = redis.call('LREM', KEYS[1], 1, ARGV[1])
if moved > 0 then redis.call('RPUSH', KEYS[2], ARGV[1]) end
if ARGV[2] == '1' then refund(KEYS[3], ARGV[1]) end
return moved
"""
)

# KEYS: processing, queue, attempts, heartbeat, pools. ARGV: pool id, raw jobs to refund...
# Gives back everything this process still holds and unregisters it.
_RELEASE = (
    _REFUND
    + """
local n = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT') do n = n + 1 end
for i = 2, #ARGV do refund(KEYS[3], ARGV[i]) end
redis.call('DEL', KEYS[4])
redis.call('SREM', KEYS[5], ARGV[1])
return n
"""
)

# KEYS: heartbeat, processing, queue, pools (of a process presumed dead). ARGV: its pool id.
# Returns -1 if it is alive after all, else how many jobs went back to the queue.
_REAP = """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local n = 0
while redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT') do n = n + 1 end
redis.call('SREM', KEYS[4], ARGV[1])
return n
"""

# KEYS: failed, queue [, errors, status]. ARGV: failed entry, raw job, page index, now.
_RETRY_FAILED = (
    _REFRESH_STATE
    + """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
if #KEYS == 4 then
  if redis.call('HDEL', KEYS[3], ARGV[3]) == 1 then redis.call('HINCRBY', KEYS[4], 'failed', -1) end
  refresh_state(KEYS[4], ARGV[4])
end
return 1
"""
)


class EpochChanged(Exception):
    """Redis's epoch marker is not the one this process knows: Redis lost its data."""


@dataclass(frozen=True, slots=True)
class FailedEntry:
    """One dead letter, as stored in the failed list (JSON) and decoded for the CLI."""

    raw: bytes
    data: dict[str, Any]

    @property
    def job_bytes(self) -> bytes | None:
        """The exact payload the producer pushed, or None if the entry kept only a prefix."""
        if self.data.get("payloadTruncated"):
            return None
        text = self.data.get("payload")
        if isinstance(text, str):
            return text.encode()
        encoded = self.data.get("payloadBase64")
        if isinstance(encoded, str):
            try:
                return base64.b64decode(encoded, validate=True)
            except ValueError:
                return None
        return None

    @property
    def ebook_id(self) -> str | None:
        value = self.data.get("ebookId")
        return value if isinstance(value, str) else None

    @property
    def page_index(self) -> int | None:
        value = self.data.get("pageIndex")
        return value if isinstance(value, int) else None


class Store:
    """Atomic queue operations for one key prefix.

    Args:
        redis: a `redis.asyncio.Redis` (or a compatible fake) with `decode_responses=False`.
        keys: the key schema.
    """

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._batch = ScriptBatcher(redis)
        self._init_epoch = redis.register_script(_INIT_EPOCH)
        self._claim = redis.register_script(_CLAIM)
        self._start = redis.register_script(_START)
        self._mark_started = redis.register_script(_MARK_STARTED)
        self._complete = redis.register_script(_COMPLETE)
        self._fail = redis.register_script(_FAIL)
        self._give_back = redis.register_script(_GIVE_BACK)
        self._release = redis.register_script(_RELEASE)
        self._reap = redis.register_script(_REAP)
        self._retry_failed = redis.register_script(_RETRY_FAILED)

    # --- claiming -------------------------------------------------------------------------

    async def init_epoch(self, token: bytes) -> bytes:
        """Set the epoch marker to `token` unless there is one; return the marker in force."""
        return _bytes(await self._init_epoch(keys=[self.keys.epoch], args=[token]))

    async def claim(self, pool_id: str, count: int, *, epoch: bytes) -> list[tuple[bytes, int]]:
        """Move up to `count` jobs into the processing list of `pool_id`, without waiting.

        Each job's attempt is counted as it is claimed. Returns (job, attempt number) pairs.

        Raises:
            EpochChanged: Redis lost its data since this process read `epoch`; nothing moved.
        """
        flat = await self._claim(
            keys=[
                self.keys.queue,
                self.keys.processing(pool_id),
                self.keys.attempts,
                self.keys.epoch,
            ],
            args=[count, epoch],
        )
        if len(flat) % 2:
            raise EpochChanged
        return [(_bytes(flat[i]), int(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def claim_blocking(self, pool_id: str, timeout_s: float) -> bytes | None:
        """Wait up to `timeout_s` for one job and move it into the processing list.

        Its attempt is not counted yet: call `start` next.
        """
        # Redis takes a fractional timeout; redis-py's annotation says int.
        item = await self.redis.blmove(
            self.keys.queue, self.keys.processing(pool_id), cast(int, timeout_s), "RIGHT", "LEFT"
        )
        return None if item is None else _bytes(item)

    # --- one job's life -------------------------------------------------------------------

    async def start(self, raw: bytes, *, epoch: bytes) -> int:
        """Count one more attempt of a claimed job (in Redis, so it survives crashes).

        Returns the number of the attempt now starting, 1-based.

        Raises:
            EpochChanged: Redis lost its data since this process read `epoch`.
        """
        n = int(
            await self._batch.call(self._start, [self.keys.attempts, self.keys.epoch], [raw, epoch])
        )
        if n == _LOST:
            raise EpochChanged
        return n

    async def mark_started(self, *, ebook_id: str, total: int, now_ms: int, epoch: bytes) -> None:
        """Record that the ebook's first page started (its state becomes "generating")."""
        await self._batch.call(
            self._mark_started,
            [self.keys.status(ebook_id), self.keys.epoch],
            [total, now_ms, epoch],
        )

    async def note_crash(self, raw: bytes) -> int:
        """Count one more crash of the pool on this job; returns how many so far."""
        return int(await self.redis.hincrby(self.keys.crashes, cast(str, raw), 1))

    async def complete(
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
    ) -> bool | None:
        """Store a finished page and release its job.

        Returns True if the page is new, False if it was already stored, None if the job was
        claimed before Redis lost its data (nothing written).
        """
        new = await self._batch.call(
            self._complete,
            [
                self.keys.processing(pool_id),
                self.keys.queue,
                self.keys.pages(ebook_id),
                self.keys.status(ebook_id),
                self.keys.page_errors(ebook_id),
                self.keys.attempts,
                self.keys.crashes,
                self.keys.epoch,
            ],
            [raw, page_index, page_json, total, now_ms, epoch],
        )
        return None if new == _LOST else bool(new)

    async def fail(
        self,
        pool_id: str,
        raw: bytes,
        *,
        entry: dict[str, Any],
        now_ms: int,
        epoch: bytes,
        with_status: bool = True,
    ) -> bool:
        """Move a job to the failed list with `entry` (which says why), and count it.

        The entry's `ebookId`, `pageIndex`, `totalPages` and `error` are used when present (and
        `with_status`), so the ebook's status shows the failed page. Returns False if the job
        was claimed before Redis lost its data (nothing written).
        """
        keys = [
            self.keys.epoch,
            self.keys.processing(pool_id),
            self.keys.failed,
            self.keys.attempts,
            self.keys.crashes,
        ]
        ebook_id = entry.get("ebookId")
        page_index = entry.get("pageIndex")
        total = entry.get("totalPages")
        if (
            with_status
            and isinstance(ebook_id, str)
            and isinstance(page_index, int)
            and isinstance(total, int)
        ):
            keys += [
                self.keys.status(ebook_id),
                self.keys.page_errors(ebook_id),
                self.keys.pages(ebook_id),
            ]
        else:
            page_index, total = "", ""
        done = await self._batch.call(
            self._fail,
            keys,
            [raw, json_bytes(entry), page_index, entry.get("error", ""), total, now_ms, epoch],
        )
        return bool(done != _LOST)

    async def give_back(self, pool_id: str, raw: bytes, *, refund: bool) -> bool:
        """Return a claimed job to the head of the queue; `refund` un-counts its last attempt."""
        moved = await self._give_back(
            keys=[self.keys.processing(pool_id), self.keys.queue, self.keys.attempts],
            args=[raw, "1" if refund else ""],
        )
        return bool(moved)

    # --- the process's life ---------------------------------------------------------------

    async def heartbeat(self, pool_id: str, snapshot: dict[str, Any], ttl_ms: int) -> bytes | None:
        """Say this process is alive for `ttl_ms`, with a snapshot for `ebook-pool stats`.

        Returns the epoch marker (None if there is none), so a loss of data is noticed.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.keys.heartbeat(pool_id), json_bytes(snapshot), px=ttl_ms)
            pipe.sadd(self.keys.pools, pool_id)
            pipe.get(self.keys.epoch)
            *_, epoch = await pipe.execute()
        return None if epoch is None else _bytes(epoch)

    async def release(self, pool_id: str, *, refund: Sequence[bytes] = ()) -> int:
        """Give back every job this process holds and unregister it. Returns how many.

        `refund` lists the jobs whose last counted attempt did not run to its end.
        """
        n = await self._release(
            keys=[
                self.keys.processing(pool_id),
                self.keys.queue,
                self.keys.attempts,
                self.keys.heartbeat(pool_id),
                self.keys.pools,
            ],
            args=[pool_id, *refund],
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
            n = await self._reap(
                keys=[
                    self.keys.heartbeat(pool_id),
                    self.keys.processing(pool_id),
                    self.keys.queue,
                    self.keys.pools,
                ],
                args=[pool_id],
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

    # --- the failed list ------------------------------------------------------------------

    async def failed(self, start: int = 0, stop: int = -1) -> list[FailedEntry]:
        """Failed entries, newest first."""
        out = []
        for item in await self.redis.lrange(self.keys.failed, start, stop):
            raw = _bytes(item)
            try:
                data = json.loads(raw)
            except ValueError:
                data = {"payload": raw.decode(errors="replace"), "error": "unreadable entry"}
            out.append(FailedEntry(raw=raw, data=data if isinstance(data, dict) else {}))
        return out

    async def retry_failed(self, entry: FailedEntry, *, now_ms: int) -> bool:
        """Put a failed job back on the queue (once, even if two operators retry at the same time)."""
        payload = entry.job_bytes
        if payload is None:
            return False
        keys = [self.keys.failed, self.keys.queue]
        ebook_id, page_index = entry.ebook_id, entry.page_index
        if ebook_id is not None and page_index is not None:
            keys += [self.keys.page_errors(ebook_id), self.keys.status(ebook_id)]
        done = await self._retry_failed(
            keys=keys,
            args=[entry.raw, payload, "" if page_index is None else page_index, now_ms],
        )
        return bool(done)

    async def purge_failed(self, entries: Sequence[FailedEntry] | None = None) -> int:
        """Delete the given failed entries (all if None). Returns how many were deleted."""
        if entries is None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.llen(self.keys.failed)
                pipe.delete(self.keys.failed)
                n, _ = await pipe.execute()
            return int(n)
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.lrem(self.keys.failed, 1, cast(str, entry.raw))
            return sum(await pipe.execute())


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
