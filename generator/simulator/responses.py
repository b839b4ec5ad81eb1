"""How the simulator answers a completion that passed its checks, and its error answers.

`Answers` is a part of `generator.simulator.server.Simulator`: the page (plain or streamed),
the faults, and the OpenAI-shaped error bodies and headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
import uuid
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

from aiohttp import web

import generator.simulator.bodies as bodies
from generator.simulator.config import SimulatorConfig
from generator.simulator.faults import Fault, Kind
from generator.simulator.limiter import Admission, RateLimiter, format_duration
from generator.simulator.text import Page, count_tokens, cut_page, write_page

__all__ = ["KIND", "RATE_HEADERS", "TOKENS", "Answers"]

# Where a handler leaves what it served, for the counting middleware.
KIND = web.RequestKey("sim_kind", Kind)
TOKENS = web.RequestKey("sim_tokens", tuple[int, int])
RATE_HEADERS = web.RequestKey("sim_rate_headers", dict[str, str])
_STREAM_WORDS = 8  # words per stream chunk
# Faults answered without writing a page.
_FAULT_KINDS = frozenset(
    {
        Kind.CONTEXT_LENGTH,
        Kind.CONTENT_POLICY,
        Kind.INVALID_PROMPT,
        Kind.STATUS,
        Kind.SERVER_ERROR,
        Kind.HANG,
        Kind.DROP,
    }
)


class Answers:
    """The answers of the simulated API (a part of `Simulator`)."""

    _config: SimulatorConfig
    _limiter: RateLimiter
    _rng: random.Random
    _stopping: asyncio.Event

    async def _answer(
        self,
        request: web.Request,
        config: SimulatorConfig,
        fault: Fault | None,
        *,
        model: str,
        prompt: str,
        prompt_tokens: int,
        max_tokens: int,
        stream: bool,
        include_usage: bool,
    ) -> web.StreamResponse:
        """The answer to a request that passed the checks, with `fault` if one was chosen."""
        kind = fault.kind if fault is not None else Kind.OK
        if kind in _FAULT_KINDS:
            assert fault is not None
            return await self._fault_response(
                request, config, fault, prompt_tokens=prompt_tokens, max_tokens=max_tokens
            )

        page = write_page(prompt, max_tokens=max_tokens, seed=config.seed)
        content: str | None = page.text
        refusal: str | None = None
        finish_reason = "length" if page.truncated else "stop"
        if kind is Kind.OK and page.truncated:
            kind = Kind.TRUNCATED
        elif kind is Kind.TRUNCATED and not page.truncated:
            page = cut_page(page.text, tokens=max(1, page.tokens // 2))
            content, finish_reason = page.text, "length"
        elif kind is Kind.EMPTY:
            page, content, finish_reason = Page("", 0, False), "", "stop"
        elif kind is Kind.REFUSAL:
            refusal = bodies.REFUSAL_TEXT
            page, content, finish_reason = Page("", count_tokens(refusal), False), None, "stop"
        elif kind is Kind.CONTENT_FILTER:
            page, content, finish_reason = Page("", 0, False), None, "content_filter"
        request[KIND] = kind
        request[TOKENS] = (prompt_tokens, page.tokens)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if stream:
            return await self._stream(
                request,
                config,
                kind,
                completion_id=completion_id,
                model=model,
                content=content,
                refusal=refusal,
                finish_reason=finish_reason,
                usage=(prompt_tokens, page.tokens),
                include_usage=include_usage,
            )
        await self._sleep(config, page.tokens)
        body = bodies.completion_body(
            completion_id=completion_id,
            model=model,
            content=content,
            refusal=refusal,
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=page.tokens,
        )
        if kind is Kind.NO_CHOICES:
            del body["choices"]
        if kind is Kind.MALFORMED:
            text = json.dumps(body)
            return self._raw(request, text[: len(text) // 2], content_type="application/json")
        return self._json(request, body)

    async def _stream(
        self,
        request: web.Request,
        config: SimulatorConfig,
        kind: Kind,
        *,
        completion_id: str,
        model: str,
        content: str | None,
        refusal: str | None,
        finish_reason: str,
        usage: tuple[int, int],
        include_usage: bool,
    ) -> web.StreamResponse:
        """The answer as server-sent events: role, content pieces, finish, usage, [DONE]."""
        response = web.StreamResponse(headers=self._headers(request, "text/event-stream"))
        await self._sleep(config, 0)
        await response.prepare(request)

        async def send(data: dict[str, Any] | str) -> None:
            text = data if isinstance(data, str) else json.dumps(data)
            await response.write(f"data: {text}\n\n".encode())

        def chunk(delta: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
            return bodies.chunk_body(completion_id=completion_id, model=model, delta=delta, **extra)

        if kind in (Kind.MALFORMED, Kind.NO_CHOICES):
            await send('{"id": "' + completion_id + '", "choices": [{"delta": ')
            await response.write_eof()
            return response
        await send(chunk({"role": "assistant", "content": "", "refusal": None}))
        if refusal is not None:
            await send(chunk({"refusal": refusal}))
        words = (content or "").split(" ")
        for start in range(0, len(words) if content else 0, _STREAM_WORDS):
            piece = " ".join(words[start : start + _STREAM_WORDS])
            piece = piece if start == 0 else " " + piece
            await self._sleep(config, count_tokens(piece), fixed=False)
            await send(chunk({"content": piece}))
        await send(chunk({}, finish_reason=finish_reason))
        if include_usage:
            await send(chunk(None, usage=usage))
        await send("[DONE]")
        await response.write_eof()
        return response

    # -- answers -------------------------------------------------------------------------

    def _check_key(self, request: web.Request) -> web.Response | None:
        auth = request.headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else ""
        if not key:
            return self._error(request, Kind.BAD_KEY, "no_key")
        if self._config.bad_key:
            return self._error(request, Kind.BAD_KEY, "bad_key", key=bodies.mask_key(key))
        return None

    def _error(self, request: web.Request, kind: Kind, name: str, **values: Any) -> web.Response:
        status, type_, code, param, message = bodies.ERRORS[name]
        request[KIND] = kind
        body = bodies.error_body(message.format(**values), type_=type_, code=code, param=param)
        return self._json(request, body, status=status)

    def _status_error(self, request: web.Request, fault: Fault) -> web.Response:
        request[KIND] = Kind.STATUS
        type_ = "server_error" if fault.status >= 500 else "invalid_request_error"
        body = bodies.error_body(f"Simulated error {fault.status}.", type_=type_, code=fault.code)
        return self._json(request, body, status=fault.status)

    def _server_error(self, request: web.Request) -> web.Response:
        request[KIND] = Kind.SERVER_ERROR
        status = self._rng.choice((500, 502, 503))
        if status == 502:
            return self._raw(request, bodies.BAD_GATEWAY_HTML, content_type="text/html", status=502)
        return self._error(
            request, Kind.SERVER_ERROR, "server_error" if status == 500 else "overloaded"
        )

    def _rate_limited(
        self,
        request: web.Request,
        config: SimulatorConfig,
        model: str,
        admission: Admission,
        *,
        requested: int,
    ) -> web.Response:
        request[KIND] = Kind.RATE_LIMITED
        headers: dict[str, str] = {}
        hint = config.retry_hint
        wait_s = admission.wait_s
        never = math.isinf(wait_s)
        if not never and hint in ("all", "ms"):
            headers["retry-after-ms"] = str(math.ceil(wait_s * 1000))
        if not never and hint in ("all", "seconds"):
            headers["retry-after"] = str(math.ceil(wait_s))
        if not never and hint == "date":
            headers["retry-after"] = formatdate(time.time() + math.ceil(wait_s), usegmt=True)
        wait = format_duration(wait_s) if not never and hint in ("all", "message") else None
        message = bodies.rate_limit_message(
            model=model,
            kind=admission.limit_kind,
            limit=admission.limit,
            requested=requested,
            wait=wait,
            too_large=never,
        )
        body = bodies.error_body(message, type_=admission.limit_kind, code="rate_limit_exceeded")
        return self._json(request, body, status=429, extra_headers=headers)

    async def _sleep(self, config: SimulatorConfig, tokens: int, *, fixed: bool = True) -> None:
        delay = (config.latency_s if fixed else 0.0) + config.latency_per_token_s * tokens
        if delay > 0 and config.jitter > 0:
            delay *= self._rng.uniform(1 - config.jitter, 1 + config.jitter)
        if delay > 0:
            await asyncio.sleep(delay)

    def _headers(self, request: web.Request, content_type: str) -> dict[str, str]:
        headers = {"Content-Type": content_type, "x-request-id": f"req_{uuid.uuid4().hex}"}
        rate = request.get(RATE_HEADERS)
        if rate is None and self._config.ratelimit_headers:
            rate = self._limiter.headers()
        headers.update(rate or {})
        return headers

    def _json(
        self,
        request: web.Request,
        body: Mapping[str, Any],
        *,
        status: int = 200,
        extra_headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        return self._raw(
            request,
            json.dumps(body),
            content_type="application/json",
            status=status,
            extra_headers=extra_headers,
        )

    def _raw(
        self,
        request: web.Request,
        text: str,
        *,
        content_type: str,
        status: int = 200,
        extra_headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        headers = self._headers(request, content_type)
        headers.update(extra_headers or {})
        return web.Response(text=text, status=status, headers=headers)

    async def _fault_response(
        self,
        request: web.Request,
        config: SimulatorConfig,
        fault: Fault,
        *,
        prompt_tokens: int,
        max_tokens: int,
    ) -> web.Response:
        """The answer of a fault that is not a page: an error, a hang or a dropped connection."""
        kind = fault.kind
        if kind is Kind.CONTEXT_LENGTH:
            return self._error(
                request,
                kind,
                "context_length",
                window=config.context_window,
                total=prompt_tokens + max_tokens,
                prompt=prompt_tokens,
                completion=max_tokens,
            )
        if kind in (Kind.CONTENT_POLICY, Kind.INVALID_PROMPT):
            return self._error(request, kind, kind.value)
        if kind is Kind.STATUS:
            return self._status_error(request, fault)
        if kind is Kind.SERVER_ERROR:
            await self._sleep(config, 0)
            return self._server_error(request)
        if kind is Kind.HANG:
            request[KIND] = kind
            # Ends when the client gives up (handler cancellation), on stop(), or after hang_s.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=config.hang_s)
            return _drop(request)
        request[KIND] = kind  # Kind.DROP
        return _drop(request)


def _drop(request: web.Request) -> web.Response:
    """Close the connection without an answer; the returned response is never written."""
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=499)
