"""What each page in flight holds: tracemalloc around N concurrent `generate` calls.

    uv run python -m bench.memory_profile            # 2,000 in flight, the simulator at 30 s
    uv run python -m bench.memory_profile --in-flight 500 --top 15

Starts the simulator (slow enough that every request is still waiting when the snapshot is
taken), starts N `OpenAIPageGenerator.generate` calls on the client `ebook-pool run` builds,
waits until the simulator has them all, and prints the allocations made since the start,
grouped by line, per page in flight. The pool's own per-job state (the claimed payload, the
`JobRun`, the worker task) comes on top; scenario 2's peak RSS measures the whole.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tracemalloc

from bench.child import job_payload
from bench.ours import openai_generator
from bench.scenarios import Simulator
from pool.job import decode_job


async def _profile(url: str, in_flight: int, top: int, settle_s: float) -> None:
    generator = openai_generator(url, in_flight)
    jobs = [
        decode_job(json.dumps(job_payload(i, in_flight)), max_bytes=65_536)
        for i in range(in_flight)
    ]
    gc.collect()
    tracemalloc.start(8)
    before = tracemalloc.take_snapshot()
    tasks = [asyncio.ensure_future(generator.generate(job, timeout_s=600)) for job in jobs]
    await asyncio.sleep(settle_s)  # every request sent, every answer still pending
    gc.collect()
    after = tracemalloc.take_snapshot()
    stats = after.compare_to(before, "lineno")
    total = sum(s.size_diff for s in stats)
    print(f"{in_flight} pages in flight: {total / 2**20:.1f} MiB traced, "
          f"{total / in_flight / 1024:.1f} KiB per page")  # fmt: skip
    print(f"top {top} lines, bytes per page in flight:")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        print(f"  {stat.size_diff / in_flight:8.0f}  {frame.filename}:{frame.lineno}")
    by_file = after.compare_to(before, "filename")
    print("by file, bytes per page in flight:")
    for stat in by_file[:top]:
        print(f"  {stat.size_diff / in_flight:8.0f}  {stat.traceback[0].filename}")
    tracemalloc.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await generator.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_profile", description=__doc__)
    parser.add_argument("--in-flight", type=int, default=2_000)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--settle-s", type=float, default=8.0)
    args = parser.parse_args()
    with Simulator(latency_s=30.0, jitter=0.0) as sim:
        asyncio.run(_profile(sim.url, args.in_flight, args.top, args.settle_s))


if __name__ == "__main__":
    main()
