"""taskiq with taskiq-redis, either broker (`--option broker=list|stream`).

- list (`ListQueueBroker`): LPUSH / BRPOP. A message is gone from Redis once popped.
- stream (`RedisStreamBroker`): XADD / XREADGROUP, XACK after the result is saved; messages
  left unacknowledged are reclaimed by another worker with XAUTOCLAIM after `idle_timeout`.

Results go to `RedisAsyncResultBackend` (one key per task), as ours writes every page.
Fairness: the worker is taskiq's own `Receiver` (what `taskiq worker` runs) with
`max_async_tasks` = the concurrency; the brokers' `BlockingConnectionPool`s are sized to the
concurrency (their default of 50 would make tasks queue for a connection).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from redis.asyncio import Redis
from taskiq import AsyncBroker
from taskiq.receiver import Receiver
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend, RedisStreamBroker

from bench.child import Probe, RunSpec, job_number, job_payload, main
from bench.peers import PAGE_TEXT, gather_chunked


class TaskiqAdapter:
    """Drives an in-process taskiq `Receiver`."""

    check_commands: ClassVar[dict[str, int]] = {"exists": 1}

    async def open(self, spec: RunSpec, probe: Probe) -> None:
        self._spec = spec
        pool_size = spec.concurrency + 10
        backend: RedisAsyncResultBackend[str] = RedisAsyncResultBackend(
            redis_url=spec.redis_url, max_connection_pool_size=pool_size
        )
        broker_class = {"list": ListQueueBroker, "stream": RedisStreamBroker}[
            spec.options["broker"]
        ]
        self._broker: AsyncBroker = broker_class(
            spec.redis_url, queue_name="bench", max_connection_pool_size=pool_size
        ).with_result_backend(backend)

        @self._broker.task(task_name="write_page")
        async def write_page(page: dict[str, Any]) -> str:
            probe.started(job_number(page))
            probe.done()
            return PAGE_TEXT

        self._task_fn = write_page
        self._task_ids: list[str] = []
        self._redis = Redis.from_url(spec.redis_url)
        await self._broker.startup()

    async def _kiq(self, i: int, jobs: int) -> None:
        task = await self._task_fn.kiq(job_payload(i, jobs))
        self._task_ids.append(task.task_id)

    async def enqueue_all(self, jobs: int) -> None:
        await gather_chunked([self._kiq(i, jobs) for i in range(jobs)])

    async def enqueue_one(self, i: int) -> None:
        await self._kiq(i, self._spec.jobs)

    async def start(self) -> None:
        self._broker.is_worker_process = True
        receiver = Receiver(self._broker, max_async_tasks=self._spec.concurrency, run_startup=False)
        self._finish = asyncio.Event()
        self._task = asyncio.ensure_future(receiver.listen(self._finish))

    async def count_stored(self) -> int:
        return int(await self._redis.exists(*self._task_ids))

    async def close(self) -> None:
        self._finish.set()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._broker.shutdown()
        await self._redis.aclose()


if __name__ == "__main__":
    main(TaskiqAdapter)
