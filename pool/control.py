"""Pool-wide controls an operator sets in Redis: pausing and resuming every pool process.

The flag is one key, `{prefix}:paused` (see `Keys.paused`), holding JSON
`{"reason": "...", "since": <epoch ms>}`. A plain string set by hand (`SET ebook:paused
"maintenance"` in redis-cli) works too: it is the reason. Deleting the key resumes the pool.

A pool process reads the flag with its heartbeat (`pool.liveness`) and claims no new job while
it is set; jobs already running finish as usual. So a pause takes effect within
HEARTBEAT_INTERVAL on every process.
"""

from __future__ import annotations

import json
from typing import TypedDict

from redis.asyncio import Redis

from pool.keys import Keys

__all__ = [
    "MAX_REASON_CHARS",
    "OperatorPause",
    "decode_operator_pause",
    "operator_pause_reason",
    "pause_pool",
    "pool_paused_by_operator",
    "read_operator_pause",
    "resume_pool",
]

#: Longest reason kept; a longer one is cut (it is shown on one line).
MAX_REASON_CHARS = 200


class OperatorPause(TypedDict):
    """The decoded pause flag."""

    reason: str
    since: int | None


async def pause_pool(redis: Redis, keys: Keys, reason: str, *, now_ms: int) -> OperatorPause:
    """Ask every pool process to stop claiming jobs, for `reason` (one line, cut to 200 chars).

    Pausing an already paused pool replaces the reason but keeps when the pause began.
    """
    text = " ".join(reason.split())[:MAX_REASON_CHARS] or "paused by an operator"
    current = await read_operator_pause(redis, keys)
    since = current["since"] if current is not None and current["since"] is not None else now_ms
    flag = OperatorPause(reason=text, since=since)
    await redis.set(keys.paused, json.dumps(flag))
    return flag


async def resume_pool(redis: Redis, keys: Keys) -> bool:
    """Clear the pause flag. Returns False if the pool was not paused by an operator."""
    return bool(await redis.delete(keys.paused))


async def read_operator_pause(redis: Redis, keys: Keys) -> OperatorPause | None:
    """The pause flag, decoded, or None when the pool is not paused by an operator."""
    return decode_operator_pause(await redis.get(keys.paused))


def decode_operator_pause(raw: bytes | str | None) -> OperatorPause | None:
    """The value of `Keys.paused` decoded (JSON, or a plain reason typed in redis-cli)."""
    if raw is None:
        return None
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("reason"), str):
        since = data.get("since")
        return OperatorPause(
            reason=data["reason"][:MAX_REASON_CHARS] or "paused by an operator",
            since=since if isinstance(since, int) else None,
        )
    return OperatorPause(
        reason=text.strip()[:MAX_REASON_CHARS] or "paused by an operator", since=None
    )


async def pool_paused_by_operator(redis: Redis, keys: Keys) -> str | None:
    """The reason every pool process should stop claiming jobs, or None to carry on.

    For the pool: call it on each heartbeat; while it returns a reason, claim nothing, show
    `paused: <reason>` in the heartbeat snapshot and `/readyz`, and resume when it returns None.
    """
    return operator_pause_reason(await redis.get(keys.paused))


def operator_pause_reason(raw: bytes | str | None) -> str | None:
    """What `pool_paused_by_operator` says, for a value already read."""
    flag = decode_operator_pause(raw)
    return None if flag is None else f"paused by an operator: {flag['reason']}"
