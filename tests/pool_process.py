"""A pool process for the crash and dashboard tests: the real Pool, settings from the env, a
slow fake LLM.

Run as `python -m tests.pool_process`; PAGE_DELAY_MS sets how long each page takes;
FAIL_JOB_IDS (comma-separated job ids) makes the first attempt at each of those jobs fail for
good (a `JobFatalError`, so it lands in the failed list; a retry then succeeds). With HTTP_PORT
set it serves `/healthz`, `/readyz` and the dashboard, as `ebook-pool run` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

from loguru import logger
from redis.asyncio import Redis

from pool import JobFatalError, Pool, PoolSettings, load_settings
from pool_app.health import health_app, serving
from tests.fakes import FakeGenerator


async def main() -> None:
    settings = load_settings(PoolSettings)
    redis = Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=2)
    generator = FakeGenerator(delay_s=int(os.environ.get("PAGE_DELAY_MS", "100")) / 1000)
    for job_id in filter(None, os.environ.get("FAIL_JOB_IDS", "").split(",")):
        generator.script[job_id] = [JobFatalError("the model refused this page (test)")]
    try:
        pool = Pool(redis=redis, generator=generator, settings=settings)
        async with contextlib.AsyncExitStack() as http:
            if settings.http_port is not None:
                app = health_app(pool, redis, settings=settings)
                await http.enter_async_context(
                    serving(app, host=settings.http_host, port=settings.http_port)
                )
            await pool.run()
    finally:
        await redis.aclose()


if __name__ == "__main__":
    logger.remove()
    logger.add(sys.stdout, level="INFO", format="{time:HH:mm:ss.SSS} {message}")
    asyncio.run(main())
