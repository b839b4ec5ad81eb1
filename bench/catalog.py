"""What the bench measures: our pool and each peer, with how it is configured and what a killed
worker costs it (its delivery guarantee, with the mechanism that gives it)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import Target

__all__ = ["OURS", "OURS_ASYNCIO", "PEERS", "Contender", "is_ours", "select_peers"]


@dataclass(frozen=True, slots=True)
class Contender:
    """One row of the tables.

    Attributes:
        name: flag and table name.
        env: the peer venv (`bench/peers/requirements/<env>.txt`); None = the project's venv.
        module: runner module.
        options: runner options (see each runner's docstring).
        at_least_once: whether a killed worker loses nothing, with the library's defaults.
        delivery: the mechanism, one line, for the README and the tables.
        max_jobs: cap on jobs per run (rq's forking worker would take minutes for 20,000).
        latency: whether it takes part in the pick-up latency scenario.
    """

    name: str
    env: str | None
    module: str
    delivery: str
    at_least_once: bool
    options: dict[str, str] = field(default_factory=dict)
    max_jobs: int | None = None
    latency: bool = True

    def target(self, python: Path | None = None) -> Target:
        """The `Target` to run, with the interpreter of its venv."""
        return Target(
            name=self.name,
            python=python or Path(sys.executable),
            module=self.module,
            options=self.options,
        )


OURS = Contender(
    name="ours",
    env=None,
    module="bench.ours",
    options={"loop": "uvloop"},  # what EVENT_LOOP=auto (the default) picks on Linux
    at_least_once=True,
    delivery="claimed jobs sit in a per-process processing list; the reaper gives back the "
    "list of a process whose heartbeat expired",
)
#: Ours on asyncio's own loop (EVENT_LOOP=asyncio), measured next to `OURS` in the same run.
OURS_ASYNCIO = Contender(
    name="ours-asyncio",
    env=None,
    module="bench.ours",
    options={"loop": "asyncio"},
    at_least_once=True,
    delivery="as ours",
)


def is_ours(name: str) -> bool:
    """Whether a row is one of ours (on either loop)."""
    return name in (OURS.name, OURS_ASYNCIO.name)


PEERS: tuple[Contender, ...] = (
    Contender(
        name="arq",
        env="arq",
        module="bench.peers.arq_runner",
        at_least_once=True,
        delivery="a job stays in the queue until finished; once its in-progress key expires "
        "(job_timeout + 10 s) another worker runs it again (max_tries 5)",
    ),
    Contender(
        name="saq",
        env="saq",
        module="bench.peers.saq_runner",
        at_least_once=False,
        delivery="the sweep finds a dead worker's active jobs (after the job timeout or a "
        "missed heartbeat) and retries them only if retries > attempts; the default "
        "retries=1 ends them ABORTED (at-least-once with retries >= 2)",
    ),
    Contender(
        name="taskiq-list",
        env="taskiq",
        module="bench.peers.taskiq_runner",
        options={"broker": "list"},
        at_least_once=False,
        delivery="ListQueueBroker: BRPOP removes the message; a worker killed mid-task loses it "
        "(at-most-once)",
    ),
    Contender(
        name="taskiq-stream",
        env="taskiq",
        module="bench.peers.taskiq_runner",
        options={"broker": "stream"},
        at_least_once=True,
        delivery="RedisStreamBroker: XACK after the result is saved; unacknowledged messages "
        "are reclaimed with XAUTOCLAIM after idle_timeout (10 min)",
    ),
    Contender(
        name="bullmq",
        env="bullmq",
        module="bench.peers.bullmq_runner",
        options={"pooled": "1"},
        at_least_once=True,
        delivery="a job's lock expires when its worker dies; the stalled-job checker moves it "
        "back to wait (maxStalledCount 1, then failed)",
    ),
    Contender(
        name="streaq",
        env="streaq",
        module="bench.peers.streaq_runner",
        at_least_once=True,
        delivery="stream consumer group: a task whose worker stops renewing its idle timeout "
        "(60 s) is claimed by another worker (max_tries 3)",
    ),
    Contender(
        name="rq",
        env="rq",
        module="bench.peers.rq_runner",
        options={"worker": "fork"},
        at_least_once=False,
        delivery="a dead worker's job is moved to the FailedJobRegistry (AbandonedJobError) by "
        "the started-registry cleanup; re-queued only if enqueued with Retry",
        max_jobs=1_000,
        latency=False,
    ),
    Contender(
        name="rq-simple",
        env="rq",
        module="bench.peers.rq_runner",
        options={"worker": "simple"},
        at_least_once=False,
        delivery="as rq",
        max_jobs=5_000,
        latency=False,
    ),
)


def select_peers(spec: str | None) -> list[Contender]:
    """Peers named in `--peers` ("arq,taskiq" picks both taskiq brokers); all when None."""
    if spec is None:
        return list(PEERS)
    if spec.strip().lower() in {"", "none"}:
        return []
    wanted = [w.strip() for w in spec.split(",") if w.strip()]
    picked = [p for p in PEERS if any(p.name == w or p.name.startswith(w + "-") for w in wanted)]
    unknown = [
        w for w in wanted if not any(p.name == w or p.name.startswith(w + "-") for p in PEERS)
    ]
    if unknown:
        names = ", ".join(p.name for p in PEERS)
        raise SystemExit(f"unknown peer(s) {', '.join(unknown)}; known: {names}")
    return picked
