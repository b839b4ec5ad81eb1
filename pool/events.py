"""Pool events: a tiny in-process bus for what happens to jobs and to the pool.

The runtime emits an event at each state change (a job claimed, started, retried, rate-limited,
succeeded, failed, ended; the pool paused or resumed; Redis down or up). Stats subscribes
to it, and so can metrics, a ledger or a progress publisher. Subscribers are plain callables
run in the emitting task: they must be quick, they never change a job's outcome, and one that
raises is logged and skipped, never fatal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from loguru import logger

if TYPE_CHECKING:
    from pool.job import PageJob
    from pool.ratelimit import BudgetSnapshot, GovernorSnapshot
    from pool.usage import JobUsage

__all__ = ["EventKind", "PoolEvent", "PoolEvents", "Subscriber"]


class EventKind(StrEnum):
    """What happened."""

    JOB_CLAIMED = "job_claimed"  #: moved into this process's processing list
    JOB_STARTED = "job_started"  #: a worker took it
    JOB_RETRIED = "job_retried"  #: an attempt failed; another follows after `wait_s`
    #: A request was refused for rate (429, 503 overloaded): not a failed attempt; it is sent
    #: again after `wait_s` (the shared cool-down, or the server's retry-after).
    JOB_RATE_LIMITED = "job_rate_limited"
    JOB_SUCCEEDED = "job_succeeded"  #: its page is stored
    JOB_FAILED = "job_failed"  #: it is in the failed list
    JOB_ENDED = "job_ended"  #: the worker let go of it (whatever the outcome)
    #: One API request ended, whatever its outcome: `latency_s`, the tokens the API reported
    #: (also for a failed request, when it said), `reason` None on success.
    REQUEST_ENDED = "request_ended"
    POOL_PAUSED = "pool_paused"
    POOL_RESUMED = "pool_resumed"
    REDIS_DOWN = "redis_down"
    REDIS_UP = "redis_up"
    #: Acknowledged without a request (`reason`: "stored" = its page is stored for the same
    #: jobId and brief; "in flight" = a copy is being written). Not followed by JOB_ENDED.
    JOB_SKIPPED = "job_skipped"
    #: Answered from the result cache (CACHE_TTL): the tokens it would have cost, no request.
    CACHE_HIT = "cache_hit"
    CACHE_MISSED = "cache_missed"  #: the result cache had no answer; a request follows
    #: Every HEARTBEAT_INTERVAL while a governor paces requests: `governor` (this process:
    #: concurrency limit, in flight, waiting, latency) and `budgets` (shared, from Redis:
    #: limits, use over the last minute as % of RPM and TPM, refusals, cool-down).
    BUDGET_SNAPSHOT = "budget_snapshot"
    #: An ebook's first page started in this process and its status says so (`job` set): its
    #: state may have become "generating". Once per ebook per process.
    EBOOK_STARTED = "ebook_started"


class PoolEvent(NamedTuple):
    """One event; the fields that do not apply to its kind are None.

    A named tuple, not a frozen dataclass: several are made per page, and a tuple is built
    in a fraction of the time.
    """

    kind: EventKind
    raw: bytes | None = None  #: the job's exact payload
    worker: int | None = None
    attempt: int | None = None
    duration_s: float | None = None  #: for JOB_SUCCEEDED: claim to finished page
    wait_s: float | None = None  #: for JOB_RETRIED and JOB_RATE_LIMITED: the server's wish
    reason: str | None = None
    job: PageJob | None = None  #: the decoded job, once it is known
    prompt_tokens: int | None = None  #: for REQUEST_ENDED and JOB_SUCCEEDED
    completion_tokens: int | None = None
    latency_s: float | None = None  #: for REQUEST_ENDED: the HTTP call's wall time
    error_type: str | None = None  #: for JOB_FAILED: the failed entry's errorType
    cost_usd: float | None = None  #: for REQUEST_ENDED: at the pool's prices (pool.pricing)
    #: For JOB_SUCCEEDED and JOB_FAILED: what the job's attempts in this process cost (a
    #: `pool.ledger.JobUsage`), as added to its ebook's ledger.
    usage: JobUsage | None = None
    governor: GovernorSnapshot | None = None  #: for BUDGET_SNAPSHOT
    budgets: list[BudgetSnapshot] | None = None  #: for BUDGET_SNAPSHOT


Subscriber = Callable[[PoolEvent], None]


class PoolEvents:
    """The bus: `subscribe` a callable, `emit` events to every subscriber in order."""

    def __init__(self) -> None:
        # Subscribers by the kinds they asked for: an event nobody wants costs one dict lookup.
        self._by_kind: dict[EventKind, list[Subscriber]] = {}

    def subscribe(self, subscriber: Subscriber, kinds: Iterable[EventKind] | None = None) -> None:
        """Call `subscriber` with every event of `kinds` (default: all) from now on."""
        for kind in EventKind if kinds is None else kinds:
            self._by_kind.setdefault(kind, []).append(subscriber)

    def wants(self, kind: EventKind) -> bool:
        """Whether anyone listens to `kind` (to skip work that only feeds an event)."""
        return kind in self._by_kind

    def emit(
        self,
        kind: EventKind,
        raw: bytes | None = None,
        *,
        worker: int | None = None,
        attempt: int | None = None,
        duration_s: float | None = None,
        wait_s: float | None = None,
        reason: str | None = None,
        job: PageJob | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        latency_s: float | None = None,
        error_type: str | None = None,
        cost_usd: float | None = None,
        usage: JobUsage | None = None,
        governor: GovernorSnapshot | None = None,
        budgets: list[BudgetSnapshot] | None = None,
    ) -> None:
        """Tell every subscriber; a subscriber that raises is logged and the others still run."""
        subscribers = self._by_kind.get(kind)
        if subscribers is None:
            return
        # Positional: several events are made per page, and this is the cheapest way.
        event = PoolEvent(
            kind, raw, worker, attempt, duration_s, wait_s, reason,
            job, prompt_tokens, completion_tokens, latency_s, error_type, cost_usd, usage,
            governor, budgets,
        )  # fmt: skip
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                logger.exception(
                    f"[Worker Pool] Event subscriber {getattr(subscriber, '__qualname__', subscriber)} "
                    f"failed on {kind}; the job goes on"
                )
