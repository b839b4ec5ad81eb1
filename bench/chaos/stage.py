"""One scenario's world: its directory, a redis-server, the simulator and pool processes.

`with Stage(...) as stage:` starts Redis and the simulator; `stage.start_pool()` starts pool
processes (each with its own log); leaving the block stops every child it started, whatever
happened. `stage.outcome()` gathers the figures every scenario reports.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Any

from bench.chaos.ledger import Pushed, account, in_flight
from bench.chaos.logscan import scan_logs
from bench.chaos.payloads import valid_job
from bench.chaos.procs import Child, RedisProc, SimulatorProc, start_pool
from bench.chaos.report import Outcome
from bench.chaos.waiting import wait_until
from pool.keys import Keys

__all__ = ["Stage"]


class Stage:
    """Redis (with or without AOF), the simulator (with `sim_flags`) and pool processes."""

    def __init__(
        self,
        root: Path,
        name: str,
        *,
        aof: bool,
        sim_flags: list[str],
        pool_env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.aof = aof
        self.sim_flags = sim_flags
        self.pool_env = pool_env or {}
        self.keys = Keys("chaos")
        self.pushed = Pushed(self.keys)
        self.pools: list[Child] = []
        self.redis: RedisProc
        self.sim: SimulatorProc
        self.started = time.monotonic()

    def __enter__(self) -> Stage:
        self.redis = RedisProc(self.dir, aof=self.aof).start()
        try:
            self.sim = SimulatorProc(self.dir, *self.sim_flags)
        except BaseException:
            self.redis.stop()
            raise
        self.started = time.monotonic()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            for child in self.pools:
                child.stop(timeout_s=5)
        finally:
            try:
                self.sim.stop()
            finally:
                self.redis.stop()

    @property
    def r(self) -> Any:
        """A synchronous client of the scenario's Redis."""
        return self.redis.client

    def start_pool(self, **env: str) -> Child:
        """Start one more `python -m pool run` (its log: pool-<n>.log)."""
        log = self.dir / f"pool-{len(self.pools) + 1:03d}.log"
        child = start_pool(
            self.redis.url, self.sim, log, KEY_PREFIX=self.keys.prefix, **self.pool_env, **env
        )
        self.pools.append(child)
        return child

    def push_ebook(self, pages: int) -> str:
        """Queue every page of a new valid ebook (status hash first, like the app)."""
        ebook_id = f"{self.name}-{len(self.pushed.valid) + 1:04d}"
        jobs = [valid_job(ebook_id, i, pages) for i in range(pages)]
        self.pushed.ebook(self.r, ebook_id, jobs)
        return ebook_id

    def top_up(self, low_water: int, pages: int) -> None:
        """Queue another ebook if fewer than `low_water` jobs are waiting."""
        if self.queue_len() < low_water:
            self.push_ebook(pages)

    def logs(self) -> list[Path]:
        """Every pool log of the scenario."""
        return [c.log for c in self.pools]

    def queue_len(self) -> int:
        """Jobs waiting in the queue."""
        return int(self.r.llen(self.keys.queue))

    def settled(self) -> bool:
        """Nothing queued and nothing claimed."""
        return in_flight(self.r, self.keys) == 0

    def pool_ids_of(self, pid: int) -> list[str]:
        """The registered pool ids of process `pid` (ids look like host-pid-random)."""
        ids = [m.decode() for m in self.r.smembers(self.keys.pools)]
        return [i for i in ids if i.split("-")[-2:-1] == [str(pid)]]

    def holds_jobs(self, pid: int) -> bool:
        """True if process `pid` has claimed jobs it has not finished."""
        return any(self.r.llen(self.keys.processing(i)) for i in self.pool_ids_of(pid))

    def drain(self, timeout_s: float) -> float | None:
        """Wait until nothing is queued or claimed; seconds it took, or None on timeout."""
        t0 = time.monotonic()
        if wait_until(self.settled, timeout_s=timeout_s, interval_s=0.1):
            return time.monotonic() - t0
        return None

    def outcome(self, disruption: str, drain_s: float | None, **details: Any) -> Outcome:
        """The scenario's figures: the ledger, the logs and the simulator's request count."""
        ledger = account(self.r, self.pushed)
        logs = scan_logs(self.logs())
        requests = int(self.sim.stats()["requests"])
        return Outcome(
            scenario=self.name,
            disruption=disruption,
            ledger=ledger,
            logs=logs,
            llm_requests=requests,
            generated_twice=max(0, requests - ledger.stored - ledger.malformed_stored),
            drain_s=drain_s,
            duration_s=time.monotonic() - self.started,
            details=details,
        )
