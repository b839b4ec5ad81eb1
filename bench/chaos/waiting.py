"""Poll with a deadline: the suite's only way to wait for something to happen."""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.exceptions import RedisError

__all__ = ["wait_until"]


def wait_until(predicate: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.1) -> bool:
    """Call `predicate` until it is true (returns True) or `timeout_s` has passed (False).

    Redis and socket errors count as "not yet" (Redis may be restarting); others propagate.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if predicate():
                return True
        except (OSError, RedisError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
