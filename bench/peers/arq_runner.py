"""arq: sorted-set queue polled by the worker; result stored under `arq:result:<id>`.

Fairness: `max_jobs` = the concurrency; `poll_delay` lowered from its 0.5 s default (see
`POLL_DELAY_S`); the worker shares one pool of connections with no size cap (redis-py's default).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker, func

from bench.child import Probe, RunSpec, job_number, job_payload, main
from bench.peers import PAGE_TEXT, gather_chunked

#: arq sleeps this long between two reads of its queue. 0.5 s by default caps it at
#: max_jobs / 0.5 s; 1 ms is the lowest that does not turn an idle worker into a busy loop.
POLL_DELAY_S = 0.001


class ArqAdapter:
    """Drives an in-process `arq.worker.Worker`."""

    check_commands: ClassVar[dict[str, int]] = {"zcard": 1}

    async def open(self, spec: RunSpec, probe: Probe) -> None:
        self._spec = spec
        self._redis: ArqRedis = await create_pool(RedisSettings.from_dsn(spec.redis_url))

        async def write_page(ctx: dict[str, Any], job: dict[str, Any]) -> str:
            probe.started(job_number(job))
            probe.done()
            return PAGE_TEXT

        self._worker = Worker(
            functions=[func(write_page, name="write_page")],
            redis_pool=self._redis,
            max_jobs=spec.concurrency,
            poll_delay=float(spec.options.get("poll_delay_s", POLL_DELAY_S)),
            handle_signals=False,
            log_results=False,
        )

    async def enqueue_all(self, jobs: int) -> None:
        await gather_chunked(
            [self._redis.enqueue_job("write_page", job_payload(i, jobs)) for i in range(jobs)]
        )

    async def enqueue_one(self, i: int) -> None:
        await self._redis.enqueue_job("write_page", job_payload(i, self._spec.jobs))

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._worker.async_run())

    async def count_stored(self) -> int:
        # finish_job removes the job from the queue in the transaction that stores its result.
        return self._spec.jobs - await self._redis.zcard(self._worker.queue_name)

    async def close(self) -> None:
        self._task.cancel()
        await self._worker.close()


if __name__ == "__main__":
    main(ArqAdapter)
