"""A pool process for the crash tests: the real Pool, settings from the env, a slow fake LLM.

Run as `python -m tests.pool_process`; PAGE_DELAY_MS sets how long each page takes.
"""

from __future__ import annotations

import asyncio
import os
import sys

from loguru import logger
from redis.asyncio import Redis

from pool import Pool, PoolSettings, load_settings
from tests.fakes import FakeGenerator


async def main() -> None:
    settings = load_settings(PoolSettings)
    redis = Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=2)
    generator = FakeGenerator(delay_s=int(os.environ.get("PAGE_DELAY_MS", "100")) / 1000)
    try:
        await Pool(redis=redis, generator=generator, settings=settings).run()
    finally:
        await redis.aclose()


if __name__ == "__main__":
    logger.remove()
    logger.add(sys.stdout, level="INFO", format="{time:HH:mm:ss.SSS} {message}")
    asyncio.run(main())
