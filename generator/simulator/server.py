"""`Simulator`: an OpenAI-compatible HTTP server on aiohttp, with rate limits and faults.

The real openai SDK talks to it unchanged::

    async with Simulator(SimulatorConfig(rpm=60)) as sim:
        client = AsyncOpenAI(api_key="sk-sim", base_url=sim.base_url, max_retries=0)
        ...
        sim.update(bad_key=True)          # flip a switch at runtime
        assert sim.stats["by_status"] == {"200": 3, "401": 1}

Endpoints: `POST /v1/chat/completions` (also `stream: true`), `GET /v1/models`,
`GET /v1/models/{id}`; control: `GET /_sim/stats`, `POST /_sim/stats/reset`,
`GET /_sim/config`, `POST /_sim/config` (a JSON object of the fields to change).

Order of checks for a completion: key (401), body (400), permission (403), model (404),
quota (429 insufficient_quota), rate limits (429 rate_limit_exceeded), then a `[sim:...]`
marker in the prompt, the context window (400), a random fault, and finally the page.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from loguru import logger

import generator.simulator.bodies as bodies
from generator.simulator.config import SimulatorConfig, replace_config
from generator.simulator.faults import Fault, Kind, draw_fault, find_marker
from generator.simulator.limiter import RateLimiter
from generator.simulator.responses import KIND as _KIND
from generator.simulator.responses import RATE_HEADERS as _RATE_HEADERS
from generator.simulator.responses import TOKENS as _TOKENS
from generator.simulator.responses import Answers
from generator.simulator.stats import SimulatorStats, StatsRecorder
from generator.simulator.text import count_tokens

__all__ = ["Simulator"]

_DEFAULT_MAX_TOKENS = 4096
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Simulator(Answers):
    """A simulated OpenAI API, in-process or as the body of `run_simulator`.

    Args:
        config: initial behaviour; change it later with `update`.
        host: interface to listen on.
        port: port to listen on; 0 picks a free one (see `base_url` after `start`).
        clock: monotonic seconds, for the rate limits.
        shutdown_timeout_s: on `stop`, how long answers in progress may take to finish.
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        shutdown_timeout_s: float = 1.0,
    ) -> None:
        self._config = config or SimulatorConfig()
        self._host = host
        self._port = port
        self._clock = clock
        self._shutdown_timeout_s = shutdown_timeout_s
        self._limiter = self._new_limiter(self._config)
        self._rng = random.Random(self._config.seed)
        self._stats = StatsRecorder()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    # -- control -------------------------------------------------------------------------

    @property
    def config(self) -> SimulatorConfig:
        """The behaviour now."""
        return self._config

    def update(self, **changes: Any) -> SimulatorConfig:
        """Change some settings now, e.g. `update(bad_key=True)`; returns the new config.

        Setting rpm, tpm, rate_window_s, rate_bucket_s or count_refused (even to the same
        value) starts the rate limits afresh, full; setting seed restarts the fault draws. Raises ValueError (one line,
        naming the field) for a bad value.
        """
        new = replace_config(self._config, changes)
        self._config = new
        if {"rpm", "tpm", "rate_window_s", "rate_bucket_s", "count_refused"} & set(changes):
            self._limiter = self._new_limiter(new)
        if "seed" in changes:
            self._rng = random.Random(new.seed)
        return new

    @property
    def stats(self) -> SimulatorStats:
        """What was served since start or the last `reset_stats`."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Start counting from zero."""
        self._stats.reset()

    async def wait_for_requests(self, count: int) -> None:
        """Return once `stats["requests"]` has reached `count` (for tests and benchmarks)."""
        if self._stats.snapshot()["requests"] >= count:
            return
        arrived = asyncio.get_running_loop().create_future()
        self._waiters.append((count, arrived))
        await arrived

    @property
    def url(self) -> str:
        """Root URL of the running server, e.g. http://127.0.0.1:50123."""
        if self._url is None:
            raise RuntimeError("the simulator is not running; call start() first")
        return self._url

    @property
    def base_url(self) -> str:
        """The URL to give the openai SDK (OPENAI_BASE_URL): the root URL + /v1."""
        return f"{self.url}/v1"

    # -- lifecycle -----------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application (routes and the counting middleware)."""
        app = web.Application(middlewares=[self._count])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model}", self._model)
        app.router.add_route("*", "/v1/{tail:.*}", self._unknown)
        app.router.add_get("/_sim/stats", self._get_stats)
        app.router.add_post("/_sim/stats/reset", self._reset_stats)
        app.router.add_get("/_sim/config", self._get_config)
        app.router.add_post("/_sim/config", self._post_config)
        return app

    async def start(self) -> str:
        """Start listening; returns `base_url`."""
        if self._runner is not None:
            return self.base_url
        self._stopping.clear()
        runner = web.AppRunner(
            self.app(),
            access_log=None,
            handler_cancellation=True,  # a client that gives up cancels its handler
            shutdown_timeout=self._shutdown_timeout_s,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port, backlog=4096)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        self._url = f"http://{host}:{port}"
        logger.info("OpenAI simulator listening on {}", self.base_url)
        return self.base_url

    async def stop(self) -> None:
        """Stop listening and end hanging answers. Safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping.set()
        for _count, arrived in self._waiters:
            arrived.cancel()
        self._waiters = []
        await runner.cleanup()
        self._url = None
        logger.info("OpenAI simulator stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- middleware and control endpoints ------------------------------------------------

    @web.middleware
    async def _count(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if not request.path.startswith("/v1/"):
            return await handler(request)
        self._stats.begin()
        if self._waiters:
            self._wake_waiters()
        status: int | None = None
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            kind = request.get(_KIND, Kind.OK)
            prompt_tokens, completion_tokens = request.get(_TOKENS, (0, 0))
            self._stats.end(
                kind=kind,
                status=None if kind in (Kind.HANG, Kind.DROP) else status,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )

    def _wake_waiters(self) -> None:
        requests = self._stats.snapshot()["requests"]
        waiting = []
        for count, arrived in self._waiters:
            if arrived.done():
                continue
            if requests >= count:
                arrived.set_result(None)
            else:
                waiting.append((count, arrived))
        self._waiters = waiting

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats)

    async def _reset_stats(self, request: web.Request) -> web.Response:
        self.reset_stats()
        return web.json_response(self.stats)

    async def _get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self._config.to_json())

    async def _post_config(self, request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object of settings to change")
            self.update(**changes)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(self._config.to_json())

    # -- the API -------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        if (refused := self._check_key(request)) is not None:
            return refused
        models = self._config.models or ("sim-writer",)
        return self._json(
            request, {"object": "list", "data": [bodies.model_body(m) for m in models]}
        )

    async def _model(self, request: web.Request) -> web.Response:
        if (refused := self._check_key(request)) is not None:
            return refused
        model = request.match_info["model"]
        config = self._config
        if config.permission_denied:
            return self._error(request, Kind.PERMISSION_DENIED, "permission_denied", model=model)
        if config.models and model not in config.models:
            return self._error(request, Kind.MODEL_NOT_FOUND, "model_not_found", model=model)
        return self._json(request, bodies.model_body(model))

    async def _unknown(self, request: web.Request) -> web.Response:
        request[_KIND] = Kind.BAD_REQUEST
        body = bodies.error_body(
            f"Invalid URL ({request.method} {request.path})",
            type_="invalid_request_error",
            code=None,
        )
        return self._json(request, body, status=404)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        config = self._config  # one request sees one configuration
        if (refused := self._check_key(request)) is not None:
            return refused
        try:
            body = await request.json()
            model, messages, max_tokens = _read_chat_request(body)
        except ValueError as exc:
            request[_KIND] = Kind.BAD_REQUEST
            error = bodies.error_body(str(exc), type_="invalid_request_error", code=None)
            return self._json(request, error, status=400)
        if config.permission_denied:
            return self._error(request, Kind.PERMISSION_DENIED, "permission_denied", model=model)
        if config.models and model not in config.models:
            return self._error(request, Kind.MODEL_NOT_FOUND, "model_not_found", model=model)
        if config.insufficient_quota:
            return self._error(request, Kind.INSUFFICIENT_QUOTA, "insufficient_quota")
        prompt = "\n\n".join(messages)
        prompt_tokens = count_tokens(prompt) + 4 * len(messages)
        admission = self._limiter.admit(prompt_tokens + max_tokens)
        if config.ratelimit_headers and admission.headers:
            request[_RATE_HEADERS] = admission.headers
        if not admission.allowed:
            requested = 1 if admission.limit_kind == "requests" else prompt_tokens + max_tokens
            return self._rate_limited(request, config, model, admission, requested=requested)
        fault = find_marker(prompt)
        if fault is None and prompt_tokens + max_tokens > config.context_window:
            fault = Fault(Kind.CONTEXT_LENGTH)
        if fault is None:
            fault = draw_fault(config, self._rng)
        return await self._answer(
            request,
            config,
            fault,
            model=model,
            prompt=prompt,
            prompt_tokens=prompt_tokens,
            max_tokens=max_tokens,
            stream=bool(body.get("stream")),
            include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
        )

    def _new_limiter(self, config: SimulatorConfig) -> RateLimiter:
        return RateLimiter(
            rpm=config.rpm,
            tpm=config.tpm,
            window_s=config.rate_window_s,
            clock=self._clock,
            bucket_s=config.rate_bucket_s,
            count_refused=config.count_refused,
        )


def _read_chat_request(body: Any) -> tuple[str, list[str], int]:
    """The model, message texts and token limit of a chat request; ValueError if malformed."""
    if not isinstance(body, dict):
        raise ValueError("We could not parse the JSON body of your request.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValueError("you must provide a model parameter")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("Missing required parameter: 'messages'.")
    texts = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # content parts: [{"type": "text", "text": "..."}]
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        texts.append(content if isinstance(content, str) else "")
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or _DEFAULT_MAX_TOKENS
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"Invalid 'max_tokens': expected an integer >= 1, got {limit!r}.")
    return model, texts, limit
