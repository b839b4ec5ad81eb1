"""How many requests one process keeps in flight for a budget: Little's law, AIMD on refusals.

    limit = max(1, min(ceiling, aimd_cap, little))
    little = ceil(rate * latency * HEADROOM) + 1

`ceiling` is CONCURRENT_WORKERS. `rate` is the requests per second the budget allows (its
RPM, or its TPM divided by the tokens of a request, whichever is lower; unknown: no bound) and
`latency` the observed time of a request (a moving average; `INITIAL_LATENCY_S` until the first
answer). By Little's law, rate * latency requests in flight are what it takes to spend the
whole budget; HEADROOM and the +1 cover the spread of latencies, so the budget, not the
concurrency, is what binds. More workers than that would only wait in the budget's line.

While the budget's limits are being learned (`learning`), one request at a time: only one
scout goes out across all processes, so more would only ask Redis again and again.

`aimd_cap` reacts to refusals the budget did not foresee (another client on the same key, a
limit lower than it says): each refusal halves it, at most once per latency (one burst of
refusals is one signal), and each answered request adds 1/cap (about +1 per round of `limit`
requests), up to the ceiling.

A slot is held from before a request is reserved until its answer; waiters get slots in the
order they asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable

from pool.clock import monotonic

__all__ = ["DECREASE", "HEADROOM", "INITIAL_LATENCY_S", "AdaptiveConcurrency"]

HEADROOM = 1.25
DECREASE = 0.5
INITIAL_LATENCY_S = 5.0
_LATENCY_WEIGHT = 0.2  # of a new sample in the moving average


class AdaptiveConcurrency:
    """The in-flight limit of one budget in one process, and its FIFO line of waiters.

    Args:
        ceiling: the most ever in flight (CONCURRENT_WORKERS).
        clock: monotonic seconds.
    """

    def __init__(self, ceiling: int, *, clock: Callable[[], float] = monotonic) -> None:
        if ceiling < 1:
            raise ValueError(f"ceiling must be >= 1, not {ceiling}")
        self.ceiling = ceiling
        self.in_flight = 0
        self.refusals = 0
        self._clock = clock
        self._cap = float(ceiling)
        self._rate: float | None = None
        self._latency: float | None = None
        self._decreased_at = -math.inf
        self._learning = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    # -- the limit -------------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """How many requests may be in flight now."""
        if self._learning:
            return 1
        limit = min(self.ceiling, int(self._cap))
        little = self.little_target
        if little is not None:
            limit = min(limit, little)
        return max(1, limit)

    @property
    def little_target(self) -> int | None:
        """What Little's law asks for, or None while the budget's rate is unknown."""
        if self._rate is None:
            return None
        return math.ceil(self._rate * self.latency_s * HEADROOM) + 1

    @property
    def latency_s(self) -> float:
        """The moving average of request times (INITIAL_LATENCY_S before the first answer)."""
        return self._latency if self._latency is not None else INITIAL_LATENCY_S

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot."""
        return sum(1 for w in self._waiters if not w.done())

    @property
    def learning(self) -> bool:
        """The budget's limits are being learned: one request at a time."""
        return self._learning

    @learning.setter
    def learning(self, value: bool) -> None:
        self._learning = value
        self._wake()

    def set_rate(self, requests_per_s: float | None) -> None:
        """The requests per second the budget allows now (None: unknown or unlimited)."""
        self._rate = requests_per_s
        self._wake()

    def answered(self, latency_s: float) -> None:
        """A request got an answer after `latency_s` (success or a fault, not a refusal)."""
        if latency_s >= 0:
            old = self._latency
            self._latency = latency_s if old is None else old + _LATENCY_WEIGHT * (latency_s - old)
        self._cap = min(float(self.ceiling), self._cap + 1 / max(1.0, self._cap))
        self._wake()

    def refused(self) -> None:
        """The API refused a request for rate: halve the cap, once per latency."""
        self.refusals += 1
        now = self._clock()
        if now - self._decreased_at < self.latency_s:
            return
        self._decreased_at = now
        self._cap = max(1.0, math.floor(self.limit * DECREASE))

    # -- slots -----------------------------------------------------------------------------

    async def acquire(self, timeout_s: float | None = None) -> bool:
        """Wait for a slot (first come, first served); False if none came within `timeout_s`."""
        if not self._waiters and self.in_flight < self.limit:
            self.in_flight += 1
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return True  # granted as the timeout fired: keep it
            self._forget(waiter)
            return False
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted, but the caller is gone
            else:
                self._forget(waiter)
            raise
        return True

    def release(self) -> None:
        """Give a slot back."""
        self.in_flight = max(0, self.in_flight - 1)
        self._wake()

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        waiter.cancel()
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if waiter.done():
                continue
            self.in_flight += 1
            waiter.set_result(None)
