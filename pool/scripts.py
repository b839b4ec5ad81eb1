"""The Lua scripts, loaded from `pool/lua/*.lua`: the only writers of queue and status state.

Each script file starts with a KEYS/ARGV header comment. A line `-- include: NAME` pulls in
`NAME.lua` (shared Lua functions) ahead of the script's body.

Attempts are counted per payload, the exact bytes being the hash field: Lua needs no JSON to
find it, and the count survives crashes (a job that keeps killing its process runs out). Only
jobs in progress have a field; it is deleted when the job ends.

Every script that writes a job's outcome first checks the epoch marker: a job claimed before
Redis lost its data (the marker vanished or changed) writes nothing, so a lost ebook is not
re-created half-done. They return `LOST` (-1) then.
"""

from __future__ import annotations

import functools
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

__all__ = ["LOST", "Scripts", "lua_source"]

LOST = -1

_INCLUDE = "-- include: "


@functools.cache
def lua_source(name: str) -> str:
    """The full source of `pool/lua/NAME.lua`, its includes first."""
    text = resources.files("pool").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
    includes = [
        line[len(_INCLUDE) :].strip() for line in text.splitlines() if line.startswith(_INCLUDE)
    ]
    return "".join(lua_source(i) for i in includes) + text


class Scripts:
    """Every script, registered on one Redis client (EVALSHA, loaded on first use)."""

    def __init__(self, redis: Redis) -> None:
        def load(name: str) -> AsyncScript:
            return redis.register_script(lua_source(name))

        self.init_epoch = load("init_epoch")
        self.claim = load("claim")
        self.claim_one = load("claim_one")
        self.start = load("start")
        self.mark_started = load("mark_started")
        self.complete = load("complete")
        self.fail = load("fail")
        self.give_back = load("give_back")
        self.release = load("release")
        self.requeue = load("requeue")
        self.reap = load("reap")
        self.retry_failed = load("retry_failed")
