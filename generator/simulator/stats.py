"""What the simulator served, counted so that tests and benchmarks can assert against it."""

from __future__ import annotations

from collections import Counter
from typing import TypedDict

__all__ = ["SimulatorStats", "StatsRecorder"]


class SimulatorStats(TypedDict):
    """A snapshot of the counts since start (or the last reset).

    Attributes:
        requests: requests received on /v1 (the /_sim control endpoints are not counted).
        in_flight: requests being handled now.
        max_in_flight: the most handled at once.
        by_status: answers by HTTP status, as strings ("200", "429"); hangs and dropped
            connections have no status and are only in `by_kind`.
        by_kind: answers by kind ("ok", "rate_limited", "bad_key", "hang", "drop", ...).
        prompt_tokens / completion_tokens: tokens of the completions served.
    """

    requests: int
    in_flight: int
    max_in_flight: int
    by_status: dict[str, int]
    by_kind: dict[str, int]
    prompt_tokens: int
    completion_tokens: int


class StatsRecorder:
    """Counts requests as they begin and end."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything counted so far (requests in flight stay in flight)."""
        in_flight = getattr(self, "_in_flight", 0)
        self._requests = 0
        self._in_flight = in_flight
        self._max_in_flight = in_flight
        self._by_status: Counter[str] = Counter()
        self._by_kind: Counter[str] = Counter()
        self._prompt_tokens = 0
        self._completion_tokens = 0

    def begin(self) -> None:
        """A request arrived."""
        self._requests += 1
        self._in_flight += 1
        self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def end(
        self, *, kind: str, status: int | None, prompt_tokens: int = 0, completion_tokens: int = 0
    ) -> None:
        """A request was answered with `status` (None: no answer), as an answer of `kind`."""
        self._in_flight = max(0, self._in_flight - 1)
        self._by_kind[str(kind)] += 1
        if status is not None:
            self._by_status[str(status)] += 1
        self._prompt_tokens += prompt_tokens
        self._completion_tokens += completion_tokens

    def snapshot(self) -> SimulatorStats:
        """The counts now, as plain data."""
        return SimulatorStats(
            requests=self._requests,
            in_flight=self._in_flight,
            max_in_flight=self._max_in_flight,
            by_status=dict(self._by_status),
            by_kind=dict(self._by_kind),
            prompt_tokens=self._prompt_tokens,
            completion_tokens=self._completion_tokens,
        )
