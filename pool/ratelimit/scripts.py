"""The budget's Lua scripts, read from the `.lua` files beside this module.

Each script is `common.lua` followed by its own file, registered with redis-py (EVALSHA, and
EVAL once after a SCRIPT FLUSH or a restart of Redis).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

__all__ = ["BudgetScripts", "script_source"]

_NAMES = ("reserve", "settle", "refuse", "release", "check")


@functools.cache
def script_source(name: str) -> str:
    """The full text of script `name`: the shared functions, then the script."""
    folder = files("pool.ratelimit").joinpath("lua")
    common = folder.joinpath("common.lua").read_text(encoding="utf-8")
    return common + "\n" + folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class BudgetScripts:
    """The scripts registered on one Redis client."""

    reserve: AsyncScript
    settle: AsyncScript
    refuse: AsyncScript
    release: AsyncScript
    check: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> BudgetScripts:
        """Register every script on `redis` (no round trip: they load on first use)."""
        scripts = {name: redis.register_script(script_source(name)) for name in _NAMES}
        return cls(**scripts)
