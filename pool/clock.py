"""Time, from one place, so tests and stats agree on it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["iso", "monotonic", "now_ms"]


def now_ms() -> int:
    """Wall-clock time in milliseconds since the epoch (what is stored in Redis)."""
    return time.time_ns() // 1_000_000


def monotonic() -> float:
    """Seconds on a clock that never jumps (for durations and deadlines)."""
    return time.monotonic()


def iso(ms: int) -> str:
    """An epoch-milliseconds timestamp as ISO 8601 UTC, for people."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
