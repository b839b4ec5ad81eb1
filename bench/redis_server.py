"""A throwaway redis-server on a free loopback port, started and torn down by the bench.

The bench never touches a Redis it did not start: the shared one on 6379 is someone else's.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from types import TracebackType

import psutil
from redis import Redis

__all__ = ["RedisServer", "redis_server_version", "stop_process"]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_version() -> str:
    """`redis-server --version`, e.g. "7.0.15"."""
    out = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True, check=True)
    for part in out.stdout.split():
        if part.startswith("v="):
            return part[2:]
    return out.stdout.strip()


class RedisServer:
    """`with RedisServer() as server:` a fresh, empty, non-persistent redis-server.

    Attributes:
        url: redis://127.0.0.1:<port>/0
        client: a synchronous client the bench uses for its own bookkeeping (stats, FLUSHALL).
    """

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.TemporaryDirectory(prefix="bench-redis-")
        self._proc: subprocess.Popen[bytes] | None = None
        self.client: Redis = Redis(host="127.0.0.1", port=self.port, decode_responses=True)

    def __enter__(self) -> RedisServer:
        self._proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self._dir.name,
                # Room for 4 processes x 2,000 connections, plus the peers' pools.
                "--maxclients", "20000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except Exception:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.client.close()
        if self._proc is not None:
            stop_process(self._proc)
        self._dir.cleanup()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

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


def stop_process(proc: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> None:
    """SIGTERM a child we started, then SIGKILL it if it has not exited within `timeout_s`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
