"""The result cache's hit rate when the same ebook is enqueued twice (issue 11).

    uv run --group bench python -m bench.cache_hits [--pages 20] [--copies 2]

A private redis-server and the OpenAI simulator; a pool with CACHE_TTL on and the real
generator; the same brief enqueued as `--copies` ebooks, one after the other. Prints the hit
rate, the tokens saved, and the requests the simulator received (one per page of the first
copy, if the cache works).
"""

from __future__ import annotations

import argparse
import asyncio
import json

from generator import GeneratorSettings, OpenAIPageGenerator
from generator.simulator import Simulator, SimulatorConfig
from pool.config import PoolSettings
from pool.ebooks import read_status
from pool.keys import Keys
from pool_app.producer import build_jobs, enqueue_ebook
from pool_app.redis_server import RedisServer
from pool_app.wiring import build_pool


async def _run(pages: int, copies: int) -> dict[str, object]:
    server = RedisServer().start()
    try:
        async with Simulator(SimulatorConfig(latency_s=0.01, seed=5)) as sim:
            settings = PoolSettings(
                redis_url=server.url, cache_ttl=600_000, processing_delay=0, stats_interval=0,
                log_level="WARNING",
            )  # fmt: skip
            gen_settings = GeneratorSettings(openai_model="gpt-4o-mini", openai_temperature=0.0)
            generator = OpenAIPageGenerator.from_settings(
                gen_settings, api_key="sk-bench", base_url=sim.base_url
            )
            redis, pool = build_pool(settings, generator, default_model="gpt-4o-mini")
            keys = Keys(settings.key_prefix)
            task = asyncio.create_task(pool.run(install_signal_handlers=False))
            statuses = []
            for copy in range(copies):
                ebook_id = f"cache-bench-{copy}"
                jobs = build_jobs(
                    ebook_id=ebook_id, title="The same book", topic="Cache hits",
                    outline=[f"Chapter {i + 1}" for i in range(pages)],
                )  # fmt: skip
                await enqueue_ebook(redis, keys, jobs)
                while True:
                    status = await read_status(redis, keys, ebook_id)
                    if status is not None and status["state"] == "done":
                        break
                    await asyncio.sleep(0.05)
                statuses.append(status)
            pool.stop()
            await task
            await redis.aclose()
            hits = sum(s["ledger"]["cacheHits"] for s in statuses)
            misses = sum(s["ledger"]["cacheMisses"] for s in statuses)
            return {
                "pages": pages * copies,
                "cacheHits": hits,
                "cacheMisses": misses,
                "hitRate": round(hits / (hits + misses), 3),
                "tokensSaved": sum(s["ledger"]["tokensSaved"] for s in statuses),
                "simulatorRequests": sim.stats["requests"],
                "costUsd": [s["ledger"]["costUsd"] for s in statuses],
            }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cache_hits")
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--copies", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_run(args.pages, args.copies)), indent=2))


if __name__ == "__main__":
    main()
