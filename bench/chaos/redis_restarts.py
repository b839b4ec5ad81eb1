"""Redis dies under the pool: SIGKILL + restart with AOF, and once without persistence.

With AOF (`appendfsync always`) nothing acknowledged is lost, so the usual targets apply.
Without persistence the restarted Redis is empty: the scenario records what the pool logs
after the restart and what the app would see (status hashes present or missing, their states,
pages stored). Losses are expected there and are reported, not made a target.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from bench.chaos.ledger import in_flight
from bench.chaos.logscan import grep
from bench.chaos.report import Outcome
from bench.chaos.stage import Stage
from bench.chaos.waiting import wait_until

__all__ = ["run_aof", "run_no_persistence"]

PROCESSES = 2
PAGES_PER_EBOOK = 200
LOW_WATER = 300


def _outage(stage: Stage, rng: random.Random) -> None:
    stage.redis.kill9()
    time.sleep(rng.uniform(0.3, 1.5))  # the outage itself: pages finish while Redis is away
    stage.redis.restart()


def run_aof(root: Path, *, restarts: int, seed: int, drain_timeout_s: float) -> Outcome:
    """`restarts` SIGKILLs of an AOF Redis at random moments of a busy run."""
    rng = random.Random(seed)
    with Stage(root, "redis-aof", aof=True, sim_flags=["--latency-s", "0.2"]) as stage:
        for _ in range(3):
            stage.push_ebook(PAGES_PER_EBOOK)
        for _ in range(PROCESSES):
            stage.start_pool()
        depths = []
        for _ in range(restarts):
            time.sleep(rng.uniform(1.0, 2.5))  # pacing, not synchronisation
            stage.top_up(LOW_WATER, PAGES_PER_EBOOK)
            depths.append(stage.queue_len())
            _outage(stage, rng)
        drain_s = stage.drain(drain_timeout_s)
        back = len(grep(stage.logs(), r"Redis is back"))
        outcome = stage.outcome(f"{restarts} Redis SIGKILL (AOF)", drain_s)
        outcome.notes += [
            f"{restarts} SIGKILL + restart of redis-server (appendonly yes, appendfsync always), "
            f"{PROCESSES} pool processes; jobs queued at each kill: at least {min(depths)}.",
            f'"Redis is back" lines in the pool logs: {back} ({PROCESSES} processes x '
            f"{restarts} outages).",
        ]
        return outcome


def _app_view(stage: Stage) -> tuple[dict[str, int], list[str]]:
    """What the app sees: status hashes present/missing, and one line per ebook."""
    r, keys = stage.r, stage.keys
    counts = {"present": 0, "missing": 0, "pages": 0}
    lines = []
    for ebook, total in stage.pushed.valid.items():
        status = {k.decode(): v.decode() for k, v in r.hgetall(keys.status(ebook)).items()}
        pages = int(r.hlen(keys.pages(ebook)))
        counts["pages"] += pages
        if status:
            counts["present"] += 1
            shown = {k: status[k] for k in ("state", "total", "done", "failed") if k in status}
            lines.append(f"{ebook}: status {shown}; {pages}/{total} pages stored")
        elif pages:
            counts["missing"] += 1
            lines.append(f"{ebook}: no status hash (unknown ebook) but {pages} pages stored")
        else:
            counts["missing"] += 1
    if counts["missing"]:
        lines.append(f"{counts['missing']} ebooks have no status hash: unknown to the app")
    return counts, lines


def run_no_persistence(root: Path, *, quiet_s: float, timeout_s: float) -> Outcome:
    """One SIGKILL + restart of a Redis that keeps nothing, mid-run."""
    rng = random.Random(0)
    with Stage(root, "redis-no-persistence", aof=False, sim_flags=["--latency-s", "0.2"]) as stage:
        for _ in range(10):
            stage.push_ebook(100)
        for _ in range(PROCESSES):
            stage.start_pool()
        total = stage.pushed.valid_jobs
        wait_until(
            lambda: sum(stage.r.hlen(stage.keys.pages(e)) for e in stage.pushed.valid) >= 100,
            timeout_s=60,
        )
        offsets = {p: p.stat().st_size for p in stage.logs()}
        _outage(stage, rng)
        t0 = time.monotonic()
        # The pool is done with whatever it still held once nothing is claimed and the number
        # of pages has not moved for `quiet_s`.
        last: list[tuple[float, int]] = [(time.monotonic(), -1)]

        def quiet() -> bool:
            pages = sum(int(stage.r.hlen(stage.keys.pages(e))) for e in stage.pushed.valid)
            if pages != last[-1][1]:
                last.append((time.monotonic(), pages))
            return in_flight(stage.r, stage.keys) == 0 and time.monotonic() - last[-1][0] >= quiet_s

        settled = wait_until(quiet, timeout_s=timeout_s, interval_s=0.2)
        drain_s = time.monotonic() - t0 if settled else None
        lines = grep(stage.logs(), r"ERROR|WARNING|Redis|lost|empty|flush", since=offsets)
        counts, app = _app_view(stage)
        outcome = stage.outcome("1 Redis SIGKILL (no persistence)", drain_s)
        outcome.expect_loss = True
        outcome.details = {"app_view": counts, "ebooks": app, "pool_log_lines": lines[:40]}
        outcome.notes += [
            f"10 ebooks x 100 pages, {PROCESSES} processes; Redis (no AOF, no RDB) SIGKILLed "
            f"after 100+ pages were stored, restarted empty.",
            f"What the app sees afterwards: {counts['present']} status hashes present, "
            f"{counts['missing']} missing; {counts['pages']}/{total} pages stored.",
            "Per ebook: " + "; ".join(app),
            f"Pool log lines after the restart (ERROR/WARNING/Redis, {len(lines)} in all): "
            + json.dumps(lines[:12]),
        ]
        return outcome
