"""Issue 11: a page is paid for once, its cost is on the ebook, and finished ebooks expire.

Idempotent jobs (copies pushed together or later), attempts that died with a process, the
ledger against what the API server counted, the result cache, retention.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from redis.asyncio import Redis

from generator import GeneratorSettings, OpenAIPageGenerator
from generator.simulator import Simulator, SimulatorConfig
from pool import JobFatalError, PageJob, Pool, RetryableError
from pool.cache import RedisPageCache
from pool.events import EventKind, PoolEvent, PoolEvents
from pool.keys import Keys
from pool.pricing import PriceTable, load_price_table
from pool.queue import DEATHS_KEPT_MS
from pool.store import Store, StoreLimits
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

KEYS = Keys()


async def _status_has(redis: Redis, ebook: str, **fields: str) -> bool:
    st = await status(redis, ebook)
    return all(st.get(k) == v for k, v in fields.items())


async def test_copies_pushed_together_are_generated_once(redis: Redis) -> None:
    """Every page pushed twice at once (a retried POST): one request per page, copies skipped."""
    gen = FakeGenerator(delay_s=0.2)
    events = PoolEvents()
    skipped: list[PoolEvent] = []
    events.subscribe(skipped.append, [EventKind.JOB_SKIPPED])
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(), events=events)
    payloads = [job("dup", i, 3) for i in range(3)]
    await push(redis, *payloads, *payloads)
    async with running(pool):
        await wait_until(lambda: _status_has(redis, "dup", state="done", skipped="3"))
    assert sorted(j for j, _ in gen.calls) == ["dup:0", "dup:1", "dup:2"]
    assert sorted(e.job.page_index for e in skipped if e.job) == [0, 1, 2]
    assert pool.ledger_stats.skipped == 3
    assert await redis.llen(KEYS.queue) == 0
    assert await redis.keys(KEYS.inflight("*")) == []  # every marker released


async def test_a_copy_pushed_after_the_page_is_stored_makes_no_request(redis: Redis) -> None:
    """A finished page pushed again is acknowledged; regenerate or another brief writes it."""
    gen = FakeGenerator()
    pool = Pool(redis=redis, generator=gen, settings=fast_settings(concurrent_workers=1))
    async with running(pool):
        await push(redis, job("again", 0, 1))
        await wait_until(lambda: _status_has(redis, "again", state="done"))
        await push(redis, job("again", 0, 1))
        await wait_until(lambda: _status_has(redis, "again", skipped="1"))
        assert len(gen.calls) == 1
        await push(redis, job("again", 0, 1, regenerate=True))
        await wait_until(lambda: _calls(gen, 2))
        await push(redis, job("again", 0, 1, topic="another brief"))
        await wait_until(lambda: _calls(gen, 3))
        await push(redis, job("again", 0, 1, jobId="again-v2"))
        await wait_until(lambda: _calls(gen, 4))
        await push(redis, job("again", 0, 1, jobId="again-v2", metadata={"n": 2}))
        await wait_until(lambda: _status_has(redis, "again", skipped="2"))
    assert len(gen.calls) == 4
    st = await status(redis, "again")
    assert st["done"] == "1" and st["requests"] == "4"
    assert (await pages(redis, "again"))[0]["jobId"] == "again-v2"


async def _calls(gen: FakeGenerator, n: int) -> bool:
    return len(gen.calls) >= n


async def test_a_reaped_job_keeps_the_attempts_its_answers_did_not_spend(redis: Redis) -> None:
    """Three attempts spent on 429s, then the process dies: the job still gets its fourth;
    the deaths hash expires."""
    store = Store(redis, KEYS, limits=StoreLimits(max_attempts=4))
    epoch = await store.init_epoch(b"e")
    payload = job("reap", 0, 1)
    await push(redis, payload)
    [(raw, attempt, _)], _ = await store.claim("dead", 1, epoch=epoch)
    assert attempt == 1
    await redis.hset(KEYS.attempts, raw, 3)  # two retries counted since, all rate limited
    await redis.sadd(KEYS.pools, "dead")  # registered, but its heartbeat is gone
    assert await store.reap() == {"dead": 1}
    assert await redis.hget(KEYS.attempts, raw) == b"2"  # the attempt it died in is refunded
    assert await redis.hget(KEYS.deaths, raw) == b"1"
    gen = FakeGenerator()
    async with running(Pool(redis=redis, generator=gen, settings=fast_settings())):
        await wait_until(lambda: _status_has(redis, "reap", state="done"))
    assert (await pages(redis, "reap"))[0]["attempts"] == 3
    # Not cleared with the page (no command on the hot path): the hash expires instead.
    assert 0 < await redis.pttl(KEYS.deaths) <= DEATHS_KEPT_MS


async def test_a_job_that_keeps_killing_its_process_still_runs_out(redis: Redis) -> None:
    """Four deaths use up four attempts: the job fails as exhausted instead of looping."""
    store = Store(redis, KEYS, limits=StoreLimits(max_attempts=4))
    epoch = await store.init_epoch(b"e")
    await push(redis, job("killer", 0, 1))
    for death in range(4):
        got, _ = await store.claim(f"dead-{death}", 1, epoch=epoch)
        assert got[0][1] == 1  # each death refunded its attempt until the last
        await redis.sadd(KEYS.pools, f"dead-{death}")
        assert await store.reap() == {f"dead-{death}": 1}
    gen = FakeGenerator()
    async with running(Pool(redis=redis, generator=gen, settings=fast_settings())):
        await wait_until(lambda: _status_has(redis, "killer", state="failed"))
    [entry] = await failed(redis)
    assert entry["errorType"] == "exhausted" and gen.calls == []


async def test_the_ledger_sums_to_what_the_api_server_counted(redis: Redis) -> None:
    """Requests and tokens, failed attempts included, equal the simulator's own counts."""
    config = SimulatorConfig(latency_s=0.01, seed=3, truncate_rate=0.2, empty_rate=0.1)
    async with Simulator(config) as sim:
        settings = GeneratorSettings(openai_model="gpt-4o-mini")
        gen = OpenAIPageGenerator.from_settings(settings, api_key="sk-t", base_url=sim.base_url)
        pricing = PriceTable(default_model="gpt-4o-mini")
        pool = Pool(
            redis=redis,
            generator=gen,
            settings=fast_settings(max_retries=10),
            pricing=pricing,
        )
        total = 20
        await push(redis, *[job("led", i, total, pageTitle=f"Part {i}") for i in range(total)])
        async with running(pool):
            await wait_until(lambda: _status_has(redis, "led", state="done"), timeout_s=30)
        served = sim.stats
    st = await status(redis, "led")
    got = await pages(redis, "led")
    assert int(st["requests"]) == served["requests"] > total  # some answers were cut off
    assert int(st["wastedTokens"]) > 0
    assert int(st["promptTokens"]) == sum(p["promptTokens"] for p in got.values())
    assert int(st["completionTokens"]) == sum(p["completionTokens"] for p in got.values())
    billed = int(st["promptTokens"]) + int(st["completionTokens"]) + int(st["wastedTokens"])
    assert billed == served["prompt_tokens"] + served["completion_tokens"]
    floor = pricing.cost_usd("gpt-4o-mini", int(st["promptTokens"]), int(st["completionTokens"]))
    assert float(st["costUsd"]) > floor > 0  # the wasted tokens cost too
    assert pool.ledger_stats.snapshot()["requests"] == served["requests"]


async def test_a_cache_hit_makes_no_request_and_no_paced_request(redis: Redis) -> None:
    """The same brief in a second ebook is answered from Redis: no call, no before_request."""
    gen = FakeGenerator()
    paced: list[str] = []

    async def before_request(j: PageJob, attempt: int) -> None:
        paced.append(j.id)

    def request_key(j: PageJob) -> str:
        return hashlib.sha256(f"{j.title}|{j.page_title}".encode()).hexdigest()

    cache = RedisPageCache(redis=redis, keys=KEYS, request_key=request_key, ttl_ms=60_000)
    pool = Pool(
        redis=redis, generator=gen, settings=fast_settings(), cache=cache,
        before_request=before_request,
    )  # fmt: skip
    brief = {"title": "Same book", "pageTitle": "Same page"}
    async with running(pool):
        await push(redis, job("c1", 0, 1, **brief))
        await wait_until(lambda: _status_has(redis, "c1", state="done"))
        await push(redis, job("c2", 0, 1, **brief))
        await wait_until(lambda: _status_has(redis, "c2", state="done"))
    assert [j for j, _ in gen.calls] == ["c1:0"] and paced == ["c1:0"]
    first, second = (await status(redis, "c1")), (await status(redis, "c2"))
    assert first["cacheMisses"] == "1" and "cacheHits" not in first
    assert second["cacheHits"] == "1" and second["tokensSaved"] == "12"
    assert "requests" not in second
    page = (await pages(redis, "c2"))[0]
    assert page["cacheHit"] is True and page["content"] == "# Page 1\n\nText of c1:0."
    assert await redis.pttl(KEYS.cache(request_key(PageJob.model_validate(brief | {
        "ebookId": "c2", "pageIndex": 0, "totalPages": 1})))) > 0  # fmt: skip


def test_the_generator_names_identical_requests_alike() -> None:
    """The cache key covers model, messages, limit and temperature, not the ids."""
    gen = OpenAIPageGenerator.from_settings(GeneratorSettings(), api_key="sk-t")
    a = PageJob(ebook_id="a", page_index=0, total_pages=2, title="T", page_title="P")
    b = PageJob(ebook_id="b", page_index=0, total_pages=2, title="T", page_title="P")
    warmer = PageJob(ebook_id="a", page_index=0, total_pages=2, title="T", temperature=1.5)
    assert gen.request_key(a) == gen.request_key(b) != gen.request_key(warmer)


async def test_finished_ebooks_expire_and_the_failed_list_is_bounded(redis: Redis) -> None:
    """No TTL while generating; RESULT_TTL on every key of a finished ebook; FAILED_LIST_MAX."""
    gen = FakeGenerator(
        delay_s=0.3, script={f"ttl:{i}": [JobFatalError("HTTP 400 nope")] for i in (1, 2, 3)}
    )
    settings = fast_settings(result_ttl=60_000, failed_list_max=2)
    async with running(Pool(redis=redis, generator=gen, settings=settings)):
        await push(redis, *[job("ttl", i, 5) for i in range(5)])
        await wait_until(lambda: _status_has(redis, "ttl", state="generating"))
        assert await redis.pttl(KEYS.status("ttl")) == -1
        await wait_until(lambda: _status_has(redis, "ttl", state="partial"))
    for key in KEYS.ebook_keys("ttl"):
        assert 0 < await redis.pttl(key) <= 60_000, key
    assert await redis.llen(KEYS.failed) == 2


async def test_retrying_a_failed_page_keeps_the_ebook_until_it_ends_again(redis: Redis) -> None:
    """A failed page retried makes the ebook pending: its keys lose their TTL."""
    gen = FakeGenerator(script={"rt:0": [JobFatalError("HTTP 400 nope")]})
    store = Store(redis, KEYS)
    async with running(Pool(redis=redis, generator=gen, settings=fast_settings(result_ttl=60_000))):
        await push(redis, job("rt", 0, 1))
        await wait_until(lambda: _status_has(redis, "rt", state="failed"))
        assert await redis.pttl(KEYS.status("rt")) > 0
        [entry] = await store.failed()
        assert await store.retry_failed(entry, now_ms=1)
        assert await redis.pttl(KEYS.status("rt")) == -1
        await wait_until(lambda: _status_has(redis, "rt", state="done"))
    assert await redis.pttl(KEYS.pages("rt")) > 0


def test_prices_match_dated_model_names_and_take_overrides(tmp_path: Path) -> None:
    """A dated model name gets its family's price; an env price replaces the table."""
    table = PriceTable()
    assert table.price_of("gpt-4o-mini-2024-07-18") == (0.15, 0.60)
    assert table.price_of("gpt-4o-2024-08-06") == (2.50, 10.00)
    assert table.cost_usd("gpt-4.1-nano", 1_000_000, 1_000_000) == 0.5
    assert table.price_of("llama-3-70b") == (0.0, 0.0)
    flat = load_price_table(input_per_1m=1.0, output_per_1m=2.0)
    assert flat.cost_usd("llama-3-70b", 1_000_000, 500_000) == 2.0
    table_file = tmp_path / "prices.toml"
    table_file.write_text("[llama-3-70b]\ninput = 0.5\noutput = 0.75\n", encoding="utf-8")
    assert load_price_table(file=str(table_file)).price_of("llama-3-70b") == (0.5, 0.75)


async def test_the_generator_reports_the_usage_of_a_cut_off_page() -> None:
    """A page cut off by `length` is a retryable error carrying the tokens it was billed."""
    async with Simulator(SimulatorConfig(truncate_rate=1.0, seed=1)) as sim:
        gen = OpenAIPageGenerator.from_settings(
            GeneratorSettings(), api_key="sk-t", base_url=sim.base_url
        )
        try:
            await gen.generate(PageJob(ebook_id="x", page_index=0, total_pages=1, title="T"),
                               timeout_s=5)  # fmt: skip
        except RetryableError as err:
            assert err.code == "length"
            assert err.prompt_tokens == sim.stats["prompt_tokens"] > 0
            assert err.completion_tokens == sim.stats["completion_tokens"] > 0
        else:
            raise AssertionError("a cut-off page was accepted")
        finally:
            await gen.aclose()


async def test_a_job_given_back_at_shutdown_is_not_taken_for_its_own_copy(redis: Redis) -> None:
    """Shutdown releases the in-flight marker with the job: the next pool writes the page."""
    slow = FakeGenerator(delay_s=30)
    first = Pool(redis=redis, generator=slow, settings=fast_settings(shutdown_grace=100))
    async with running(first):
        await push(redis, job("back", 0, 1))
        await slow.started.wait()
        assert await redis.exists(KEYS.inflight("back:0"))
    assert not await redis.exists(KEYS.inflight("back:0"))
    assert await redis.llen(KEYS.queue) == 1
    gen = FakeGenerator()
    async with running(Pool(redis=redis, generator=gen, settings=fast_settings())):
        await wait_until(lambda: _status_has(redis, "back", state="done"))
    assert [j for j, _ in gen.calls] == ["back:0"]
    assert "skipped" not in await status(redis, "back")
