"""The governor's small parts: token counts, page sizing, refusals, identity, concurrency, costs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from openai import AsyncOpenAI

from generator import OpenAIPageGenerator
from generator.errors import RateLimitedError
from generator.simulator import Simulator, SimulatorConfig
from pool.generation import JobFatalError, PoolFatalError, RetryableError
from pool.job import PageJob
from pool.ratelimit import (
    AdaptiveConcurrency,
    ApiIdentity,
    CostedGenerator,
    RateHeaders,
    RequestCost,
    count_prompt_tokens,
    count_text_tokens,
    encoding_name,
    grown_max_tokens,
    is_rate_refusal,
    is_request_too_large,
    job_cost,
    page_max_tokens,
    refusal_headers,
    refusal_wait_s,
)

KEY = "sk-proj-parts-test-0123456789abcdef"


def make_job(**changes: object) -> PageJob:
    fields: dict[str, object] = {
        "ebook_id": "book",
        "page_index": 1,
        "total_pages": 4,
        "title": "Tea for Beginners",
        "outline": ["Leaves", "Water", "Steeping", "Serving"],
    }
    fields.update(changes)
    return PageJob.model_validate(fields)


# -- tokens and sizing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("ft:gpt-4o-mini:acme::abc123", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("llama3.1:8b", None),
        ("sim-writer", None),
        ("omni-moderation", None),
    ],
)
def test_model_families_map_to_their_vocabulary(model: str, encoding: str | None) -> None:
    """Known OpenAI families get their BPE vocabulary; anything else is estimated."""
    assert encoding_name(model) == encoding


def test_tokens_are_counted_with_the_vocabulary_or_estimated() -> None:
    """o200k and cl100k count real tokens; an unknown model counts 4 characters a token."""
    text = "Hello world, this is a test of the token counter."
    assert count_text_tokens(text, "gpt-4o") == 12
    assert count_text_tokens(text, "gpt-3.5-turbo") == 12
    assert count_text_tokens(text, "my-local-model") == 13  # ceil(49 / 4)
    assert count_text_tokens("", "gpt-4o") == 0
    messages = [("system", "Be brief."), ("user", text)]
    # 3 per message + role + content, plus 3 to prime the reply.
    assert count_prompt_tokens(messages, "gpt-4o") == 3 + (3 + 1 + 3) + (3 + 1 + 12)


def test_page_max_tokens_formula() -> None:
    """ceil(words x 1.4 x 1.3) + 100; a cut page's retry asks for twice that, capped."""
    assert page_max_tokens(500) == 1010
    assert page_max_tokens(1000) == 1920
    assert page_max_tokens(50) == 191
    assert grown_max_tokens(1010) == 2020
    assert grown_max_tokens(30_000) == 32_768
    assert grown_max_tokens(100_000) == 100_000
    with pytest.raises(ValueError):
        page_max_tokens(0)


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "refusal"),
    [
        (
            RetryableError("HTTP 429 rate_limit_exceeded", status=429, code="rate_limit_exceeded"),
            True,
        ),
        (RetryableError("HTTP 429", status=429), True),
        (RetryableError("HTTP 503: overloaded", status=503), True),
        (RetryableError("HTTP 500 slow_down", status=500, code="slow_down"), True),
        (RetryableError("HTTP 500: boom", status=500), False),
        (RetryableError("timeout: no answer", code="timeout"), False),
        (RetryableError("length: cut off", code="length"), False),
        (RetryableError("HTTP 429: Request too large for gpt-4o on TPM", status=429), False),
        (
            PoolFatalError("HTTP 429 insufficient_quota", status=429, code="insufficient_quota"),
            False,
        ),
        (JobFatalError("HTTP 400 context_length_exceeded", status=400), False),
        (ValueError("bug"), False),
    ],
)
def test_is_rate_refusal(error: BaseException, refusal: bool) -> None:
    """429 for rate and 503 are refusals; quota, too-large, faults and bugs are not."""
    assert is_rate_refusal(error) is refusal


def test_refusal_fields() -> None:
    """retry_after_s and the x-ratelimit headers of a RateLimitedError are read."""
    error = RateLimitedError(
        "HTTP 429", status=429, retry_after_s=1.5, rate_limits={"x-ratelimit-limit-requests": "9"}
    )
    assert (refusal_wait_s(error), dict(refusal_headers(error))) == (
        1.5,
        {"x-ratelimit-limit-requests": "9"},
    )
    assert (refusal_wait_s(ValueError()), dict(refusal_headers(ValueError()))) == (None, {})
    assert is_request_too_large(RetryableError("HTTP 429: Request too large for x", status=429))


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(seed=1, jitter=0.0)) as simulator:
        yield simulator


@pytest.fixture
async def generator(sim: Simulator) -> AsyncIterator[OpenAIPageGenerator]:
    client = AsyncOpenAI(api_key=KEY, base_url=sim.base_url, max_retries=0)
    gen = OpenAIPageGenerator(client=client)
    yield gen
    await gen.aclose()


async def refused_by(generator: OpenAIPageGenerator, job: PageJob) -> Exception:
    try:
        await generator.generate(job, timeout_s=5)
    except Exception as exc:
        return exc
    raise AssertionError("no error")


async def test_the_generators_real_errors_are_told_apart(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """From the simulator: a 429 and a 503 are refusals with headers; a 500 and a too-large not."""
    sim.update(rpm=1, rate_window_s=60.0)
    await generator.generate(make_job(), timeout_s=5)
    limited = await refused_by(generator, make_job())
    assert isinstance(limited, RateLimitedError) and is_rate_refusal(limited)
    assert refusal_headers(limited)["x-ratelimit-limit-requests"] == "1"
    assert RateHeaders.parse(refusal_headers(limited)).remaining_requests == 0
    assert (refusal_wait_s(limited) or 0) > 0
    sim.update(rpm=None)
    assert is_rate_refusal(await refused_by(generator, make_job(instructions="[sim:status=503]")))
    assert not is_rate_refusal(
        await refused_by(generator, make_job(instructions="[sim:status=500]"))
    )
    sim.update(tpm=100)
    too_large = await refused_by(generator, make_job())
    assert is_request_too_large(too_large) and not is_rate_refusal(too_large)


# -- what the generator tells the governor -------------------------------------------------


async def test_request_cost_is_what_the_generator_sends(sim: Simulator) -> None:
    """request_cost has the model, max_tokens and (counted) prompt of the request sent next."""
    sent: list[dict[str, Any]] = []

    async def record(request: httpx2.Request) -> None:
        sent.append(json.loads(request.content))

    http_client = httpx2.AsyncClient(event_hooks={"request": [record]})
    client = AsyncOpenAI(api_key=KEY, base_url=sim.base_url, max_retries=0, http_client=http_client)
    generator = OpenAIPageGenerator(client=client)
    try:
        assert isinstance(generator, CostedGenerator)
        job = make_job(target_words=300, model="gpt-4o")
        cost = generator.request_cost(job)
        page = await generator.generate(job, timeout_s=5)
        assert (cost.model, cost.max_tokens) == ("gpt-4o", sent[0]["max_tokens"]) == ("gpt-4o", 646)
        messages = [(m["role"], m["content"]) for m in sent[0]["messages"]]
        assert cost.prompt_tokens == count_prompt_tokens(messages, "gpt-4o")
        # The simulator counts 4 characters a token: the estimate is in the same range.
        assert 0.5 < page.prompt_tokens / cost.prompt_tokens < 2
    finally:
        await generator.aclose()
        await http_client.aclose()


async def test_a_cut_page_is_retried_once_with_twice_the_limit(
    generator: OpenAIPageGenerator,
) -> None:
    """finish_reason length: the next attempt (and cost) asks for 2x; a job's maxTokens is kept."""
    job = make_job(instructions="[sim:truncated]")
    assert generator.request_cost(job).max_tokens == 1010
    first = await refused_by(generator, job)
    assert isinstance(first, RetryableError) and first.code == "length"
    assert "next attempt asks for max_tokens=2020" in str(first)
    assert generator.request_cost(job).max_tokens == 2020
    again = await refused_by(generator, job)
    assert isinstance(again, RetryableError) and "next attempt" not in str(again)
    assert generator.request_cost(job).max_tokens == 2020  # once only

    own = make_job(page_index=2, instructions="[sim:truncated]", max_tokens=700)
    await refused_by(generator, own)
    assert generator.request_cost(own).max_tokens == 700


async def test_the_api_identity_never_holds_the_key(generator: OpenAIPageGenerator) -> None:
    """The budget is keyed by base URL and a fingerprint of the key, not the key."""
    identity = generator.api_identity
    assert identity.base_url.endswith("/v1")
    assert len(identity.key_fingerprint) == 8 and identity.key_fingerprint not in KEY
    budget = identity.budget_id("gpt-4o-mini")
    assert KEY not in budget and budget.endswith("-gpt-4o-mini")
    other = ApiIdentity.of(identity.base_url, "sk-another-key")
    assert other.budget_id("gpt-4o-mini") != budget
    assert ApiIdentity.of(None, KEY).base_url == "https://api.openai.com/v1"
    assert "secret" not in ApiIdentity.of("http://user:secret@host/v1", KEY).base_url


def test_job_cost_without_a_costed_generator() -> None:
    """A generator double without request_cost: the job's text and sized limit are estimated."""
    cost = job_cost(object(), make_job(target_words=200), default_model="gpt-4o-mini")
    assert cost == RequestCost("gpt-4o-mini", cost.prompt_tokens, page_max_tokens(200))
    assert 300 < cost.prompt_tokens < 600
    assert job_cost(object(), make_job(max_tokens=99), default_model="x").max_tokens == 99


def test_rate_headers_are_parsed_leniently() -> None:
    """Numbers in any case; bad or missing values are None."""
    parsed = RateHeaders.parse(
        {"X-RateLimit-Limit-Requests": "500", "x-ratelimit-remaining-tokens": "oops"}
    )
    assert parsed == RateHeaders(limit_requests=500)
    assert parsed.has_limits and not RateHeaders.parse(None).has_limits


# -- adaptive concurrency ------------------------------------------------------------------


def test_concurrency_follows_littles_law() -> None:
    """rate x latency x 1.25 + 1, within the ceiling; unknown rate: the ceiling."""
    limiter = AdaptiveConcurrency(50)
    assert limiter.limit == 50
    limiter.set_rate(5.0)  # 300 RPM
    limiter.answered(2.0)  # 2 s a page
    assert limiter.little_target == 14 and limiter.limit == 14  # ceil(5 x 2 x 1.25) + 1
    limiter.set_rate(500.0)
    assert limiter.limit == 50
    assert AdaptiveConcurrency(5).limit == 5


def test_concurrency_halves_once_per_latency_on_refusals() -> None:
    """AIMD: a burst of refusals halves the limit once; answers add it back slowly."""
    now = [0.0]
    limiter = AdaptiveConcurrency(40, clock=lambda: now[0])
    limiter.answered(1.0)
    limiter.refused()
    limiter.refused()
    limiter.refused()
    assert limiter.limit == 20 and limiter.refusals == 3
    now[0] += 1.5
    limiter.refused()
    assert limiter.limit == 10
    for _ in range(11):  # + 1/cap each: about one more per round of `limit` answers
        limiter.answered(1.0)
    assert limiter.limit == 11


async def test_concurrency_slots_are_first_come_first_served() -> None:
    """Waiters get freed slots in the order they asked; a timed-out waiter leaves the line."""
    limiter = AdaptiveConcurrency(1)
    assert await limiter.acquire()
    order: list[int] = []

    async def waiter(n: int) -> None:
        assert await limiter.acquire()
        order.append(n)
        limiter.release()

    tasks = [asyncio.create_task(waiter(n)) for n in range(5)]
    assert not await limiter.acquire(timeout_s=0.01)  # the tasks queued first, in order
    assert limiter.waiting == 5
    limiter.release()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]
    assert (limiter.in_flight, limiter.waiting) == (0, 0)


def test_concurrency_is_one_while_learning() -> None:
    """While the limits are learned, one request at a time; then the usual limit again."""
    limiter = AdaptiveConcurrency(30)
    limiter.learning = True
    assert limiter.limit == 1
    limiter.learning = False
    assert limiter.limit == 30
