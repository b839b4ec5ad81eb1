"""The attempts this process counted in Redis that have not run to their end yet."""

from __future__ import annotations

from collections import Counter

__all__ = ["AttemptLedger"]


class AttemptLedger:
    """Jobs whose counted attempt has not ended (claimed, or generating).

    An attempt is opened when Redis counts it (at claim, or before a retry) and closed when it
    ends, however it ends. If the pool stops, the attempts still open are refunded as their
    jobs are given back: a shutdown must not bring a job closer to the failed list.
    """

    def __init__(self) -> None:
        self._open: Counter[bytes] = Counter()

    def opened(self, raw: bytes) -> None:
        """Redis counted one more attempt of `raw`."""
        self._open[raw] += 1

    def ended(self, raw: bytes) -> bool:
        """Forget a counted attempt of `raw` that ended; True if one was still open."""
        if self._open[raw] <= 0:
            return False
        self._open[raw] -= 1
        if not self._open[raw]:
            del self._open[raw]
        return True

    def open_jobs(self) -> list[bytes]:
        """Each job once per attempt still open (what `Store.release` refunds)."""
        return list(self._open.elements())

    def __len__(self) -> int:
        return sum(self._open.values())
