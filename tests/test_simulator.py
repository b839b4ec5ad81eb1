"""The OpenAI simulator: its config, limits, text, HTTP shapes, control endpoints and process."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from generator.simulator import Simulator, SimulatorConfig, main, replace_config
from generator.simulator.faults import Fault, Kind, find_marker
from generator.simulator.limiter import RateLimiter, format_duration
from generator.simulator.text import count_tokens, find_page_title, write_page

AUTH = {"Authorization": "Bearer sk-sim-test"}
CHAT = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "Write about 80 words."},
        {"role": "user", "content": 'Write the page titled "Rivers".'},
    ],
    "max_tokens": 400,
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(jitter=0.0)) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post_chat(
    http: aiohttp.ClientSession, sim: Simulator, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any], Any]:
    async with http.post(
        f"{sim.base_url}/chat/completions", json=body or CHAT, headers=AUTH
    ) as resp:
        headers = {name.lower(): value for name, value in resp.headers.items()}
        return resp.status, headers, await resp.json()


# -- config ---------------------------------------------------------------------------------


def test_replace_config_parses_cli_strings_and_json_values() -> None:
    """The same field names take CLI strings and JSON values."""
    config = replace_config(
        SimulatorConfig(),
        {
            "rpm": "60",
            "tpm": None,
            "bad_key": "true",
            "models": "a, b",
            "latency_s": 1,
            "retry_hint": "ms",
        },
    )
    assert (config.rpm, config.tpm, config.bad_key, config.models) == (60, None, True, ("a", "b"))
    assert (config.latency_s, config.retry_hint) == (1.0, "ms")
    assert replace_config(config, {"rpm": "none", "models": []}).rpm is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rmp": 5}, "unknown setting(s) ['rmp']"),
        ({"rpm": "many"}, "rpm"),
        ({"bad_key": "maybe"}, "bad_key must be true or false"),
        ({"error_rate": 1.5}, "error_rate must be between 0 and 1"),
        ({"error_rate": 0.6, "hang_rate": 0.6}, "add up to 1.2"),
        ({"retry_hint": "later"}, "retry_hint must be one of"),
        ({"rpm": 0}, "rpm must be >= 1"),
    ],
)
def test_replace_config_rejects_bad_values(changes: dict[str, Any], message: str) -> None:
    """A bad setting is a one-line ValueError naming it."""
    with pytest.raises(ValueError, match=re.escape(message)):
        replace_config(SimulatorConfig(), changes)


# -- rate limiter ---------------------------------------------------------------------------


def test_limiter_refuses_then_refills() -> None:
    """rpm requests pass at once, the next waits window/rpm, and passes after that."""
    now = [100.0]
    limiter = RateLimiter(rpm=3, tpm=None, window_s=60.0, clock=lambda: now[0])
    assert all(limiter.admit(0).allowed for _ in range(3))
    refused = limiter.admit(0)
    assert not refused.allowed
    assert refused.limit_kind == "requests"
    assert refused.wait_s == pytest.approx(20.0)
    assert refused.headers is not None
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "1m0s"
    now[0] += 20.0
    assert limiter.admit(0).allowed


def test_limiter_counts_tokens_and_refuses_what_never_fits() -> None:
    """Tokens come out of the tpm bucket; a request larger than the bucket waits forever."""
    limiter = RateLimiter(rpm=None, tpm=1000, window_s=60.0, clock=lambda: 0.0)
    assert limiter.admit(600).allowed
    refused = limiter.admit(600)
    assert (refused.allowed, refused.limit_kind) == (False, "tokens")
    assert refused.wait_s == pytest.approx(200 / (1000 / 60))
    assert limiter.admit(5000).wait_s == float("inf")
    assert limiter.headers()["x-ratelimit-remaining-tokens"] == "400"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.02, "20ms"),
        (0.9994, "1000ms"),
        (1.5, "1.5s"),
        (1.98765, "1.988s"),
        (360, "6m0s"),
        (3725, "1h2m5s"),
    ],
)
def test_format_duration_like_openai(seconds: float, text: str) -> None:
    """Durations are printed the way OpenAI's headers print them."""
    assert format_duration(seconds) == text


# -- text and markers -----------------------------------------------------------------------


def test_page_text_is_deterministic_and_follows_the_prompt() -> None:
    """Same seed and prompt, same page; heading from the title; length from 'about N words'."""
    prompt = 'Write about 300 words.\n\nWrite the page titled "Rivers and Lakes".'
    one = write_page(prompt, max_tokens=2000, seed=1)
    assert one == write_page(prompt, max_tokens=2000, seed=1)
    assert one != write_page(prompt, max_tokens=2000, seed=2)
    assert one.text.startswith("## Rivers and Lakes\n\n")
    assert 300 <= len(one.text.split()) <= 400
    assert one.tokens == count_tokens(one.text)
    assert not one.truncated


def test_page_text_is_cut_at_max_tokens() -> None:
    """A page that does not fit max_tokens is cut there and marked truncated."""
    page = write_page("Write about 900 words.", max_tokens=200, seed=0)
    assert page.truncated
    assert page.tokens <= 200


def test_page_title_fallbacks() -> None:
    """Title from 'titled "…"', else a Markdown heading, else 'Page N', else generic."""
    assert find_page_title("## Brewing\nmore") == "Brewing"
    assert find_page_title("This is page 4 of 9.") == "Page 4"
    assert find_page_title("hello") == "A New Page"


def test_markers() -> None:
    """[sim:NAME] and [sim:status=NNN(:code)] pick a fault; anything else is ignored."""
    assert find_marker("x [sim:hang] y") == Fault(Kind.HANG)
    assert find_marker("[sim:status=409]") == Fault(Kind.STATUS, status=409)
    assert find_marker("[sim:status=400:bad_value]") == Fault(
        Kind.STATUS, status=400, code="bad_value"
    )
    assert find_marker("[sim:nonsense] [sim:drop]") == Fault(Kind.DROP)
    assert find_marker("[sim:status=200]") is None


# -- HTTP -----------------------------------------------------------------------------------


async def test_completion_is_shaped_like_openai(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """id, object, created, model, choices[{index, message{role, content}, finish_reason}], usage."""
    status, headers, body = await post_chat(http, sim)
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert headers["x-request-id"].startswith("req_")
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == "gpt-4o-mini"
    (choice,) = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("## Rivers")
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_errors_are_shaped_like_openai(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """Errors are {"error": {message, type, param, code}}; missing key, bad JSON, unknown URL."""
    async with http.post(f"{sim.base_url}/chat/completions", json=CHAT) as resp:
        assert resp.status == 401
        assert set((await resp.json())["error"]) == {"message", "type", "param", "code"}
    async with http.post(f"{sim.base_url}/chat/completions", data=b"{nope", headers=AUTH) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["type"] == "invalid_request_error"
    async with http.get(f"{sim.base_url}/embeddings", headers=AUTH) as resp:
        assert resp.status == 404
        assert "Invalid URL" in (await resp.json())["error"]["message"]
    status, _, body = await post_chat(http, sim, {**CHAT, "model": "gpt-9"})
    assert (status, body["error"]["code"]) == (404, "model_not_found")


async def test_fault_answers(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """Markers give a cut page, empty content, a refusal, a filtered or malformed answer."""

    def asking(marker: str) -> dict[str, Any]:
        user = {"role": "user", "content": f'Write the page titled "Rivers". {marker}'}
        return {**CHAT, "messages": [CHAT["messages"][0], user]}

    _, _, whole = await post_chat(http, sim, asking(""))
    full_text = whole["choices"][0]["message"]["content"]
    _, _, cut = await post_chat(http, sim, asking("[sim:truncated]"))
    assert cut["choices"][0]["finish_reason"] == "length"
    assert len(cut["choices"][0]["message"]["content"]) < len(full_text)
    assert cut["usage"]["completion_tokens"] < whole["usage"]["completion_tokens"]
    _, _, empty = await post_chat(http, sim, asking("[sim:empty]"))
    assert (empty["choices"][0]["message"]["content"], empty["choices"][0]["finish_reason"]) == (
        "",
        "stop",
    )
    _, _, refusal = await post_chat(http, sim, asking("[sim:refusal]"))
    assert refusal["choices"][0]["message"]["content"] is None
    assert refusal["choices"][0]["message"]["refusal"]
    _, _, filtered = await post_chat(http, sim, asking("[sim:content_filter]"))
    assert filtered["choices"][0]["finish_reason"] == "content_filter"
    _, _, no_choices = await post_chat(http, sim, asking("[sim:no_choices]"))
    assert "choices" not in no_choices and no_choices["object"] == "chat.completion"
    async with http.post(
        f"{sim.base_url}/chat/completions", json=asking("[sim:malformed]"), headers=AUTH
    ) as resp:
        assert resp.status == 200
        with pytest.raises(ValueError):
            json.loads(await resp.text())
    assert sim.stats["by_kind"] == {
        "ok": 1,
        "truncated": 1,
        "empty": 1,
        "refusal": 1,
        "content_filter": 1,
        "no_choices": 1,
        "malformed": 1,
    }


async def test_ratelimit_headers_on_every_answer(
    sim: Simulator, http: aiohttp.ClientSession
) -> None:
    """With limits set, every /v1 answer has x-ratelimit-*, errors included."""
    sim.update(rpm=10, tpm=100_000)
    _, ok, _ = await post_chat(http, sim)
    _, missing_model, _ = await post_chat(http, sim, {**CHAT, "model": "gpt-9"})
    async with http.get(f"{sim.base_url}/models", headers=AUTH) as resp:
        models = {name.lower(): value for name, value in resp.headers.items()}
    sim.update(bad_key=True)
    _, bad_key, _ = await post_chat(http, sim)
    for headers in (ok, missing_model, models, bad_key):
        assert headers["x-ratelimit-limit-requests"] == "10"
        assert headers["x-ratelimit-limit-tokens"] == "100000"
    assert ok["x-ratelimit-remaining-requests"] == "9"


async def test_streaming_with_the_sdk(sim: Simulator) -> None:
    """stream=True: SSE chunks the SDK reads, the same text as without streaming, then usage."""
    async with AsyncOpenAI(api_key="sk-sim", base_url=sim.base_url, max_retries=0) as client:
        whole = await client.chat.completions.create(**CHAT)
        stream = await client.chat.completions.create(
            **CHAT, stream=True, stream_options={"include_usage": True}
        )
        pieces, finish, usage = [], None, None
        async for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
            usage = chunk.usage or usage
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == "stop"
    assert usage is not None
    assert whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens


async def test_models_endpoints(sim: Simulator) -> None:
    """GET /v1/models lists the configured models; /v1/models/{id} finds one or 404s."""
    async with AsyncOpenAI(api_key="sk-sim", base_url=sim.base_url, max_retries=0) as client:
        listed = [m.id for m in (await client.models.list()).data]
        assert listed == list(sim.config.models)
        assert (await client.models.retrieve("gpt-4o")).id == "gpt-4o"
        with pytest.raises(openai.NotFoundError, match="does not exist"):
            await client.models.retrieve("gpt-9")


async def test_latency_is_applied(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """latency_s + latency_per_token_s x tokens delays the answer."""
    sim.update(latency_s=0.2, latency_per_token_s=0.0005)
    loop = asyncio.get_running_loop()
    started = loop.time()
    _, _, body = await post_chat(http, sim)
    expected = 0.2 + 0.0005 * body["usage"]["completion_tokens"]
    assert expected * 0.95 <= loop.time() - started < expected + 1.0


async def test_control_endpoints(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """POST /_sim/config flips switches for another process; /_sim/stats reports and resets."""
    async with http.post(f"{sim.url}/_sim/config", json={"bad_key": True, "rpm": 5}) as resp:
        assert resp.status == 200
        assert (await resp.json())["bad_key"] is True
    assert sim.config.bad_key and sim.config.rpm == 5
    status, _, _ = await post_chat(http, sim)
    assert status == 401
    async with http.post(f"{sim.url}/_sim/config", json={"error_rate": 7}) as resp:
        assert resp.status == 400
        assert "error_rate" in (await resp.json())["error"]
    async with http.get(f"{sim.url}/_sim/config") as resp:
        assert (await resp.json())["rpm"] == 5
    async with http.get(f"{sim.url}/_sim/stats") as resp:
        stats = await resp.json()
    assert stats["requests"] == 1
    assert stats["by_status"] == {"401": 1}
    assert stats["by_kind"] == {"bad_key": 1}
    async with http.post(f"{sim.url}/_sim/stats/reset") as resp:
        assert (await resp.json())["requests"] == 0
    assert sim.stats["requests"] == 0


async def test_stop_ends_hanging_requests(http: aiohttp.ClientSession) -> None:
    """stop() does not wait for a hang to run its course; the client sees a dropped connection."""
    sim = Simulator(SimulatorConfig(hang_rate=1.0, hang_s=60))
    await sim.start()
    request = asyncio.ensure_future(post_chat(http, sim))
    await sim.wait_for_requests(1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sim.stop()
    assert loop.time() - started < 2.0
    with pytest.raises(aiohttp.ClientError):
        await request
    assert sim.stats["by_kind"] == {"hang": 1}
    await sim.stop()  # safe twice


async def test_thousand_concurrent_requests(sim: Simulator) -> None:
    """1000 requests at once, each held 0.5 s, are all answered, concurrently."""
    sim.update(latency_s=0.5)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        loop = asyncio.get_running_loop()
        started = loop.time()
        results = await asyncio.gather(*(post_chat(http, sim) for _ in range(1000)))
        elapsed = loop.time() - started
    assert all(status == 200 for status, _, _ in results)
    assert sim.stats["max_in_flight"] >= 500
    assert elapsed < 10


# -- the process ----------------------------------------------------------------------------


def test_main_rejects_a_bad_flag_value(capsys: pytest.CaptureFixture[str]) -> None:
    """A bad value exits 2 with one line naming the setting, before listening."""
    assert main(["--error-rate", "2"]) == 2
    assert "error_rate must be between 0 and 1" in capsys.readouterr().err


async def test_runs_as_its_own_process() -> None:
    """python -m generator.simulator prints its URL, applies flags, and stops on SIGTERM."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "generator.simulator",
        "--port",
        "0",
        "--rpm",
        "7",
        "--bad-key",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        assert line.startswith("OPENAI_BASE_URL=http://127.0.0.1:")
        base_url = line.removeprefix("OPENAI_BASE_URL=")
        root = base_url.removesuffix("/v1")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{root}/_sim/config") as resp:
                config = await resp.json()
            async with http.post(f"{base_url}/chat/completions", json=CHAT, headers=AUTH) as resp:
                assert resp.status == 401
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 10)
    assert (config["rpm"], config["bad_key"]) == (7, True)
    assert code == 0


# -- OpenAI-like limits: a 10 s bucket, refused requests counted ----------------------------


def test_limiter_bucket_holds_part_of_the_window() -> None:
    """rpm=60 with a 10 s bucket: a burst of 10, then one a second; headers say the minute."""
    now = [0.0]
    limiter = RateLimiter(rpm=60, tpm=None, window_s=60.0, bucket_s=10.0, clock=lambda: now[0])
    assert sum(limiter.admit(0).allowed for _ in range(12)) == 10
    refused = limiter.admit(0)
    assert (refused.allowed, refused.wait_s) == (False, pytest.approx(1.0))
    assert refused.headers is not None
    assert refused.headers["x-ratelimit-limit-requests"] == "60"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-reset-requests"] == "10s"
    now[0] += 1.0
    assert limiter.admit(0).allowed
    assert not limiter.admit(0).allowed


def test_limiter_counts_refused_requests() -> None:
    """count_refused: each refusal takes its unit, and its retry hint includes that."""
    now = [0.0]
    limiter = RateLimiter(
        rpm=60, tpm=None, window_s=60.0, bucket_s=2.0, count_refused=True, clock=lambda: now[0]
    )
    assert limiter.admit(0).allowed and limiter.admit(0).allowed
    first = limiter.admit(0)  # the bucket owes one now: two seconds until one passes
    assert (first.allowed, first.wait_s) == (False, pytest.approx(2.0))
    second = limiter.admit(0)  # owes two (at most one bucket): three seconds
    assert second.wait_s == pytest.approx(3.0)
    assert limiter.admit(0).wait_s == pytest.approx(3.0)  # debt stops at one bucket
    now[0] += 2.9
    assert not limiter.admit(0).allowed  # hammering keeps it refused
    now[0] += 3.0
    assert limiter.admit(0).allowed


def test_limiter_large_requests_within_the_limit_pass_when_full() -> None:
    """A request larger than the 10 s bucket but within the TPM passes when the bucket is full."""
    now = [0.0]
    limiter = RateLimiter(rpm=None, tpm=6_000, window_s=60.0, bucket_s=10.0, clock=lambda: now[0])
    assert limiter.admit(1_500).allowed  # the bucket holds 1,000: now 500 in debt
    refused = limiter.admit(100)
    assert refused.wait_s == pytest.approx(6.0)  # 600 tokens at 100 a second
    assert limiter.admit(6_001).wait_s == float("inf")
    now[0] += 15.0
    assert limiter.admit(1_500).allowed


async def test_openai_like_limits_over_http(sim: Simulator, http: aiohttp.ClientSession) -> None:
    """rate_bucket_s and count_refused from /_sim/config: 429 bodies and headers like OpenAI's."""
    async with http.post(
        f"{sim.url}/_sim/config",
        json={"rpm": 60, "tpm": 600_000, "rate_bucket_s": 2, "count_refused": True},
    ) as resp:
        assert resp.status == 200
    statuses = [(await post_chat(http, sim))[0] for _ in range(2)]
    status, headers, body = await post_chat(http, sim)
    assert statuses == [200, 200] and status == 429
    assert body["error"]["code"] == "rate_limit_exceeded" and body["error"]["type"] == "requests"
    assert "Limit 60, Requested 1" in body["error"]["message"]
    assert headers["x-ratelimit-limit-requests"] == "60"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert int(headers["retry-after-ms"]) > 1_900  # the refused request was counted too
    assert sim.config.rate_bucket_s == 2.0 and sim.config.count_refused


def test_rate_bucket_must_be_positive() -> None:
    """rate_bucket_s 0 is refused with a one-line message naming it."""
    with pytest.raises(ValueError, match="rate_bucket_s must be > 0"):
        replace_config(SimulatorConfig(), {"rate_bucket_s": "0"})
