"""Every Redis key the pool reads or writes, in one place.

This is the storage half of the contract with the Next.js app (docs/contract.md): a producer
LPUSHes onto `queue`, reads pages from `pages(ebook_id)` and polls `status(ebook_id)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Keys"]


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one prefix (KEY_PREFIX, default "ebook")."""

    prefix: str = "ebook"

    @property
    def queue(self) -> str:
        """List of pending page jobs: producers LPUSH, the pool takes from the right end."""
        return f"{self.prefix}:queue"

    @property
    def failed(self) -> str:
        """List of failed jobs (dead letters), newest first: JSON with the job and the error."""
        return f"{self.prefix}:failed"

    @property
    def attempts(self) -> str:
        """Hash job payload → attempts started; survives crashes, cleared when the job ends."""
        return f"{self.prefix}:attempts"

    @property
    def crashes(self) -> str:
        """Hash job payload → times handling it crashed the pool; at 2 it fails as poison."""
        return f"{self.prefix}:crashes"

    @property
    def epoch(self) -> str:
        """String: a random token the first pool writes. If it vanishes or changes, Redis lost
        its data (no persistence, a flush, a failover to an empty replica)."""
        return f"{self.prefix}:epoch"

    @property
    def pools(self) -> str:
        """Set of the ids of the pool processes that have registered."""
        return f"{self.prefix}:pools"

    def processing(self, pool_id: str) -> str:
        """List of the jobs a pool process has claimed and not finished."""
        return f"{self.prefix}:processing:{pool_id}"

    def heartbeat(self, pool_id: str) -> str:
        """String (JSON snapshot of the process) that expires when the process stops beating."""
        return f"{self.prefix}:pool:{pool_id}"

    def pages(self, ebook_id: str) -> str:
        """Hash page index → JSON of the finished page."""
        return f"{self.prefix}:ebook:{ebook_id}:pages"

    def status(self, ebook_id: str) -> str:
        """Hash with total, done, failed, state and timestamps of one ebook."""
        return f"{self.prefix}:ebook:{ebook_id}:status"

    def page_errors(self, ebook_id: str) -> str:
        """Hash page index → reason, for the pages of one ebook that failed for good."""
        return f"{self.prefix}:ebook:{ebook_id}:errors"

    @property
    def paused(self) -> str:
        """String (JSON `{"reason", "since"}`, or a plain reason): while it exists, every pool
        process stops claiming jobs. Set and cleared by an operator (the dashboard)."""
        return f"{self.prefix}:paused"

    @property
    def rate_budgets(self) -> str:
        """Set of the ids of the API budgets (API, key fingerprint, model) paced so far."""
        return f"{self.prefix}:ratelimit:budgets"

    def rate_budget(self, budget_id: str) -> str:
        """Hash: one API budget's shared pacing state, learned limits and cool-down."""
        return f"{self.prefix}:ratelimit:{budget_id}"

    def rate_use(self, budget_id: str) -> str:
        """Hash: requests, tokens and refusals of one budget per second, a 60-slot ring."""
        return f"{self.prefix}:ratelimit:{budget_id}:use"

    def rate_scout(self, budget_id: str) -> str:
        """String (expiring): the one request in flight while a budget's limits are unknown."""
        return f"{self.prefix}:ratelimit:{budget_id}:scout"

    # --- issue 11: idempotent jobs, retention, result cache -------------------------------

    def ebook_keys(self, ebook_id: str) -> list[str]:
        """Every key of one ebook (what RESULT_TTL expires and `ebook-pool delete` removes)."""
        return [
            self.status(ebook_id),
            self.pages(ebook_id),
            self.page_errors(ebook_id),
        ]

    def inflight(self, job_id: str) -> str:
        """String "briefSha1 processing-key" while a pool process holds a job with this jobId
        (SET NX PX at claim): a second copy claimed meanwhile is acknowledged, not generated."""
        return f"{self.prefix}:inflight:{job_id}"

    def grown(self, job_id: str) -> str:
        """String: the token limit the next attempts of this jobId ask for, after a page cut
        off at its limit (`RetryableError.next_max_tokens`); expires a day after it was set."""
        return f"{self.prefix}:grown:{job_id}"

    @property
    def deaths(self) -> str:
        """Hash job payload → times a process died holding it (the reaper counts them; at
        MAX_RETRIES + 1 the job has used its attempts). Expires a day after the last death
        (`pool.queue.DEATHS_KEPT_MS`); a failed job's count is cleared."""
        return f"{self.prefix}:deaths"

    def cache(self, request_sha256: str) -> str:
        """String (JSON page + usage) answering one exact API request (CACHE_TTL; opt-in)."""
        return f"{self.prefix}:cache:{request_sha256}"

    @staticmethod
    def parts(key_of: Callable[[str], str]) -> tuple[str, str]:
        """(head, tail) of a key built from one id, for a Lua script that reads the id from a
        payload and builds the key as head .. id .. tail."""
        head, _, tail = key_of("\x00").partition("\x00")
        return head, tail

    # --- progress events (issue 12; docs/contract.md, "Progress events") ---

    @property
    def events_channel(self) -> str:
        """Pub/sub channel: every page outcome and ebook state change, for live listeners."""
        return f"{self.prefix}:events"

    def ebook_events(self, ebook_id: str) -> str:
        """Stream of one ebook's events, capped and expiring, so a late listener catches up."""
        return f"{self.prefix}:ebook:{ebook_id}:events"
