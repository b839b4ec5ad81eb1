"""The measured side of a benchmark run: one process, one queue library, one run.

Every runner (ours in `bench.ours`, each peer in `bench.peers.*`) is a small `Adapter` handed to
`main()`. This module drives it the same way for all of them and talks to the parent
(`bench.harness`) with one JSON object per line on stdout, taking orders on stdin:

    child  -> {"event": "ready"}           jobs enqueued (throughput) or worker idle (latency)
    parent -> "go"                          parent has reset Redis' counters and started sampling
    child  -> {"event": "done", ...}        last result stored; the figures of the run
    parent -> "stop"                        parent has read Redis' counters
    child  -> {"event": "closed"}           worker stopped, connections closed

It imports nothing outside the standard library: it runs inside every peer's own venv.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import traceback
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Adapter", "Probe", "RunSpec", "job_payload", "main"]

#: Pages per ebook when jobs are spread over ebooks (20,000 jobs = 20 ebooks x 1,000 pages).
PAGES_PER_EBOOK = 1_000
#: Longest the driver waits for a run before giving up (a hung peer must not hang CI).
RUN_TIMEOUT_S = 900.0
#: Between two checks that every result is stored, once every job function has returned.
_CHECK_INTERVAL_S = 0.001


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What the parent asked for, from the command line.

    Attributes:
        redis_url: the bench's own redis-server.
        mode: "throughput" (all jobs enqueued, then the worker starts), "latency" (idle worker,
            jobs pushed one at a time) or "serve" (start the worker and report "done" at once:
            the parent, which runs several processes, watches for the end itself).
        jobs: number of page jobs.
        concurrency: jobs in flight at once in this process.
        gap_s: latency mode: pause between two pushes.
        options: runner-specific `key=value` settings (e.g. the simulator's URL for ours).
    """

    redis_url: str
    mode: str
    jobs: int
    concurrency: int
    gap_s: float
    options: Mapping[str, str]


def job_payload(i: int, jobs: int) -> dict[str, Any]:
    """The i-th page job, in the pool's wire format; peers get the same dict as arguments."""
    per_ebook = min(PAGES_PER_EBOOK, jobs)
    return {
        "ebookId": f"bench-{i // per_ebook}",
        "pageIndex": i % per_ebook,
        "totalPages": per_ebook,
        "title": "A benchmark ebook",
    }


def job_number(payload: Mapping[str, Any]) -> int:
    """Inverse of `job_payload`: which job this is."""
    return int(payload["ebookId"].rsplit("-", 1)[1]) * int(payload["totalPages"]) + int(
        payload["pageIndex"]
    )


@dataclass(slots=True)
class Probe:
    """What job functions report: when each job started and how many have finished."""

    jobs: int
    started_at: dict[int, float] = field(default_factory=dict)
    finished_at: list[float] = field(default_factory=list)
    finished: int = 0
    all_finished: asyncio.Event = field(default_factory=asyncio.Event)

    def started(self, i: int) -> None:
        """Call first thing in the job function."""
        self.started_at.setdefault(i, time.perf_counter())

    def done(self) -> None:
        """Call last thing in the job function (the library stores the result after it)."""
        self.finished += 1
        self.finished_at.append(time.perf_counter())
        if self.finished >= self.jobs:
            self.all_finished.set()


class Adapter(Protocol):
    """One queue library, driven by `main()`.

    Attributes:
        check_commands: Redis commands (lower-case name -> count) one `count_stored()` issues;
            the parent subtracts them from the run's command counts.
    """

    check_commands: Mapping[str, int]

    async def open(self, spec: RunSpec, probe: Probe) -> None:
        """Connect and register the job function, which must call `probe.started/done`."""

    async def enqueue_all(self, jobs: int) -> None:
        """Enqueue every job with the library's own producer API (time not measured)."""

    async def enqueue_one(self, i: int) -> None:
        """Enqueue job `i` alone (latency mode)."""

    async def start(self) -> None:
        """Start the worker in the background and return."""

    async def count_stored(self) -> int:
        """How many results are stored in Redis, with the commands in `check_commands`."""

    async def close(self) -> None:
        """Stop the worker and close every connection."""


def _emit(event: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def _order(expected: str) -> None:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if line.strip() != expected:
        raise RuntimeError(f"expected {expected!r} from the parent, got {line.strip()!r}")


async def _wait_stored(adapter: Adapter, jobs: int) -> int:
    """Poll until every result is stored; returns how many checks it took."""
    checks = 0
    while True:
        checks += 1
        if await adapter.count_stored() >= jobs:
            return checks
        await asyncio.sleep(_CHECK_INTERVAL_S)


async def _throughput(adapter: Adapter, spec: RunSpec, probe: Probe) -> dict[str, Any]:
    await adapter.enqueue_all(spec.jobs)
    _emit("ready")
    await _order("go")
    cpu0, t0 = time.process_time(), time.perf_counter()
    await adapter.start()
    await probe.all_finished.wait()
    checks = await _wait_stored(adapter, spec.jobs)
    elapsed_s = time.perf_counter() - t0
    return {
        "jobs": spec.jobs,
        "elapsed_s": elapsed_s,
        "jobs_per_s": spec.jobs / elapsed_s,
        "steady_jobs_per_s": _steady_rate(probe.finished_at),
        "cpu_s": time.process_time() - cpu0,
        "checks": checks,
    }


def _steady_rate(finished_at: list[float]) -> float | None:
    """Jobs per second between the 10th and the 90th percentile of finish times: the rate once
    the worker is full, without the ramp at the start and the stragglers at the end."""
    times = sorted(finished_at)
    if len(times) < 10:
        return None
    lo, hi = len(times) // 10, len(times) * 9 // 10
    span = times[hi] - times[lo]
    return (hi - lo) / span if span > 0 else None


async def _serve(adapter: Adapter, spec: RunSpec, probe: Probe) -> dict[str, Any]:
    """Scale-out: several processes share one queue, so the parent watches for the end."""
    await adapter.enqueue_all(spec.jobs)
    _emit("ready")
    await _order("go")
    await adapter.start()
    return {"jobs": spec.jobs, "checks": 0}


async def _latency(adapter: Adapter, spec: RunSpec, probe: Probe) -> dict[str, Any]:
    await adapter.start()
    await asyncio.sleep(0.5)  # let the worker reach its idle wait
    _emit("ready")
    await _order("go")
    pushed_at: dict[int, float] = {}
    for i in range(spec.jobs):
        pushed_at[i] = time.perf_counter()
        await adapter.enqueue_one(i)
        await asyncio.sleep(spec.gap_s)
    await probe.all_finished.wait()
    checks = await _wait_stored(adapter, spec.jobs)
    latencies_ms = sorted((probe.started_at[i] - pushed_at[i]) * 1000 for i in pushed_at)
    return {"jobs": spec.jobs, "latencies_ms": latencies_ms, "checks": checks}


async def _drive(adapter: Adapter, spec: RunSpec) -> None:
    probe = Probe(jobs=spec.jobs)
    await adapter.open(spec, probe)
    try:
        run = {"throughput": _throughput, "latency": _latency, "serve": _serve}[spec.mode]
        figures = await asyncio.wait_for(run(adapter, spec, probe), RUN_TIMEOUT_S)
        _emit("done", check_commands=dict(adapter.check_commands), **figures)
        await _order("stop")
    finally:
        await adapter.close()
    _emit("closed")


def parse_spec(argv: list[str] | None = None) -> RunSpec:
    """The run's `RunSpec` from the command line the parent built."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--mode", choices=["throughput", "latency", "serve"], default="throughput")
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    options = dict(opt.split("=", 1) for opt in args.option)
    return RunSpec(
        redis_url=args.redis_url,
        mode=args.mode,
        jobs=args.jobs,
        concurrency=args.concurrency,
        gap_s=args.gap_ms / 1000,
        options=options,
    )


def main(
    make_adapter: Callable[[], Adapter],
    *,
    run: Callable[[Coroutine[Any, Any, None], RunSpec], None] | None = None,
) -> None:
    """Entry point of a runner module: `main(MyAdapter)`; exits 1 after an "error" event.

    Args:
        run: runs the driver coroutine to its end (default `asyncio.run`); a runner that picks
            its event loop from the spec's options passes its own.
    """
    spec = parse_spec()
    try:
        driver = _drive(make_adapter(), spec)
        if run is None:
            asyncio.run(driver)
        else:
            run(driver, spec)
    except BaseException as exc:
        _emit("error", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        raise SystemExit(1) from None
