"""SAQ: list queue taken with BLMOVE into an "active" list; the job (with its result) is
stored under its own key when it finishes.

Fairness: `concurrency` = the bench's concurrency (one blocking BLMOVE per slot, no polling);
redis-py's pool has no size cap; everything else at SAQ's defaults.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from saq import Queue, Worker

from bench.child import Probe, RunSpec, job_number, job_payload, main
from bench.peers import PAGE_TEXT, gather_chunked


class SaqAdapter:
    """Drives an in-process `saq.Worker`."""

    check_commands: ClassVar[dict[str, int]] = {"zcard": 1}

    async def open(self, spec: RunSpec, probe: Probe) -> None:
        self._spec = spec
        self._queue = Queue.from_url(spec.redis_url, name="bench")
        await self._queue.connect()

        async def write_page(ctx: dict[str, Any], *, page: dict[str, Any]) -> str:
            probe.started(job_number(page))
            probe.done()
            return PAGE_TEXT

        self._worker = Worker(
            self._queue, functions=[("write_page", write_page)], concurrency=spec.concurrency
        )

    async def enqueue_all(self, jobs: int) -> None:
        await gather_chunked(
            [self._queue.enqueue("write_page", page=job_payload(i, jobs)) for i in range(jobs)]
        )

    async def enqueue_one(self, i: int) -> None:
        await self._queue.enqueue("write_page", page=job_payload(i, self._spec.jobs))

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._worker.start())

    async def count_stored(self) -> int:
        # A job leaves the "incomplete" sorted set in the transaction that stores its result.
        return self._spec.jobs - await self._queue.count("incomplete")

    async def close(self) -> None:
        await self._worker.stop()
        self._task.cancel()
        await self._queue.disconnect()


if __name__ == "__main__":
    main(SaqAdapter)
