"""`OpenAIPageGenerator`: the pool's `PageGenerator` on the OpenAI chat completions API.

One `generate` call is one HTTP request: the client is created with `max_retries=0` because
the pool owns retries (STYLE.md, "Retries in exactly one layer"). Any OpenAI-compatible server
works through OPENAI_BASE_URL and OPENAI_MODEL.

What counts as a page, and what does not:

- `finish_reason == "length"`: the page was cut off at the token limit → `RetryableError`
  (code "length"). Unless the job set its own `maxTokens`, its next attempts ask for twice the
  limit (`pool.ratelimit.sizing.grown_max_tokens`, once); the pool bounds the attempts.
- empty or blank content → `RetryableError` (code "empty_content").
- `message.refusal` set → `JobFatalError` (code "refusal"): the model declined this brief, and
  asking again with the same brief spends tokens for the same answer.
- `finish_reason == "content_filter"` → `JobFatalError` (code "content_filter"), same reason.
- a 404 for a model the job asked for (not the default one) → `JobFatalError`: that job is
  wrong, the pool is fine; pausing the pool for it would stall every other ebook.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Self

import httpx2
import orjson
from loguru import logger
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletionMessageParam,
)

from generator.client import PageOpenAI
from generator.config import GeneratorSettings
from generator.errors import MALFORMED, classify_error
from generator.prompts import DEFAULT_PROMPTS, PromptTemplates, build_prompt, load_prompts
from generator.ratelimits import rate_limit_headers
from generator.transport import http_client
from pool.generation import (
    GeneratedPage,
    GenerationError,
    JobFatalError,
    PoolFatalError,
    RetryableError,
)
from pool.job import PageJob
from pool.ratelimit.cost import RequestCost
from pool.ratelimit.identity import ApiIdentity
from pool.ratelimit.sizing import grown_max_tokens, page_max_tokens
from pool.ratelimit.tokens import count_prompt_tokens
from pool.shared import ConfigError

__all__ = ["OpenAIPageGenerator"]

_DEFAULT_MAX_CONNECTIONS = 100  # when the caller does not say how many pages run at once
_DEFAULT_TARGET_WORDS = 500  # the length the prompts ask for when a job does not say
_GROWN_KEPT = 10_000  # jobs whose grown token limit this generator remembers
_PROBE_MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Reply with OK."}]


class OpenAIPageGenerator:
    """Writes one page per call with the chat completions API.

    Args:
        client: the API client, created with `max_retries=0`; this generator closes it in
            `aclose`.
        model: default model; a job's `model` overrides it.
        max_tokens: flat completion token limit; a job's `max_tokens` overrides it, and a job's
            `target_words` raises it if it needs more. None (the default): each page's limit
            is sized from its target length (`pool.ratelimit.sizing.page_max_tokens`).
        temperature: default sampling temperature; a job's `temperature` overrides it.
        max_tokens_field: "max_tokens" or "max_completion_tokens", the request field that
            carries the limit.
        prompts: the prompt templates (`load_prompts`).
        probe_timeout_s: timeout of one `probe` request.
        clock: monotonic seconds, for the latency of a call.
        wall_clock: Unix seconds, to read a `retry-after` HTTP date.
    """

    def __init__(
        self,
        *,
        client: AsyncOpenAI,
        model: str = "gpt-4o-mini",
        max_tokens: int | None = None,
        temperature: float = 0.7,
        max_tokens_field: str = "max_tokens",
        prompts: PromptTemplates = DEFAULT_PROMPTS,
        probe_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.perf_counter,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if client.max_retries != 0:
            raise ValueError(
                f"the openai client retries by itself (max_retries={client.max_retries}); "
                "create it with max_retries=0, the pool owns retries"
            )
        if max_tokens_field not in ("max_tokens", "max_completion_tokens"):
            raise ValueError(
                f"max_tokens_field must be max_tokens or max_completion_tokens, not {max_tokens_field!r}"
            )
        self._client = client
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_tokens_field = max_tokens_field
        self.prompts = prompts
        self.probe_timeout_s = probe_timeout_s
        self._clock = clock
        self._wall_clock = wall_clock
        key = getattr(client, "api_key", None)
        self._secrets: tuple[str, ...] = (key,) if isinstance(key, str) and key else ()
        self._closed = False
        # Jobs cut off at their limit: job id -> the larger limit of their next attempts.
        self._grown: OrderedDict[str, int] = OrderedDict()
        # Absolute, so that the SDK parses it once instead of joining it to base_url each time.
        self._completions_url = f"{str(client.base_url).rstrip('/')}/chat/completions"
        self._post: Callable[..., Awaitable[httpx2.Response]] = (
            client.post_bytes if isinstance(client, PageOpenAI) else partial(_sdk_post, client)
        )

    @classmethod
    def from_settings(
        cls,
        settings: GeneratorSettings,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_connections: int | None = None,
    ) -> Self:
        """Build the client and the generator from settings (the CLI's job).

        Args:
            settings: the generator settings; PROMPT_TEMPLATE_FILE is loaded and checked here.
            api_key: used instead of OPENAI_API_KEY (e.g. a placeholder for the simulator).
            base_url: used instead of OPENAI_BASE_URL (e.g. the simulator's URL).
            max_connections: size of the HTTP connection pool, kept alive between pages; pass
                CONCURRENT_WORKERS so that no worker waits for a connection (the SDK's
                default is 1000 connections, of which it keeps only 100 alive).

        Raises:
            ConfigError: no API key, or a bad prompt template.
        """
        if api_key is None and settings.openai_api_key is not None:
            api_key = settings.openai_api_key.get_secret_value()
        if not api_key:
            raise ConfigError("OPENAI_API_KEY: not set")
        prompts = load_prompts(settings.prompt_template_file)
        client = PageOpenAI(
            api_key=api_key,
            base_url=base_url or settings.openai_base_url,
            organization=settings.openai_organization,
            project=settings.openai_project,
            max_retries=0,
            http_client=http_client(max_connections or _DEFAULT_MAX_CONNECTIONS),
        )
        return cls(
            client=client,
            model=settings.openai_model,
            max_tokens=settings.openai_max_tokens,
            temperature=settings.openai_temperature,
            max_tokens_field=settings.openai_max_tokens_field,
            prompts=prompts,
            probe_timeout_s=settings.probe_timeout_s,
        )

    def __repr__(self) -> str:
        return f"OpenAIPageGenerator(model={self.model!r}, base_url={str(self._client.base_url)!r})"

    @property
    def api_identity(self) -> ApiIdentity:
        """The API this generator calls, as the rate-limit budgets key it (no key inside)."""
        key = self._client.api_key if isinstance(self._client.api_key, str) else ""
        return ApiIdentity.of(str(self._client.base_url), key)

    def request_cost(self, job: PageJob) -> RequestCost:
        """What the next request for `job` will cost the rate limits: model, prompt, max_tokens.

        The same model, limit and prompt `generate` will send (prompt tokens counted with the
        model's vocabulary, see `pool.ratelimit.tokens`).
        """
        model = job.model or self.model
        max_tokens = self._max_tokens_of(job)
        prompt = build_prompt(job, max_tokens=max_tokens, prompts=self.prompts)
        messages = [("system", prompt.system), ("user", prompt.user)]
        return RequestCost(model, count_prompt_tokens(messages, model), max_tokens)

    def request_key(self, job: PageJob) -> str:
        """The hex SHA-256 of the request `generate` would send for `job` (model, messages,
        token limit and its field, temperature), canonical JSON: the result cache's key."""
        model, messages, max_tokens, temperature = self._request_of(job)
        body = {
            "model": model,
            "messages": messages,
            self.max_tokens_field: max_tokens,
            "temperature": temperature,
        }
        canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()

    def _request_of(self, job: PageJob) -> tuple[str, list[ChatCompletionMessageParam], int, float]:
        model = job.model or self.model
        max_tokens = self._max_tokens_of(job)
        temperature = job.temperature if job.temperature is not None else self.temperature
        prompt = build_prompt(job, max_tokens=max_tokens, prompts=self.prompts)
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": prompt.user},
        ]
        return model, messages, max_tokens, temperature

    async def generate(self, job: PageJob, *, timeout_s: float) -> GeneratedPage:
        """Write one page with one HTTP request; raise a `GenerationError` if it fails.

        Args:
            job: the page to write.
            timeout_s: deadline of the whole request (connect, wait and read).
        """
        model, max_tokens, content = self._encoded_request_of(job)
        started = self._clock()
        try:
            completion, headers = await self._complete(content, timeout_s=timeout_s)
        except GenerationError as err:
            raise self._for_job(err, job) from None
        latency_s = self._clock() - started
        try:
            page = _page_from(
                completion,
                model=model,
                max_tokens=max_tokens,
                latency_s=latency_s,
                rate_limits=rate_limit_headers(headers),
            )
        except RetryableError as err:
            raise self._after_cut(err, job, max_tokens) from None
        self._grown.pop(job.id, None)
        logger.debug(
            "page {}/{} of {} written by {} in {:.2f}s ({} tokens)",
            job.page_index + 1,
            job.total_pages,
            job.ebook_id,
            page.model,
            latency_s,
            page.completion_tokens,
        )
        return page

    async def probe(self) -> None:
        """Check with a 1-token completion that the key, the model and the quota work again.

        A completion, not a model listing: only a completion meets `insufficient_quota`.
        Raises `PoolFatalError` while any of them is broken and `RetryableError` while the API
        is just unavailable. A 400-class rejection of the probe's own tiny request passes: the
        key, the model and the quota were accepted.
        """
        try:
            await self._complete(
                self._encode(self.model, _PROBE_MESSAGES, limit=1, temperature=None),
                timeout_s=self.probe_timeout_s,
            )
        except JobFatalError as err:
            logger.warning("probe request rejected, treating the API as usable: {}", err.reason)

    async def aclose(self) -> None:
        """Close the HTTP client. Safe to call twice."""
        if not self._closed:
            self._closed = True
            await self._client.close()

    def _encoded_request_of(self, job: PageJob) -> tuple[str, int, bytes]:
        """Model, token limit and the request body for `job`, encoded: a page waiting for its
        answer holds the bytes, not the prompt strings as well."""
        model, messages, max_tokens, temperature = self._request_of(job)
        return model, max_tokens, self._encode(model, messages, max_tokens, temperature)

    def _encode(
        self,
        model: str,
        messages: list[ChatCompletionMessageParam],
        limit: int,
        temperature: float | None,
    ) -> bytes:
        body: dict[str, Any] = {"model": model, "messages": messages, self.max_tokens_field: limit}
        if temperature is not None:
            body["temperature"] = temperature
        return _json_body(body)

    async def _complete(
        self, content: bytes, *, timeout_s: float
    ) -> tuple[dict[str, Any], httpx2.Headers]:
        """One chat completion request: the answer's JSON and its headers, or a pool error.

        The body comes encoded (orjson) and is posted as bytes (`client.post(content=...)`, the
        SDK's way to make a request it has no method for; `PageOpenAI.post_bytes`, the same
        request built once per URL and timeout, when the client is one), and the answer read
        as plain JSON: `chat.completions.create` would spend more CPU walking its typed
        parameters and building response models than the rest of the request, which shows at
        a thousand pages in flight. Errors, timeouts and headers go through the SDK exactly as
        with `create`.
        """
        try:
            # The SDK's timeout bounds each network phase; asyncio.timeout bounds their sum.
            async with asyncio.timeout(timeout_s):
                response = await self._post(self._completions_url, content, timeout_s=timeout_s)
                data = orjson.loads(await response.aread())
        except orjson.JSONDecodeError as exc:  # a 2xx whose body is not JSON
            raise RetryableError(
                f"{MALFORMED}: the answer is not JSON ({exc})", status=200, code=MALFORMED
            ) from None
        except Exception as exc:
            raise self._classify(exc, timeout_s=timeout_s) from None
        if not isinstance(data, dict):
            raise RetryableError(
                f"{MALFORMED}: the answer is JSON {type(data).__name__}, not a chat completion",
                status=response.status_code,
                code=MALFORMED,
            )
        return data, response.headers

    def _classify(self, exc: Exception, *, timeout_s: float) -> GenerationError:
        return classify_error(
            exc, secrets=self._secrets, now_s=self._wall_clock(), timeout_s=timeout_s
        )

    def _max_tokens_of(self, job: PageJob) -> int:
        if job.max_tokens is not None:
            return job.max_tokens
        grown = self._grown.get(job.id)
        if grown is not None:
            return grown
        if self.max_tokens is None:
            return page_max_tokens(job.target_words or _DEFAULT_TARGET_WORDS)
        if job.target_words is not None:
            return max(self.max_tokens, page_max_tokens(job.target_words))
        return self.max_tokens

    def _after_cut(self, err: RetryableError, job: PageJob, max_tokens: int) -> RetryableError:
        """A page cut off at a limit we chose gets a larger one, once, for its next attempts."""
        if err.code != "length" or job.max_tokens is not None or job.id in self._grown:
            return err
        grown = grown_max_tokens(max_tokens)
        self._grown[job.id] = grown
        while len(self._grown) > _GROWN_KEPT:
            self._grown.popitem(last=False)
        grown_err = RetryableError(
            f"{err.reason}; the next attempt asks for max_tokens={grown}",
            status=err.status,
            code=err.code,
        )
        grown_err.next_max_tokens = grown  # the pool carries it to other processes
        # The cut answer was billed: its usage stays on the error the ledger reads.
        grown_err.prompt_tokens, grown_err.completion_tokens = (
            err.prompt_tokens,
            err.completion_tokens,
        )
        return grown_err

    def _for_job(self, err: GenerationError, job: PageJob) -> GenerationError:
        # An unknown model that only this job asked for is this job's problem, not the pool's.
        if (
            isinstance(err, PoolFatalError)
            and err.status == 404
            and job.model is not None
            and job.model != self.model
        ):
            return JobFatalError(
                f"the job's model {job.model!r} was not found: {err.reason}",
                status=err.status,
                code=err.code,
            )
        return err


def _page_from(
    completion: dict[str, Any],
    *,
    model: str,
    max_tokens: int,
    latency_s: float = 0.0,
    rate_limits: dict[str, str] | None = None,
) -> GeneratedPage:
    """The page in a completion's JSON, or the error that says why there is none.

    An error for an answer the API billed (cut off, empty, refused, filtered) carries its usage
    (`GenerationError.prompt_tokens` / `completion_tokens`): the ledger counts it as wasted.
    """
    usage = completion.get("usage")
    if not isinstance(usage, dict):
        usage = {}
    prompt_tokens = _int(usage.get("prompt_tokens"))
    completion_tokens = _int(usage.get("completion_tokens"))
    try:
        return _page_or_error(
            completion,
            model=model,
            max_tokens=max_tokens,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=latency_s,
            rate_limits=rate_limits if rate_limits is not None else {},
        )
    except GenerationError as err:
        err.prompt_tokens, err.completion_tokens = prompt_tokens, completion_tokens
        raise


def _page_or_error(
    completion: dict[str, Any],
    *,
    model: str,
    max_tokens: int,
    prompt_tokens: int,
    completion_tokens: int,
    latency_s: float,
    rate_limits: dict[str, str],
) -> GeneratedPage:
    # Compatible servers differ in what they omit: read leniently, fail only without a message.
    try:
        choice = completion["choices"][0]
        message = choice["message"]
        content = message.get("content")
        refusal = message.get("refusal")
        finish_reason = choice.get("finish_reason")
    except (AttributeError, IndexError, TypeError, KeyError):
        raise RetryableError(
            f"{MALFORMED}: the answer has no choices[0].message", code=MALFORMED
        ) from None
    if refusal:
        raise JobFatalError(
            f"refusal: the model declined to write the page: {str(refusal)[:200]}", code="refusal"
        )
    if finish_reason == "content_filter":
        raise JobFatalError(
            "content_filter: the page was withheld by the content filter", code="content_filter"
        )
    if finish_reason == "length":
        raise RetryableError(
            f"length: the page was cut off at the token limit (max_tokens={max_tokens})",
            code="length",
        )
    if not isinstance(content, str) or not content.strip():
        raise RetryableError("empty_content: the answer has no text", code="empty_content")
    return GeneratedPage(
        content=content.strip(),
        model=str(completion.get("model") or model),
        finish_reason=str(finish_reason or "stop"),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_s=latency_s,
        rate_limits=rate_limits,
    )


async def _sdk_post(
    client: AsyncOpenAI, url: str, content: bytes, *, timeout_s: float
) -> httpx2.Response:
    """What `PageOpenAI.post_bytes` does, on any `AsyncOpenAI`: the SDK's `post`."""
    response: httpx2.Response = await client.post(
        url, content=content, cast_to=httpx2.Response, options={"timeout": timeout_s}
    )
    return response


def _json_body(body: dict[str, Any]) -> bytes:
    """`body` as JSON bytes; orjson refuses a lone UTF-16 surrogate, which json escapes.

    orjson's bytes keep the capacity of its output buffer (8 KiB for a 1 KiB body, measured
    with tracemalloc), and a page holds its body until the answer comes: a copy of the
    right size is what each waiting page keeps.
    """
    try:
        encoded = orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body).encode()
    return bytes(memoryview(encoded))


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0
