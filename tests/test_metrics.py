"""Prometheus /metrics: scraped during a real run, its counters match Redis and the LLM server."""

from __future__ import annotations

import math
import time
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from generator import GeneratorSettings
from generator.simulator import Simulator, SimulatorConfig
from pool import Pool
from pool.events import EventKind
from pool.pricing import PriceTable
from pool_app.health import health_app, serving
from pool_app.metrics import FAILURE_REASONS, PoolMetrics
from pool_app.wiring import build_generator, build_metrics
from tests.fakes import (
    FakeGenerator,
    failed,
    fast_settings,
    job,
    pages,
    push,
    running,
    status,
    wait_until,
)
from tests.redis_server import free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

PAGES = 12


async def _scrape(port: int) -> Samples:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def test_counters_equal_what_redis_and_the_llm_server_counted(redis: Redis) -> None:
    """A run with 429s, 5xx, cut-off pages, a fatal, an exhausted and an invalid job: every
    counter scraped at the end equals Redis's pages and failed list and the simulator's stats."""
    config = SimulatorConfig(
        latency_s=0.02, rpm=10, rate_window_s=1, retry_hint="ms", error_rate=0.15,
        truncate_rate=0.1, seed=11,
    )  # fmt: skip
    async with Simulator(config) as sim:
        settings = fast_settings(max_retries=12)
        generator = build_generator(
            GeneratorSettings(openai_model="gpt-4o-mini"),
            workers=settings.concurrent_workers,
            base_url=sim.base_url,
            api_key="sk-metrics-test",
        )
        pool = Pool(redis=redis, generator=generator, settings=settings)
        metrics = build_metrics(pool, settings, default_model="gpt-4o-mini")
        app = health_app(pool, redis, metrics=metrics)
        async with running(pool), serving(app, host="127.0.0.1", port=0) as port:
            briefs = {5: "[sim:context_length]", 9: "[sim:status=500]"}
            payloads = [
                job("m", i, PAGES, **({"instructions": briefs[i]} if i in briefs else {}))
                for i in range(PAGES)
            ]
            await push(redis, *payloads, b"{not json")

            async def some_stored() -> bool:
                return _value(await _scrape(port), "ebook_pool_pages_succeeded_total") > 0

            await wait_until(some_stored, timeout_s=30, what="a page counted mid-run")
            during = await _scrape(port)

            async def finished() -> bool:
                state = (await status(redis, "m")).get("state")
                invalid = any(d["errorType"] == "invalid" for d in await failed(redis))
                return state in {"done", "failed", "partial"} and invalid

            await wait_until(finished, timeout_s=60, what="the ebook to end")
            end = await _scrape(port)
        stats = sim.stats

    stored = await pages(redis, "m")
    dead = await failed(redis)
    by_type = {t: sum(1 for d in dead if d["errorType"] == t) for t in ("invalid", "fatal")}
    assert by_type == {"invalid": 1, "fatal": 1}
    assert {d["errorType"] for d in dead} == {"invalid", "fatal", "exhausted"}

    done = int((await status(redis, "m"))["done"])
    assert _value(end, "ebook_pool_pages_succeeded_total") == len(stored) == done > 0
    for reason in ("invalid", "fatal", "exhausted", "poison"):
        expected = sum(1 for d in dead if d["errorType"] == reason)
        assert _value(end, "ebook_pool_pages_failed_total", reason=reason) == expected, reason
    assert _value(end, "ebook_pool_pages_skipped_total") == 0

    ok = _value(end, "ebook_pool_attempts_total", outcome="ok")
    errors = _value(end, "ebook_pool_attempts_total", outcome="error")
    assert ok == stats["by_kind"]["ok"]
    assert ok + errors == stats["requests"]
    assert stats["by_status"].get("429", 0) > 0 and stats["by_kind"].get("truncated", 0) > 0
    # Refusals for rate are the 429s and the 503s (overloaded): resent, not retried.
    refusals = stats["by_status"]["429"] + stats["by_status"].get("503", 0)
    assert _value(end, "ebook_pool_rate_limited_total") == refusals
    # Each job's requests: its first attempt, its retries and its resends after a refusal (the
    # invalid one made none).
    jobs_with_requests = len(stored) + len(dead) - 1
    retried = _value(end, "ebook_pool_pages_retried_total")
    assert retried == ok + errors - refusals - jobs_with_requests

    prompt = _value(end, "ebook_pool_prompt_tokens_total")
    completion = _value(end, "ebook_pool_completion_tokens_total")
    assert (prompt, completion) == (stats["prompt_tokens"], stats["completion_tokens"])
    kept = sum(p["promptTokens"] + p["completionTokens"] for p in stored.values())
    assert _value(end, "ebook_pool_wasted_tokens_total") == prompt + completion - kept > 0
    assert _value(end, "ebook_pool_cost_usd_total") == pytest.approx(
        PriceTable().cost_usd("gpt-4o-mini", int(prompt), int(completion))
    )
    assert _value(end, "ebook_pool_api_latency_seconds_count") == stats["requests"]
    assert _value(end, "ebook_pool_api_latency_seconds_bucket", le="+Inf") == stats["requests"]
    assert _value(end, "ebook_pool_claim_to_start_seconds_count") >= PAGES + 1

    assert _value(end, "ebook_pool_queue_depth") == 0
    assert _value(end, "ebook_pool_redis_up") == 1
    assert _value(end, "ebook_pool_live_processes") == 1
    assert _value(end, "ebook_pool_concurrency_limit") == settings.concurrent_workers
    assert _value(end, "ebook_pool_paused") == 0
    assert math.isnan(_value(end, "ebook_pool_budget_use_ratio"))
    for key, value in during.items():  # counters only grow
        if key[0].endswith("_total"):
            assert end[key] >= value, key


async def test_a_scrape_with_redis_down_answers_fast_with_redis_up_0() -> None:
    """Redis unreachable: the scrape answers within about a second, `ebook_pool_redis_up` is 0
    and the gauges that need Redis are left out rather than made up."""
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=5)
    pool = Pool(redis=dead, generator=FakeGenerator(), settings=fast_settings())
    metrics = build_metrics(pool, fast_settings(), default_model="gpt-4o-mini")
    async with serving(health_app(pool, dead, metrics=metrics), host="127.0.0.1", port=0) as port:
        started = time.monotonic()
        samples = await _scrape(port)
        assert time.monotonic() - started < 2.0
    await dead.aclose()
    assert _value(samples, "ebook_pool_redis_up") == 0
    names = {name for name, _ in samples}
    assert "ebook_pool_queue_depth" not in names and "ebook_pool_live_processes" not in names
    assert _value(samples, "ebook_pool_pages_succeeded_total") == 0


async def test_each_pool_has_its_own_registry(redis: Redis) -> None:
    """Two pools in one process: each one's metrics count only its own pages."""
    settings = fast_settings()
    first = Pool(redis=redis, generator=FakeGenerator(), settings=settings, pool_id="a")
    second = Pool(redis=redis, generator=FakeGenerator(), settings=settings, pool_id="b")
    first_metrics = build_metrics(first, settings, default_model="gpt-4o-mini")
    second_metrics = build_metrics(second, settings, default_model="gpt-4o-mini")
    async with running(first):
        await push(redis, job("one", 0, 1))

        async def stored() -> bool:
            return (await status(redis, "one")).get("state") == "done"

        await wait_until(stored, what="the page")
    await wait_until(lambda: _counted(first_metrics), what="the success event")
    assert _sample(first_metrics, "ebook_pool_pages_succeeded_total") == 1
    assert _sample(second_metrics, "ebook_pool_pages_succeeded_total") == 0
    assert first_metrics.registry is not second_metrics.registry


async def _counted(metrics: PoolMetrics) -> bool:
    return metrics.succeeded == 1


def _sample(metrics: PoolMetrics, name: str) -> Any:
    return metrics.registry.get_sample_value(name)


async def test_a_copy_acknowledged_at_claim_counts_as_skipped(redis: Redis) -> None:
    """A job pushed again after its page is stored: `ebook_pool_pages_skipped_total` counts
    it (JOB_SKIPPED), and no request is made for it."""
    gen = FakeGenerator()
    pool = Pool(redis=redis, generator=gen, settings=fast_settings())
    metrics = build_metrics(pool, fast_settings(), default_model="gpt-4o-mini")
    async with running(pool):
        await push(redis, job("skip", 0, 1))
        await wait_until(lambda: _counted(metrics), what="the page")
        await push(redis, job("skip", 0, 1))

        async def skipped() -> bool:
            return metrics.skipped == 1

        await wait_until(skipped, what="the copy skipped")
    assert _sample(metrics, "ebook_pool_pages_skipped_total") == 1
    assert len(gen.calls) == 1 and metrics.succeeded == 1


def test_cost_prices_known_models_and_dated_snapshots_and_nothing_else() -> None:
    """The metrics price with the ledger's table: gpt-4o-mini and its dated snapshots at
    their price, gpt-4o at its own, unknown models free."""
    cost_usd = PriceTable().cost_usd
    assert cost_usd("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd("gpt-4o-mini-2024-07-18", 2_000_000, 0) == pytest.approx(0.30)
    assert cost_usd("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(12.5)
    assert cost_usd("sim-writer", 10**9, 10**9) == 0


async def test_metric_names_follow_prometheus_conventions(redis: Redis) -> None:
    """Every family is prefixed, counters end in _total, and no label can carry an id."""
    pool = Pool(redis=redis, generator=FakeGenerator(), settings=fast_settings())
    metrics = PoolMetrics(pool, concurrency_limit=4, default_model="gpt-4o-mini")
    await metrics.refresh()
    names = set()
    for family in metrics.collect():
        assert family.name.startswith("ebook_pool_"), family.name
        names.add(family.name)
        for sample in family.samples:
            assert set(sample.labels) <= {"reason", "outcome", "le"}, sample
            if family.type == "counter":
                assert sample.name.endswith("_total"), sample.name
    assert {"ebook_pool_queue_depth", "ebook_pool_live_processes"} <= names
    assert tuple(metrics.failed) == FAILURE_REASONS


def test_budget_use_follows_the_governors_snapshots(redis: Redis) -> None:
    """ebook_pool_budget_use_ratio: NaN before a budget is measured, then the busiest share."""
    settings = fast_settings()
    pool = Pool(redis=redis, generator=FakeGenerator(), settings=settings, pool_id="g")
    metrics = build_metrics(pool, settings, default_model="gpt-4o-mini")
    assert math.isnan(_sample(metrics, "ebook_pool_budget_use_ratio"))
    budgets: Any = [
        {"rpm_use_pct": 98.7, "tpm_use_pct": 41.0},
        {"rpm_use_pct": None, "tpm_use_pct": 12.0},
    ]
    pool.events.emit(EventKind.BUDGET_SNAPSHOT, budgets=budgets)
    assert _sample(metrics, "ebook_pool_budget_use_ratio") == pytest.approx(0.987)
