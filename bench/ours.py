"""Our pool, driven like the peers (`bench.child`), in the project's own venv.

Options (`--option key=value`):
    generator=noop     a generator that returns a page at once, in-process (default)
    generator=openai   the real `generator.OpenAIPageGenerator` (openai SDK over HTTP), pointed at
                       `base_url` (the simulator); its connection pool is sized to the
                       concurrency, exactly as `ebook-pool run` builds it
    enqueue=0          do not enqueue (another process does; scale-out runs)
    loop=uvloop        the event loop, as EVENT_LOOP chooses it for `ebook-pool run`: uvloop
                       (default, what `auto` picks where it is installed) or asyncio
    observe=events     what `ebook-pool run` adds to the pool (default): progress events
                       (PROGRESS_EVENTS); `observe=all` also serves /healthz, /readyz and
                       /metrics (not the dashboard) on a local port, /metrics scraped every
                       `scrape_s` (default 1); `observe=none`: the bare pool
    profile=PATH       profile the run with pyinstrument and write an HTML report to PATH
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis

from bench.child import PAGES_PER_EBOOK, Probe, RunSpec, job_payload, main
from bench.peers import PAGE_TEXT
from bench.profiling import flat_summary
from pool import GeneratedPage, Keys, PageGenerator, PageJob, PoolSettings
from pool.job import decode_job
from pool.logs import configure_logging
from pool.runtime import cancel_all
from pool_app.gc_tuning import tune_gc
from pool_app.health import health_app, serving
from pool_app.wiring import build_metrics, build_pool, build_publisher

KEY_PREFIX = "bench"


class NoopGenerator:
    """A `PageGenerator` that writes a fixed page at once: only the pool's own work is left."""

    def __init__(self, probe: Probe) -> None:
        self._probe = probe

    async def generate(self, job: PageJob, *, timeout_s: float) -> GeneratedPage:
        self._probe.started(_job_number(job))
        self._probe.done()
        return GeneratedPage(content=PAGE_TEXT, model="bench")

    async def probe(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


class CountingGenerator:
    """Wraps a real generator to tell the probe when each page starts and ends."""

    def __init__(self, inner: PageGenerator, probe: Probe) -> None:
        self._inner = inner
        self._probe = probe

    async def generate(self, job: PageJob, *, timeout_s: float) -> GeneratedPage:
        self._probe.started(_job_number(job))
        page = await self._inner.generate(job, timeout_s=timeout_s)
        self._probe.done()
        return page

    async def probe(self) -> None:
        await self._inner.probe()

    async def aclose(self) -> None:
        await self._inner.aclose()


def _job_number(job: PageJob) -> int:
    return int(job.ebook_id.rsplit("-", 1)[1]) * job.total_pages + job.page_index


def openai_generator(base_url: str, concurrency: int) -> PageGenerator:
    """`OpenAIPageGenerator` on the simulator, built as `ebook-pool run` builds it.

    `from_settings` gives it the SDK's aiohttp transport with a connection pool sized to the
    concurrency (the SDK's default keeps 1,000 connections, only 100 of them alive).
    """
    from generator import GeneratorSettings
    from pool_app.wiring import build_generator

    settings = GeneratorSettings(openai_model="gpt-4o-mini")
    return build_generator(settings, workers=concurrency, base_url=base_url, api_key="sk-bench")


def job_wire(i: int, jobs: int) -> str:
    """The i-th of `jobs` page jobs as a producer pushes it onto the queue."""
    payload = job_payload(i, jobs)
    # Through the contract's own model, so a drift in the wire format fails loudly here.
    return decode_job(json.dumps(payload), max_bytes=65_536).to_wire()


def bench_generator(options: Mapping[str, str], concurrency: int, probe: Probe) -> PageGenerator:
    """The generator `generator=` names: the no-op one (default) or `openai` on `base_url`."""
    if options.get("generator", "noop") == "openai":
        return CountingGenerator(openai_generator(options["base_url"], concurrency), probe)
    return NoopGenerator(probe)


def bench_settings(redis_url: str, concurrency: int) -> PoolSettings:
    """The pool's settings in every bench run: no pacing delay, no stats lines, WARNING logs."""
    return PoolSettings(
        redis_url=redis_url,
        key_prefix=KEY_PREFIX,
        concurrent_workers=concurrency,
        processing_delay=0,
        stats_interval=0,
        log_level="WARNING",
    )


class OursAdapter:
    """Drives an in-process `pool.Pool`."""

    async def open(self, spec: RunSpec, probe: Probe) -> None:
        # As `ebook-pool run` sets up its log at LOG_LEVEL=WARNING, the same level as the peers'
        # loggers: warnings and errors only.
        configure_logging(level="WARNING", stream=sys.stderr)
        self._spec = spec
        self._keys = Keys(KEY_PREFIX)
        # The bench's own client (enqueue, completion checks), apart from the pool's.
        self._redis = Redis.from_url(spec.redis_url)
        self._ebooks = -(-spec.jobs // min(PAGES_PER_EBOOK, spec.jobs))
        self.check_commands = {"hget": self._ebooks}
        generator = bench_generator(spec.options, spec.concurrency, probe)
        settings = bench_settings(spec.redis_url, spec.concurrency)
        # The client `ebook-pool run` builds: a blocking pool sized from CONCURRENT_WORKERS.
        self._pool_redis, self._pool = build_pool(settings, generator)
        observe = spec.options.get("observe", "events")
        if observe not in {"none", "events", "all"}:
            raise ValueError(f"observe must be none, events or all, not {observe!r}")
        self._publisher = None
        if observe != "none":
            self._publisher = build_publisher(self._pool, self._pool_redis, settings)
        self._http = contextlib.AsyncExitStack()
        if observe == "all":
            metrics = build_metrics(self._pool, settings, default_model="gpt-4o-mini")
            # No dashboard: its sampler is the dashboard's cost, not the metrics'.
            app = health_app(self._pool, self._pool_redis, metrics=metrics)
            port = await self._http.enter_async_context(serving(app, host="127.0.0.1", port=0))
            scrape_s = float(spec.options.get("scrape_s", "1"))
            self._scraper = asyncio.ensure_future(_scrape(port, scrape_s))
            self._http.push_async_callback(cancel_all, [self._scraper])
        self._profiler: Any = None

    def _wire(self, i: int) -> str:
        return job_wire(i, self._spec.jobs)

    async def enqueue_all(self, jobs: int) -> None:
        if self._spec.options.get("enqueue", "1") == "0":
            return
        for start in range(0, jobs, 1000):
            batch = [self._wire(i) for i in range(start, min(jobs, start + 1000))]
            await self._redis.lpush(self._keys.queue, *batch)

    async def enqueue_one(self, i: int) -> None:
        await self._redis.lpush(self._keys.queue, self._wire(i))

    async def start(self) -> None:
        if path := self._spec.options.get("profile"):
            from pyinstrument import Profiler

            self._profiler = Profiler(async_mode="disabled", interval=0.0005)
            self._profiler.start()
            self._profile_path = path
        self._task = asyncio.ensure_future(self._pool.run(install_signal_handlers=False))

    async def count_stored(self) -> int:
        async with self._redis.pipeline(transaction=False) as pipe:
            for ebook in range(self._ebooks):
                pipe.hget(self._keys.status(f"bench-{ebook}"), "done")
            done = await pipe.execute()
        return sum(int(d or 0) for d in done)

    async def close(self) -> None:
        self._pool.stop()
        await self._task  # the pool closes the generator
        if self._publisher is not None:
            await self._publisher.drain(5.0)
        await self._http.aclose()
        await self._pool_redis.aclose()
        await self._redis.aclose()
        if self._profiler is not None:
            self._profiler.stop()
            _write_profile(self._profiler, self._profile_path)


async def _scrape(port: int, every_s: float) -> None:
    """GET /metrics every `every_s`, as Prometheus would (more often than its usual 15 s)."""
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                await response.read()
            await asyncio.sleep(every_s)


def _write_profile(profiler: Any, path: str) -> None:
    """pyinstrument's HTML at `path`, the flat summary next to it (.txt)."""
    Path(path).write_text(profiler.output_html())
    Path(path).with_suffix(".txt").write_text(flat_summary(profiler.last_session))


def _run_on_chosen_loop(driver: Coroutine[Any, Any, None], spec: RunSpec) -> None:
    """Run the driver on the loop `loop=` names, through the pool's own EVENT_LOOP choice."""
    from pool_app import eventloop

    tune_gc()  # as `ebook-pool run` does
    eventloop.run(driver, event_loop=spec.options.get("loop", "uvloop"))


if __name__ == "__main__":
    main(OursAdapter, run=_run_on_chosen_loop)
