"""The parent side of a run: start a runner process, drive it, read Redis' counters around it.

A runner is a module that calls `bench.child.main` (ours: `bench.ours`; peers:
`bench.peers.*_runner`), run with the interpreter of its venv. See `bench.child` for the
line protocol.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.redis_server import RedisServer

__all__ = ["REPO", "Child", "RunError", "Target", "run_once"]

REPO = Path(__file__).resolve().parent.parent
#: Commands the parent itself sends while a run is measured; never counted against a runner.
_OWN_COMMANDS = frozenset({"info", "config"})
#: Socket reads of the parent's own between RESETSTAT and reading the counters.
_OWN_READS = 2
_RSS_SAMPLE_S = 0.02


class RunError(RuntimeError):
    """A runner failed, hung or said something unexpected; the message has its stderr tail."""


@dataclass(frozen=True, slots=True)
class Target:
    """Something to measure.

    Attributes:
        name: short name used in flags and tables ("ours", "arq", "taskiq-list", ...).
        python: interpreter of the venv the runner needs.
        module: the runner module, run with `python -m`.
        options: `--option key=value` pairs always passed to this runner.
    """

    name: str
    python: Path
    module: str
    options: Mapping[str, str]


class Child:
    """One runner process, with its stdout read line by line on a thread."""

    def __init__(self, cmd: list[str], *, env: Mapping[str, str] | None = None) -> None:
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in finish/kill)
        self._proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        )
        self.pid = self._proc.pid
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        with self._proc.stdout:
            for line in self._proc.stdout:
                self._lines.put(line)
        self._lines.put(None)

    def stderr_tail(self, lines: int = 25) -> str:
        self._stderr.seek(0)
        return "".join(self._stderr.readlines()[-lines:])

    def expect(self, event: str, timeout_s: float) -> dict[str, Any]:
        """The next protocol message, which must be `event`."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RunError(
                    f"no {event!r} within {timeout_s:.0f} s\n{self.stderr_tail()}"
                ) from None
            if line is None:
                self._proc.wait()
                raise RunError(
                    f"runner exited ({self._proc.returncode}) before {event!r}\n{self.stderr_tail()}"
                )
            if not line.startswith("{"):
                continue  # a library printing on stdout
            message: dict[str, Any] = json.loads(line)
            if message["event"] == "error":
                raise RunError(f"{message['error']}\n{message.get('traceback', '')}")
            if message["event"] != event:
                raise RunError(f"expected {event!r}, got {message['event']!r}")
            return message

    def send(self, order: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(order + "\n")
        self._proc.stdin.flush()

    def finish(self, timeout_s: float = 30) -> None:
        """Wait for the process to exit; kill it if it does not."""
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._close()

    def running(self) -> bool:
        return self._proc.poll() is None

    def terminate(self, timeout_s: float) -> int:
        """SIGTERM, then its exit code; killed (and RunError) if it has not exited in time."""
        if self._proc.poll() is None:
            self._proc.terminate()
        try:
            return self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            tail = self.stderr_tail()
            self.kill()
            raise RunError(
                f"still running {timeout_s:.0f} s after SIGTERM; killed\n{tail}"
            ) from None

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close()

    def _close(self) -> None:
        """Our ends of its stdin and stderr (the reader thread closes stdout at its end)."""
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):  # BrokenPipe: it exited with orders unread
                self._proc.stdin.close()
        self._stderr.close()


class RssSampler:
    """Peak resident memory of one process, sampled on a thread (psutil)."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_bytes = max(self.peak_bytes, self._process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(_RSS_SAMPLE_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def command_line(target: Target, server: RedisServer, **args: Any) -> list[str]:
    """`python -m <runner> --redis-url ... --jobs ...` for this target."""
    cmd = [str(target.python), "-m", target.module, "--redis-url", server.url]
    options = {**target.options, **args.pop("options", {})}
    for key, value in args.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    for key, value in options.items():
        cmd += ["--option", f"{key}={value}"]
    return cmd


def run_once(
    server: RedisServer,
    target: Target,
    *,
    mode: str,
    jobs: int,
    concurrency: int,
    gap_ms: float = 10.0,
    options: Mapping[str, str] | None = None,
    timeout_s: float = 900,
) -> dict[str, Any]:
    """One measured run of `target` on an empty `server`.

    Returns the runner's figures (`bench.child`) plus `commands` (name -> calls, with the
    runner's own completion checks and the parent's INFO/CONFIG taken out), `socket_reads`,
    `peak_rss_bytes` of the runner and `redis_cpu_s`, the CPU time redis-server spent.
    """
    server.flush()
    child = Child(
        command_line(
            target,
            server,
            mode=mode,
            jobs=jobs,
            concurrency=concurrency,
            gap_ms=gap_ms,
            options=dict(options or {}),
        )
    )
    try:
        child.expect("ready", timeout_s)
        server.reset_stats()
        redis_cpu0 = server.cpu_s()
        with RssSampler(child.pid) as rss:
            child.send("go")
            done = child.expect("done", timeout_s)
        redis_cpu_s = server.cpu_s() - redis_cpu0
        counts = server.command_counts()
        reads = server.socket_reads()
        child.send("stop")
        child.expect("closed", 60)
        child.finish()
    except BaseException:
        child.kill()
        raise
    checks = int(done.pop("checks"))
    for name, per_check in done.pop("check_commands").items():
        counts[name] = counts.get(name, 0) - per_check * checks
    done.pop("event")
    return {
        **done,
        "commands": {
            k: v for k, v in counts.items() if k.split("|")[0] not in _OWN_COMMANDS and v > 0
        },
        "socket_reads": max(0, reads - _OWN_READS - checks),
        "peak_rss_bytes": rss.peak_bytes,
        "redis_cpu_s": redis_cpu_s,
    }
