"""rq: the synchronous classic. Jobs are hashes on a list taken with BLPOP; the result goes to
the job's results stream and the job id to the "finished" registry.

rq has no concurrency inside a process: a worker runs one job at a time, and the default
`Worker` (what `rq worker` runs) forks a work-horse process for every job. It is run here as
documented, one worker in burst mode in this one process (`--option worker=simple` runs
`SimpleWorker`, which skips the fork). The bench's concurrency does not apply.
"""

from __future__ import annotations

from typing import ClassVar

from redis import Redis
from rq import Queue, SimpleWorker, Worker

from bench.child import Probe, RunSpec, job_payload, main
from bench.peers import PAGE_TEXT


def write_page(page: dict[str, object]) -> str:
    """The job: runs in rq's work-horse process, so it cannot report to the probe."""
    return PAGE_TEXT


class RqAdapter:
    """Runs an rq worker in burst mode, blocking the event loop (rq is synchronous)."""

    check_commands: ClassVar[dict[str, int]] = {"zcard": 1}

    async def open(self, spec: RunSpec, probe: Probe) -> None:
        if spec.mode != "throughput":
            raise NotImplementedError("rq is measured for throughput only")
        self._spec = spec
        self._probe = probe
        self._redis = Redis.from_url(spec.redis_url)
        self._queue = Queue("bench", connection=self._redis)

    async def enqueue_all(self, jobs: int) -> None:
        for start in range(0, jobs, 1000):
            self._queue.enqueue_many(
                [
                    Queue.prepare_data(write_page, args=(job_payload(i, jobs),))
                    for i in range(start, min(jobs, start + 1000))
                ]
            )

    async def enqueue_one(self, i: int) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        worker_class = SimpleWorker if self._spec.options.get("worker") == "simple" else Worker
        worker_class([self._queue], connection=self._redis).work(
            burst=True, logging_level="WARNING"
        )
        # The jobs ran in other processes: the burst ending is what says they all finished.
        self._probe.finished = self._spec.jobs
        self._probe.all_finished.set()

    async def count_stored(self) -> int:
        return int(self._queue.finished_job_registry.count)

    async def close(self) -> None:
        self._redis.close()


if __name__ == "__main__":
    main(RqAdapter)
