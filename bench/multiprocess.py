"""One measured run of `python -m bench.supervised`: the real supervisor and N bench pools.

1. every job is pushed onto a staging list (not timed);
2. the supervisor starts; it says how many children `--processes` resolved to;
3. once every child's pool has registered (its first heartbeat in `<prefix>:pools`), the
   clock starts and the staging list is RENAMEd onto the queue: all jobs appear at once,
   waking the children blocked on it;
4. the ebooks' `done` counts are polled until every page is stored (`bench.completion`);
   meanwhile each child's peak RSS is sampled, and its CPU time read at both ends;
5. SIGTERM to the supervisor, which forwards it; it must exit 0 (a graceful stop) with the
   same children it started (none restarted).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextlib import ExitStack
from typing import Any

import psutil

from bench.child import PAGES_PER_EBOOK
from bench.completion import CompletionWatcher, steady_rate
from bench.harness import Child, RssSampler, RunError, Target
from bench.ours import KEY_PREFIX, job_wire
from bench.redis_server import RedisServer
from bench.supervised import SHUTDOWN_GRACE_S
from pool import Keys

__all__ = ["run_supervised"]

_READY_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = SHUTDOWN_GRACE_S + 30.0
_STAGING = f"{KEY_PREFIX}:bench-staging"
_PUSH_BATCH = 1_000


def run_supervised(
    server: RedisServer,
    target: Target,
    *,
    processes: int | str,
    jobs: int,
    concurrency: int | None = None,
    total_concurrency: int | None = None,
    options: Mapping[str, str] | None = None,
    timeout_s: float = 600.0,
    poll_s: float = 0.005,
) -> dict[str, Any]:
    """One run on an empty `server`; raises RunError if it fails, hangs or stops badly.

    Args:
        target: ours (its interpreter runs the supervisor).
        processes: N or "auto", as `--processes` takes it.
        concurrency / total_concurrency: pages in flight per process, or over all of them.
        options: `--option key=value` for every child (e.g. generator=openai, base_url=...).

    Returns the figures: `processes` (resolved), `concurrency_per_process`, `elapsed_s`,
    `jobs_per_s`, `steady_jobs_per_s`, `cpu_s` (the children's, summed) and per process,
    `peak_rss_bytes` (the largest child's) and per process, `redis_cpu_s`.
    """
    server.flush()
    keys = Keys(KEY_PREFIX)
    _stage(server, jobs)
    child = Child(_command(target, server, processes, concurrency, total_concurrency, options))
    try:
        started = child.expect("supervising", _READY_TIMEOUT_S)
        count = int(started["processes"])
        pools = _wait_pools(server, keys, child, count)
        watcher = CompletionWatcher(server.client, _status_keys(keys, jobs), jobs, poll_s=poll_s)
        with ExitStack() as stack:
            samplers = [stack.enter_context(RssSampler(p.pid)) for p in pools]
            cpu0 = [_cpu_s(p) for p in pools]
            redis_cpu0 = server.cpu_s()
            watcher.start()
            server.client.rename(_STAGING, keys.queue)
            elapsed = watcher.wait(timeout_s, alive=child.running)
            redis_cpu_s = server.cpu_s() - redis_cpu0
            cpu = [_cpu_s(p) - c0 for p, c0 in zip(pools, cpu0, strict=True)]
        if elapsed is None:
            done = watcher.samples[-1][1] if watcher.samples else 0
            raise RunError(f"{done} of {jobs} pages done, then stopped\n{child.stderr_tail()}")
        _check_same_children(child, pools)
        code = child.terminate(_STOP_TIMEOUT_S)
        if code != 0:
            raise RunError(f"the supervisor exited {code} after SIGTERM\n{child.stderr_tail()}")
        child.finish()
    except BaseException:
        child.kill()
        raise
    rss = [s.peak_bytes for s in samplers]
    return {
        "jobs": jobs,
        "requested": str(processes),
        "processes": count,
        "concurrency_per_process": int(started["concurrency"]),
        "elapsed_s": elapsed,
        "jobs_per_s": jobs / elapsed,
        "steady_jobs_per_s": steady_rate(watcher.samples, jobs),
        "cpu_s": sum(cpu),
        "cpu_s_per_process": cpu,
        "peak_rss_bytes": max(rss),
        "peak_rss_bytes_per_process": rss,
        "redis_cpu_s": redis_cpu_s,
        "supervisor_exit": code,
    }


def _command(
    target: Target,
    server: RedisServer,
    processes: int | str,
    concurrency: int | None,
    total_concurrency: int | None,
    options: Mapping[str, str] | None,
) -> list[str]:
    if (concurrency is None) == (total_concurrency is None):
        raise ValueError("give one of concurrency and total_concurrency")
    cmd = [str(target.python), "-m", "bench.supervised", "--processes", str(processes)]
    cmd += ["--redis-url", server.url]
    if concurrency is not None:
        cmd += ["--concurrency", str(concurrency)]
    else:
        cmd += ["--total-concurrency", str(total_concurrency)]
    for key, value in {**target.options, **(options or {})}.items():
        cmd += ["--option", f"{key}={value}"]
    return cmd


def _stage(server: RedisServer, jobs: int) -> None:
    """Push every job onto the staging list, in the order `bench.ours` enqueues them."""
    for start in range(0, jobs, _PUSH_BATCH):
        batch = [job_wire(i, jobs) for i in range(start, min(jobs, start + _PUSH_BATCH))]
        server.client.lpush(_STAGING, *batch)


def _status_keys(keys: Keys, jobs: int) -> list[str]:
    ebooks = -(-jobs // min(PAGES_PER_EBOOK, jobs))
    return [keys.status(f"bench-{e}") for e in range(ebooks)]


def _wait_pools(server: RedisServer, keys: Keys, child: Child, count: int) -> list[psutil.Process]:
    """Wait until `count` pools have registered; the supervisor's children, by pid."""
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while server.client.scard(keys.pools) < count:
        if not child.running() or time.monotonic() > deadline:
            raise RunError(f"{count} pool processes did not all start\n{child.stderr_tail()}")
        time.sleep(0.01)
    children = psutil.Process(child.pid).children()
    if len(children) != count:
        raise RunError(f"the supervisor runs {len(children)} processes, not {count}")
    return children


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _check_same_children(child: Child, pools: list[psutil.Process]) -> None:
    now = {p.pid for p in psutil.Process(child.pid).children()}
    if now != {p.pid for p in pools}:
        raise RunError(f"pool processes were restarted during the run\n{child.stderr_tail()}")
