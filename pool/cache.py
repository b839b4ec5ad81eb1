"""The result cache (CACHE_TTL, opt-in): an identical API request is answered from Redis.

Identical means the same request body: model, messages (the prompt built from the brief),
temperature and token limit. The generator knows the body, so it names the entry
(`request_key`); the cache keeps the page text and the usage the API reported, and answers a
later identical request with them instead of a new request. JobRun consults it once per job,
before the `before_request` hook, so a hit is not paced as a request; a failure to read or
write the cache is a miss, never a failed page.

Keep it off where a repeated request should give a new text (temperature > 0 and users who
expect variety, "regenerate" buttons) or where the prompt holds personal data (README, "Result
cache").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

from loguru import logger
from redis.asyncio import Redis

from pool.generation import GeneratedPage
from pool.job import PageJob
from pool.keys import Keys
from pool.records import json_bytes

__all__ = ["PageCache", "RedisPageCache"]


class PageCache(Protocol):
    """Answers to earlier identical requests."""

    async def get(self, job: PageJob) -> GeneratedPage | None:
        """The page an identical request wrote, or None."""
        ...

    async def put(self, job: PageJob, page: GeneratedPage) -> None:
        """Keep `page` as the answer to `job`'s request."""
        ...


class RedisPageCache:
    """`PageCache` in Redis: one string per request, `Keys.cache(sha256 of the request)`.

    Args:
        redis: the pool's client.
        keys: the key schema.
        request_key: the hex SHA-256 of the canonical request a job makes (the generator's
            `request_key`).
        ttl_ms: how long an answer is kept (CACHE_TTL).
    """

    def __init__(
        self,
        *,
        redis: Redis,
        keys: Keys,
        request_key: Callable[[PageJob], str],
        ttl_ms: int,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._request_key = request_key
        self._ttl_ms = ttl_ms

    async def get(self, job: PageJob) -> GeneratedPage | None:
        """The cached answer, or None (also when Redis cannot be read: it is only a cache)."""
        try:
            raw = await self._redis.get(self._keys.cache(self._request_key(job)))
            if raw is None:
                return None
            data = json.loads(raw)
            return GeneratedPage(
                content=str(data["content"]),
                model=str(data["model"]),
                finish_reason=str(data.get("finishReason", "stop")),
                prompt_tokens=int(data.get("promptTokens", 0)),
                completion_tokens=int(data.get("completionTokens", 0)),
            )
        except Exception as exc:
            logger.warning(f"[Worker Pool] Result cache not read ({type(exc).__name__}): a miss")
            return None

    async def put(self, job: PageJob, page: GeneratedPage) -> None:
        """Keep the answer for CACHE_TTL; a failure is logged and forgotten."""
        value = json_bytes(
            {
                "content": page.content,
                "model": page.model,
                "finishReason": page.finish_reason,
                "promptTokens": page.prompt_tokens,
                "completionTokens": page.completion_tokens,
            }
        )
        try:
            await self._redis.set(self._keys.cache(self._request_key(job)), value, px=self._ttl_ms)
        except Exception as exc:
            logger.warning(f"[Worker Pool] Result cache not written ({type(exc).__name__})")
