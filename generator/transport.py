"""The HTTP transport under the openai SDK: one aiohttp session, made for many small JSON calls.

The SDK takes any `httpx2.AsyncClient` (`http_client=`), and an httpx2 client takes any
`httpx2.AsyncBaseTransport`: both are documented extension points, so the SDK still builds
every request, raises every error and reads every header. What changes is the cost per request
at a thousand in flight, measured against the SDK's own aiohttp transport
(`DefaultAioHttpClient`), which is general-purpose:

- one `aiohttp.ClientTimeout` per distinct timeout, not one per request;
- one read-only aiohttp header set per distinct set of request headers (all a client's pages
  share one, Content-Length aside), which aiohttp takes without copying it first, instead of
  every request's headers decoded into new strings;
- no cookie jar (an API key authenticates; OpenAI sets no cookies the SDK needs);
- the answer read whole in one call and handed to httpx2 already read (`Response.read()`, its
  `elapsed` set), instead of an async iterator of 16 KiB chunks wrapped in an
  exception-mapping context manager, and then httpx2's own chain of async byte iterators;
- aiohttp errors mapped to httpx2's so that the SDK raises `APITimeoutError` for a timeout and
  `APIConnectionError` for a refused, reset or dropped connection (tests/test_generator_errors.py
  runs every failure class on this transport and on httpx2's own).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import aiohttp
import httpx2
from httpx2._client import ClientState
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

__all__ = ["AiohttpTransport", "PageHttpClient", "http_client"]

_KEEPALIVE_S = 5.0  # httpx2's default keep-alive expiry
_UseClientDefault = type(httpx2.USE_CLIENT_DEFAULT)
_HEADER_SETS_KEPT = 64  # distinct header sets: one per key, URL and timeout in practice


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport on one `aiohttp.ClientSession`, opened on first use.

    Args:
        max_connections: connections open at once; pass the pages in flight, so that no page
            waits for one. All of them are kept alive between pages.
    """

    def __init__(self, *, max_connections: int) -> None:
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._header_sets: dict[tuple[tuple[bytes, bytes], ...], CIMultiDictProxy[str]] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections, limit_per_host=0, keepalive_timeout=_KEEPALIVE_S
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # httpx2 decodes Content-Encoding itself
            timeout=aiohttp.ClientTimeout(total=None),
        )
        return self._session

    def _timeout(self, request: httpx2.Request) -> aiohttp.ClientTimeout:
        phases = request.extensions.get("timeout") or {}
        key = (phases.get("connect"), phases.get("read"), phases.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            if len(self._timeouts) > 64:  # timeouts come from settings: a handful at most
                self._timeouts.clear()
            timeout = aiohttp.ClientTimeout(sock_connect=key[0], sock_read=key[1], connect=key[2])
            self._timeouts[key] = timeout
        return timeout

    def _headers(self, request: httpx2.Request, data: bytes | None) -> CIMultiDictProxy[str]:
        """The request's headers as aiohttp takes them without a copy of its own, shared by
        every request with the same headers. The body's Content-Length is left to aiohttp,
        which sets the same one, so that the pages of one client share one set."""
        length = str(len(data or b"")).encode()
        key = tuple(
            (name, value)
            for name, value in request.headers.raw
            if value != length or name.lower() != b"content-length"
        )
        headers = self._header_sets.get(key)
        if headers is None:
            encoding = request.headers.encoding
            if len(self._header_sets) >= _HEADER_SETS_KEPT:
                self._header_sets.clear()
            headers = CIMultiDictProxy(
                CIMultiDict((k.decode(encoding), v.decode(encoding)) for k, v in key)
            )
            self._header_sets[key] = headers
        return headers

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        session = self._session or self._open()
        started = time.perf_counter()
        try:
            data: bytes | None = request.content or None
        except httpx2.RequestNotRead:  # a streamed upload: read it (the SDK sends bytes)
            data = await request.aread() or None
        try:
            async with session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=self._headers(request, data),
                data=data,
                allow_redirects=False,
                compress=False,
                timeout=self._timeout(request),
            ) as response:
                body = await response.read()
                status, reason, headers = response.status, response.reason, response.raw_headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _mapped(exc) from exc
        extensions: dict[str, object] = {"http_version": b"HTTP/1.1"}
        if reason:
            extensions["reason_phrase"] = reason.encode()
        answer = httpx2.Response(
            status,
            headers=headers,
            stream=httpx2.ByteStream(body),
            request=request,
            extensions=extensions,
        )
        # Already whole: read it here, in one synchronous call, and the client's `aread` has
        # nothing left to do but hand it back (its async chain of byte iterators costs more
        # than the rest of the answer's handling). The elapsed time is the transport's.
        answer.read()
        answer.elapsed = datetime.timedelta(seconds=time.perf_counter() - started)
        return answer

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _mapped(exc: Exception) -> httpx2.HTTPError:
    """The httpx2 error for an aiohttp one: a timeout is a timeout to the SDK
    (`APITimeoutError`); a refused, reset or dropped connection a transport error
    (`APIConnectionError`), as docs/generator.md classifies them."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx2.ConnectTimeout(message)
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return httpx2.ReadTimeout(message)
    if isinstance(exc, TimeoutError):
        return httpx2.TimeoutException(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx2.ConnectError(message)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx2.UnsupportedProtocol(message)
    return httpx2.ReadError(message)


class PageHttpClient(httpx2.AsyncClient):
    """An httpx2 client whose `build_request` skips what a request from the SDK never needs.

    The SDK calls `build_request(method, url, headers=[...], timeout=..., content=...)` with an
    absolute URL, once per request. httpx2's own merges a base URL, cookies and query
    parameters the client does not have, and parses the same URL and the headers twice. Here
    the URL is parsed once per distinct URL, and the client's default headers are merged in a
    dict; any call with more than that goes to httpx2's `build_request` unchanged.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._urls: dict[str, httpx2.URL] = {}
        self._defaults = {k.lower(): (k, v) for k, v in self.headers.multi_items()}

    def build_request(
        self,
        method: str,
        url: httpx2.URL | str,
        *,
        content: Any = None,
        headers: Any = None,
        timeout: Any = httpx2.USE_CLIENT_DEFAULT,
        **other: Any,
    ) -> httpx2.Request:
        if (
            any(v is not None for v in other.values())
            or not isinstance(url, str)
            or isinstance(timeout, _UseClientDefault)
            or self.cookies
        ):
            return super().build_request(
                method, url, content=content, headers=headers, timeout=timeout, **other
            )
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = httpx2.URL(url)
            if parsed.is_relative_url:
                return super().build_request(
                    method, url, content=content, headers=headers, timeout=timeout, **other
                )
            if len(self._urls) > 64:  # one or two endpoints in practice
                self._urls.clear()
            self._urls[url] = parsed
        merged = dict(self._defaults)
        items = headers.items() if isinstance(headers, Mapping) else headers or ()
        for name, value in items:
            merged[name.lower()] = (name, value)
        return httpx2.Request(
            method,
            parsed,
            content=content,
            headers=list(merged.values()),
            extensions={"timeout": httpx2.Timeout(timeout).as_dict()},
        )

    async def send(
        self,
        request: httpx2.Request,
        *,
        stream: bool = False,
        auth: Any = httpx2.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx2.USE_CLIENT_DEFAULT,
    ) -> httpx2.Response:
        """httpx2's `send`, without its layers for what a request from the SDK never has.

        httpx2 sends every request through an auth flow, a redirect loop and event hooks,
        each a coroutine that stays on the stack while the page waits. With no auth, no
        hooks, the client already open and the timeout set, `send` here makes the single
        request itself; a redirect goes on in httpx2's own redirect loop. Anything else is
        httpx2's `send`.
        """
        if (
            self._state is not ClientState.OPENED
            or not isinstance(auth, _UseClientDefault)
            or self.auth is not None
            or request.url.userinfo
            or self.event_hooks["request"]
            or self.event_hooks["response"]
            or "timeout" not in request.extensions
        ):
            return await super().send(
                request, stream=stream, auth=auth, follow_redirects=follow_redirects
            )
        response = await self._send_single_request(request)
        try:
            if response.has_redirect_location:
                follow = (
                    self.follow_redirects
                    if isinstance(follow_redirects, _UseClientDefault)
                    else follow_redirects
                )
                if follow:
                    redirect = self._build_redirect_request(request, response)
                    await response.aread()
                    response = await self._send_handling_redirects(
                        redirect, follow_redirects=True, history=[response]
                    )
                else:
                    with suppress(httpx2.RemoteProtocolError):
                        response.next_request = self._build_redirect_request(request, response)
            if not stream:
                await response.aread()
        except BaseException:
            await response.aclose()
            raise
        return response


def http_client(max_connections: int) -> httpx2.AsyncClient:
    """The httpx2 client handed to the SDK: `AiohttpTransport` with room for every page.

    Redirects are followed, as the SDK's own clients do.
    """
    return PageHttpClient(
        transport=AiohttpTransport(max_connections=max_connections),
        follow_redirects=True,
        timeout=httpx2.Timeout(600.0, connect=5.0),
    )
