"""The settings the Lua scripts apply: retention, the failed list's length, the in-flight
marker's lifetime and the attempts a job has. Its own module so the queue, the dead letters and
the store name it without an import loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pool.config import PoolSettings

__all__ = ["StoreLimits"]


@dataclass(frozen=True, slots=True)
class StoreLimits:
    """The settings the scripts apply (issue 11): retention, the failed list's length, the
    in-flight marker's lifetime and the attempts a job has (the reaper counts deaths against
    them). The defaults keep everything, as a read-only client (the CLI) needs."""

    result_ttl_ms: int = 0
    failed_list_max: int = 0
    inflight_ttl_ms: int = 600_000
    max_attempts: int = 4
    #: `result_ttl_ms` as the scripts' argument, made once: redis-py passes bytes as they are.
    result_ttl_arg: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "result_ttl_arg", str(self.result_ttl_ms).encode())

    @classmethod
    def from_settings(cls, settings: PoolSettings) -> StoreLimits:
        """From `PoolSettings` (RESULT_TTL, FAILED_LIST_MAX, ...)."""
        return cls(
            result_ttl_ms=settings.result_ttl,
            failed_list_max=settings.failed_list_max,
            inflight_ttl_ms=settings.inflight_ttl_ms,
            max_attempts=settings.max_attempts,
        )
