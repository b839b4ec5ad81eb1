"""Redeploy as Railway does it, `cycles` times over 2 replicas.

For each replica: start the new process and wait until it has registered with Redis, then
SIGTERM the old one and SIGKILL it if it is still running after the draining time
(Railway's `drainingSeconds`, 30 s by default; shorter here, with SHUTDOWN_GRACE under it).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

from bench.chaos.logscan import grep
from bench.chaos.report import Outcome
from bench.chaos.stage import Stage
from bench.chaos.waiting import wait_until

__all__ = ["run"]

REPLICAS = 2
PAGES_PER_EBOOK = 100
LOW_WATER = 100
SHUTDOWN_GRACE_MS = 2_000


def run(root: Path, *, cycles: int, draining_s: float, drain_timeout_s: float) -> Outcome:
    """Run the redeploys and account for every page."""
    env = {"SHUTDOWN_GRACE": str(SHUTDOWN_GRACE_MS)}
    # Pages take about 1.5-3 s (0.5 s +-50% plus 25 ms a token), some longer than the grace.
    flags = ["--latency-s", "0.5", "--jitter", "0.5", "--latency-per-token-s", "0.025"]
    with Stage(root, "redeploy", aof=False, sim_flags=flags, pool_env=env) as stage:
        for _ in range(2):
            stage.push_ebook(PAGES_PER_EBOOK)
        live = [stage.start_pool() for _ in range(REPLICAS)]
        exits: Counter[str] = Counter()
        stop_times: list[float] = []
        sigkilled = 0
        for _ in range(cycles):
            for k in range(REPLICAS):
                stage.top_up(LOW_WATER, PAGES_PER_EBOOK)
                new = stage.start_pool()
                if not wait_until(lambda c=new: bool(stage.pool_ids_of(c.pid)), timeout_s=60):
                    raise RuntimeError(f"the new pool process did not register; see {new.log}")
                old = live[k]
                wait_until(lambda o=old: stage.holds_jobs(o.pid), timeout_s=5, interval_s=0.05)
                t0 = time.monotonic()
                old.signal(signal.SIGTERM)
                if not wait_until(lambda o=old: not o.alive(), timeout_s=draining_s):
                    sigkilled += 1
                    old.kill9()
                stop_times.append(time.monotonic() - t0)
                exits[str(old.proc.returncode)] += 1
                live[k] = new
        drain_s = stage.drain(drain_timeout_s)
        given_back = grep(stage.logs(), r"unfinished jobs back to the queue")
        outcome = stage.outcome(f"{cycles} redeploys x {REPLICAS}", drain_s)
        outcome.details = {
            "exit_codes": dict(exits),
            "sigkilled": sigkilled,
            "stop_s_max": round(max(stop_times), 2),
            "stop_s_median": round(sorted(stop_times)[len(stop_times) // 2], 2),
        }
        outcome.notes += [
            f"{cycles} cycles x {REPLICAS} replicas: new process up, SIGTERM to the old one, "
            f"SIGKILL after {draining_s:.0f} s (SHUTDOWN_GRACE={SHUTDOWN_GRACE_MS} ms).",
            f"Old processes' exit codes: {dict(exits)}; {sigkilled} needed SIGKILL; SIGTERM to "
            f"exit: median {outcome.details['stop_s_median']} s, max "
            f"{outcome.details['stop_s_max']} s.",
            f'"Gave N unfinished jobs back" lines: {len(given_back)}.',
        ]
        return outcome
