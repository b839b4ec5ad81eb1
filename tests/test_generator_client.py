"""`PageOpenAI.post_bytes` sends what the SDK's `post` sends and raises what it raises.

Each test makes the same post both ways, through the SDK's `AsyncOpenAI.post` and through
`PageOpenAI.post_bytes`, on an httpx2 mock transport, and compares the requests (method, URL,
every header, body, timeouts) and the outcomes (answer, or exception class, message, body,
status and headers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import openai
import pytest
from aiohttp import web
from openai import AsyncOpenAI

from generator.client import PageOpenAI
from generator.transport import PageHttpClient, http_client

KEY = "sk-proj-client-test-0123456789abcdef"
BASE = "http://api.test/v1"
URL = f"{BASE}/chat/completions"
BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}],"max_tokens":9}'

Handler = Callable[[httpx2.Request], Awaitable[httpx2.Response]]


def ok(_: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, json={"choices": []}, headers={"x-ratelimit-limit-requests": "9"})


async def both(
    handler: Callable[[httpx2.Request], httpx2.Response],
    *,
    http_client: Callable[..., httpx2.AsyncClient] = httpx2.AsyncClient,
    **client_args: Any,
) -> list[tuple[list[httpx2.Request], httpx2.Response | Exception]]:
    """The same post through the SDK's `post` and through `post_bytes`: (requests, outcome)."""
    outcomes: list[tuple[list[httpx2.Request], httpx2.Response | Exception]] = []
    for lean in (False, True):
        sent: list[httpx2.Request] = []

        async def record(
            request: httpx2.Request, sent: list[httpx2.Request] = sent
        ) -> httpx2.Response:
            sent.append(request)
            return handler(request)

        http = http_client(transport=httpx2.MockTransport(record))
        args: dict[str, Any] = {"api_key": KEY, "base_url": BASE, "max_retries": 0, **client_args}
        client = PageOpenAI(http_client=http, **args)
        assert client._lean()
        outcome: httpx2.Response | Exception
        try:
            for _ in range(2):  # the second request of the lean path comes from its cache
                if lean:
                    outcome = await client.post_bytes(URL, BODY, timeout_s=42.0)
                else:
                    outcome = await AsyncOpenAI.post(
                        client,
                        URL,
                        content=BODY,
                        cast_to=httpx2.Response,
                        options={"timeout": 42.0},
                    )
        except Exception as exc:
            outcome = exc
        outcomes.append((sent, outcome))
        await client.close()
    return outcomes


def described(request: httpx2.Request) -> dict[str, Any]:
    return {
        "method": request.method,
        "url": str(request.url),
        "headers": sorted((k.lower(), v) for k, v in request.headers.multi_items()),
        "content": request.content,
        "timeout": request.extensions.get("timeout"),
    }


@pytest.mark.parametrize("http_client", [httpx2.AsyncClient, PageHttpClient])
@pytest.mark.parametrize(
    "client_args",
    [
        {},
        {"organization": "org-1", "project": "proj-1"},
        {"default_headers": {"X-Custom": "yes", "User-Agent": "ebook-pool"}},
    ],
)
async def test_the_same_request(
    http_client: Callable[..., httpx2.AsyncClient], client_args: dict[str, Any]
) -> None:
    (sdk_sent, sdk), (lean_sent, lean) = await both(ok, http_client=http_client, **client_args)
    assert isinstance(sdk, httpx2.Response) and isinstance(lean, httpx2.Response)
    assert (lean.status_code, lean.content, lean.headers) == (
        sdk.status_code,
        sdk.content,
        sdk.headers,
    )
    assert [described(r) for r in lean_sent] == [described(r) for r in sdk_sent]
    headers = dict(lean_sent[0].headers)
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["x-stainless-retry-count"] == "0"
    assert headers["x-stainless-read-timeout"] == "42.0"
    assert headers["content-length"] == str(len(BODY))
    if "organization" in client_args:
        assert (headers["openai-organization"], headers["openai-project"]) == ("org-1", "proj-1")


def answer(status: int, body: Any, **headers: str) -> Callable[[httpx2.Request], httpx2.Response]:
    def handler(_: httpx2.Request) -> httpx2.Response:
        if isinstance(body, bytes):
            return httpx2.Response(status, content=body, headers=headers)
        return httpx2.Response(status, json=body, headers=headers)

    return handler


def error(code: str, message: str = "no") -> dict[str, Any]:
    return {"error": {"message": message, "type": "x", "code": code, "param": None}}


@pytest.mark.parametrize(
    ("handler", "kind"),
    [
        (answer(400, error("context_length_exceeded")), openai.BadRequestError),
        (answer(401, error("invalid_api_key")), openai.AuthenticationError),
        (answer(403, error("unsupported_country")), openai.PermissionDeniedError),
        (answer(404, error("model_not_found")), openai.NotFoundError),
        (answer(409, error("conflict")), openai.ConflictError),
        (answer(422, error("unprocessable")), openai.UnprocessableEntityError),
        (answer(429, error("rate_limit_exceeded"), **{"retry-after": "2"}), openai.RateLimitError),
        (answer(429, error("insufficient_quota")), openai.RateLimitError),
        (answer(500, b"<html><title>oops</title></html>"), openai.InternalServerError),
        (answer(503, error("overloaded")), openai.InternalServerError),
        (answer(418, b"teapot"), openai.APIStatusError),
        (answer(302, b"", location="ftp://elsewhere/"), openai.APIStatusError),
    ],
)
async def test_the_same_status_errors(
    handler: Callable[[httpx2.Request], httpx2.Response], kind: type[Exception]
) -> None:
    (_, sdk), (_, lean) = await both(handler)
    assert type(sdk) is kind and type(lean) is kind
    assert isinstance(sdk, openai.APIStatusError) and isinstance(lean, openai.APIStatusError)
    assert (lean.message, lean.status_code, lean.code, lean.body) == (
        sdk.message,
        sdk.status_code,
        sdk.code,
        sdk.body,
    )
    assert lean.response.headers == sdk.response.headers


def raising(exc: Exception) -> Callable[[httpx2.Request], httpx2.Response]:
    def handler(_: httpx2.Request) -> httpx2.Response:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx2.ReadTimeout("slow"), openai.APITimeoutError),
        (httpx2.ConnectTimeout("slow"), openai.APITimeoutError),
        (httpx2.ConnectError("refused"), openai.APIConnectionError),
        (httpx2.ReadError("reset"), openai.APIConnectionError),
        (httpx2.RemoteProtocolError("dropped"), openai.APIConnectionError),
        (RuntimeError("a bug"), RuntimeError),
    ],
)
async def test_the_same_transport_errors(exc: Exception, kind: type[Exception]) -> None:
    (_, sdk), (_, lean) = await both(raising(exc))
    assert type(sdk) is kind and type(lean) is kind
    assert str(lean) == str(sdk)
    assert type(lean.__cause__) is type(sdk.__cause__)


async def test_a_new_key_is_sent_at_once() -> None:
    sent: list[httpx2.Request] = []

    async def record(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return ok(request)

    client = PageOpenAI(
        api_key=KEY,
        base_url=BASE,
        max_retries=0,
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(record)),
    )
    await client.post_bytes(URL, BODY, timeout_s=5)
    client.api_key = "sk-other"
    await client.post_bytes(URL, BODY, timeout_s=5)
    await client.close()
    assert [r.headers["authorization"] for r in sent] == [f"Bearer {KEY}", "Bearer sk-other"]


async def test_anything_else_takes_the_sdk_path() -> None:
    """A client set up for what `post_bytes` does not do per request is the SDK's `post`."""

    async def key() -> str:
        return "sk-from-provider"

    sent: list[httpx2.Request] = []

    async def record(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return ok(request)

    http = httpx2.AsyncClient(transport=httpx2.MockTransport(record))
    client = PageOpenAI(api_key=key, base_url=BASE, max_retries=0, http_client=http)
    await client.post_bytes(URL, BODY, timeout_s=5)
    assert sent[0].headers["authorization"] == "Bearer sk-from-provider"
    assert not client._lean()
    retrying = PageOpenAI(api_key=KEY, base_url=BASE, max_retries=2, http_client=http)
    assert not retrying._lean()
    await client.close()


async def test_the_aiohttp_transport_sends_the_same_headers() -> None:
    """On the wire, through `generator.transport` (headers shared between requests, the
    length left to aiohttp) as through httpx2's own transport."""
    seen: list[list[tuple[str, str]]] = []

    async def record(request: web.Request) -> web.Response:
        await request.read()
        seen.append(sorted((k.lower(), v) for k, v in request.headers.items()))
        return web.json_response({"choices": []})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for http in (httpx2.AsyncClient(), http_client(4)):
            client = PageOpenAI(api_key=KEY, base_url=base, max_retries=0, http_client=http)
            for body in (BODY, BODY + b" " * 10):
                response = await client.post_bytes(f"{base}/chat/completions", body, timeout_s=5)
                assert response.json() == {"choices": []}
                assert response.is_closed and response.elapsed.total_seconds() > 0
            await client.close()
    finally:
        await runner.cleanup()
    httpx2_sent, aiohttp_sent = seen[:2], seen[2:]
    assert aiohttp_sent == httpx2_sent
    assert [dict(h)["content-length"] for h in aiohttp_sent] == [
        str(len(BODY)),
        str(len(BODY) + 10),
    ]


async def test_a_compressed_answer_is_decoded_on_the_aiohttp_transport() -> None:
    """aiohttp hands the body over as sent; httpx2 decodes Content-Encoding when it reads it."""

    async def gzipped(request: web.Request) -> web.Response:
        await request.read()
        answer = web.json_response({"choices": [], "pad": "x" * 2000})
        answer.enable_compression(web.ContentCoding.gzip)
        return answer

    app = web.Application()
    app.router.add_post("/v1/chat/completions", gzipped)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    try:
        client = PageOpenAI(api_key=KEY, base_url=base, max_retries=0, http_client=http_client(2))
        response = await client.post_bytes(f"{base}/chat/completions", BODY, timeout_s=5)
        await client.close()
    finally:
        await runner.cleanup()
    assert response.headers["content-encoding"] == "gzip"
    assert response.json() == {"choices": [], "pad": "x" * 2000}


class _HttpxSend(PageHttpClient):
    """`PageHttpClient` with httpx2's own `send`, to compare with."""

    async def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        return await httpx2.AsyncClient.send(self, request, **kwargs)


def redirecting(request: httpx2.Request) -> httpx2.Response:
    if request.url.path == "/v1/old":
        return httpx2.Response(307, headers={"location": "/v1/new"})
    if request.url.path == "/v1/loop":
        return httpx2.Response(302, headers={"location": "/v1/loop"})
    if request.url.path == "/v1/broken":
        raise httpx2.ReadError("reset")
    return httpx2.Response(200, json={"at": request.url.path, "body": request.content.decode()})


@pytest.mark.parametrize("path", ["/v1/new", "/v1/old", "/v1/loop", "/v1/broken"])
@pytest.mark.parametrize("follow", [True, False])
async def test_the_http_clients_send_is_httpx2s(path: str, follow: bool) -> None:
    """`PageHttpClient.send` (no auth, no hooks) answers as httpx2's `send`: redirects followed
    or not, too many of them, a transport error."""
    outcomes: list[tuple[Any, ...]] = []
    for cls in (_HttpxSend, PageHttpClient):
        sent: list[str] = []

        async def record(request: httpx2.Request, sent: list[str] = sent) -> httpx2.Response:
            sent.append(f"{request.method} {request.url}")
            return redirecting(request)

        http = cls(transport=httpx2.MockTransport(record), follow_redirects=follow)
        http.max_redirects = 3
        through_auth_flow = 0
        inner = http._send_handling_auth

        async def counted(*args: Any, inner: Any = inner, **kwargs: Any) -> httpx2.Response:
            nonlocal through_auth_flow
            through_auth_flow += 1
            return await inner(*args, **kwargs)

        http._send_handling_auth = counted  # type: ignore[method-assign]
        outcome: tuple[Any, ...]
        for _ in range(2):  # the first request opens the client (httpx2's send)
            request = http.build_request("POST", f"http://api.test{path}", content=b"{}", timeout=5)
            try:
                response = await http.send(request)
            except Exception as exc:
                outcome = (type(exc), str(exc))
            else:
                outcome = (
                    response.status_code,
                    response.content,
                    [(r.status_code, str(r.url)) for r in response.history],
                    response.next_request and str(response.next_request.url),
                    response.is_closed,
                )
        outcomes.append((outcome, sent))
        await http.aclose()
        assert through_auth_flow == (2 if cls is _HttpxSend else 1)
    assert outcomes[1] == outcomes[0]
