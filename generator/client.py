"""`PageOpenAI`: the openai SDK's `AsyncOpenAI`, with a cheap path for the one request a page is.

A page is one `POST /chat/completions` whose body is already JSON bytes, with a timeout, no
retries and no streaming. For that request the SDK's `request` spends most of its CPU on work
whose result is the same every time: a pydantic `FinalRequestOptions` with deep-copied
defaults, two copies of it, the merged default headers (auth, user agent, `X-Stainless-*`
platform headers) recomputed and parsed into `httpx2.Headers` three times, the URL parsed
again. `post_bytes` asks the SDK for all of that once per (URL, timeout, key, organization,
project), through the SDK's own `_build_request` and the http client's `build_request`, keeps
the request it built as a template, and makes each page's request a copy of it with the page's
body. The request is then sent and its failures raised exactly as `AsyncAPIClient.request`
does with `max_retries=0`: `self._client.send`, `APITimeoutError` / `APIConnectionError`
from the SDK's own exception lists, and `_make_status_error_from_response` for any non-2xx
answer (so every `APIStatusError` subclass, with its body, code and headers).

Whenever the client is set up for anything this path does not do (retries, an API key
provider, workload identity, a provider runtime, an idempotency header, cookies on the http
client), `post_bytes` is the SDK's own `post`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2
from openai import APIConnectionError, APITimeoutError, AsyncOpenAI, OpenAIError
from openai._base_client import get_platform
from openai._httpx2 import request_exceptions, status_exceptions, timeout_exceptions
from openai._models import FinalRequestOptions
from openai._utils import asyncify

__all__ = ["PageOpenAI"]

_TEMPLATES_KEPT = 64  # one or two URLs and timeouts in practice


@dataclass(frozen=True, slots=True)
class _Template:
    """What every page's request to one URL with one timeout shares."""

    url: httpx2.URL
    headers: httpx2.Headers  # the SDK's, merged with the http client's; Content-Length: 0
    extensions: dict[str, Any]


class PageOpenAI(AsyncOpenAI):
    """`AsyncOpenAI` with `post_bytes`, the SDK's `post` of JSON bytes at a fraction of the CPU.

    Everything else is the SDK's, unchanged.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._templates: dict[tuple[object, ...], _Template] = {}

    async def post_bytes(self, url: str, content: bytes, *, timeout_s: float) -> httpx2.Response:
        """`await self.post(url, content=content, cast_to=httpx2.Response,
        options={"timeout": timeout_s})`, the answer read whole.

        Raises what `post` raises: `APIStatusError` (its subclass for the status) for a
        non-2xx answer, `APITimeoutError`, `APIConnectionError`.
        """
        if self._platform is None:  # as the SDK's `request` does: it may block, once
            self._platform = await asyncify(get_platform)()
        if not self._lean():
            response: httpx2.Response = await self.post(
                url, content=content, cast_to=httpx2.Response, options={"timeout": timeout_s}
            )
            return response
        template = self._template(url, timeout_s)
        request = httpx2.Request(
            "POST",
            template.url,
            headers=template.headers,
            stream=httpx2.ByteStream(content),
            extensions=template.extensions,
        )
        request.headers.encoding = template.headers.encoding  # known: not guessed again
        request.headers["Content-Length"] = str(len(content))
        request.read()  # the bytes themselves: no copy
        try:
            response = await self._client.send(request, stream=False)
        except timeout_exceptions() as err:
            raise APITimeoutError(request=request) from err
        except OpenAIError:
            raise
        except request_exceptions() as err:
            raise APIConnectionError(request=request) from err
        try:
            response.raise_for_status()
        except status_exceptions() as err:  # any answer outside 2xx, as the SDK reads it
            if not err.response.is_closed:
                await err.response.aread()
            raise self._make_status_error_from_response(err.response) from None
        return response

    def _lean(self) -> bool:
        """Whether `post_bytes` may skip the SDK's `request`: nothing it does per request
        would change the request or its outcome."""
        return (
            self.max_retries == 0
            and self._idempotency_header is None
            and self._api_key_provider is None
            and self._provider_runtime is None
            and self._workload_identity_auth is None  # (then `custom_auth` is None too)
            and not self._client.cookies
        )

    def _template(self, url: str, timeout_s: float) -> _Template:
        key = (url, timeout_s, self.api_key, self.organization, self.project)
        template = self._templates.get(key)
        if template is None:
            # The request the SDK itself builds for this post, with an empty body.
            options = FinalRequestOptions.construct(
                method="post", url=url, content=b"", timeout=timeout_s
            )
            built = self._build_request(options)
            headers = httpx2.Headers(built.headers, encoding=built.headers.encoding)
            template = _Template(built.url, headers, dict(built.extensions))
            if len(self._templates) >= _TEMPLATES_KEPT:
                self._templates.clear()
            self._templates[key] = template
        return template
