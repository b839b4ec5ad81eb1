"""What pages cost: the usage one job ran up, and the per-process totals.

The per-ebook ledger lives in the ebook's status hash (docs/contract.md): `complete.lua` and
`fail.lua` add a job's `JobUsage` in the same atomic script that stores its outcome, so the
ledger can never count a page that was not stored, nor miss one that was. Per process,
`LedgerStats` adds up the same usage from the pool's events (JOB_SUCCEEDED and JOB_FAILED carry
it; JOB_SKIPPED) for the heartbeat, which `ebook-pool stats` shows.

Field meanings (status hash and stats alike):

- `requests`: API requests made, failed ones included;
- `promptTokens` / `completionTokens`: tokens of the requests that wrote a stored page;
- `wastedTokens`: tokens the API billed for requests that did not give a page (cut off by
  `length`, empty); their sum with the two above is what the API server counted;
- `costUsd`: all of these at the `pool.pricing` prices;
- `cacheHits`, `cacheMisses`, `tokensSaved`: the result cache (CACHE_TTL), when it is on;
- `skipped` (status hash: by the claim script; stats: from JOB_SKIPPED): copies acknowledged
  without a request.
"""

from __future__ import annotations

from typing import Any

from pool.events import EventKind, PoolEvent

__all__ = ["NO_USAGE", "JobUsage", "LedgerStats"]


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


class LedgerStats:
    """Per-process totals of the ledger, counted from the pool's events: the usage that
    JOB_SUCCEEDED and JOB_FAILED carry (the same numbers the ebooks' ledgers get), JOB_SKIPPED."""

    #: The events `on_event` counts (subscribe it to these only).
    KINDS = (EventKind.JOB_SUCCEEDED, EventKind.JOB_FAILED, EventKind.JOB_SKIPPED)

    def __init__(self) -> None:
        self.total = JobUsage()
        self.skipped = 0

    def on_event(self, event: PoolEvent) -> None:
        """Count what the event says (subscribed to the pool's `PoolEvents`)."""
        if event.kind is EventKind.JOB_SKIPPED:
            self.skipped += 1
        elif event.usage is not None:
            self.total.add(event.usage)

    def snapshot(self) -> dict[str, Any]:
        """The totals, camelCase like the status hash, for the heartbeat."""
        t = self.total
        return {
            "requests": t.requests,
            "promptTokens": t.prompt_tokens,
            "completionTokens": t.completion_tokens,
            "wastedTokens": t.wasted_tokens,
            "costUsd": round(t.cost_usd, 6),
            "skipped": self.skipped,
            "cacheHits": t.cache_hits,
            "cacheMisses": t.cache_misses,
            "tokensSaved": t.tokens_saved,
        }
