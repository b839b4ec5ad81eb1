"""The children of a chaos scenario: redis-server, the simulator and pool processes.

Each runs in its own session (process group), listens on 127.0.0.1 only, and writes its log
under the scenario's directory. `Child.kill9()` is `kill -9` of the whole group; `stop()` is
SIGTERM then SIGKILL. Nothing here touches a process the suite did not start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from redis import Redis

from bench.chaos.waiting import wait_until

__all__ = ["Child", "RedisProc", "SimulatorProc", "free_port", "start_pool"]

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Child:
    """One child process in its own process group, its stdout and stderr in `log`."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.log = log
        with log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                args,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The child's pid (also its process group id)."""
        return self.proc.pid

    def alive(self) -> bool:
        """True while the child has not exited."""
        return self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the child's whole process group (no-op once it has exited)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill9(self) -> int:
        """`kill -9` the group and reap the child; returns its exit code."""
        self.signal(signal.SIGKILL)
        return self.proc.wait()

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after `timeout_s`; returns the exit code."""
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return self.kill9()


class RedisProc:
    """A private redis-server on a free port; restartable on the same port and data dir.

    With `aof=True` every write is fsynced to the append-only file (`appendfsync always`), so a
    SIGKILL loses nothing; without it the server keeps nothing across a restart.
    """

    def __init__(self, workdir: Path, *, aof: bool) -> None:
        self.workdir = workdir
        self.aof = aof
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.child: Child | None = None
        self.restarts = 0
        self.client = Redis(host="127.0.0.1", port=self.port, socket_timeout=30)

    def start(self) -> RedisProc:
        """Start the server and wait until it answers PING (and has loaded its AOF)."""
        self.child = Child(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.workdir),
                "--save", "",
                "--appendonly", "yes" if self.aof else "no",
                "--appendfsync", "always",
                "--maxclients", "10000",
            ],
            self.workdir / "redis.log",
        )  # fmt: skip
        child = self.child

        def answers() -> bool:
            if not child.alive():
                raise RuntimeError(f"redis-server exited; see {child.log}")
            try:
                return bool(self.client.ping())
            except Exception:
                return False

        if not wait_until(answers, timeout_s=30, interval_s=0.02):
            raise RuntimeError(f"redis-server on port {self.port} did not answer within 30 s")
        return self

    def kill9(self) -> None:
        """SIGKILL the server (no shutdown, no save)."""
        if self.child is not None:
            self.child.kill9()
            self.child = None
        self.client.connection_pool.disconnect()

    def restart(self) -> None:
        """Start it again on the same port and data directory."""
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        """Stop the server for good."""
        self.client.close()
        if self.child is not None:
            self.child.stop()
            self.child = None


class SimulatorProc:
    """`python -m generator.simulator` on a free port; `stats()` reads its /_sim/stats."""

    def __init__(self, workdir: Path, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        self.child = Child(
            [sys.executable, "-m", "generator.simulator", "--port", str(self.port), *flags],
            workdir / "simulator.log",
        )
        if not wait_until(self._answers, timeout_s=30, interval_s=0.05):
            self.child.stop()
            raise RuntimeError(f"the simulator did not answer; see {self.child.log}")

    def _answers(self) -> bool:
        if not self.child.alive():
            raise RuntimeError(f"the simulator exited; see {self.child.log}")
        try:
            self.stats()
            return True
        except OSError:
            return False

    def stats(self) -> dict[str, Any]:
        """The simulator's stats snapshot (requests, by_kind, ...)."""
        with urllib.request.urlopen(f"{self.url}/_sim/stats", timeout=5) as answer:
            return dict(json.loads(answer.read()))

    def stop(self) -> None:
        """Stop the simulator."""
        self.child.stop()


#: Pool settings every scenario shares (milliseconds, like the real env vars).
POOL_ENV = {
    "OPENAI_API_KEY": "sk-test",
    "CONCURRENT_WORKERS": "10",
    "PROCESSING_DELAY": "0",
    "POLL_INTERVAL": "200",
    "HEARTBEAT_INTERVAL": "250",
    "HEARTBEAT_TIMEOUT": "1500",
    "RETRY_BACKOFF": "50",
    "RETRY_BACKOFF_MAX": "500",
    "GENERATION_TIMEOUT": "15000",
    "STATS_INTERVAL": "5000",
    "SHUTDOWN_GRACE": "2000",
    "LOG_FORMAT": "text",
}


def start_pool(redis_url: str, sim: SimulatorProc, log: Path, **env: str) -> Child:
    """Start `python -m pool run` against `redis_url` and the simulator; `env` overrides."""
    settings = {**POOL_ENV, "REDIS_URL": redis_url, "OPENAI_BASE_URL": sim.base_url, **env}
    return Child([sys.executable, "-m", "pool", "run"], log, env={**os.environ, **settings})
