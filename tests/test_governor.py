"""The rate-limit governor on a real redis-server: two governors share one budget like two processes.

Every timing assertion reads the times the budget's scripts computed on Redis's clock
(`Permit.go_at_ms`, `Permit.reserved_at_ms`), so it does not depend on how fast the test runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from pool.config import ConfigError, PoolSettings, load_settings
from pool.generation import GeneratedPage, JobFatalError, RetryableError
from pool.keys import Keys
from pool.ratelimit import (
    ApiIdentity,
    BudgetWaitTooLong,
    Governor,
    Permit,
    RequestCost,
    RequestTooLarge,
    budget_use,
    describe_budget,
    read_budgets,
)
from tests.fakes import wait_until
from tests.redis_server import RedisServer, free_port

KEYS = Keys("gov")
API = ApiIdentity.of("http://127.0.0.1:1/v1", "sk-test-governor")
MODEL = "gpt-4o-mini"
SMALL = RequestCost(MODEL, prompt_tokens=100, max_tokens=100)


def settings(**overrides: Any) -> PoolSettings:
    values: dict[str, Any] = {"rate_limit_burst": 0, "concurrent_workers": 100}
    values.update(overrides)
    return PoolSettings(**values)


@pytest.fixture
async def other(redis_server: RedisServer, redis: Redis) -> AsyncIterator[Redis]:
    """A second client on the same server: the second "process"."""
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


def pair(redis: Redis, other: Redis, **overrides: Any) -> tuple[Governor, Governor]:
    s = settings(**overrides)
    return Governor(redis, KEYS, s, API), Governor(other, KEYS, s, API)


async def state(redis: Redis) -> dict[str, str]:
    raw = await redis.hgetall(KEYS.rate_budget(API.budget_id(MODEL)))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def workers(
    governor: Governor,
    count: int,
    grants: list[Permit],
    total: int,
    *,
    cost: RequestCost = SMALL,
    work: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """`count` workers acquire, do `work`, settle, until `grants` holds `total` permits."""

    async def worker() -> None:
        while len(grants) < total:
            permit = await governor.acquire(cost)
            grants.append(permit)
            if work is not None:
                await work()
            await permit.settle()

    await asyncio.gather(*(worker() for _ in range(count)))


def assert_conforms(permits: list[Permit], per_unit_ms: float, burst_ms: float) -> None:
    """GCRA's bound: any span of d ms holds at most d / per_unit + burst / per_unit + 1 grants."""
    times = sorted(p.go_at_ms for p in permits if p.go_at_ms is not None)
    assert len(times) == len(permits)
    for i in range(len(times)):
        for j in range(i, len(times)):
            allowed = (times[j] - times[i] + burst_ms) / per_unit_ms + 1 + 1e-6
            assert j - i + 1 <= allowed, (i, j, times[j] - times[i])


# -- one budget, shared --------------------------------------------------------------------


async def test_two_processes_never_exceed_the_shared_rpm(redis: Redis, other: Redis) -> None:
    """Two governors with 20 workers each: grants on Redis time never beat rpm plus the burst."""
    one, two = pair(redis, other, openai_rpm_limit=6_000, rate_limit_burst=50)
    grants: list[Permit] = []
    await asyncio.gather(workers(one, 20, grants, 120), workers(two, 20, grants, 120))
    assert_conforms(grants, per_unit_ms=10.0, burst_ms=50.0)
    mine = sum(1 for p in grants if p._governor is one)
    assert 0 < mine < len(grants)
    assert int((await state(redis))["grants"]) == len(grants)


async def test_two_processes_never_exceed_the_shared_tpm(redis: Redis, other: Redis) -> None:
    """Requests of mixed sizes: the tokens granted in any span stay within the tpm schedule."""
    one, two = pair(redis, other, openai_tpm_limit=600_000, rate_limit_burst=20)
    costs = [RequestCost(MODEL, 100 * (1 + i % 4), 100) for i in range(40)]  # 200..500 tokens
    grants: list[Permit] = []

    async def run(governor: Governor, mine: list[RequestCost]) -> None:
        for cost in mine:
            permit = await governor.acquire(cost)
            grants.append(permit)
            await permit.settle()

    await asyncio.gather(run(one, costs[::2]), run(two, costs[1::2]))
    per_token_ms = 60_000 / 600_000
    ordered = sorted(grants, key=lambda p: p.go_at_ms or 0)
    for i in range(len(ordered)):
        for j in range(i, len(ordered)):
            span = (ordered[j].go_at_ms or 0) - (ordered[i].go_at_ms or 0)
            tokens = sum(p.reserved_tokens for p in ordered[i : j + 1])
            assert tokens <= (span + 20) / per_token_ms + 500 + 1e-6


async def test_requests_go_in_the_order_they_reserved(redis: Redis, other: Redis) -> None:
    """FIFO on Redis: a later reservation never goes before an earlier one, whoever holds it."""
    one, two = pair(redis, other, openai_rpm_limit=3_000)
    grants: list[Permit] = []
    await asyncio.gather(workers(one, 10, grants, 60), workers(two, 10, grants, 60))
    by_reservation = sorted(grants, key=lambda p: p.reserved_at_ms or 0)
    go = [p.go_at_ms or 0 for p in by_reservation]
    assert go == sorted(go)


async def test_a_small_replica_is_not_starved_by_a_big_one(redis: Redis, other: Redis) -> None:
    """50 workers against 3: the small one still gets its requests through, each in bounded time."""
    one, two = pair(redis, other, openai_rpm_limit=6_000)  # 100 requests/s

    async def request_time() -> None:  # the API's answer takes 30 ms
        await asyncio.sleep(0.03)

    grants: list[Permit] = []
    await asyncio.gather(
        workers(one, 50, grants, 150, work=request_time),
        workers(two, 3, grants, 150, work=request_time),
    )
    small = [p for p in grants if p._governor is two]
    assert len(small) >= 15  # a fair share of the line, not crumbs

    def worst_wait_ms(permits: list[Permit]) -> float:
        return max((p.go_at_ms or 0) - (p.reserved_at_ms or 0) for p in permits)

    # A process holds at most its concurrency limit in the line: before the first answers that
    # is its workers; once latencies are known, Little's law's few. Nobody waits longer.
    assert worst_wait_ms(grants) <= (50 + 3 + 1) * 10.0 + 5
    line = one.concurrency(MODEL).limit + two.concurrency(MODEL).limit
    assert line < 20
    steady = sorted(grants, key=lambda p: p.reserved_at_ms or 0)[100:]
    assert worst_wait_ms(steady) <= (line + 1) * 10.0 + 5


# -- cool-downs ----------------------------------------------------------------------------


async def test_a_refusal_cools_down_the_other_process(redis: Redis, other: Redis) -> None:
    """One process gets a 429 with retry-after 0.3 s: the other's next request waits it out."""
    one, two = pair(redis, other, openai_rpm_limit=60_000)
    first = await one.acquire(SMALL)
    left = await first.refused(RetryableError("HTTP 429", status=429, retry_after_s=0.3))
    assert 0.25 <= left <= 0.3
    assert (await read_budgets(redis, KEYS))[0]["cooldown_s"] > 0
    second = await two.acquire(SMALL)
    assert (second.go_at_ms or 0) - (first.go_at_ms or 0) >= 300
    await second.settle()
    snapshot = (await read_budgets(redis, KEYS))[0]
    assert (snapshot["refusals_total"], snapshot["refusals_last_min"]) == (1, 1)


async def test_reserved_requests_move_with_a_cool_down(redis: Redis, other: Redis) -> None:
    """Requests already booked when the cool-down starts go after it, spaced as before."""
    one, two = pair(redis, other, openai_rpm_limit=120, openai_tpm_limit=10**6)  # 500 ms apart
    booked = [asyncio.create_task(two.acquire(SMALL)) for _ in range(3)]

    async def all_booked() -> bool:
        return (await state(redis)).get("grants") == "3"

    await wait_until(all_booked, what="three reservations")
    cooldown_s = await one.refused(MODEL, retry_after_s=0.4)
    permits = await asyncio.gather(*booked)
    go = sorted(p.go_at_ms or 0 for p in permits)
    st = await state(redis)
    since, until = float(st["cd_since"]), float(st["cd_until"])
    assert until - since == pytest.approx(cooldown_s * 1000, abs=1)
    assert go[0] < since  # the first went at once, before the refusal
    assert go[1] >= until and go[2] >= until
    assert go[2] - go[1] == pytest.approx(500, abs=1)
    for permit in permits:
        await permit.settle()


# -- learning limits -----------------------------------------------------------------------


async def test_limits_are_learned_from_the_first_answer(redis: Redis, other: Redis) -> None:
    """Unset limits: one scout goes alone; its headers set the limits every process then uses."""
    one, two = pair(redis, other)
    scout = await one.acquire(SMALL)
    assert scout.scout
    asked = await two.budget(MODEL).shared.reserve(1, max_delay_s=60, scout_token="other")
    assert asked.kind == "learning" and 0 < asked.delay_s <= 0.25  # ask again soon
    waiting = asyncio.create_task(two.acquire(SMALL))
    [snapshot] = await read_budgets(redis, KEYS)
    assert snapshot["learning"] and snapshot["rpm_source"] == "unknown"
    await scout.settle(
        150,
        80,
        {
            "x-ratelimit-limit-requests": "600",
            "x-ratelimit-limit-tokens": "90000",
            "x-ratelimit-remaining-requests": "599",
            "x-ratelimit-remaining-tokens": "89800",
        },
    )
    permit = await asyncio.wait_for(waiting, timeout=5)
    assert not permit.scout and permit.go_at_ms is not None
    await permit.settle()
    [snapshot] = await read_budgets(redis, KEYS)
    assert (snapshot["rpm"], snapshot["tpm"]) == (600, 90_000)
    assert (snapshot["rpm_source"], snapshot["tpm_source"]) == ("learned", "learned")
    assert not snapshot["learning"]
    assert two.budget(MODEL).rpm == 600


async def test_a_server_without_limit_headers_is_not_paced(redis: Redis, other: Redis) -> None:
    """A scout's answer without x-ratelimit-* ends learning: requests go at once after it."""
    one, two = pair(redis, other)
    scout = await one.acquire(SMALL)
    await scout.settle(10, 10, {})
    permits = [await two.acquire(SMALL) for _ in range(5)]
    assert not any(p.scout for p in permits)
    assert all(p.go_at_ms == p.reserved_at_ms for p in permits)
    assert not (await read_budgets(redis, KEYS))[0]["learning"]


async def test_configured_limits_beat_learned_ones(redis: Redis) -> None:
    """OPENAI_RPM_LIMIT set: no scout, and headers saying otherwise do not change it."""
    governor = Governor(redis, KEYS, settings(openai_rpm_limit=100, openai_tpm_limit=10_000), API)
    permit = await governor.acquire(SMALL)
    assert not permit.scout
    await permit.settle(headers={"x-ratelimit-limit-requests": "5000"})
    await (await governor.acquire(SMALL)).settle()
    [snapshot] = await read_budgets(redis, KEYS)
    assert (snapshot["rpm"], snapshot["rpm_source"]) == (100, "set")


async def test_low_remaining_in_headers_slows_the_budget(redis: Redis) -> None:
    """The API says 0 requests remain (someone else uses the key): the next one waits."""
    governor = Governor(redis, KEYS, settings(openai_rpm_limit=600, rate_limit_burst=1_000), API)
    first = await governor.acquire(SMALL)
    await first.settle(headers={"x-ratelimit-remaining-requests": "0"})
    second = await governor.acquire(SMALL)
    await second.settle()
    # Without the header the burst (10 requests) would have let it go at once.
    assert (second.go_at_ms or 0) - (first.go_at_ms or 0) >= 100


# -- corrections ---------------------------------------------------------------------------


@pytest.mark.parametrize(("refund", "gap_ms"), [(True, 700), (False, 1_900)])
async def test_settle_corrects_the_tokens_reserved(redis: Redis, refund: bool, gap_ms: int) -> None:
    """Usage corrects the prompt estimate; unused completion tokens come back only if refunded."""
    governor = Governor(
        redis,
        KEYS,
        settings(openai_tpm_limit=60_000, rate_limit_refund_unused=refund),
        API,
    )
    cost = RequestCost(MODEL, prompt_tokens=500, max_tokens=1_500)  # 2,000 tokens = 2 s of TPM
    first = await governor.acquire(cost)
    await first.settle(prompt_tokens=400, completion_tokens=300)
    small = RequestCost(MODEL, prompt_tokens=1, max_tokens=1)
    second = await governor.acquire(small)
    await second.settle()
    assert (second.go_at_ms or 0) - (first.go_at_ms or 0) == pytest.approx(gap_ms, abs=2)
    assert governor.budget(MODEL).prompt_ratio < 1.0  # later estimates are calibrated


async def test_a_request_never_sent_gives_its_reservation_back(redis: Redis) -> None:
    """A caller cancelled while waiting for its turn releases the time it had booked."""
    governor = Governor(redis, KEYS, settings(openai_rpm_limit=60, openai_tpm_limit=10**6), API)
    await (await governor.acquire(SMALL)).settle()  # the next may go a second later
    waiting = asyncio.create_task(governor.acquire(SMALL))

    async def booked() -> bool:
        return (await state(redis)).get("grants") == "2"

    await wait_until(booked, what="the second reservation")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (await state(redis))["grants"] == "1"
    assert governor.concurrency(MODEL).in_flight == 0
    third = await asyncio.wait_for(governor.acquire(SMALL), timeout=2)
    await third.settle()


# -- limits that can never be met ----------------------------------------------------------


async def test_a_page_larger_than_the_tpm_fails_at_once(redis: Redis, other: Redis) -> None:
    """More tokens than the TPM limit: RequestTooLarge (job-fatal) at once, set or learned."""
    governor = Governor(redis, KEYS, settings(openai_tpm_limit=1_000), API)
    huge = RequestCost(MODEL, prompt_tokens=300, max_tokens=1_010)
    with pytest.raises(RequestTooLarge) as caught:
        await governor.acquire(huge)
    assert isinstance(caught.value, JobFatalError)
    assert "1310 tokens" in str(caught.value) and "1000 tokens per minute" in str(caught.value)
    assert governor.concurrency(MODEL).in_flight == 0

    learner, fresh = pair(redis, other)
    await redis.flushall()
    scout = await learner.acquire(SMALL)
    await scout.settle(
        headers={"x-ratelimit-limit-requests": "100", "x-ratelimit-limit-tokens": "1000"}
    )
    with pytest.raises(RequestTooLarge):
        await fresh.acquire(huge)  # learned by the other process; refused by the script


async def test_waiting_longer_than_the_bound_gives_the_page_back(redis: Redis) -> None:
    """A request that could go only after RATE_LIMIT_MAX_WAIT is not booked: BudgetWaitTooLong."""
    governor = Governor(
        redis,
        KEYS,
        settings(openai_rpm_limit=60, openai_tpm_limit=10**6, rate_limit_max_wait=1_000),
        API,
    )
    await (await governor.acquire(SMALL)).settle()
    with pytest.raises(BudgetWaitTooLong, match="booked"):
        await governor.acquire(SMALL, waiting_since=governor.clock() - 0.5)
    assert (await state(redis))["grants"] == "1"
    assert governor.concurrency(MODEL).in_flight == 0


# -- refusals are not failures -------------------------------------------------------------


async def test_call_waits_out_refusals_without_raising(redis: Redis) -> None:
    """A storm of 429s and a 503 are waited out inside `call`; the page comes back."""
    governor = Governor(redis, KEYS, settings(openai_rpm_limit=60_000), API)
    answers: list[BaseException | GeneratedPage] = [
        RetryableError("HTTP 429 rate_limit_exceeded", status=429, retry_after_s=0.05),
        RetryableError("HTTP 429 rate_limit_exceeded", status=429, retry_after_s=0.05),
        RetryableError("HTTP 503: overloaded", status=503, retry_after_s=0.05),
        GeneratedPage(content="page", model=MODEL, prompt_tokens=90, completion_tokens=50),
    ]

    async def send() -> GeneratedPage:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    page = await governor.call(SMALL, send)
    assert page.content == "page" and answers == []
    assert (await read_budgets(redis, KEYS))[0]["refusals_total"] == 3
    assert governor.concurrency(MODEL).in_flight == 0


async def test_call_passes_real_faults_and_fails_too_large_requests(redis: Redis) -> None:
    """A 500 is raised as it is (an attempt); a 429 'Request too large' becomes job-fatal."""
    governor = Governor(redis, KEYS, settings(openai_rpm_limit=60_000), API)

    async def server_error() -> GeneratedPage:
        raise RetryableError("HTTP 500: boom", status=500)

    async def too_large() -> GeneratedPage:
        raise RetryableError("HTTP 429 rate_limit_exceeded: Request too large for x", status=429)

    with pytest.raises(RetryableError, match="boom"):
        await governor.call(SMALL, server_error)
    with pytest.raises(JobFatalError, match="Request too large"):
        await governor.call(SMALL, too_large)
    assert governor.concurrency(MODEL).in_flight == 0


# -- Redis down, governor off --------------------------------------------------------------


async def test_redis_down_raises_from_acquire_and_never_lets_a_request_through() -> None:
    """No Redis: acquire raises the Redis error (the pool's outage guard waits); no slot leaks."""
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    governor = Governor(dead, KEYS, settings(openai_rpm_limit=60), API)
    with pytest.raises(RedisConnectionError):
        await governor.acquire(SMALL)
    assert governor.concurrency(MODEL).in_flight == 0
    await dead.aclose()


async def test_corrections_after_the_request_survive_a_redis_outage(tmp_path: Path) -> None:
    """Settle and refused after Redis went away log and return: the page is not lost."""
    server = RedisServer(workdir=tmp_path).start()
    client = Redis.from_url(server.url, socket_connect_timeout=0.5)
    governor = Governor(client, KEYS, settings(openai_rpm_limit=6_000), API)
    first = await governor.acquire(SMALL)  # the scout: it has no limits for tokens yet
    await first.settle(100, 100, {"x-ratelimit-limit-tokens": "100000"})
    first, second = await governor.acquire(SMALL), await governor.acquire(SMALL)
    server.stop()
    await first.settle(100, 100, {"x-ratelimit-remaining-requests": "3"})
    assert await second.refused(retry_after_s=1.0) == 0.0
    assert governor.concurrency(MODEL).in_flight == 0
    await client.aclose()


async def test_governor_off_sends_at_once_and_writes_nothing(redis: Redis) -> None:
    """RATE_LIMIT_GOVERNOR=false: permits come at once and Redis is not touched."""
    governor = Governor(redis, KEYS, settings(rate_limit_governor=False, openai_rpm_limit=1), API)
    permits = [await governor.acquire(SMALL) for _ in range(5)]
    for permit in permits:
        assert permit.go_at_ms is None
        await permit.settle(1, 1, {"x-ratelimit-limit-requests": "5"})
    assert await redis.keys("*") == []
    assert governor.snapshot()["enabled"] is False


# -- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OPENAI_RPM_LIMIT": "0"}, "OPENAI_RPM_LIMIT: Input should be greater than or equal to 1"),
        (
            {"OPENAI_TPM_LIMIT": "-5"},
            "OPENAI_TPM_LIMIT: Input should be greater than or equal to 1",
        ),
        ({"OPENAI_RPM_LIMIT": "many"}, "OPENAI_RPM_LIMIT:"),
        (
            {"RATE_LIMIT_MAX_WAIT": "0"},
            "RATE_LIMIT_MAX_WAIT: Input should be greater than or equal",
        ),
        (
            {"RATE_LIMIT_BURST": "-1"},
            "RATE_LIMIT_BURST: Input should be greater than or equal to 0",
        ),
        ({"RATE_LIMIT_GOVERNOR": "maybe"}, "RATE_LIMIT_GOVERNOR:"),
    ],
)
def test_bad_rate_limit_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    """A limit of 0, a negative one or a typo stops start-up with one line naming it."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(PoolSettings)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_rate_limit_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blank limits are unset (learned); values and the off switch are read."""
    monkeypatch.setenv("OPENAI_RPM_LIMIT", "")
    monkeypatch.setenv("OPENAI_TPM_LIMIT", "60000")
    monkeypatch.setenv("RATE_LIMIT_GOVERNOR", "off")
    monkeypatch.setenv("RATE_LIMIT_MAX_WAIT", "2500")
    loaded = load_settings(PoolSettings)
    assert (loaded.openai_rpm_limit, loaded.openai_tpm_limit) == (None, 60_000)
    assert loaded.rate_limit_governor is False
    assert loaded.rate_limit_max_wait_s == 2.5


async def test_request_context_ends_the_permit_by_what_happened(redis: Redis) -> None:
    """`async with governor.request(cost)`: a 429 inside is a refusal, a bug a failure."""
    governor = Governor(redis, KEYS, settings(openai_rpm_limit=60_000, openai_tpm_limit=10**7), API)
    async with governor.request(SMALL) as permit:
        await permit.settle(90, 10, {})
    with pytest.raises(RetryableError):
        async with governor.request(SMALL):
            raise RetryableError("HTTP 429", status=429, retry_after_s=0.01)
    with pytest.raises(ValueError):
        async with governor.request(SMALL):
            raise ValueError("bug")
    assert governor.concurrency(MODEL).in_flight == 0
    [snapshot] = await read_budgets(redis, KEYS)
    assert (snapshot["refusals_total"], snapshot["grants_total"]) == (1, 3)
    line = describe_budget(snapshot)
    assert line.startswith("gpt-4o-mini @ http://127.0.0.1:1/v1 (key ")
    assert "3/60000 RPM (0.0%, set)" in line and "refused 1 in the last minute" in line
    assert budget_use([snapshot]) == "gpt-4o-mini 0.0% RPM 0.0% TPM"  # cool-down waited out
