"""Watching a run end from outside the pool: the ebooks' `done` counts, polled in Redis.

When several processes share the queue no single one knows when the last page is stored, so the
parent polls the status hashes (`<prefix>:ebook:<id>` field `done`, one HGET each, pipelined)
and keeps every sample, from which `steady_rate` reads the rate once the pool is full.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from redis import Redis

__all__ = ["CompletionWatcher", "steady_rate"]

#: The steady window: between these fractions of the pages finished (as `bench.child`).
_STEADY = (0.10, 0.90)


def steady_rate(samples: Sequence[tuple[float, int]], jobs: int) -> float | None:
    """Pages per second between the samples where 10% and 90% of `jobs` were done.

    Args:
        samples: (seconds, pages done) in time order.

    Returns None with too few pages or samples to tell (fewer than 10 jobs, or both ends of
    the window in one sample).
    """
    if jobs < 10:
        return None
    lo = next((s for s in samples if s[1] >= jobs * _STEADY[0]), None)
    hi = next((s for s in samples if s[1] >= jobs * _STEADY[1]), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return None
    return (hi[1] - lo[1]) / (hi[0] - lo[0])


@dataclass(slots=True)
class CompletionWatcher:
    """Polls the `done` counts of `status_keys` until they add up to `jobs`.

    Attributes:
        samples: (seconds since `start`, pages done), one per poll.
    """

    redis: Redis
    status_keys: list[str]
    jobs: int
    poll_s: float = 0.005
    samples: list[tuple[float, int]] = field(default_factory=list)
    _t0: float = 0.0

    def start(self) -> float:
        """Mark time zero; returns it (`time.perf_counter`)."""
        self._t0 = time.perf_counter()
        return self._t0

    def done(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for key in self.status_keys:
            pipe.hget(key, "done")
        return sum(int(d or 0) for d in pipe.execute())

    def wait(self, timeout_s: float, *, alive: Callable[[], bool] | None = None) -> float | None:
        """Poll until every page is done; the seconds since `start`, or None on timeout.

        Args:
            alive: a callable returning False once waiting is pointless (the processes died).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            done = self.done()
            elapsed = time.perf_counter() - self._t0
            self.samples.append((elapsed, done))
            if done >= self.jobs:
                return elapsed
            if time.monotonic() > deadline or (alive is not None and not alive()):
                return None
            time.sleep(self.poll_s)
