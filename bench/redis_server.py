"""A throwaway redis-server on a free loopback port, started and torn down by the bench.

The bench never touches a Redis it did not start: the shared one on 6379 is someone else's.
"""

from __future__ import annotations

import subprocess
from types import TracebackType

import psutil
from redis import Redis

from pool_app.redis_server import RedisServer as _Launcher
from pool_app.redis_server import redis_server_binary, stop_process

__all__ = ["RedisServer", "redis_server_version", "stop_process"]

REDIS_SERVER = redis_server_binary() or "/usr/bin/redis-server"


def redis_server_version() -> str:
    """`redis-server --version`, e.g. "7.0.15"."""
    out = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True, check=True)
    for part in out.stdout.split():
        if part.startswith("v="):
            return part[2:]
    return out.stdout.strip()


class RedisServer(_Launcher):
    """`with RedisServer() as server:` a fresh, empty, non-persistent redis-server.

    Attributes:
        url: redis://127.0.0.1:<port>/0
        client: a synchronous client the bench uses for its own bookkeeping (stats, FLUSHALL).
    """

    def __init__(self) -> None:
        # Room for 4 processes x 2,000 connections, plus the peers' pools.
        super().__init__(extra_args=["--maxclients", "20000"])
        self.client: Redis = Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def __enter__(self) -> RedisServer:
        self.start()
        self.client.close()  # the port may have changed if the first one was taken
        self.client = Redis(host="127.0.0.1", port=self.port, decode_responses=True)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.client.close()
        super().__exit__(exc_type, exc, tb)

    def cpu_s(self) -> float:
        """CPU time (user + system) redis-server has used so far."""
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def flush(self) -> None:
        """Empty the server between two runs (and its slow log)."""
        self.client.flushall()

    def reset_stats(self) -> None:
        """CONFIG RESETSTAT: zero the command and I/O counters."""
        self.client.config_resetstat()

    def command_counts(self) -> dict[str, int]:
        """INFO commandstats as command name (lower case) -> calls."""
        stats = self.client.info("commandstats")
        return {key.removeprefix("cmdstat_"): int(value["calls"]) for key, value in stats.items()}

    def socket_reads(self) -> int:
        """INFO stats total_reads_processed: socket reads, i.e. about one per round trip."""
        return int(self.client.info("stats")["total_reads_processed"])
