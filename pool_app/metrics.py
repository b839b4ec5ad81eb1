"""Prometheus `/metrics` for one pool process, fed by the pool's event bus.

`PoolMetrics.on_event` subscribes to the bus (see `pool_app.wiring.build_metrics`); nothing in
the runtime counts for it. It runs for every event of every page, so it only adds to plain
integers and bucket counts: prometheus-client's own `Counter.inc` takes a lock and costs about
0.5 µs, `Histogram.observe` about 1.1 µs, and a page carries five events (scenario 1 of the
bench spends about 70 µs per page in all). `collect` turns those numbers into metric families
at scrape time, and the registry (one per `PoolMetrics`, never the global default) renders
them in the exposition format.

Gauges are read at scrape time: queue depth and live processes from Redis, after `refresh`,
which gives Redis `_REDIS_TIMEOUT_S`; when it does not answer, `ebook_pool_redis_up` is 0 and
those two gauges are left out, so a scrape never hangs on a Redis outage.
"""

from __future__ import annotations

import asyncio
import math
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from pool.clock import monotonic
from pool.events import EventKind, PoolEvent
from pool.pricing import PriceTable

__all__ = ["FAILURE_REASONS", "PoolMetrics", "add_metrics_route"]

#: The failed entry's errorType values (docs/contract.md): the `reason` label's values.
FAILURE_REASONS = ("invalid", "fatal", "exhausted", "poison")

_REDIS_TIMEOUT_S = 0.5
#: An API request takes from well under a second (a short page) to GENERATION_TIMEOUT (90 s).
_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0)
#: A claimed job waits for a free worker: sub-millisecond on an idle pool.
_WAIT_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class _Store(Protocol):
    async def queue_depth(self) -> int: ...

    async def live_pools(self) -> dict[str, dict[str, Any]]: ...


class _Stats(Protocol):
    active: int


class ObservedPool(Protocol):
    """What the metrics read of a running pool at scrape time."""

    @property
    def store(self) -> _Store: ...

    @property
    def stats(self) -> _Stats: ...

    @property
    def paused(self) -> bool: ...


class _Buckets:
    """A histogram's counts: one add per observation (exposed by `PoolMetrics.collect`)."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == math.inf else repr(bound), cumulative))
        return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=self.sum)


class PoolMetrics:
    """The metrics of one pool process, in their own registry (`registry`).

    Args:
        pool: read at scrape time (in flight, paused, and Redis through its store).
        concurrency_limit: CONCURRENT_WORKERS (until the rate-limit governor sets a limit).
        default_model: OPENAI_MODEL, the model of a job that names none (for the cost).
        price: USD of one request (model, prompt tokens, completion tokens); the ledger's
            built-in prices (`pool.pricing`) if None (`build_metrics` passes the pool's).
    """

    def __init__(
        self,
        pool: ObservedPool,
        *,
        concurrency_limit: int,
        default_model: str,
        price: Callable[[str, int, int], float] | None = None,
    ) -> None:
        self._pool = pool
        self._concurrency_limit = concurrency_limit
        self._default_model = default_model
        self._price = price or PriceTable().cost_usd
        self.succeeded = 0
        self.failed = dict.fromkeys(FAILURE_REASONS, 0)
        self.retried = 0
        self.skipped = 0  # JOB_SKIPPED: acknowledged at claim without a request
        self.requests_ok = 0
        self.requests_failed = 0
        self.rate_limited = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.wasted_tokens = 0
        self._tokens_by_model: dict[str, list[int]] = {}  # model → [prompt, completion]
        self.api_latency = _Buckets(_LATENCY_BUCKETS_S)
        self.claim_wait = _Buckets(_WAIT_BUCKETS_S)
        self._claimed_at: dict[bytes, float] = {}
        self._redis_up = False
        self._queue_depth: int | None = None
        self._live_processes: int | None = None
        self._handlers: dict[EventKind, Callable[[PoolEvent], None]] = {
            EventKind.JOB_CLAIMED: self._claimed,
            EventKind.JOB_STARTED: self._started,
            EventKind.REQUEST_ENDED: self._request_ended,
            EventKind.JOB_RATE_LIMITED: self._rate_limited,
            EventKind.JOB_RETRIED: self._retried,
            EventKind.JOB_SUCCEEDED: self._succeeded,
            EventKind.JOB_FAILED: self._failed,
            EventKind.JOB_SKIPPED: self._skipped,
            EventKind.BUDGET_SNAPSHOT: self._budget,
        }
        self._budget_use = math.nan  # the busiest share of a rate limit, from the governor
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # --- the event subscriber (hot path) ------------------------------------------------------

    @property
    def kinds(self) -> tuple[EventKind, ...]:
        """The events `on_event` counts: subscribe it to these only."""
        return tuple(self._handlers)

    def on_event(self, event: PoolEvent) -> None:
        """Count what a pool event says (subscribe this to the pool's bus, for `kinds`)."""
        handler = self._handlers.get(event.kind)
        if handler is not None:
            handler(event)

    def _budget(self, event: PoolEvent) -> None:
        shares = [
            pct / 100
            for b in event.budgets or ()
            for pct in (b["rpm_use_pct"], b["tpm_use_pct"])
            if pct is not None
        ]
        self._budget_use = max(shares, default=math.nan)

    def _claimed(self, event: PoolEvent) -> None:
        if event.raw is not None:
            self._claimed_at[event.raw] = monotonic()

    def _started(self, event: PoolEvent) -> None:
        claimed = self._claimed_at.pop(event.raw, None) if event.raw is not None else None
        if claimed is not None:
            self.claim_wait.observe(monotonic() - claimed)

    def _request_ended(self, event: PoolEvent) -> None:
        prompt = event.prompt_tokens or 0
        completion = event.completion_tokens or 0
        if event.reason is None:
            self.requests_ok += 1
        else:
            self.requests_failed += 1
            self.wasted_tokens += prompt + completion
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        if prompt or completion:  # priced at scrape time, per model
            job = event.job
            model = (job.model if job is not None else None) or self._default_model
            tokens = self._tokens_by_model.get(model)
            if tokens is None:
                tokens = self._tokens_by_model[model] = [0, 0]
            tokens[0] += prompt
            tokens[1] += completion
        if event.latency_s is not None:
            self.api_latency.observe(event.latency_s)

    def _rate_limited(self, _: PoolEvent) -> None:
        self.rate_limited += 1

    def _retried(self, _: PoolEvent) -> None:
        self.retried += 1

    def _succeeded(self, _: PoolEvent) -> None:
        self.succeeded += 1

    def _skipped(self, _: PoolEvent) -> None:
        self.skipped += 1

    def _failed(self, event: PoolEvent) -> None:
        reason = event.error_type or "exhausted"
        self.failed[reason] = self.failed.get(reason, 0) + 1

    # --- scrape time ----------------------------------------------------------------------------

    def cost_usd(self) -> float:
        """Estimated USD of every API request so far (the price table applied per model)."""
        return sum(self._price(m, p, c) for m, (p, c) in self._tokens_by_model.items())

    async def refresh(self) -> None:
        """Read the gauges that live in Redis, giving up after `_REDIS_TIMEOUT_S`."""
        store = self._pool.store
        try:
            async with asyncio.timeout(_REDIS_TIMEOUT_S):
                depth = await store.queue_depth()
                live = len(await store.live_pools())
        except Exception:  # down, slow, or refusing: the gauges say so, the scrape goes on
            self._redis_up, self._queue_depth, self._live_processes = False, None, None
            return
        self._redis_up, self._queue_depth, self._live_processes = True, depth, live

    def collect(self) -> Iterator[Metric]:
        """Every metric family, from the counts so far (called by the registry)."""
        yield _counter("ebook_pool_pages_succeeded", "Pages stored.", self.succeeded)
        failed = CounterMetricFamily(
            "ebook_pool_pages_failed",
            "Pages moved to the failed list, by errorType.",
            labels=["reason"],
        )
        for reason, n in self.failed.items():
            failed.add_metric([reason], n)
        yield failed
        yield _counter("ebook_pool_pages_retried", "Attempts followed by a retry.", self.retried)
        yield _counter(
            "ebook_pool_pages_skipped",
            "Jobs acknowledged without a request (page stored, or a copy in flight).",
            self.skipped,
        )
        attempts = CounterMetricFamily(
            "ebook_pool_attempts",
            "API requests made, by outcome (ok: a page came back).",
            labels=["outcome"],
        )
        attempts.add_metric(["ok"], self.requests_ok)
        attempts.add_metric(["error"], self.requests_failed)
        yield attempts
        yield _counter(
            "ebook_pool_rate_limited",
            "API requests refused for rate (HTTP 429).",
            self.rate_limited,
        )
        yield _counter(
            "ebook_pool_prompt_tokens", "Prompt tokens the API reported.", self.prompt_tokens
        )
        yield _counter(
            "ebook_pool_completion_tokens",
            "Completion tokens the API reported.",
            self.completion_tokens,
        )
        yield _counter(
            "ebook_pool_wasted_tokens",
            "Prompt and completion tokens of API requests that failed (no page from them).",
            self.wasted_tokens,
        )
        yield _counter(
            "ebook_pool_cost_usd", "Estimated cost of the API requests, USD.", self.cost_usd()
        )
        yield self.api_latency.family(
            "ebook_pool_api_latency_seconds", "Wall time of one API request."
        )
        yield self.claim_wait.family(
            "ebook_pool_claim_to_start_seconds",
            "From a job's claim to a worker starting it (the enqueue time is not known).",
        )
        pool = self._pool
        yield _gauge("ebook_pool_in_flight", "Jobs this process's workers hold.", pool.stats.active)
        yield _gauge(
            "ebook_pool_concurrency_limit",
            "Pages this process writes at once at most.",
            self._concurrency_limit,
        )
        yield _gauge(
            "ebook_pool_budget_use_ratio",
            "Busiest share of any rate limit (RPM or TPM) in use over the last minute, 0..1; "
            "NaN until the governor has measured one.",
            self._budget_use,
        )
        yield _gauge("ebook_pool_paused", "1 while this process is paused.", int(pool.paused))
        yield _gauge("ebook_pool_redis_up", "1 if Redis answered this scrape.", int(self._redis_up))
        if self._queue_depth is not None:
            yield _gauge("ebook_pool_queue_depth", "Jobs waiting in the queue.", self._queue_depth)
        if self._live_processes is not None:
            yield _gauge(
                "ebook_pool_live_processes",
                "Pool processes with a live heartbeat.",
                self._live_processes,
            )


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def add_metrics_route(app: web.Application, metrics: PoolMetrics) -> None:
    """Serve `metrics` at GET /metrics on `app`."""

    async def scrape(_: web.Request) -> web.Response:
        await metrics.refresh()
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", scrape)
