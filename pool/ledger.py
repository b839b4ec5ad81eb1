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
from pool.usage import JobUsage

__all__ = ["LedgerStats"]


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
