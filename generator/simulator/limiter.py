"""Requests-per-minute and tokens-per-minute limits, enforced the way OpenAI does.

Each limit is a bucket that refills continuously, `limit` units per window (60 s for "per
minute"), and holds `bucket_s` seconds of them: the whole window's `limit` by default, a sixth
of it with `bucket_s=10` (OpenAI enforces its per-minute limits over shorter spans too). A
request takes one request unit and its tokens (prompt tokens plus the `max_tokens` it asks for,
as OpenAI counts them) only if both buckets hold enough; a request larger than the bucket but
within the limit passes when the bucket is full and leaves it in debt. Otherwise it gets a 429
and learns how long until it would pass; with `count_refused` the refused request still takes
its units (OpenAI: "unsuccessful requests contribute to your per-minute limit"), down to one
bucket of debt, and the wait it is told accounts for that. A request over the whole limit can
never pass (wait inf). Every answer carries `x-ratelimit-limit|remaining|reset-requests|tokens`:
the per-window limit, what the bucket holds now, and the time until it is full again, printed
like OpenAI ("20ms", "1.5s", "6m0s").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Admission", "RateLimiter", "format_duration"]

_EPSILON = 1e-9  # float refill arithmetic must not refuse a request that is exactly due


def format_duration(seconds: float) -> str:
    """A duration as OpenAI prints it in headers and messages: "20ms", "1.5s", "6m0s"."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 1000) / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m{rest}s"


class _Bucket:
    """`bucket_s` seconds of a limit of `limit` units per `window_s`, refilling continuously."""

    def __init__(self, limit: int, window_s: float, bucket_s: float, now_s: float) -> None:
        self.limit = limit
        self.rate = limit / window_s
        self.capacity = limit * bucket_s / window_s
        self.level = self.capacity
        self.updated = now_s

    def refill(self, now_s: float) -> None:
        self.level = min(self.capacity, self.level + (now_s - self.updated) * self.rate)
        self.updated = now_s

    def wait_s(self, amount: int) -> float:
        """Seconds until `amount` may pass; inf if it is over the limit and never can.

        A request larger than the bucket passes once the bucket is full.
        """
        if amount > self.limit:
            return math.inf
        missing = min(amount, self.capacity) - self.level
        return 0.0 if missing <= _EPSILON else missing / self.rate

    def take(self, amount: int) -> None:
        """Take `amount` units, leaving at most one bucket of debt."""
        self.level = max(-self.capacity, self.level - amount)

    def reset_s(self) -> float:
        return max(0.0, self.capacity - self.level) / self.rate

    def headers(self, kind: str) -> dict[str, str]:
        return {
            f"x-ratelimit-limit-{kind}": str(self.limit),
            f"x-ratelimit-remaining-{kind}": str(max(0, math.floor(self.level + _EPSILON))),
            f"x-ratelimit-reset-{kind}": format_duration(self.reset_s()),
        }


@dataclass(frozen=True, slots=True)
class Admission:
    """The limiter's answer to one request.

    Attributes:
        allowed: the request may proceed (its units were taken).
        wait_s: when refused, seconds until it would be allowed (inf: never, too large).
        limit_kind: when refused, "requests" or "tokens", the limit that refused it.
        headers: the `x-ratelimit-*` headers to send with the answer.
    """

    allowed: bool
    wait_s: float = 0.0
    limit_kind: str = ""
    limit: int = 0
    headers: dict[str, str] | None = None


class RateLimiter:
    """The rpm and tpm buckets of one simulator; None means that limit is off.

    Args:
        rpm: requests per window, or None.
        tpm: tokens per window, or None.
        window_s: the refill window, 60 for per-minute limits.
        clock: monotonic seconds.
        bucket_s: seconds of the limit a bucket holds (None: the whole window).
        count_refused: a refused request still takes its units, as with OpenAI.
    """

    def __init__(
        self,
        *,
        rpm: int | None,
        tpm: int | None,
        window_s: float,
        clock: Callable[[], float],
        bucket_s: float | None = None,
        count_refused: bool = False,
    ) -> None:
        now_s = clock()
        self._clock = clock
        self._count_refused = count_refused
        held = window_s if bucket_s is None else bucket_s
        self._buckets = {
            kind: _Bucket(limit, window_s, held, now_s)
            for kind, limit in (("requests", rpm), ("tokens", tpm))
            if limit is not None
        }

    def admit(self, tokens: int) -> Admission:
        """Take one request and `tokens` tokens if both limits allow, else say how long to wait."""
        now_s = self._clock()
        for bucket in self._buckets.values():
            bucket.refill(now_s)
        cost = {"requests": 1, "tokens": tokens}
        waits = {kind: bucket.wait_s(cost[kind]) for kind, bucket in self._buckets.items()}
        if waits and max(waits.values()) > 0:
            if self._count_refused:
                for kind, bucket in self._buckets.items():
                    if not math.isinf(waits[kind]):
                        bucket.take(cost[kind])
                waits = {kind: b.wait_s(cost[kind]) for kind, b in self._buckets.items()}
            kind = max(waits, key=lambda k: waits[k])
            return Admission(
                allowed=False,
                wait_s=waits[kind],
                limit_kind=kind,
                limit=self._buckets[kind].limit,
                headers=self.headers(),
            )
        for kind, bucket in self._buckets.items():
            bucket.take(cost[kind])
        return Admission(allowed=True, headers=self.headers())

    def headers(self) -> dict[str, str]:
        """The current `x-ratelimit-*` headers (none when no limit is set)."""
        now_s = self._clock()
        out: dict[str, str] = {}
        for kind, bucket in self._buckets.items():
            bucket.refill(now_s)
            out.update(bucket.headers(kind))
        return out
