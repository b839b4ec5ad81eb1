"""A process that writes pages through the governor, for the two-process tests.

Run as `python -m tests.governor_process BASE_URL PAGES`; settings (REDIS_URL, KEY_PREFIX,
CONCURRENT_WORKERS, OPENAI_RPM_LIMIT...) come from the env. Prints one JSON line: pages written,
refusals waited out, and the budget's snapshot.
"""

from __future__ import annotations

import asyncio
import json
import sys

from openai import AsyncOpenAI
from redis.asyncio import Redis

from generator import OpenAIPageGenerator
from pool import PageJob, PoolSettings, load_settings
from pool.keys import Keys
from pool.ratelimit import Governor, is_rate_refusal


async def main(base_url: str, pages: int) -> None:
    settings = load_settings(PoolSettings)
    redis = Redis.from_url(settings.redis_url)
    client = AsyncOpenAI(api_key="sk-two-processes", base_url=base_url, max_retries=0)
    generator = OpenAIPageGenerator(client=client)
    governor = Governor(redis, Keys(settings.key_prefix), settings, generator.api_identity)
    queue = list(range(pages))
    written = refusals = 0
    sent_at: list[float] = []  # Redis time each request was allowed to go, ms

    async def worker() -> None:
        nonlocal written, refusals
        while queue:
            index = queue.pop()
            job = PageJob(ebook_id="two", page_index=index, total_pages=pages, title="Two")
            while True:
                permit = await governor.acquire(generator.request_cost(job))
                sent_at.append(permit.go_at_ms or 0.0)
                try:
                    page = await generator.generate(job, timeout_s=10)
                except Exception as exc:
                    if not is_rate_refusal(exc):
                        raise
                    refusals += 1
                    await permit.refused(exc)
                    continue
                await permit.settle_page(page)
                written += 1
                break

    try:
        await asyncio.gather(*(worker() for _ in range(settings.concurrent_workers)))
        report = {
            "written": written,
            "refusals": refusals,
            "sent_at": sent_at,
            "budgets": governor.snapshot(),
        }
        print(json.dumps(report), flush=True)
    finally:
        await generator.aclose()
        await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
