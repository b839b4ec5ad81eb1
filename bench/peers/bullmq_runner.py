"""BullMQ (the official Python port): jobs are hashes, moved between lists and sorted sets by
Lua scripts; `moveToFinished` stores the return value and fetches the next job in one call.

Fairness: `concurrency` = the bench's concurrency; no drain delay matters while jobs are
waiting. By default BullMQ opens one `single_connection_client` per queue/worker (as ioredis
does in Node); with `--option pooled=1` the worker gets a redis-py client with a connection pool
sized to the concurrency instead (a documented form of `connection`). The suite runs whichever
is faster (see `bench.catalog`).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from bullmq import Job, Queue, Worker
from redis.asyncio import Redis

from bench.child import Probe, RunSpec, job_number, job_payload, main
from bench.peers import PAGE_TEXT


class BullmqAdapter:
    """Drives an in-process `bullmq.Worker`."""

    check_commands: ClassVar[dict[str, int]] = {"zcard": 1}

    async def open(self, spec: RunSpec, probe: Probe) -> None:
        self._spec = spec
        self._queue = Queue("bench", {"connection": spec.redis_url})
        self._pooled: Redis | None = None
        connection: Any = spec.redis_url
        if spec.options.get("pooled") == "1":
            self._pooled = Redis.from_url(
                spec.redis_url, decode_responses=True, max_connections=spec.concurrency + 10
            )
            connection = self._pooled

        async def write_page(job: Job, token: str) -> str:
            probe.started(job_number(job.data))
            probe.done()
            return PAGE_TEXT

        self._write_page = write_page
        self._connection = connection
        self._check = Redis.from_url(spec.redis_url)

    async def enqueue_all(self, jobs: int) -> None:
        for start in range(0, jobs, 1000):
            batch = range(start, min(jobs, start + 1000))
            await self._queue.addBulk(
                [{"name": "write_page", "data": job_payload(i, jobs)} for i in batch]
            )

    async def enqueue_one(self, i: int) -> None:
        await self._queue.add("write_page", job_payload(i, self._spec.jobs))

    async def start(self) -> None:
        self._worker = Worker(
            "bench",
            self._write_page,
            {"connection": self._connection, "concurrency": self._spec.concurrency},
        )

    async def count_stored(self) -> int:
        return int(await self._check.zcard("bull:bench:completed"))

    async def close(self) -> None:
        await self._worker.close()
        await self._queue.close()
        await self._check.aclose()
        if self._pooled is not None:
            await self._pooled.aclose()
        await asyncio.sleep(0)


if __name__ == "__main__":
    main(BullmqAdapter)
