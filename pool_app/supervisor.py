"""`ebook-pool run --processes N|auto`: N pool processes under one supervisor, to use every core.

    supervisor ──spawn──► `python -m pool run` (PROCESSES=1), N of them, each its own pool id
       │  SIGTERM/SIGINT: forwarded to every child; they stop gracefully (SHUTDOWN_GRACE)
       │  a child crashes (non-zero exit, or a signal the supervisor did not send):
       │      restarted after 1 s, 2 s, 4 s ... 30 s (back to 1 s after a run of 60 s)
       └─ a child exits 2 (configuration error): every child is stopped, the supervisor exits 2

Each child is an ordinary pool process, so the reaper, `ebook-pool stats` and the no-loss
promise work as with one process per replica: a page a crashed child held is given back by
the heartbeat reaper of the others (or of its replacement).

The children run in a session of their own (a Ctrl+C at a terminal reaches the supervisor, which
forwards it once) and, on Linux, get SIGTERM if the supervisor itself dies, so none is orphaned.
Only the first child serves HTTP_PORT/PORT (/healthz, /readyz); the others would collide on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import math
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from loguru import logger

__all__ = [
    "BACKOFF_MAX_S",
    "BACKOFF_MIN_S",
    "STABLE_AFTER_S",
    "STOP_MARGIN_S",
    "Supervisor",
    "available_cpus",
    "cgroup_cpu_limit",
    "child_env",
    "pool_command",
    "resolve_processes",
    "run_supervisor",
]

BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0  # a child that ran this long resets the backoff
STOP_MARGIN_S = 15.0  # beyond SHUTDOWN_GRACE before a child that has not stopped is killed
EXIT_CONFIG = 2  # a pool process's exit code for a configuration error (never restarted)
_EXIT_INTERRUPTED = 130

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_SELF_CGROUP = Path("/proc/self/cgroup")
_PR_SET_PDEATHSIG = 1


# --- how many processes ----------------------------------------------------------------------


def cgroup_cpu_limit(
    *, root: Path = _CGROUP_ROOT, self_cgroup: Path = _SELF_CGROUP
) -> float | None:
    """The CPUs the cgroup quota allows this process (e.g. 2.5), or None without a quota.

    cgroup v2: `cpu.max` ("max 100000" or "250000 100000") of this process's cgroup and each of
    its ancestors, the smallest quota winning. cgroup v1: `cpu.cfs_quota_us` (-1 = none) over
    `cpu.cfs_period_us` of the `cpu` controller. Unreadable or odd files count as no quota.
    """
    v2_path, v1_path = _cgroup_paths(self_cgroup)
    limits: list[float] = []
    if (root / "cgroup.controllers").exists() or (root / "cpu.max").exists():
        directory = root / v2_path.lstrip("/") if v2_path else root
        for d in (directory, *directory.parents):
            if d != root and not d.is_relative_to(root):
                break
            limits.extend(_v2_quota(d / "cpu.max"))
            if d == root:
                break
    else:
        for mount in (root / "cpu,cpuacct", root / "cpu", root / "cpuacct,cpu"):
            if not mount.is_dir():
                continue
            dirs = [mount / v1_path.lstrip("/"), mount] if v1_path not in (None, "/") else [mount]
            for d in dirs:
                quota = _v1_quota(d)
                if quota is not None:
                    limits.append(quota)
                    break
            break
    return min(limits) if limits else None


def available_cpus(
    *,
    root: Path = _CGROUP_ROOT,
    self_cgroup: Path = _SELF_CGROUP,
    affinity: int | None = None,
) -> int:
    """The CPUs this process may use: its CPU affinity, capped by a cgroup quota; at least 1.

    A fractional quota is rounded up (2.5 CPUs → 3), as Go and .NET do: the pool mostly waits
    on the network, so the last partial CPU is better used than left idle.

    Args:
        affinity: the number of CPUs in the affinity mask; default: ask the OS.
    """
    if affinity is None:
        try:
            affinity = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # macOS has no sched_getaffinity
            affinity = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root=root, self_cgroup=self_cgroup)
    cpus = affinity if limit is None else min(affinity, math.ceil(limit))
    return max(1, cpus)


def resolve_processes(value: int | str, *, cpus: Callable[[], int] = available_cpus) -> int:
    """The number of pool processes for PROCESSES / `--processes` (`auto` = `cpus()`)."""
    if value == "auto":
        return max(1, cpus())
    return max(1, int(value))


def _cgroup_paths(self_cgroup: Path) -> tuple[str | None, str | None]:
    """This process's cgroup v2 path and the v1 path of its `cpu` controller, from /proc."""
    try:
        text = self_cgroup.read_text(encoding="utf-8")
    except OSError:
        return None, None
    v2: str | None = None
    v1: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _v2_quota(cpu_max: Path) -> list[float]:
    try:
        fields = cpu_max.read_text(encoding="utf-8").split()
    except OSError:
        return []
    if len(fields) != 2 or fields[0] == "max":
        return []
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return []
    return [quota / period] if quota > 0 and period > 0 else []


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text(encoding="utf-8"))
        period = int((directory / "cpu.cfs_period_us").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


# --- the children --------------------------------------------------------------------------


def pool_command() -> list[str]:
    """The command of one child: this interpreter running `ebook-pool run`."""
    return [sys.executable, "-m", "pool", "run"]


def child_env(base: Mapping[str, str], slot: int) -> dict[str, str]:
    """The environment of child number `slot` (1-based): one process each, HTTP on the first."""
    env = dict(base)
    env["PROCESSES"] = "1"
    if slot != 1:
        env.pop("HTTP_PORT", None)
        env.pop("PORT", None)
    return env


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {-code}, {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


def _parent_death_signal() -> Callable[[], None] | None:
    """Linux: a pre-exec hook that has the kernel SIGTERM the child when the supervisor dies.

    libc is looked up here, in the supervisor, so the forked child only makes the call.
    """
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    supervisor = os.getpid()

    def hook() -> None:  # runs in the forked child, before exec
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != supervisor:  # it died before the call took effect
            os._exit(1)

    return hook


class Supervisor:
    """Runs `count` pool processes until stopped, restarting the ones that crash.

    Args:
        count: how many children run at once.
        stop_timeout_s: after a stop, how long the children may take before they are killed
            (SHUTDOWN_GRACE + `STOP_MARGIN_S`).
        command: the child's command; default `pool_command()`.
        env: the children's base environment (default `os.environ`); see `child_env`.
        backoff_min_s, backoff_max_s: first and longest wait before restarting a crashed child.
        stable_after_s: a child that ran this long before crashing is restarted after
            `backoff_min_s` again.
    """

    def __init__(
        self,
        count: int,
        *,
        stop_timeout_s: float,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        backoff_min_s: float = BACKOFF_MIN_S,
        backoff_max_s: float = BACKOFF_MAX_S,
        stable_after_s: float = STABLE_AFTER_S,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        self.count = count
        self.stop_timeout_s = stop_timeout_s
        self.command = list(command or pool_command())
        self.env = dict(os.environ if env is None else env)
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.stable_after_s = stable_after_s
        self.restarts = 0
        self._children: dict[int, asyncio.subprocess.Process] = {}  # slot → running child
        self._stopping = asyncio.Event()
        self._stop_signal = signal.SIGTERM
        self._exit_code = 0
        self._kill_timer: asyncio.TimerHandle | None = None
        self._preexec = _parent_death_signal()

    @property
    def pids(self) -> list[int]:
        """The pids of the children running now, by slot."""
        return [self._children[slot].pid for slot in sorted(self._children)]

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop gracefully: forward `sig` to every child and restart none. Safe from a signal."""
        if self._stopping.is_set():
            return
        self._stop_signal = sig
        self._stopping.set()
        sent = sum(self._signal(proc, sig) for proc in list(self._children.values()))
        logger.info(f"[Supervisor] Stopping: forwarded {sig.name} to {sent} processes")
        loop = asyncio.get_running_loop()
        self._kill_timer = loop.call_later(self.stop_timeout_s, self._kill_stragglers)

    async def run(self, *, install_signal_handlers: bool = True) -> int:
        """Run the children until a stop; returns the exit code.

        0 after a graceful stop (every child exited 0), 2 if a child reported a configuration
        error, 1 if a child failed or had to be killed while stopping.
        """
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if install_signal_handlers else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.stop, sig)
        try:
            first = [await self._spawn(slot) for slot in range(1, self.count + 1)]
            pids = ", ".join(str(p.pid) for p in first)
            logger.info(f"[Supervisor] Started {self.count} pool processes (pids {pids})")
            watchers = [
                asyncio.create_task(self._watch(slot, proc), name=f"supervise-{slot}")
                for slot, proc in enumerate(first, start=1)
            ]
            await asyncio.gather(*watchers)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            if self._kill_timer is not None:
                self._kill_timer.cancel()
            for proc in self._children.values():  # only after an error of the supervisor itself
                self._signal(proc, signal.SIGKILL)
        logger.info(f"[Supervisor] Stopped (exit code {self._exit_code}).")
        return self._exit_code

    async def _spawn(self, slot: int) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *self.command,
            env=child_env(self.env, slot),
            start_new_session=True,
            preexec_fn=self._preexec,
        )
        self._children[slot] = proc
        if self._stopping.is_set():  # the stop came while it was starting
            self._signal(proc, self._stop_signal)
        return proc

    async def _watch(self, slot: int, proc: asyncio.subprocess.Process) -> None:
        """Wait for the child in `slot`; restart it while it crashes and no stop is asked."""
        delay = self.backoff_min_s
        while True:
            started = _loop_time()
            code = await proc.wait()
            ran_s = _loop_time() - started
            self._children.pop(slot, None)
            if self._stopping.is_set():
                if not self._stopped_cleanly(code):
                    self._exit_code = self._exit_code or 1
                    logger.warning(
                        f"[Supervisor] Pool process {proc.pid} ended with {_describe_exit(code)}"
                    )
                return
            if code == EXIT_CONFIG:
                logger.error(
                    f"[Supervisor] Pool process {proc.pid} exited 2 (configuration error); "
                    "not restarting: stopping every pool process"
                )
                self._exit_code = EXIT_CONFIG
                self.stop(signal.SIGTERM)
                return
            if code == 0:
                logger.warning(
                    f"[Supervisor] Pool process {proc.pid} stopped (exit code 0) without a stop "
                    "from the supervisor; not restarting it"
                )
                return
            if ran_s >= self.stable_after_s:
                delay = self.backoff_min_s
            logger.warning(
                f"[Supervisor] Pool process {proc.pid} died ({_describe_exit(code)}); "
                f"restarting in {delay:g}s"
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            old = proc.pid
            proc = await self._spawn(slot)
            self.restarts += 1
            logger.info(f"[Supervisor] Started pool process {proc.pid} (replacing {old})")
            delay = min(delay * 2, self.backoff_max_s)

    def _stopped_cleanly(self, code: int) -> bool:
        """Whether a child's exit after the stop is a graceful one.

        A child still starting (before the pool installs its handlers, so holding no job) dies
        of the forwarded SIGTERM itself, or exits 130 on SIGINT's KeyboardInterrupt.
        """
        sig = self._stop_signal
        return code in (0, -sig) or (sig == signal.SIGINT and code == _EXIT_INTERRUPTED)

    def _kill_stragglers(self) -> None:
        left = list(self._children.values())
        if not left:
            return
        pids = ", ".join(str(p.pid) for p in left)
        logger.error(
            f"[Supervisor] {len(left)} pool processes still running {self.stop_timeout_s:g}s "
            f"after the stop; killing them (pids {pids}); their jobs go back to the queue when "
            "the other pools' reaper sees them gone"
        )
        self._exit_code = self._exit_code or 1
        for proc in left:
            self._signal(proc, signal.SIGKILL)

    @staticmethod
    def _signal(proc: asyncio.subprocess.Process, sig: signal.Signals) -> bool:
        """Send `sig` to a child still running; whether it was sent."""
        if proc.returncode is not None:
            return False
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            return False
        return True


def _loop_time() -> float:
    """Seconds on the running loop's monotonic clock."""
    return asyncio.get_running_loop().time()


def run_supervisor(
    count: int, *, shutdown_grace_s: float, command: Sequence[str] | None = None
) -> int:
    """`ebook-pool run` with `count` > 1 processes: supervise them until SIGTERM/SIGINT.

    The supervisor itself runs on asyncio's own loop (it only waits on children and signals);
    each child picks its loop from EVENT_LOOP.

    Args:
        command: each child's command; default `pool_command()` (the bench passes its own).
    """
    supervisor = Supervisor(count, stop_timeout_s=shutdown_grace_s + STOP_MARGIN_S, command=command)
    return asyncio.run(supervisor.run())
