"""Log lines a second at the overhead scenario's speed, with and without LOG_PAGE_LINES_PER_S.

Railway keeps at most 500 lines a second per replica. This runs scenario 1's workload (20,000
pages of a no-op generator, one process, concurrency 100, no pause between jobs) with
LOG_FORMAT=json into a file three times: at WARNING (as the bench runs, no per-page line), at
INFO without a budget (every per-page line written) and at INFO with it; and counts the lines,
over the whole run and in the busiest wall-clock second (from each line's `timestamp`), and the
process's CPU time per page. On a busy machine pages/s varies from run to run; lines per page
and CPU per page do not.

    uv run --group bench python -m bench.log_rate [--pages 20000] [--budget 50] [--keep DIR]

It starts its own redis-server on a free port (never the shared one) and removes it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.child import Probe, job_payload
from bench.ours import NoopGenerator
from pool import Keys, PoolSettings
from pool.logs import configure_logging, reset_logging
from pool_app import eventloop
from pool_app.redis_server import RedisServer
from pool_app.wiring import build_pool

_PREFIX = "lograte"
_CONCURRENCY = 100  # scenario 1's


async def _run_once(
    url: str, pages: int, log_path: Path, level: str, budget: int | None
) -> dict[str, Any]:
    """One run of `pages` no-op pages, JSON logs to `log_path`; its figures."""
    keys = Keys(_PREFIX)
    client = Redis.from_url(url)
    await client.flushall()
    payloads = [json.dumps(job_payload(i, pages)) for i in range(pages)]
    for start in range(0, pages, 1000):
        await client.lpush(keys.queue, *payloads[start : start + 1000])
    ebooks = sorted({json.loads(p)["ebookId"] for p in payloads})
    settings = PoolSettings(
        redis_url=url,
        key_prefix=_PREFIX,
        concurrent_workers=_CONCURRENCY,
        processing_delay=0,
        log_format="json",
    )
    with log_path.open("w", encoding="utf-8") as out:
        configure_logging(fmt="json", level=level, stream=out, page_lines_per_s=budget)
        pool_redis, pool = build_pool(settings, NoopGenerator(Probe(jobs=pages)))
        started, cpu_started = time.perf_counter(), time.process_time()
        task = asyncio.ensure_future(pool.run(install_signal_handlers=False))
        while True:  # poll the ebooks' status until every page is stored, as the harness does
            async with client.pipeline(transaction=False) as pipe:
                for ebook in ebooks:
                    pipe.hget(keys.status(ebook), "done")
                done = sum(int(d or 0) for d in await pipe.execute())
            if done >= pages or task.done():
                break
            await asyncio.sleep(0.02)
        elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        pool.stop()
        await task
        reset_logging()
        await pool_redis.aclose()
    await client.aclose()
    return {"level": level, "budget": budget, "pages": done, "seconds": elapsed, "cpu_s": cpu_s}


def _figures(run: dict[str, Any], log_path: Path) -> dict[str, Any]:
    """The run's figures with its lines counted: in all, per page, in the busiest second."""
    lines = log_path.read_text(encoding="utf-8").splitlines()
    per_second = Counter(json.loads(line)["timestamp"][:19] for line in lines)
    pages, elapsed = run["pages"], run["seconds"]
    return {
        "level": run["level"],
        "budget": run["budget"],
        "pages": pages,
        "seconds": round(elapsed, 2),
        "pages_per_s": round(pages / elapsed),
        "cpu_us_per_page": round(run["cpu_s"] / pages * 1e6),
        "lines": len(lines),
        "lines_per_page": round(len(lines) / pages, 3),
        "lines_per_s": round(len(lines) / elapsed),
        "peak_lines_in_one_second": max(per_second.values(), default=0),
        "summary_lines": sum("per-page lines not shown" in line for line in lines),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.log_rate", description=__doc__)
    parser.add_argument("--pages", type=int, default=20_000)
    parser.add_argument("--budget", type=int, default=50, help="LOG_PAGE_LINES_PER_S")
    parser.add_argument("--keep", type=Path, help="keep the two log files in this directory")
    args = parser.parse_args(argv)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="log-rate-"))
    workdir.mkdir(parents=True, exist_ok=True)
    with RedisServer() as server:
        runs = (("warning", "WARNING", None), ("unguarded", "INFO", None))
        for name, level, budget in (*runs, (f"budget-{args.budget}", "INFO", args.budget)):
            path = workdir / f"{name}.jsonl"
            run = eventloop.run(_run_once(server.url, args.pages, path, level, budget))
            print(json.dumps({"run": name, **_figures(run, path)}), flush=True)


if __name__ == "__main__":
    main()
