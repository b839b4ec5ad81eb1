"""`ebook-pool run --processes N`: the supervisor, the CPU count behind `auto`, and EVENT_LOOP.

The supervisor tests run real `python -m pool run` children against a private redis-server and
the OpenAI simulator, as Railway would run them; the policy tests use tiny stand-in children.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from generator import GeneratorSettings
from generator.simulator import Simulator, SimulatorConfig
from pool import PoolSettings
from pool.config import ConfigError, load_settings
from pool.keys import Keys
from pool_app import eventloop
from pool_app.supervisor import (
    Supervisor,
    available_cpus,
    cgroup_cpu_limit,
    child_env,
    pool_command,
    resolve_processes,
    run_supervisor,
)
from tests.fakes import failed, job, pages, push, status, wait_until
from tests.redis_server import RedisServer

KEYS = Keys()
ROOT = Path(__file__).resolve().parent.parent
ENV_NAMES = frozenset(
    [name.upper() for name in PoolSettings.model_fields]
    + [name.upper() for name in GeneratorSettings.model_fields]
    + ["REDIS_PUBLIC_URL", "PORT"]
)
FAST = {
    "CONCURRENT_WORKERS": "5",
    "PROCESSING_DELAY": "0",
    "POLL_INTERVAL": "100",
    "HEARTBEAT_INTERVAL": "200",
    "HEARTBEAT_TIMEOUT": "1000",
    "RETRY_BACKOFF": "50",
    "RETRY_BACKOFF_MAX": "500",
    "STATS_INTERVAL": "0",
    "SHUTDOWN_GRACE": "500",
}


def clean_env(**extra: str) -> dict[str, str]:
    """The process environment without any of our variables, plus `extra`."""
    out = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    out.update(extra)
    return out


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(SimulatorConfig(latency_s=0.3, seed=3)) as simulator:
        yield simulator


async def start_supervisor(
    redis_server: RedisServer, sim: Simulator, log: Path, *args: str, **env: str
) -> asyncio.subprocess.Process:
    """`python -m pool run ARGS` with fast settings, its output (and its children's) in `log`."""
    with log.open("wb") as out:  # the children keep their own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pool", "run", *args,
            cwd=ROOT,
            env=clean_env(REDIS_URL=redis_server.url, OPENAI_BASE_URL=sim.base_url, **{**FAST, **env}),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip


async def stop(proc: asyncio.subprocess.Process) -> None:
    """Kill `proc` if a failed test left it running (its children follow: parent-death signal)."""
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def started_pids(log: Path) -> list[int]:
    """The pids of the supervisor's first children, from its start-up line."""
    found: list[int] = []

    async def logged() -> bool:
        match = re.search(
            r"\[Supervisor\] Started \d+ pool processes \(pids ([\d, ]+)\)", _text(log)
        )
        if match:
            found.extend(int(p) for p in match.group(1).split(", "))
        return bool(match)

    await wait_until(logged, timeout_s=30, what="the supervisor's start-up line")
    return found


def _text(log: Path) -> str:
    return log.read_text(errors="replace")


async def live_pool_pids(redis: Redis) -> dict[int, str]:
    """pid → pool id of every registered pool process (the id is host-pid-random)."""
    out: dict[int, str] = {}
    for member in await redis.smembers(KEYS.pools):
        pool_id = member.decode()
        out[int(pool_id.split("-")[-2])] = pool_id
    return out


# --- real pool processes -----------------------------------------------------------------------


async def test_kill_9_of_a_child_is_restarted_and_every_page_lands_once(
    redis: Redis, redis_server: RedisServer, sim: Simulator, tmp_path: Path
) -> None:
    """A child SIGKILLed while it holds jobs is restarted; its jobs are reaped; all pages land."""
    total = 60
    await push(redis, *[job("sv", i, total) for i in range(total)])
    log = tmp_path / "supervisor.log"
    # Limits set: with none to learn, the first request is a scout that goes alone, and a scout
    # killed with its process holds the others back until its slot expires (GENERATION_TIMEOUT
    # + 5 s), longer than this test waits.
    proc = await start_supervisor(
        redis_server, sim, log, "--processes", "2",
        OPENAI_RPM_LIMIT="100000", OPENAI_TPM_LIMIT="1000000000",
    )  # fmt: skip
    try:
        first = await started_pids(log)
        victim: dict[str, int | str] = {}

        async def a_child_holds_jobs() -> bool:
            for pid, pool_id in (await live_pool_pids(redis)).items():
                if pid in first and await redis.llen(KEYS.processing(pool_id)) > 0:
                    victim.update(pid=pid, pool_id=pool_id)
                    return True
            return False

        await wait_until(a_child_holds_jobs, timeout_s=30, what="a child to hold jobs")
        os.kill(int(victim["pid"]), signal.SIGKILL)

        async def all_pages() -> bool:
            return int(await redis.hlen(KEYS.pages("sv"))) == total

        await wait_until(all_pages, timeout_s=60, what="every page")

        async def replaced() -> bool:
            pids = await live_pool_pids(redis)
            return len(pids) == 2 and victim["pid"] not in pids

        await wait_until(replaced, timeout_s=30, what="a replacement child to register")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
    finally:
        await stop(proc)
    assert sorted(await pages(redis, "sv")) == list(range(total))
    got = await status(redis, "sv")
    assert got["state"] == "done" and got["done"] == str(total)
    assert await failed(redis) == []
    assert await redis.llen(KEYS.queue) == 0
    assert await redis.keys(KEYS.processing("*")) == []
    assert await redis.scard(KEYS.pools) == 0
    text = _text(log)
    pid = victim["pid"]
    assert f"[Supervisor] Pool process {pid} died (signal 9, SIGKILL); restarting in 1s" in text
    assert re.search(rf"\[Supervisor\] Started pool process \d+ \(replacing {pid}\)", text)
    assert f"Pool {victim['pool_id']} stopped sending heartbeats" in text
    assert "[Supervisor] Stopping: forwarded SIGTERM to 2 processes" in text


async def test_sigterm_of_the_supervisor_stops_every_child_and_gives_jobs_back(
    redis: Redis, redis_server: RedisServer, sim: Simulator, tmp_path: Path
) -> None:
    """SIGTERM reaches every child: they give their in-flight jobs back and all exit 0."""
    sim.update(latency_s=30.0)  # pages that outlast SHUTDOWN_GRACE
    total = 30
    await push(redis, *[job("st", i, total) for i in range(total)])
    log = tmp_path / "supervisor.log"
    # Limits set: with none to learn, no scout request holds the others back for 30 s.
    proc = await start_supervisor(
        redis_server, sim, log, PROCESSES="2", EVENT_LOOP="asyncio",
        OPENAI_RPM_LIMIT="100000", OPENAI_TPM_LIMIT="1000000000",
    )  # fmt: skip
    try:
        await started_pids(log)

        async def both_children_busy() -> bool:
            # A live child taken for dead (its heartbeat stalled past HEARTBEAT_TIMEOUT) has its
            # processing list requeued while its workers keep the jobs: it would never hold 5.
            assert "stopped sending heartbeats" not in _text(log), "a live child was reaped"
            pools = await live_pool_pids(redis)
            held = [await redis.llen(KEYS.processing(p)) for p in pools.values()]
            return len(pools) == 2 and all(n == 5 for n in held)

        await wait_until(both_children_busy, timeout_s=30, what="both children to hold 5 jobs")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=30) == 0
        assert loop.time() - t0 < 10
    finally:
        await stop(proc)
    assert await redis.llen(KEYS.queue) == total
    assert await redis.hlen(KEYS.attempts) == 0
    assert await redis.scard(KEYS.pools) == 0
    assert await redis.keys(KEYS.processing("*")) == []
    text = _text(log)
    assert "[Supervisor] Stopping: forwarded SIGTERM to 2 processes" in text
    assert text.count("Gave 5 unfinished jobs back to the queue") == 2
    assert "'EVENT_LOOP': 'asyncio'" in text
    assert "restarting" not in text
    assert "stopped sending heartbeats" not in text


async def test_a_configuration_error_in_the_children_exits_2_without_restarts(
    redis_server: RedisServer, log_lines: list[str]
) -> None:
    """Children that exit 2 (a bad env var) stop the supervisor with 2, none restarted."""
    env = clean_env(
        REDIS_URL=redis_server.url, OPENAI_BASE_URL="http://127.0.0.1:9/v1", CONCURRENT_WORKERS="0"
    )
    supervisor = Supervisor(3, stop_timeout_s=10, env=env)
    code = await asyncio.wait_for(supervisor.run(install_signal_handlers=False), timeout=60)
    assert code == 2
    assert supervisor.restarts == 0
    assert supervisor.pids == []
    assert any("exited 2 (configuration error); not restarting" in m for m in log_lines)
    assert not any("restarting in" in m for m in log_lines)


async def test_run_processes_with_a_bad_prompt_file_exits_2_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """`run --processes 2` whose children reject PROMPT_TEMPLATE_FILE: exit 2, no restart."""
    template = tmp_path / "prompts.toml"
    template.write_text("system = [not toml", encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pool", "run", "--processes", "2",
        cwd=ROOT,
        env=clean_env(
            REDIS_URL=redis_server.url,
            OPENAI_BASE_URL="http://127.0.0.1:9/v1",
            PROMPT_TEMPLATE_FILE=str(template),
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        await stop(proc)
    assert proc.returncode == 2
    assert "PROMPT_TEMPLATE_FILE" in err.decode() and "not valid TOML" in err.decode()
    assert "not restarting: stopping every pool process" in out.decode()
    assert "restarting in" not in out.decode()


@pytest.mark.parametrize(
    ("args", "env", "shown"),
    [
        (["--processes", "0"], {}, "PROCESSES: Input should be greater than or equal to 1"),
        (
            [],
            {"PROCESSES": "lots"},
            "PROCESSES: must be a whole number of processes or 'auto' (got 'lots')",
        ),
        ([], {"EVENT_LOOP": "trio"}, "EVENT_LOOP: Input should be 'auto', 'uvloop' or 'asyncio'"),
    ],
)
async def test_bad_processes_or_event_loop_is_one_line_and_exit_2(
    args: list[str], env: dict[str, str], shown: str
) -> None:
    """A bad --processes, PROCESSES or EVENT_LOOP stops `run` before any child starts."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pool", "run", *args,
        cwd=ROOT,
        env=clean_env(OPENAI_BASE_URL="http://127.0.0.1:9/v1", **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 2
    assert out == b""
    assert err.decode().strip() == f"ebook-pool: error: {shown}"


# --- the restart policy, with stand-in children ------------------------------------------------


async def test_a_crashing_child_is_restarted_with_exponential_backoff(
    log_lines: list[str],
) -> None:
    """A child that keeps crashing waits 1x, 2x, 4x the first delay, capped; stop ends it."""
    supervisor = Supervisor(
        1,
        stop_timeout_s=5,
        command=[sys.executable, "-c", "import sys; sys.exit(3)"],
        backoff_min_s=0.05,
        backoff_max_s=0.2,
    )
    task = asyncio.create_task(supervisor.run(install_signal_handlers=False))

    async def restarted_four_times() -> bool:
        return supervisor.restarts >= 4

    await wait_until(restarted_four_times, timeout_s=30, what="four restarts")
    supervisor.stop()
    assert await asyncio.wait_for(task, timeout=10) == 0
    delays = re.findall(r"died \(exit code 3\); restarting in ([\d.]+)s", "".join(log_lines))
    assert delays[:5] == ["0.05", "0.1", "0.2", "0.2", "0.2"][: len(delays[:5])]
    assert len(delays) >= 4


async def test_a_child_that_ran_long_enough_restarts_after_the_first_delay(
    log_lines: list[str],
) -> None:
    """The backoff starts over after a child ran `stable_after_s`."""
    supervisor = Supervisor(
        1,
        stop_timeout_s=5,
        command=[sys.executable, "-c", "import sys; sys.exit(1)"],
        backoff_min_s=0.05,
        backoff_max_s=1.0,
        stable_after_s=0.0,
    )
    task = asyncio.create_task(supervisor.run(install_signal_handlers=False))

    async def restarted_thrice() -> bool:
        return supervisor.restarts >= 3

    await wait_until(restarted_thrice, timeout_s=30, what="three restarts")
    supervisor.stop()
    assert await asyncio.wait_for(task, timeout=10) == 0
    delays = re.findall(r"restarting in ([\d.]+)s", "".join(log_lines))
    assert len(delays) >= 3 and set(delays) == {"0.05"}


async def test_a_child_that_will_not_stop_is_killed_after_the_stop_timeout(
    log_lines: list[str], tmp_path: Path
) -> None:
    """A child ignoring SIGTERM is SIGKILLed after `stop_timeout_s`; the exit code is 1."""
    ready = tmp_path / "ignoring"
    ignore = (
        "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "pathlib.Path(sys.argv[1]).touch(); time.sleep(60)"
    )
    command = [sys.executable, "-c", ignore, str(ready)]
    supervisor = Supervisor(1, stop_timeout_s=0.5, command=command)
    task = asyncio.create_task(supervisor.run(install_signal_handlers=False))

    async def ignoring() -> bool:
        return ready.exists()

    await wait_until(ignoring, timeout_s=10, what="the child to ignore SIGTERM")
    supervisor.stop()
    assert await asyncio.wait_for(task, timeout=10) == 1
    assert any("still running 0.5s after the stop; killing them" in m for m in log_lines)


def test_run_supervisor_runs_the_command_it_is_given(tmp_path: Path) -> None:
    """`run_supervisor(command=...)` (what the bench passes) starts that command, N times."""
    script = (
        "import os, pathlib, sys; "
        "pathlib.Path(sys.argv[1], str(os.getpid())).write_text(os.environ['PROCESSES']); "
        "sys.exit(2)"
    )
    code = run_supervisor(
        2, shutdown_grace_s=0.1, command=[sys.executable, "-c", script, str(tmp_path)]
    )
    assert code == 2  # a configuration error: every child stopped, not restarted
    ran = sorted(p.read_text() for p in tmp_path.iterdir())
    assert ran in (["1"], ["1", "1"])  # the second may be stopped before it gets that far


# --- how many processes ------------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_cgroup_v2_quota_is_read_and_rounded_up(tmp_path: Path) -> None:
    """cgroup v2 `cpu.max` of 2.5 CPUs: 3 processes on 8 CPUs, 2 when affinity allows 2."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc-self-cgroup"
    _write(root / "cgroup.controllers", "cpu memory\n")
    _write(root / "cpu.max", "250000 100000\n")
    _write(proc, "0::/\n")
    assert cgroup_cpu_limit(root=root, self_cgroup=proc) == 2.5
    assert available_cpus(root=root, self_cgroup=proc, affinity=8) == 3
    assert available_cpus(root=root, self_cgroup=proc, affinity=2) == 2


def test_cgroup_v2_without_quota_and_nested_limits(tmp_path: Path) -> None:
    """`max` is no limit; in a nested cgroup the smallest quota on the way up wins."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc-self-cgroup"
    _write(root / "cgroup.controllers", "cpu\n")
    _write(root / "cpu.max", "max 100000\n")
    _write(proc, "0::/\n")
    assert cgroup_cpu_limit(root=root, self_cgroup=proc) is None
    assert available_cpus(root=root, self_cgroup=proc, affinity=4) == 4
    _write(proc, "0::/system.slice/app.service\n")
    _write(root / "system.slice" / "cpu.max", "150000 100000\n")
    _write(root / "system.slice" / "app.service" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_limit(root=root, self_cgroup=proc) == 1.5
    assert available_cpus(root=root, self_cgroup=proc, affinity=16) == 2


def test_cgroup_v1_quota_and_its_absence(tmp_path: Path) -> None:
    """cgroup v1 cfs quota over period; -1 means none."""
    root, proc = tmp_path / "cgroup", tmp_path / "proc-self-cgroup"
    _write(proc, "4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "400000\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_limit(root=root, self_cgroup=proc) == 4.0
    assert available_cpus(root=root, self_cgroup=proc, affinity=32) == 4
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    assert cgroup_cpu_limit(root=root, self_cgroup=proc) is None


def test_no_cgroup_files_or_a_tiny_quota_still_gives_one(tmp_path: Path) -> None:
    """Without cgroup files the affinity counts; a quota under one CPU still gives 1."""
    root, proc = tmp_path / "none", tmp_path / "missing"
    assert cgroup_cpu_limit(root=root, self_cgroup=proc) is None
    assert available_cpus(root=root, self_cgroup=proc, affinity=3) == 3
    _write(root / "cgroup.controllers", "cpu\n")
    _write(root / "cpu.max", "20000 100000\n")
    assert available_cpus(root=root, self_cgroup=proc, affinity=3) == 1
    _write(root / "cpu.max", "garbage\n")
    assert cgroup_cpu_limit(root=root, self_cgroup=proc) is None


def test_auto_resolves_to_at_least_one_and_no_more_than_the_machine() -> None:
    """`auto` on this machine is 1..cpu_count; a number is taken as it is."""
    cpus = resolve_processes("auto")
    assert 1 <= cpus <= (os.cpu_count() or 1)
    assert resolve_processes("auto", cpus=lambda: 0) == 1
    assert resolve_processes(3) == 3


def test_children_run_one_process_each_and_only_the_first_serves_http() -> None:
    """PROCESSES=1 in every child; PORT/HTTP_PORT only in the first, so none collide."""
    base = {"PROCESSES": "auto", "PORT": "8080", "HTTP_PORT": "9090", "REDIS_URL": "redis://x"}
    first, second = child_env(base, 1), child_env(base, 2)
    assert first == {**base, "PROCESSES": "1"}
    assert second == {"PROCESSES": "1", "REDIS_URL": "redis://x"}
    assert pool_command()[1:] == ["-m", "pool", "run"]


# --- EVENT_LOOP --------------------------------------------------------------------------------


def test_event_loop_choice() -> None:
    """auto takes uvloop when importable; asyncio turns it off; uvloop without it is an error."""
    assert eventloop.resolve_event_loop("asyncio", available=True) == "asyncio"
    assert eventloop.resolve_event_loop("auto", available=True) == "uvloop"
    assert eventloop.resolve_event_loop("auto", available=False) == "asyncio"
    with pytest.raises(ConfigError, match="EVENT_LOOP: uvloop is not installed"):
        eventloop.resolve_event_loop("uvloop", available=False)


def test_run_uses_the_chosen_loop_and_the_config_line_names_it() -> None:
    """`eventloop.run` runs on uvloop or asyncio as asked; `describe()` shows the running one."""

    async def which() -> tuple[str | None, object]:
        return eventloop.running_loop_name(), load_settings(PoolSettings).describe()["EVENT_LOOP"]

    assert eventloop.uvloop_available()
    assert eventloop.run(which(), event_loop="auto") == ("uvloop", "uvloop (auto)")
    assert eventloop.run(which(), event_loop="asyncio") == ("asyncio", "asyncio (auto)")
    assert eventloop.running_loop_name() is None
    assert load_settings(PoolSettings).describe()["EVENT_LOOP"] == "auto"
