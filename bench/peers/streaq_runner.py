"""streaq: Redis streams with a consumer group, Lua scripts, coredis; the result is stored
under its own key when the task finishes.

Fairness: `concurrency` = the bench's concurrency (prefetch at its default, = concurrency);
coredis' own connection pool at its defaults. Tasks are enqueued by a second `Worker` object
used as a producer, as streaq's docs do from a web app.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from streaq import Worker

from bench.child import Probe, RunSpec, job_number, job_payload, main
from bench.peers import PAGE_TEXT


class StreaqAdapter:
    """Drives an in-process `streaq.Worker`."""

    check_commands: ClassVar[dict[str, int]] = {"exists": 1}

    async def open(self, spec: RunSpec, probe: Probe) -> None:
        self._spec = spec

        def build(concurrency: int) -> tuple[Worker[Any], Any]:
            worker: Worker[Any] = Worker(
                redis_url=spec.redis_url,
                concurrency=concurrency,
                queue_name="bench",
                handle_signals=False,
            )

            @worker.task(name="write_page")
            async def write_page(page: dict[str, Any]) -> str:
                probe.started(job_number(page))
                probe.done()
                return PAGE_TEXT

            return worker, write_page

        self._worker, _ = build(spec.concurrency)
        self._producer, self._write_page = build(1)
        await self._producer.__aenter__()
        self._result_keys: list[str] = []

    async def enqueue_all(self, jobs: int) -> None:
        for start in range(0, jobs, 1000):
            tasks = [
                self._write_page.enqueue(job_payload(i, jobs))
                for i in range(start, min(jobs, start + 1000))
            ]
            await self._producer.enqueue_many(tasks)
            self._result_keys += [self._producer.results_key + t.id for t in tasks]

    async def enqueue_one(self, i: int) -> None:
        task = await self._write_page.enqueue(job_payload(i, self._spec.jobs))
        self._result_keys.append(self._producer.results_key + task.id)

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._worker.run_async())

    async def count_stored(self) -> int:
        return int(await self._producer.redis.exists(self._result_keys))

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._producer.__aexit__(None, None, None)


if __name__ == "__main__":
    main(StreaqAdapter)
