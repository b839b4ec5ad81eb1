"""Kill storm: 3 pool processes, `kills` kill -9 across them at random, each restarted at once.

The queue is topped up before every kill, so there are always pages queued when one lands
(the lowest depth seen is reported). The victim is drawn at random; the storm waits (up to
15 s) until it has claimed jobs, so a kill lands on a working process rather than one still
importing its modules, then waits a random 0-0.5 s more and kills it.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from bench.chaos.report import Outcome
from bench.chaos.stage import Stage
from bench.chaos.waiting import wait_until

__all__ = ["run"]

PROCESSES = 3
PAGES_PER_EBOOK = 200
LOW_WATER = 300


def run(root: Path, *, kills: int, seed: int, drain_timeout_s: float) -> Outcome:
    """Run the storm and account for every page."""
    rng = random.Random(seed)
    with Stage(root, "kill-storm", aof=False, sim_flags=["--latency-s", "0.2"]) as stage:
        for _ in range(5):
            stage.push_ebook(PAGES_PER_EBOOK)
        slots = [stage.start_pool() for _ in range(PROCESSES)]
        depths: list[int] = []
        holding = 0
        for _ in range(kills):
            stage.top_up(LOW_WATER, PAGES_PER_EBOOK)
            k = rng.randrange(PROCESSES)
            pid = slots[k].pid
            wait_until(lambda p=pid: stage.holds_jobs(p), timeout_s=15, interval_s=0.05)
            time.sleep(rng.uniform(0.0, 0.5))  # a random moment of its work, not synchronisation
            depths.append(stage.queue_len())
            holding += stage.holds_jobs(slots[k].pid)
            slots[k].kill9()
            slots[k] = stage.start_pool()
        drain_s = stage.drain(drain_timeout_s)
        outcome = stage.outcome(f"{kills} kill -9", drain_s, min_queue_at_kill=min(depths))
        outcome.notes += [
            f"{kills} kill -9 over {PROCESSES} processes ({len(stage.pools)} processes started "
            f"in all); {holding} kills hit a process holding claimed jobs.",
            f"Jobs queued at each kill: at least {min(depths)} (max {max(depths)}).",
        ]
        if min(depths) == 0:
            outcome.notes.append("WARNING: the queue was empty at some kill.")
        return outcome
