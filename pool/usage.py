"""What one job's API requests cost, carried with its outcome into the ledger (`pool.ledger`).

A module of its own with no imports from the pool, so the store, the events and the runtime can
all name it without an import loop.
"""

from __future__ import annotations

__all__ = ["NO_USAGE", "JobUsage"]


class JobUsage:
    """What one job's attempts in this process cost; written with its outcome."""

    __slots__ = (
        "cache_hits",
        "cache_misses",
        "completion_tokens",
        "cost_usd",
        "prompt_tokens",
        "requests",
        "tokens_saved",
        "wasted_tokens",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.wasted_tokens = 0
        self.cost_usd = 0.0
        self.cache_hits = 0
        self.cache_misses = 0
        self.tokens_saved = 0

    def request_ended(
        self, *, prompt_tokens: int, completion_tokens: int, cost_usd: float, page: bool
    ) -> None:
        """One API request ended; `page` if it gave the page being stored."""
        self.requests += 1
        self.cost_usd += cost_usd
        if page:
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
        else:
            self.wasted_tokens += prompt_tokens + completion_tokens

    def add(self, other: JobUsage) -> None:
        """Add another job's usage to this one."""
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.wasted_tokens += other.wasted_tokens
        self.cost_usd += other.cost_usd
        self.cache_hits += other.cache_hits
        self.cache_misses += other.cache_misses
        self.tokens_saved += other.tokens_saved

    def argv(self) -> str:
        """The eight ledger values `complete.lua` and `fail.lua` add, space-separated, in
        `ledger.lua`'s order (one argument: fewer to encode on the hot path)."""
        cost = f"{self.cost_usd:.12f}".rstrip("0").rstrip(".") if self.cost_usd else "0"
        return (
            f"{self.requests} {self.prompt_tokens} {self.completion_tokens} "
            f"{self.wasted_tokens} {cost} {self.cache_hits} {self.cache_misses} "
            f"{self.tokens_saved}"
        )


#: What a job that made no request adds.
NO_USAGE = JobUsage().argv()
