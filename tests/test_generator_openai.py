"""OpenAIPageGenerator over real HTTP: pages, overrides, rate-limit headers, probe, one attempt."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from openai import AsyncOpenAI

from generator import GeneratorSettings, OpenAIPageGenerator
from generator.simulator import Simulator, SimulatorConfig
from pool.config import ConfigError
from pool.generation import PageGenerator, PoolFatalError, RetryableError
from pool.job import PageJob

KEY = "sk-proj-generator-test-0123456789abcdef"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(seed=3, jitter=0.0)) as simulator:
        yield simulator


@pytest.fixture
async def sent(sim: Simulator) -> list[dict[str, Any]]:
    """The JSON bodies of the requests the generator's client sends (filled by the fixture below)."""
    return []


@pytest.fixture
async def generator(
    sim: Simulator, sent: list[dict[str, Any]]
) -> AsyncIterator[OpenAIPageGenerator]:
    async def record(request: httpx2.Request) -> None:
        sent.append(json.loads(request.content))

    http_client = httpx2.AsyncClient(event_hooks={"request": [record]})
    client = AsyncOpenAI(api_key=KEY, base_url=sim.base_url, max_retries=0, http_client=http_client)
    gen = OpenAIPageGenerator(client=client)
    yield gen
    await gen.aclose()
    await http_client.aclose()


def make_job(**changes: object) -> PageJob:
    fields: dict[str, object] = {
        "ebook_id": "book",
        "page_index": 1,
        "total_pages": 4,
        "title": "Tea for Beginners",
        "outline": ["Leaves", "Water", "Steeping", "Serving"],
        "target_words": 120,
    }
    fields.update(changes)
    return PageJob.model_validate(fields)


async def test_generates_a_page(sim: Simulator, generator: OpenAIPageGenerator) -> None:
    """A page: Markdown heading with the page's title, body text, usage and latency."""
    assert isinstance(generator, PageGenerator)
    page = await generator.generate(make_job(), timeout_s=5)
    assert page.content.startswith("## Water\n")
    assert len(page.content.split()) >= 100
    assert page.model == "gpt-4o-mini"
    assert page.finish_reason == "stop"
    assert page.prompt_tokens > 0
    assert page.completion_tokens > 0
    assert 0 < page.latency_s < 5
    assert sim.stats["by_status"] == {"200": 1}


async def test_rate_limit_headers_are_handed_back(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """The x-ratelimit-* headers of the answer are in GeneratedPage.rate_limits."""
    sim.update(rpm=100, tpm=50_000)
    page = await generator.generate(make_job(), timeout_s=5)
    limits = dict(page.rate_limits)
    assert limits["x-ratelimit-limit-requests"] == "100"
    assert limits["x-ratelimit-remaining-requests"] == "99"
    assert limits["x-ratelimit-limit-tokens"] == "50000"
    assert int(limits["x-ratelimit-remaining-tokens"]) < 50_000
    assert limits["x-ratelimit-reset-requests"].endswith("s")
    assert limits["x-ratelimit-reset-tokens"].endswith("s")
    assert set(limits) == {
        f"x-ratelimit-{what}-{kind}"
        for what in ("limit", "remaining", "reset")
        for kind in ("requests", "tokens")
    }


async def test_defaults_and_job_overrides_reach_the_request(
    generator: OpenAIPageGenerator, sent: list[dict[str, Any]]
) -> None:
    """Defaults are sent; a job's model, max_tokens and temperature override them."""
    await generator.generate(make_job(target_words=None), timeout_s=5)
    page = await generator.generate(
        make_job(model="gpt-4o", max_tokens=700, temperature=0.2), timeout_s=5
    )
    assert page.model == "gpt-4o"
    first, second = sent
    assert (first["model"], first["max_tokens"], first["temperature"]) == ("gpt-4o-mini", 1010, 0.7)
    assert (second["model"], second["max_tokens"], second["temperature"]) == ("gpt-4o", 700, 0.2)
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert "stream" not in first


async def test_max_tokens_grows_to_fit_target_words(
    generator: OpenAIPageGenerator, sent: list[dict[str, Any]]
) -> None:
    """Without a job max_tokens, the limit is sized from target_words: 1000 words, 1920 tokens."""
    await generator.generate(make_job(target_words=1000), timeout_s=5)
    assert sent[0]["max_tokens"] == 1920


async def test_max_completion_tokens_field(sim: Simulator) -> None:
    """max_tokens_field='max_completion_tokens' sends the limit under that name."""
    sent: list[dict[str, Any]] = []

    async def record(request: httpx2.Request) -> None:
        sent.append(json.loads(request.content))

    async with httpx2.AsyncClient(event_hooks={"request": [record]}) as http_client:
        client = AsyncOpenAI(
            api_key=KEY, base_url=sim.base_url, max_retries=0, http_client=http_client
        )
        gen = OpenAIPageGenerator(client=client, max_tokens_field="max_completion_tokens")
        await gen.generate(make_job(max_tokens=600), timeout_s=5)
        await gen.aclose()
    assert sent[0]["max_completion_tokens"] == 600
    assert "max_tokens" not in sent[0]


async def test_bad_key_costs_exactly_one_request(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """A 401 is PoolFatalError after one HTTP request: no retries inside the generator."""
    sim.update(bad_key=True)
    with pytest.raises(PoolFatalError):
        await generator.generate(make_job(), timeout_s=5)
    stats = sim.stats
    assert stats["requests"] == 1
    assert stats["by_status"] == {"401": 1}


async def test_server_error_costs_exactly_one_request(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """A 5xx, which the SDK would retry by default, is also one request: the pool retries."""
    sim.update(error_rate=1.0)
    with pytest.raises(RetryableError):
        await generator.generate(make_job(), timeout_s=5)
    assert sim.stats["requests"] == 1


async def test_retry_after_two_seconds_means_waiting_two_seconds(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """A real 429 with retry-after 2 gives retry_after_s=2.0; waiting that long is enough."""
    sim.update(rpm=1, rate_window_s=2.0, retry_hint="seconds")
    loop = asyncio.get_running_loop()
    await generator.generate(make_job(), timeout_s=5)
    started = loop.time()
    with pytest.raises(RetryableError) as caught:
        await generator.generate(make_job(), timeout_s=5)
    assert caught.value.retry_after_s == 2.0
    await asyncio.sleep(caught.value.retry_after_s)
    page = await generator.generate(make_job(), timeout_s=5)
    elapsed = loop.time() - started
    assert page.content
    assert 1.8 <= elapsed <= 3.5
    assert sim.stats["by_status"] == {"200": 2, "429": 1}


async def test_probe_with_bad_key_then_after_the_fix(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """probe() raises PoolFatalError while the key is bad and passes once it is fixed."""
    sim.update(bad_key=True)
    with pytest.raises(PoolFatalError) as caught:
        await generator.probe()
    assert caught.value.status == 401
    sim.update(bad_key=False)
    await generator.probe()


async def test_probe_detects_exhausted_quota(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """probe() is a completion, so it meets insufficient_quota (a model listing would not)."""
    sim.update(insufficient_quota=True)
    with pytest.raises(PoolFatalError) as caught:
        await generator.probe()
    assert caught.value.code == "insufficient_quota"
    sim.update(insufficient_quota=False)
    await generator.probe()


async def test_probe_detects_unknown_model(sim: Simulator) -> None:
    """probe() uses the configured model, so an unknown one stays pool-fatal."""
    client = AsyncOpenAI(api_key=KEY, base_url=sim.base_url, max_retries=0)
    gen = OpenAIPageGenerator(client=client, model="gpt-9-imaginary")
    with pytest.raises(PoolFatalError) as caught:
        await gen.probe()
    assert caught.value.status == 404
    sim.update(models=(*sim.config.models, "gpt-9-imaginary"))
    await gen.probe()
    await gen.aclose()


async def test_probe_while_the_api_is_down_is_retryable(
    sim: Simulator, generator: OpenAIPageGenerator
) -> None:
    """A 5xx during a probe is RetryableError: the API is down, not misconfigured."""
    sim.update(error_rate=1.0)
    with pytest.raises(RetryableError):
        await generator.probe()


async def test_probe_is_one_tiny_request(
    sim: Simulator, generator: OpenAIPageGenerator, sent: list[dict[str, Any]]
) -> None:
    """probe() sends one completion asking for a single token."""
    await generator.probe()
    assert sim.stats["requests"] == 1
    assert sent[0]["max_tokens"] == 1


async def test_client_that_retries_is_refused(sim: Simulator) -> None:
    """A client with SDK retries would stack a second retry layer: the constructor refuses it."""
    client = AsyncOpenAI(api_key=KEY, base_url=sim.base_url)
    try:
        with pytest.raises(ValueError, match="max_retries=0"):
            OpenAIPageGenerator(client=client)
    finally:
        await client.close()


async def test_from_settings_builds_a_working_generator(sim: Simulator, tmp_path: Path) -> None:
    """from_settings: key, base URL, model and template file from settings; no SDK retries."""
    template = tmp_path / "prompts.toml"
    template.write_text("user = 'Write the page titled \"{page_title}\", about 50 words.'")
    settings = GeneratorSettings(
        openai_api_key=KEY,
        openai_base_url=sim.base_url,
        openai_model="gpt-4.1-mini",
        prompt_template_file=template,
    )
    gen = OpenAIPageGenerator.from_settings(settings)
    try:
        assert KEY not in repr(gen)
        page = await gen.generate(make_job(), timeout_s=5)
        assert page.model == "gpt-4.1-mini"
        assert page.content.startswith("## Water")
    finally:
        await gen.aclose()
        await gen.aclose()  # safe twice


async def test_from_settings_without_key_is_a_config_error() -> None:
    """No OPENAI_API_KEY and no override: a ConfigError naming it (the CLI decides what then)."""
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIPageGenerator.from_settings(GeneratorSettings(openai_api_key=None))


async def test_from_settings_with_bad_template_is_a_config_error(tmp_path: Path) -> None:
    """A bad PROMPT_TEMPLATE_FILE fails at start-up, before any request."""
    template = tmp_path / "prompts.toml"
    template.write_text("user = '{nope}'")
    settings = GeneratorSettings(openai_api_key=KEY, prompt_template_file=template)
    with pytest.raises(ConfigError, match="unknown placeholder"):
        OpenAIPageGenerator.from_settings(settings)
