"""The pool at the API's rate limit: a real Pool, the real generator over HTTP, the simulator.

A refusal for rate is not a failed attempt, whether the governor paces the requests or not; the
budget is shared by every process and counted at the server; a page that can never fit the
budget fails at once; one that waits too long goes back to the queue.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator

import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from generator import GeneratorSettings, OpenAIPageGenerator
from generator.simulator import Simulator, SimulatorConfig
from pool import Pool, PoolSettings
from pool.events import EventKind, PoolEvent, PoolEvents
from pool.keys import Keys
from pool.ratelimit import read_budgets, tokens
from pool_app.wiring import build_governor
from tests.fakes import failed, fast_settings, job, pages, push, running, status, wait_until
from tests.redis_server import RedisServer

KEYS = Keys()


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(latency_s=0.05, seed=3)) as simulator:
        yield simulator


def generator_for(sim: Simulator) -> OpenAIPageGenerator:
    settings = GeneratorSettings(openai_model="gpt-4o-mini", probe_timeout=2_000)
    return OpenAIPageGenerator.from_settings(settings, api_key="sk-test", base_url=sim.base_url)


def pool_for(
    redis: Redis, sim: Simulator, settings: PoolSettings, events: PoolEvents | None = None
) -> Pool:
    generator = generator_for(sim)
    return Pool(
        redis=redis,
        generator=generator,
        settings=settings,
        events=events,
        governor=build_governor(settings, generator, redis),
    )


async def _done(redis: Redis, ebook: str, total: int) -> bool:
    st = await status(redis, ebook)
    return int(st.get("done", 0)) + int(st.get("failed", 0)) >= total


@pytest.mark.parametrize("governor", [True, False], ids=["governor", "no-governor"])
async def test_a_storm_of_429s_spends_no_attempt_and_fails_no_page(
    redis: Redis, sim: Simulator, governor: bool
) -> None:
    """3 requests/s, 8 workers, one attempt each: every page lands, on its first attempt."""
    # Refused requests count against the limit only with the governor: without it, 8 workers
    # that all come back at retry-after keep the server in debt (what scenario 7 shows).
    sim.update(rpm=3, rate_window_s=1.0, count_refused=governor)
    settings = fast_settings(
        concurrent_workers=8,
        max_retries=0,  # a single spent attempt would fail its page
        rate_limit_governor=governor,
        openai_rpm_limit=6_000,  # far above the server's: the governor lets the storm through
        openai_tpm_limit=10_000_000,
    )
    pool = pool_for(redis, sim, settings)
    total = 12
    await push(redis, *[job("st", i, total) for i in range(total)])
    async with running(pool):
        await wait_until(lambda: _done(redis, "st", total), timeout_s=40, what="ebook ended")
    assert sim.stats["by_status"].get("429", 0) > 0
    assert await failed(redis) == []
    assert {p["attempts"] for p in (await pages(redis, "st")).values()} == {1}
    assert (await status(redis, "st"))["state"] == "done"


async def test_a_page_larger_than_the_tpm_fails_at_once_with_the_reason(
    redis: Redis, sim: Simulator
) -> None:
    """A page needing more tokens than OPENAI_TPM_LIMIT is failed before any request is sent."""
    settings = fast_settings(openai_rpm_limit=600, openai_tpm_limit=500)
    pool = pool_for(redis, sim, settings)
    await push(redis, job("big", 0, 1))
    async with running(pool):
        await wait_until(lambda: _done(redis, "big", 1), what="page failed")
    [entry] = await failed(redis)
    assert entry["errorType"] == "fatal" and entry["attempts"] == 1
    assert "request too large for the rate limit" in entry["error"]
    assert "OPENAI_TPM_LIMIT" in entry["error"]
    assert sim.stats["requests"] == 0


async def test_a_page_that_waits_too_long_goes_back_with_its_attempt_refunded(
    redis: Redis, sim: Simulator
) -> None:
    """Refused past RATE_LIMIT_MAX_WAIT: back on the queue with its attempt refunded, so the
    next claim is attempt 1 again; nothing failed."""
    events = PoolEvents()
    seen: list[PoolEvent] = []
    events.subscribe(seen.append, [EventKind.JOB_CLAIMED, EventKind.JOB_RATE_LIMITED])
    settings = fast_settings(rate_limit_max_wait=1_000, openai_rpm_limit=6_000, max_retries=0)
    pool = pool_for(redis, sim, settings, events)
    payload = job("wt", 0, 1, instructions="[sim:status=429:rate_limit_exceeded]")
    await push(redis, payload)
    async with running(pool):
        await wait_until(lambda: _claimed_again(seen), timeout_s=15, what="a second claim")
    claims = [e for e in seen if e.kind is EventKind.JOB_CLAIMED]
    refusals = [e for e in seen if e.kind is EventKind.JOB_RATE_LIMITED]
    assert [e.attempt for e in claims[:2]] == [1, 1]
    assert {e.attempt for e in refusals} == {1}
    assert await failed(redis) == []
    assert int(await redis.hget(KEYS.attempts, payload) or 0) == 0  # given back at shutdown


async def _claimed_again(seen: list[PoolEvent]) -> bool:
    kinds = [e.kind for e in seen]
    claims = [i for i, k in enumerate(kinds) if k is EventKind.JOB_CLAIMED]
    return len(claims) >= 2 and EventKind.JOB_RATE_LIMITED in kinds[claims[1] :]


async def test_the_cool_down_of_one_process_holds_back_the_other(
    redis: Redis, redis_server: RedisServer, sim: Simulator
) -> None:
    """A refusal in pool A: pool B (its own Redis client and governor) sends nothing until the
    shared cool-down ends."""
    sim.update(rpm=60, rate_bucket_s=1.0, count_refused=True, retry_hint="ms")
    settings = fast_settings(concurrent_workers=2, openai_rpm_limit=6_000)
    starts: dict[str, list[float]] = {"a": [], "b": []}
    cooldowns: list[tuple[float, float]] = []  # (refused at, cool-down ends)

    def recorder(name: str) -> PoolEvents:
        events = PoolEvents()

        def on_event(event: PoolEvent) -> None:
            now = time.monotonic()
            if event.kind is EventKind.REQUEST_ENDED:
                starts[name].append(now - (event.latency_s or 0.0))
            elif event.wait_s:
                cooldowns.append((now, now + event.wait_s))

        events.subscribe(on_event, [EventKind.REQUEST_ENDED, EventKind.JOB_RATE_LIMITED])
        return events

    other = Redis.from_url(redis_server.url)
    try:
        pool_a = pool_for(redis, sim, settings, recorder("a"))
        pool_b = pool_for(other, sim, settings, recorder("b"))
        total = 8
        await push(redis, *[job("cd", i, total) for i in range(total)])
        async with running(pool_a), running(pool_b):
            await wait_until(lambda: _done(redis, "cd", total), timeout_s=40, what="ebook done")
    finally:
        await other.aclose()
    assert cooldowns, "the server refused nothing: the test did not test anything"
    assert await failed(redis) == []
    margin = 0.05  # a request whose last check came just before the refusal was written
    for refused_at, ends in cooldowns:
        inside = [t for t in starts["a"] + starts["b"] if refused_at + margin < t < ends - margin]
        assert inside == [], f"requests sent during a cool-down of {ends - refused_at:.2f}s"
    [budget] = await read_budgets(redis, KEYS)
    assert budget["refusals_total"] == len(cooldowns)


async def test_two_pool_processes_share_one_learned_budget_counted_at_the_server(
    redis: Redis, redis_server: RedisServer
) -> None:
    """Two `ebook-pool run` processes, 10 workers each: limits learned, none refused, paced."""
    config = SimulatorConfig(
        rpm=600, tpm=5_000_000, rate_bucket_s=2.0, count_refused=True, latency_s=0.2
    )
    total = 40
    async with Simulator(config) as server:
        env = {
            **os.environ,
            "REDIS_URL": redis_server.url,
            "KEY_PREFIX": "shared",
            "CONCURRENT_WORKERS": "10",
            "PROCESSING_DELAY": "0",
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "sk-two-pools",
            "STATS_INTERVAL": "0",
            "HEARTBEAT_INTERVAL": "500",
            "HEARTBEAT_TIMEOUT": "10000",
        }
        for name in ("OPENAI_RPM_LIMIT", "OPENAI_TPM_LIMIT", "HTTP_PORT", "PORT", "PROCESSES"):
            env.pop(name, None)
        keys = Keys("shared")
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "pool",
                "run",
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        try:
            await wait_until(
                lambda: _live(redis, keys, 2), timeout_s=30, what="two live pool processes"
            )
            started = time.monotonic()
            await push(redis, *[job("two", i, total) for i in range(total)], keys=keys)
            await wait_until(
                lambda: _done_in(redis, keys, "two", total), timeout_s=60, what="ebook ended"
            )
            elapsed = time.monotonic() - started
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            outputs = [await asyncio.wait_for(p.communicate(), 30) for p in procs]
        stats = server.stats
    assert [p.returncode for p in procs] == [0, 0], [e.decode()[-2000:] for _, e in outputs]
    # Nothing refused (a page cut off at its max_tokens may be asked for once more).
    assert set(stats["by_status"]) == {"200"} and total <= stats["by_status"]["200"] <= total + 2
    # 40 requests at 10/s, less the 1 s burst the governor allows (10): at least 3 s.
    assert elapsed >= (total - 10) / 10 - 0.3
    [budget] = await read_budgets(redis, keys)
    assert (budget["rpm"], budget["rpm_source"]) == (600, "learned")
    assert (budget["tpm"], budget["tpm_source"]) == (5_000_000, "learned")
    st = await status(redis, "two", keys)
    assert st["state"] == "done"


async def _live(redis: Redis, keys: Keys, n: int) -> bool:
    return int(await redis.scard(keys.pools)) >= n


async def _done_in(redis: Redis, keys: Keys, ebook: str, total: int) -> bool:
    st = await status(redis, ebook, keys)
    return int(st.get("done", 0)) + int(st.get("failed", 0)) >= total


async def test_stats_line_and_report_show_the_budget(
    redis: Redis, redis_server: RedisServer, sim: Simulator, log_lines: list[str]
) -> None:
    """`[Stats]` separates OK and failed pages/min and shows budget use; `stats` the limits."""
    sim.update(rpm=600, tpm=1_000_000)
    pool = pool_for(redis, sim, fast_settings())
    await push(redis, *[job("sl", i, 3) for i in range(3)])
    async with running(pool):
        await wait_until(lambda: _done(redis, "sl", 3), what="ebook done")
        await wait_until(lambda: _has_governor(redis, pool.id), what="heartbeat with governor")
        text = await _cli(redis_server.url, "stats")
        data = json.loads(await _cli(redis_server.url, "stats", "--json"))
    [line] = [x for x in log_lines if "Stopped. [Stats]" in x]
    assert "| Success: 3 | Failed: 0 |" in line and "| OK/min: " in line
    assert "| Failed/min: 0.0 | Budget: gpt-4o-mini " in line and "% RPM" in line
    assert "/600 RPM (" in text and "learned" in text and "refused 0 in the last minute" in text
    assert f"{pool.id} gpt-4o-mini: concurrency " in text
    [budget] = data["budgets"]
    assert budget["rpm"] == 600 and budget["rpmSource"] == "learned"
    assert budget["requestsLastMin"] >= 3 and "rpmUsePct" in budget
    [local] = data["pools"][0]["governor"]["budgets"]
    assert local["ceiling"] == 4 and 1 <= local["concurrency"] <= 4 and "latencySeconds" in local


async def _cli(redis_url: str, *args: str) -> str:
    """`ebook-pool ARGS` in its own process (it configures logging its own way)."""
    env = {**os.environ, "REDIS_URL": redis_url, "KEY_PREFIX": KEYS.prefix}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pool", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    return out.decode()


async def _has_governor(redis: Redis, pool_id: str) -> bool:
    raw = await redis.get(KEYS.heartbeat(pool_id))
    return raw is not None and bool(json.loads(raw).get("governor", {}).get("budgets"))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPENAI_RPM_LIMIT", "-5"),
        ("OPENAI_TPM_LIMIT", "0"),
        ("RATE_LIMIT_MAX_WAIT", "-1"),
        ("RATE_LIMIT_GOVERNOR", "maybe"),
    ],
)
def test_a_bad_rate_limit_value_stops_run_with_one_line_and_exit_2(name: str, value: str) -> None:
    """`ebook-pool run` with a bad limit: one line on stderr naming the variable, exit 2."""
    env = {
        **os.environ,
        name: value,
        "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
        "REDIS_URL": "redis://127.0.0.1:1/0",  # never a Redis the test did not start
    }
    done = subprocess.run(
        [sys.executable, "-m", "pool", "run"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"ebook-pool: error: {name}: ")


async def test_a_process_holds_few_more_jobs_than_it_may_send(redis: Redis, sim: Simulator) -> None:
    """50 workers at 60 RPM: the governor's limit bounds the jobs claimed, not CONCURRENT_WORKERS."""
    sim.update(rpm=60, tpm=1_000_000)
    pool = pool_for(redis, sim, fast_settings(concurrent_workers=50, rate_limit_burst=0))
    total = 10
    held: list[int] = []

    async def done_while_sampling() -> bool:
        # A page whose write to Redis is still in flight stays in the processing list until
        # the write lands: it was claimed and answered, not waiting to be sent.
        writing = len(pool._outcomes.writes)
        held.append(int(await redis.llen(KEYS.processing(pool.id))) - writing)
        return await _done(redis, "few", total)

    await push(redis, *[job("few", i, total) for i in range(total)])
    async with running(pool):
        await wait_until(done_while_sampling, timeout_s=30, what="ebook done")
        limit = pool.governor.concurrency("gpt-4o-mini").limit if pool.governor else 0
    # Little's law before the first answer (5 s latency): ceil(1/s x 5 s x 1.25) + 1 = 8.
    assert 1 <= limit <= 8
    assert max(held) <= 8 + 1
    assert sim.stats["by_status"] == {"200": total}


async def test_the_vocabularies_load_before_the_pool_says_it_is_alive(
    redis: Redis, redis_server: RedisServer, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The governor counts prompt tokens; the first count loads the BPE vocabularies (~0.4 s,
    seconds on a busy CPU). A pool loads them at start-up, off the event loop and before it
    registers or claims: loaded at the first page, they stalled every worker and the heartbeat,
    and a peer took the live process for dead and requeued the jobs it was working on."""
    pool = pool_for(redis, sim, fast_settings())
    loop_thread = threading.get_ident()
    seen: list[tuple[bool, bool, int]] = []

    def preload() -> None:
        with SyncRedis.from_url(redis_server.url) as r:
            registered = bool(r.sismember(KEYS.pools, pool.id))
            seen.append((threading.get_ident() == loop_thread, registered, int(r.llen(KEYS.queue))))
        tokens.preload()

    monkeypatch.setattr("pool.worker.preload_vocabularies", preload)
    await push(redis, job("voc", 0, 1))
    async with running(pool):
        await wait_until(lambda: _done(redis, "voc", 1), what="the page")
    # Once, in a worker thread, before the pool registered or claimed its job.
    assert seen == [(False, False, 1)]
    assert tokens._encoding.cache_info().currsize == 2  # both vocabularies, before any count
    assert (await status(redis, "voc"))["state"] == "done"
