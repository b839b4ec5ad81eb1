"""Test doubles that follow the pool's Protocols, and small helpers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from pool import GeneratedPage, PageJob, Pool, PoolSettings
from pool.keys import Keys

KEYS = Keys()
Outcome = BaseException | GeneratedPage | object | None


@dataclass
class FakeGenerator:
    """A `PageGenerator` whose answers are scripted per job id.

    Each call pops the next outcome of `script[job_id]`: an exception is raised, a page is
    returned, None (or an empty script) means "write a page after `delay_s`".
    """

    delay_s: float = 0.0
    script: dict[str, list[Outcome]] = field(default_factory=dict)
    probe_errors: list[BaseException] = field(default_factory=list)
    calls: list[tuple[str, float]] = field(default_factory=list)
    probes: int = 0
    closed: bool = False
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def generate(self, job: PageJob, *, timeout_s: float) -> GeneratedPage:
        self.calls.append((job.id, time.monotonic()))
        self.started.set()
        plan = self.script.get(job.id)
        outcome = plan.pop(0) if plan else None
        if isinstance(outcome, BaseException):
            raise outcome
        if outcome is not None:
            return outcome  # a page, or whatever a test wants the pool to receive
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return GeneratedPage(
            content=f"# Page {job.page_index + 1}\n\nText of {job.id}.",
            model="fake-model",
            prompt_tokens=5,
            completion_tokens=7,
        )

    async def probe(self) -> None:
        self.probes += 1
        if self.probe_errors:
            raise self.probe_errors.pop(0)

    async def aclose(self) -> None:
        self.closed = True

    def attempts_of(self, job_id: str) -> list[float]:
        return [t for j, t in self.calls if j == job_id]


def fast_settings(**overrides: Any) -> PoolSettings:
    """Settings that make a test pool react in milliseconds."""
    values: dict[str, Any] = {
        "concurrent_workers": 4,
        "processing_delay": 0,
        "poll_interval": 50,
        "heartbeat_interval": 100,
        "heartbeat_timeout": 1_000,
        "retry_backoff": 10,
        "retry_backoff_max": 50,
        "stats_interval": 0,
        "shutdown_grace": 2_000,
        "pause_probe_interval": 100,
    }
    values.update(overrides)
    return PoolSettings(**values)


def job(ebook: str, index: int, total: int, **extra: Any) -> str:
    """The JSON a producer pushes for one page."""
    return json.dumps(
        {
            "ebookId": ebook,
            "pageIndex": index,
            "totalPages": total,
            "title": f"Book {ebook}",
            **extra,
        }
    )


def attempts_field(payload: str) -> str:
    """The field of `Keys.attempts` that counts the attempts of this exact payload."""
    return payload


async def push(redis: Redis, *payloads: str | bytes, keys: Keys = KEYS) -> None:
    await redis.lpush(keys.queue, *payloads)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout_s: float = 10.0, what: str = "condition"
) -> None:
    """Poll `predicate` until it is true; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@asynccontextmanager
async def running(pool: Pool) -> AsyncIterator[asyncio.Task[None]]:
    """Run `pool` in the background; on exit stop it and check that it shut down cleanly."""
    task = asyncio.create_task(pool.run(install_signal_handlers=False))
    try:
        yield task
    finally:
        pool.stop()
        done, _ = await asyncio.wait([task], timeout=15)
        if not done:  # show where it is stuck before failing
            for t in asyncio.all_tasks():
                t.print_stack(limit=8)
            task.cancel()
            raise AssertionError("the pool did not stop within 15 s")
        task.result()


async def pages(redis: Redis, ebook: str, keys: Keys = KEYS) -> dict[int, dict[str, Any]]:
    raw = await redis.hgetall(keys.pages(ebook))
    return {int(k): json.loads(v) for k, v in raw.items()}


async def status(redis: Redis, ebook: str, keys: Keys = KEYS) -> dict[str, str]:
    raw = await redis.hgetall(keys.status(ebook))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def failed(redis: Redis, keys: Keys = KEYS) -> list[dict[str, Any]]:
    return [json.loads(x) for x in await redis.lrange(keys.failed, 0, -1)]
