"""Every row of the failure table, over real HTTP against the simulator.

Each test makes the simulator answer one way, calls `OpenAIPageGenerator.generate` through the
real openai SDK, and checks the pool error class and its fields. Every test runs on both
clients: the SDK's `AsyncOpenAI` on httpx2's own transport (its ordinary request path), and the
`PageOpenAI` on the aiohttp transport that `from_settings` builds (`generator.client`,
`generator.transport`).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from openai import AsyncOpenAI

from generator import OpenAIPageGenerator
from generator.client import PageOpenAI
from generator.simulator import Simulator, SimulatorConfig
from generator.transport import http_client
from pool.generation import GenerationError, JobFatalError, PoolFatalError, RetryableError
from pool.job import PageJob

KEY = "sk-proj-errors-test-0123456789abcdef"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(seed=7, jitter=0.0)) as simulator:
        yield simulator


@pytest.fixture(params=["httpx2", "aiohttp"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_client(transport: str, base_url: str) -> AsyncOpenAI:
    """The SDK client on httpx2's transport, or ours on aiohttp (as `from_settings` builds it)."""
    if transport == "aiohttp":
        return PageOpenAI(
            api_key=KEY, base_url=base_url, max_retries=0, http_client=http_client(10)
        )
    return AsyncOpenAI(api_key=KEY, base_url=base_url, max_retries=0)


@pytest.fixture
async def generator(sim: Simulator, transport: str) -> AsyncIterator[OpenAIPageGenerator]:
    gen = OpenAIPageGenerator(client=make_client(transport, sim.base_url))
    yield gen
    await gen.aclose()


def make_job(instructions: str | None = None, **changes: object) -> PageJob:
    fields: dict[str, object] = {
        "ebook_id": "errors",
        "page_index": 0,
        "total_pages": 3,
        "title": "Failure Modes",
        "outline": ["Start", "Middle", "End"],
        "instructions": instructions,
        "target_words": 80,
    }
    fields.update(changes)
    return PageJob.model_validate(fields)


async def fail(
    generator: OpenAIPageGenerator, job: PageJob, *, timeout_s: float = 5.0
) -> GenerationError:
    """The error `generate` raises for `job`; the reason is one line without the key."""
    with pytest.raises(GenerationError) as caught:
        await generator.generate(job, timeout_s=timeout_s)
    err = caught.value
    assert KEY not in str(err)
    assert "\n" not in str(err)
    assert str(err) == err.reason
    return err


# -- 429 rate_limit_exceeded: retryable, with the wait the server asked for ------------------


@pytest.mark.parametrize(
    ("hint", "headers", "low", "high"),
    [
        ("ms", True, 1.9, 2.0),  # retry-after-ms
        ("seconds", True, 2.0, 2.0),  # retry-after: 2
        ("date", True, 0.0, 3.0),  # retry-after: <HTTP date>, one-second resolution
        ("message", True, 1.9, 2.0),  # "Please try again in 1.99s."
        ("none", True, 1.9, 2.0),  # x-ratelimit-reset-requests
    ],
)
async def test_rate_limited_is_retryable_with_retry_after(
    sim: Simulator,
    generator: OpenAIPageGenerator,
    hint: str,
    headers: bool,
    low: float,
    high: float,
) -> None:
    """429 rate_limit_exceeded → RetryableError; retry_after_s from each kind of hint."""
    sim.update(rpm=1, rate_window_s=2.0, retry_hint=hint, ratelimit_headers=headers)
    await generator.generate(make_job(), timeout_s=5)
    err = await fail(generator, make_job())
    assert isinstance(err, RetryableError)
    assert (err.status, err.code) == (429, "rate_limit_exceeded")
    assert err.retry_after_s is not None
    assert low <= err.retry_after_s <= high


async def test_rate_limited_message_in_milliseconds(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """'try again in 50ms' is read as 0.05 s."""
    sim.update(rpm=1, rate_window_s=0.05, retry_hint="message", ratelimit_headers=False)
    await generator.generate(make_job(), timeout_s=5)
    err = await fail(generator, make_job())
    assert isinstance(err, RetryableError)
    assert err.retry_after_s is not None
    assert 0.03 <= err.retry_after_s <= 0.05


async def test_rate_limited_reset_in_minutes(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """x-ratelimit-reset-requests '6m0s' is read as 360 s."""
    sim.update(rpm=1, rate_window_s=360.0, retry_hint="none")
    await generator.generate(make_job(), timeout_s=5)
    err = await fail(generator, make_job())
    assert err.retry_after_s == 360.0


async def test_rate_limited_without_any_hint(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """No retry-after, no 'try again', no x-ratelimit headers → retry_after_s is None."""
    sim.update(rpm=1, rate_window_s=2.0, retry_hint="none", ratelimit_headers=False)
    await generator.generate(make_job(), timeout_s=5)
    err = await fail(generator, make_job())
    assert isinstance(err, RetryableError)
    assert (err.status, err.code, err.retry_after_s) == (429, "rate_limit_exceeded", None)


async def test_request_larger_than_the_token_limit(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """A request over the whole TPM limit is a 429 without a wait (it can never pass)."""
    sim.update(tpm=100)
    err = await fail(generator, make_job())
    assert isinstance(err, RetryableError)
    assert (err.status, err.retry_after_s) == (429, None)
    assert "Request too large" in err.reason


# -- 408, 409, 5xx, connection errors, timeouts: retryable -----------------------------------


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503, 504])
async def test_transient_statuses_are_retryable(
    generator: OpenAIPageGenerator, status: int
) -> None:
    """408, 409 and 5xx → RetryableError with the status."""
    err = await fail(generator, make_job(f"[sim:status={status}]"))
    assert isinstance(err, RetryableError)
    assert err.status == status
    assert err.reason.startswith(f"HTTP {status}")


async def test_random_server_errors_are_retryable(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """error_rate=1: 500, 502 (an HTML page from a proxy) or 503, all retryable."""
    sim.update(error_rate=1.0)
    statuses: set[int | None] = set()
    calls = 0
    while statuses != {500, 502, 503} and calls < 40:
        err = await fail(generator, make_job())
        calls += 1
        assert isinstance(err, RetryableError)
        assert err.status in (500, 502, 503)
        statuses.add(err.status)
    assert statuses == {500, 502, 503}
    assert sim.stats["by_kind"] == {"server_error": calls}


async def test_dropped_connection_is_retryable(generator: OpenAIPageGenerator) -> None:
    """The server closes the connection without answering → RetryableError (APIConnectionError)."""
    err = await fail(generator, make_job("[sim:drop]"))
    assert isinstance(err, RetryableError)
    assert err.code == "connection_error"
    assert err.status is None


async def test_refused_connection_is_retryable(transport: str) -> None:
    """Nothing listening on the port → RetryableError (APIConnectionError)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gen = OpenAIPageGenerator(client=make_client(transport, f"http://127.0.0.1:{port}/v1"))
    try:
        err = await fail(gen, make_job())
    finally:
        await gen.aclose()
    assert isinstance(err, RetryableError)
    assert err.code == "connection_error"


async def test_hang_past_the_timeout_is_retryable_and_quick(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """No answer within timeout_s → RetryableError('timeout') after about timeout_s."""
    loop_time = __import__("asyncio").get_running_loop().time
    started = loop_time()
    err = await fail(generator, make_job("[sim:hang]"), timeout_s=0.3)
    elapsed = loop_time() - started
    assert isinstance(err, RetryableError)
    assert err.code == "timeout"
    assert "0.3s" in err.reason
    assert 0.25 <= elapsed < 1.5


# -- pool-fatal: nothing will work until an operator acts -----------------------------------


async def test_insufficient_quota_is_pool_fatal(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """429 insufficient_quota → PoolFatalError, not a rate limit to wait out."""
    sim.update(insufficient_quota=True)
    err = await fail(generator, make_job())
    assert isinstance(err, PoolFatalError)
    assert (err.status, err.code, err.retry_after_s) == (429, "insufficient_quota", None)
    assert "quota" in err.reason


async def test_bad_key_is_pool_fatal_without_the_key(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """401 invalid_api_key → PoolFatalError naming OPENAI_API_KEY; the masked key is redacted."""
    sim.update(bad_key=True)
    err = await fail(generator, make_job())
    assert isinstance(err, PoolFatalError)
    assert (err.status, err.code) == (401, "invalid_api_key")
    assert "OPENAI_API_KEY" in err.reason
    assert KEY[-4:] not in err.reason
    assert "sk-***" in err.reason


async def test_permission_denied_is_pool_fatal(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """403 → PoolFatalError saying permission denied."""
    sim.update(permission_denied=True)
    err = await fail(generator, make_job())
    assert isinstance(err, PoolFatalError)
    assert err.status == 403
    assert "permission denied" in err.reason


async def test_unknown_default_model_is_pool_fatal(sim: Simulator) -> None:
    """404 model_not_found for the configured model → PoolFatalError naming OPENAI_MODEL."""
    client = AsyncOpenAI(api_key=KEY, base_url=sim.base_url, max_retries=0)
    gen = OpenAIPageGenerator(client=client, model="gpt-9-imaginary")
    try:
        err = await fail(gen, make_job())
    finally:
        await gen.aclose()
    assert isinstance(err, PoolFatalError)
    assert (err.status, err.code) == (404, "model_not_found")
    assert "OPENAI_MODEL" in err.reason


async def test_unknown_model_of_one_job_is_job_fatal(generator: OpenAIPageGenerator) -> None:
    """404 for a model only this job asked for fails the job, not the pool."""
    err = await fail(generator, make_job(model="gpt-9-imaginary"))
    assert isinstance(err, JobFatalError)
    assert (err.status, err.code) == (404, "model_not_found")
    assert "gpt-9-imaginary" in err.reason


# -- job-fatal: this job can never succeed as written ---------------------------------------


@pytest.mark.parametrize(
    ("marker", "status", "code"),
    [
        ("[sim:context_length]", 400, "context_length_exceeded"),
        ("[sim:invalid_prompt]", 400, "invalid_prompt"),
        ("[sim:content_policy]", 400, "content_policy_violation"),
        ("[sim:status=422]", 422, None),
        ("[sim:status=400:invalid_value]", 400, "invalid_value"),
        ("[sim:status=400]", 400, None),
    ],
)
async def test_bad_requests_are_job_fatal(
    generator: OpenAIPageGenerator, marker: str, status: int, code: str | None
) -> None:
    """400 (any code) and 422 → JobFatalError with status and code."""
    err = await fail(generator, make_job(marker))
    assert isinstance(err, JobFatalError)
    assert (err.status, err.code) == (status, code)


async def test_prompt_over_the_context_window_is_job_fatal(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """A prompt plus max_tokens over the model's window → 400 context_length_exceeded."""
    sim.update(context_window=300)  # below the prompt plus the page's sized max_tokens
    err = await fail(generator, make_job())
    assert isinstance(err, JobFatalError)
    assert (err.status, err.code) == (400, "context_length_exceeded")


# -- malformed answers: retryable -----------------------------------------------------------


@pytest.mark.parametrize("marker", ["[sim:malformed]", "[sim:no_choices]"])
async def test_malformed_body_is_retryable(generator: OpenAIPageGenerator, marker: str) -> None:
    """A 200 whose body is cut-off JSON or has no choices → RetryableError malformed_response."""
    err = await fail(generator, make_job(marker))
    assert isinstance(err, RetryableError)
    assert err.code == "malformed_response"


# -- answers that are not a page ------------------------------------------------------------


async def test_truncated_page_is_retryable(generator: OpenAIPageGenerator) -> None:
    """finish_reason 'length' → RetryableError('length')."""
    err = await fail(generator, make_job("[sim:truncated]"))
    assert isinstance(err, RetryableError)
    assert err.code == "length"


async def test_page_longer_than_max_tokens_is_truncated(generator: OpenAIPageGenerator) -> None:
    """A job whose max_tokens cannot hold its length gets a cut page → RetryableError('length')."""
    err = await fail(generator, make_job(target_words=1000, max_tokens=100))
    assert isinstance(err, RetryableError)
    assert err.code == "length"
    assert "max_tokens=100" in err.reason


async def test_empty_content_is_retryable(generator: OpenAIPageGenerator) -> None:
    """A 200 with empty content → RetryableError('empty_content')."""
    err = await fail(generator, make_job("[sim:empty]"))
    assert isinstance(err, RetryableError)
    assert err.code == "empty_content"


@pytest.mark.parametrize(
    ("marker", "code"), [("[sim:refusal]", "refusal"), ("[sim:content_filter]", "content_filter")]
)
async def test_refusal_and_content_filter_are_job_fatal(
    generator: OpenAIPageGenerator, marker: str, code: str
) -> None:
    """message.refusal or finish_reason 'content_filter' → JobFatalError: same brief, same answer."""
    err = await fail(generator, make_job(marker))
    assert isinstance(err, JobFatalError)
    assert err.code == code
