"""The seven scenarios. Each takes a `Bench` and returns a `Section`: its rows, its checks against
the targets, and the raw runs.

Repeats are interleaved (run 1 of every contender, then run 2 ...) so that a burst of load from
something else on the machine hits every contender alike.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.catalog import OURS, OURS_ASYNCIO, Contender, is_ours
from bench.harness import RunError, Target, run_once
from bench.multiprocess import run_supervised
from bench.redis_server import RedisServer, stop_process

__all__ = ["SCENARIOS", "Bench", "Plan", "Section"]

_TIMES, _DASH = "\u00d7", "\u2013"  # typographic x and dash for the tables

#: Longest a scenario-2/3 run may take, as a multiple of its ideal duration, before it is
#: called hung.
_SLOW_RUN_FACTOR = 10


@dataclass(frozen=True, slots=True)
class Plan:
    """Sizes of every scenario; `Plan.full()` for published figures, `Plan.smoke()` for CI."""

    smoke: bool
    repeats: int
    overhead_jobs: int = 20_000
    overhead_concurrency: int = 100
    io_levels: tuple[int, ...] = (10, 100, 1_000, 2_000)
    io_latency_s: float = 1.0
    io_jobs_per_slot: int = 5
    #: Realistic LLM latency: 10 s, 2 pages per slot (4,000 and 10,000 pages).
    io_slow_levels: tuple[int, ...] = (2_000, 5_000)
    io_slow_latency_s: float = 10.0
    io_slow_jobs_per_slot: int = 2
    seed_workers: tuple[int, ...] = (5, 50, 500)
    seed_latency_s: float = 8.0
    seed_jobs_per_worker: int = 3
    pickup_jobs: int = 500
    pickup_gap_ms: float = 10.0
    redis_cost_jobs: int = 5_000
    #: `--processes` of `bench.supervised` (the real supervisor); "auto" as `ebook-pool run`.
    scale_processes: tuple[int | str, ...] = (1, 2, 4, "auto")
    scale_jobs: int = 20_000
    #: The 10 s levels again with `--processes auto`, the same total in flight split.
    io_slow_processes: str = "auto"

    @classmethod
    def full(cls, repeats: int = 3) -> Plan:
        return cls(smoke=False, repeats=repeats)

    @classmethod
    def smoke_plan(cls, repeats: int = 1) -> Plan:
        return cls(
            smoke=True,
            repeats=repeats,
            overhead_jobs=300,
            io_levels=(10, 100, 500),
            io_latency_s=0.2,
            io_slow_levels=(200,),
            io_slow_latency_s=0.5,
            seed_workers=(5, 50),
            seed_latency_s=0.5,
            seed_jobs_per_worker=2,
            pickup_jobs=40,
            redis_cost_jobs=300,
            scale_processes=(1, 2, "auto"),
            scale_jobs=600,
        )


@dataclass(slots=True)
class Bench:
    """What every scenario gets: the server, the plan, the contenders and an error log."""

    server: RedisServer
    plan: Plan
    peers: list[tuple[Contender, Target]]
    ours: Target = field(default_factory=OURS.target)
    ours_asyncio: Target = field(default_factory=OURS_ASYNCIO.target)
    errors: list[str] = field(default_factory=list)
    log: Callable[[str], None] = print

    def contenders(self) -> list[tuple[Contender, Target]]:
        return [(OURS, self.ours), (OURS_ASYNCIO, self.ours_asyncio), *self.peers]

    def ours_by_loop(self) -> list[tuple[str, Target]]:
        """Our pool on each event loop: uvloop (the default) and asyncio."""
        return [("uvloop", self.ours), ("asyncio", self.ours_asyncio)]

    def measure(self, contender: Contender, target: Target, **run: Any) -> dict[str, Any] | None:
        """One run; a failure is logged and recorded, and the scenario goes on."""
        try:
            return run_once(self.server, target, **run)
        except RunError as exc:
            message = f"{target.name}: {exc}"
            self.errors.append(message)
            self.log(f"  ! {message.splitlines()[0]}")
            return None

    def measure_supervised(self, label: str, **run: Any) -> dict[str, Any] | None:
        """One `bench.multiprocess.run_supervised` run; a failure is logged and recorded."""
        try:
            return run_supervised(self.server, self.ours, **run)
        except RunError as exc:
            message = f"{label}: {exc}"
            self.errors.append(message)
            self.log(f"  ! {message.splitlines()[0]}")
            return None


@dataclass(slots=True)
class Section:
    """One scenario's outcome.

    Attributes:
        rows: one dict per table row (values already summarized).
        checks: {"what", "target", "value", "met"} per target the issue sets.
        runs: the raw figures of every run, for latest.json.
    """

    id: int
    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def summary(values: Iterable[float]) -> dict[str, float] | None:
    """Median and spread of the repeats, or None when no run succeeded."""
    vals = list(values)
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def _check(what: str, target: str, value: float | None, met: bool) -> dict[str, Any]:
    return {"what": what, "target": target, "value": value, "met": bool(met)}


def _per_job(run: dict[str, Any], value: float) -> float:
    return value / run["jobs"]


def _evals(commands: dict[str, int]) -> int:
    return sum(
        v
        for k, v in commands.items()
        if k in {"eval", "evalsha", "fcall", "eval_ro", "evalsha_ro", "fcall_ro"}
    )


# --- 1. bookkeeping overhead ------------------------------------------------------------------


def _throughput_runs(bench: Bench, jobs: int, label: str) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c, _ in bench.contenders()}
    for repeat in range(bench.plan.repeats):
        for contender, target in bench.contenders():
            n = min(jobs, contender.max_jobs or jobs)
            bench.log(
                f"[{label}] run {repeat + 1}/{bench.plan.repeats}: {contender.name}, {n} jobs"
            )
            run = bench.measure(
                contender,
                target,
                mode="throughput",
                jobs=n,
                concurrency=bench.plan.overhead_concurrency,
            )
            if run is not None:
                runs[contender.name].append(run)
    return runs


def _redis_cost_row(contender: Contender, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "queue": contender.name,
        "commands_per_page": summary(_per_job(r, sum(r["commands"].values())) for r in runs),
        "scripts_per_page": summary(_per_job(r, _evals(r["commands"])) for r in runs),
        "other_commands_per_page": summary(
            _per_job(r, sum(r["commands"].values()) - _evals(r["commands"])) for r in runs
        ),
        "round_trips_per_page": summary(_per_job(r, r["socket_reads"]) for r in runs),
        "top_commands": _top_commands(runs),
    }


def _top_commands(runs: list[dict[str, Any]], top: int = 6) -> dict[str, float]:
    if not runs:
        return {}
    run = runs[0]
    ranked = sorted(run["commands"].items(), key=lambda kv: -kv[1])[:top]
    return {name: round(calls / run["jobs"], 2) for name, calls in ranked}


def overhead(bench: Bench) -> Section:
    """1. Bookkeeping overhead: no-op jobs, one process, concurrency 100."""
    plan = bench.plan
    section = Section(
        1,
        f"Bookkeeping overhead: {plan.overhead_jobs:,} no-op page jobs, one process, concurrency {plan.overhead_concurrency}",
    )
    section.runs = _throughput_runs(bench, plan.overhead_jobs, "1 overhead")
    ours = summary(r["jobs_per_s"] for r in section.runs[OURS.name])
    for contender, _ in bench.contenders():
        runs = section.runs[contender.name]
        rate = summary(r["jobs_per_s"] for r in runs)
        section.rows.append(
            {
                "queue": contender.name,
                "at_least_once": contender.at_least_once,
                "jobs": runs[0]["jobs"] if runs else None,
                "pages_per_s": rate,
                "cpu_us_per_page": summary(
                    _per_job(r, r["cpu_s"] + r["redis_cpu_s"]) * 1e6 for r in runs
                ),
                "worker_cpu_us_per_page": summary(_per_job(r, r["cpu_s"]) * 1e6 for r in runs),
                "redis_cpu_us_per_page": summary(_per_job(r, r["redis_cpu_s"]) * 1e6 for r in runs),
                "peak_rss_mb": summary(r["peak_rss_bytes"] / 2**20 for r in runs),
                "ours_ratio": (ours["median"] / rate["median"]) if ours and rate else None,
            }
        )
    best = max(
        (
            row
            for row in section.rows
            if not is_ours(row["queue"]) and row["at_least_once"] and row["pages_per_s"]
        ),
        key=lambda row: row["pages_per_s"]["median"],
        default=None,
    )
    if ours is not None and best is not None:
        ratio = ours["median"] / best["pages_per_s"]["median"]
        section.checks.append(
            _check(
                f"ours ÷ best at-least-once peer ({best['queue']})",
                f"≥ 3{_TIMES}",
                round(ratio, 2),
                ratio >= 3,
            )
        )
    if ours is not None:
        section.checks.append(
            _check(
                "ours, pages/s", "≥ 10,000 (aim)", round(ours["median"]), ours["median"] >= 10_000
            )
        )
    section.notes.append(
        "rq: one synchronous worker (no concurrency); `rq` is the default forking Worker "
        "(what `rq worker` runs), `rq-simple` the SimpleWorker; fewer jobs per run."
    )
    return section


# --- 2 and 3. slow I/O through the simulator --------------------------------------------------


class Simulator:
    """`python -m generator.simulator` as its own process, on a free port."""

    def __init__(self, latency_s: float, jitter: float = 0.2) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._cmd = [
            sys.executable, "-m", "generator.simulator",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--latency-s", str(latency_s), "--jitter", str(jitter), "--seed", "1",
        ]  # fmt: skip

    def __enter__(self) -> Simulator:
        from bench.harness import REPO

        self._proc = subprocess.Popen(
            self._cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError("the simulator did not start") from None
                time.sleep(0.05)

    def __exit__(self, *_: object) -> None:
        stop_process(self._proc)


def _io_runs(
    bench: Bench,
    sim: Simulator,
    level: int,
    jobs: int,
    label: str,
    transport: str = "aiohttp",
    *,
    latency_s: float | None = None,
    target: Target | None = None,
) -> list[dict[str, Any]]:
    runs = []
    target = target or bench.ours
    ideal_s = jobs / level * (latency_s or sim_latency(bench, label))
    for repeat in range(bench.plan.repeats):
        bench.log(
            f"[{label}] run {repeat + 1}/{bench.plan.repeats}: {target.name} ({transport}), "
            f"concurrency {level}, {jobs} jobs"
        )
        run = bench.measure(
            OURS,
            target,
            mode="throughput",
            jobs=jobs,
            concurrency=level,
            options={"generator": "openai", "base_url": sim.url, "transport": transport},
            timeout_s=60 + _SLOW_RUN_FACTOR * ideal_s,
        )
        if run is not None:
            runs.append(run)
    return runs


def sim_latency(bench: Bench, label: str) -> float:
    return bench.plan.seed_latency_s if label.startswith("3") else bench.plan.io_latency_s


def _slow_io_level(
    bench: Bench,
    section: Section,
    sim: Simulator,
    latency: float,
    level: int,
    per_slot: int,
    loop: str,
    target: Target,
) -> None:
    jobs = per_slot * level
    runs = _io_runs(bench, sim, level, jobs, "2 slow I/O", latency_s=latency, target=target)
    section.runs[f"{latency:g}s-{loop}-{level}"] = runs
    figures = _io_figures(runs, latency=latency, jobs=jobs, ideal=level / latency)
    section.rows.append({"concurrency": level, "processes": "1", **figures, "loop": loop})
    if loop == "uvloop":
        steady, rss = figures["steady_pct_of_ideal"], figures["peak_rss_mb"]
        _io_checks(section, level, latency, steady, rss, processes="1")


def _io_figures(
    runs: list[dict[str, Any]], *, latency: float, jobs: int, ideal: float
) -> dict[str, Any]:
    """A scenario-2 row's figures; CPU is the pool processes' (summed), RSS the largest's."""
    return {
        "latency_s": latency,
        "transport": "aiohttp",
        "jobs": jobs,
        "ideal_pages_per_s": ideal,
        "pages_per_s": summary(r["jobs_per_s"] for r in runs),
        "pct_of_ideal": summary(r["jobs_per_s"] / ideal * 100 for r in runs),
        "steady_pages_per_s": summary(r["steady_jobs_per_s"] for r in runs),
        "steady_pct_of_ideal": summary(r["steady_jobs_per_s"] / ideal * 100 for r in runs),
        "cpu_pct": summary(r["cpu_s"] / r["elapsed_s"] * 100 for r in runs),
        "cpu_ms_per_page": summary(r["cpu_s"] / r["jobs"] * 1000 for r in runs),
        "peak_rss_mb": summary(r["peak_rss_bytes"] / 2**20 for r in runs),
    }


def _io_checks(
    section: Section,
    level: int,
    latency: float,
    steady: dict[str, float] | None,
    rss: dict[str, float] | None,
    *,
    processes: str,
) -> None:
    where = f"{level:,} in flight ({latency:g} s" + (
        ")" if processes == "1" else f", --processes {processes})"
    )
    if steady is not None and (level >= 1_000 or latency > 1):
        section.checks.append(
            _check(
                f"steady pages/s at {where}, % of ideal",
                "≥ 97%",
                round(steady["median"], 1),
                steady["median"] >= 97,
            )
        )
    if level == 2_000 and rss is not None:
        section.checks.append(
            _check(
                f"peak RSS at {where}, MB" + ("" if processes == "1" else " per process"),
                "≤ 150",
                round(rss["max"], 1),
                rss["max"] <= 150,
            )
        )


def _supervised_io_level(
    bench: Bench, section: Section, sim: Simulator, latency: float, level: int, per_slot: int
) -> None:
    """`level` pages in flight split over `--processes auto` (the real supervisor)."""
    plan = bench.plan
    jobs = per_slot * level
    requested = plan.io_slow_processes
    runs = []
    for repeat in range(plan.repeats):
        bench.log(
            f"[2 slow I/O] run {repeat + 1}/{plan.repeats}: --processes {requested}, "
            f"{level} in flight in all, {jobs} jobs"
        )
        run = bench.measure_supervised(
            f"ours --processes {requested}, {level} in flight",
            processes=requested,
            jobs=jobs,
            total_concurrency=level,
            options={"generator": "openai", "base_url": sim.url},
            timeout_s=60 + _SLOW_RUN_FACTOR * jobs / level * latency,
            poll_s=0.02,
        )
        if run is not None:
            runs.append(run)
    section.runs[f"{latency:g}s-processes-{requested}-{level}"] = runs
    count = runs[0]["processes"] if runs else None
    in_flight = runs[0]["concurrency_per_process"] * count if runs and count else level
    ideal = in_flight / latency
    figures = _io_figures(runs, latency=latency, jobs=jobs, ideal=ideal)
    section.rows.append(
        {
            "concurrency": in_flight,
            "processes": requested if count is None else f"{requested} ({count})",
            **figures,
            "loop": "uvloop",
        }
    )
    _io_checks(
        section, level, latency, figures["steady_pct_of_ideal"], figures["peak_rss_mb"],
        processes=requested,
    )  # fmt: skip


def slow_io(bench: Bench) -> Section:
    """2. Slow I/O: the real OpenAI generator against the simulator, at several concurrencies,
    on both event loops; then at a realistic LLM latency (10 s) with thousands in flight."""
    plan = bench.plan
    section = Section(
        2,
        f"Slow I/O: simulator over HTTP, {plan.io_latency_s:g} s and {plan.io_slow_latency_s:g} s "
        f"± 20% per page, one process; {plan.io_slow_latency_s:g} s also with --processes "
        f"{plan.io_slow_processes}",
    )
    blocks = [
        (plan.io_latency_s, plan.io_levels, plan.io_jobs_per_slot, bench.ours_by_loop(), False),
        (plan.io_slow_latency_s, plan.io_slow_levels, plan.io_slow_jobs_per_slot,
         bench.ours_by_loop()[:1], True),
    ]  # fmt: skip
    for latency, levels, per_slot, loops, supervised in blocks:
        with Simulator(latency) as sim:
            for level in levels:
                for loop, target in loops:
                    _slow_io_level(bench, section, sim, latency, level, per_slot, loop, target)
                if supervised:
                    _supervised_io_level(bench, section, sim, latency, level, per_slot)
    section.notes.append(
        "End to end = all jobs / (first job available → last page stored): with only "
        f"{plan.io_jobs_per_slot} pages per slot (1 s) the ramp and the last pages' jitter cost ~10%. "
        "Steady = pages finished between the 10th and 90th percentile of finish times / that "
        "interval: the rate the pool holds once full, which the 97% target is about."
    )
    section.notes.append(
        "Generator: the real `generator.OpenAIPageGenerator` (openai SDK) over HTTP to "
        "`python -m generator.simulator` in its own process, built as `ebook-pool run` builds "
        "it: the SDK on `generator.transport` (one aiohttp session, max connections = kept "
        "alive = concurrency). The 10 s levels run on uvloop only, 2 pages per slot. The "
        "machine has 2 cores shared by the simulator, redis-server and the pool."
    )
    section.notes.append(
        f"--processes {plan.io_slow_processes} rows: `python -m bench.supervised`, the real "
        "supervisor (`pool_app.supervisor.run_supervisor`) resolving the count as `ebook-pool "
        "run` does (shown in brackets), the same total in flight split evenly over its "
        "children, all on the one simulator. Time runs from all jobs appearing on the queue "
        "(once every child has registered) to the last page counted in the ebooks' status "
        "hashes (polled every 20 ms; steady from those samples). CPU = the children's, summed; "
        "peak RSS = the largest child's."
    )
    return section


def seed_table(bench: Bench) -> Section:
    """3. The seed's table: pages/min for 5, 50, 500 workers at 8 s per page."""
    plan = bench.plan
    latency = plan.seed_latency_s
    section = Section(3, f"The seed's table: {latency:g} s ± 20% per page through the simulator")
    with Simulator(latency) as sim:
        for workers in plan.seed_workers:
            jobs = plan.seed_jobs_per_worker * workers
            runs = _io_runs(bench, sim, workers, jobs, "3 seed table")
            section.runs[str(workers)] = runs
            ideal = workers * 60 / latency
            section.rows.append(
                {
                    "workers": workers,
                    "jobs": jobs,
                    "ideal_pages_per_min": ideal,
                    "pages_per_min": summary(r["jobs_per_s"] * 60 for r in runs),
                    "pct_of_ideal": summary(r["jobs_per_s"] * 60 / ideal * 100 for r in runs),
                }
            )
    if not plan.smoke:
        section.notes.append(f"The seed reported 30{_DASH}45 pages/min for 5 workers.")
    section.notes.append(
        f"{plan.seed_jobs_per_worker} pages per worker: end to end includes one ramp and the last "
        "pages' jitter."
    )
    return section


# --- 4. pick-up latency -----------------------------------------------------------------------


def pickup(bench: Bench) -> Section:
    """4. Pick-up latency on an idle pool: enqueue → the job function starts."""
    plan = bench.plan
    section = Section(
        4,
        f"Pick-up latency on an idle worker: {plan.pickup_jobs} jobs pushed one at a time, {plan.pickup_gap_ms:g} ms apart",
    )
    contenders = [(c, t) for c, t in bench.contenders() if c.latency]
    runs: dict[str, list[dict[str, Any]]] = {c.name: [] for c, _ in contenders}
    for repeat in range(plan.repeats):
        for contender, target in contenders:
            bench.log(f"[4 pick-up] run {repeat + 1}/{plan.repeats}: {contender.name}")
            run = bench.measure(
                contender,
                target,
                mode="latency",
                jobs=plan.pickup_jobs,
                concurrency=plan.overhead_concurrency,
                gap_ms=plan.pickup_gap_ms,
            )
            if run is not None:
                runs[contender.name].append(run)
    for contender, _ in contenders:
        rs = runs[contender.name]
        section.rows.append(
            {
                "queue": contender.name,
                "p50_ms": summary(_quantile(r["latencies_ms"], 0.50) for r in rs),
                "p99_ms": summary(_quantile(r["latencies_ms"], 0.99) for r in rs),
                "max_ms": summary(max(r["latencies_ms"]) for r in rs),
            }
        )
        for r in rs:  # keep latest.json small: the quantiles, not every sample
            lat = r.pop("latencies_ms")
            r["quantiles_ms"] = {q: _quantile(lat, q / 100) for q in (50, 90, 99, 100)}
    section.runs = runs
    ours = section.rows[0]
    if ours["p50_ms"] is not None:
        section.checks.append(
            _check(
                "ours, pick-up p50 ms",
                "≤ 5",
                round(ours["p50_ms"]["median"], 2),
                ours["p50_ms"]["median"] <= 5,
            )
        )
        section.checks.append(
            _check(
                "ours, pick-up p99 ms",
                "≤ 50",
                round(ours["p99_ms"]["median"], 2),
                ours["p99_ms"]["median"] <= 50,
            )
        )
    section.notes.append(
        "Measured from the start of the library's own enqueue call (our LPUSH) to the first line "
        "of the job function, in the same process. rq is left out (its job runs in a forked "
        "work-horse)."
    )
    return section


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


# --- 5. Redis cost ----------------------------------------------------------------------------


def redis_cost(
    bench: Bench, overhead_runs: dict[str, list[dict[str, Any]]] | None = None
) -> Section:
    """5. Redis commands and round trips per finished page, on the happy path."""
    plan = bench.plan
    section = Section(
        5, "Redis cost per finished page (happy path, INFO commandstats and total_reads_processed)"
    )
    runs = overhead_runs or _throughput_runs(bench, plan.redis_cost_jobs, "5 redis cost")
    section.runs = {} if overhead_runs else runs
    for contender, _ in bench.contenders():
        section.rows.append(_redis_cost_row(contender, runs[contender.name]))
    ours = section.rows[0]
    if ours["round_trips_per_page"] is not None:
        rt = ours["round_trips_per_page"]["median"]
        section.checks.append(_check("ours, round trips per page", "≤ 3", round(rt, 2), rt <= 3))
    section.notes.append(
        "Commands include those run inside Lua scripts/functions (Redis counts them too); "
        "scripts = EVAL/EVALSHA/FCALL calls. Round trips = socket reads redis-server processed "
        "(INFO stats total_reads_processed), less the bench's own; a pipeline or a script is one. "
        "The bench's enqueue is done before CONFIG RESETSTAT and is not counted."
        + (" Figures from scenario 1's runs." if overhead_runs else "")
    )
    return section


# --- 6. scale-out -----------------------------------------------------------------------------


def scale_out(bench: Bench) -> Section:
    """6. Scale-out: `--processes` 1, 2, 4 and auto (the real supervisor), no-op generator."""
    plan = bench.plan
    section = Section(
        6,
        f"Scale-out: {plan.scale_jobs:,} no-op jobs, --processes N (the supervisor) {_TIMES} "
        f"concurrency {plan.overhead_concurrency} on one Redis",
    )
    runs: dict[str, list[dict[str, Any]]] = {str(p): [] for p in plan.scale_processes}
    for repeat in range(plan.repeats):
        for processes in plan.scale_processes:
            bench.log(f"[6 scale-out] run {repeat + 1}/{plan.repeats}: --processes {processes}")
            run = bench.measure_supervised(
                f"ours --processes {processes}",
                processes=processes,
                jobs=plan.scale_jobs,
                concurrency=plan.overhead_concurrency,
            )
            if run is not None:
                runs[str(processes)].append(run)
    section.runs = runs
    base = summary(r["jobs_per_s"] for r in runs[str(plan.scale_processes[0])])
    for processes in plan.scale_processes:
        rs = runs[str(processes)]
        rate = summary(r["jobs_per_s"] for r in rs)
        resolved = sorted({r["processes"] for r in rs})
        label = str(processes)
        if str(processes) == "auto" and resolved:
            label = f"auto ({', '.join(map(str, resolved))})"
        section.rows.append(
            {
                "processes": label,
                "pages_per_s": rate,
                "vs_one": (rate["median"] / base["median"]) if rate and base else None,
                "redis_cpu_pct": summary(r["redis_cpu_s"] / r["elapsed_s"] * 100 for r in rs),
                "pool_cpu_pct": summary(r["cpu_s"] / r["elapsed_s"] * 100 for r in rs),
                "pool_cpu_us_per_page": summary(_per_job(r, r["cpu_s"]) * 1e6 for r in rs),
                "peak_rss_mb": summary(r["peak_rss_bytes"] / 2**20 for r in rs),
            }
        )
    section.notes.append(
        "Each run is `python -m bench.supervised --processes N`: the supervisor of `ebook-pool "
        "run --processes` (`pool_app.supervisor.run_supervisor`, which resolves `auto` as the "
        "CLI does: shown in brackets) with the bench's pool as its children's command. All jobs "
        "are staged first and appear on the queue at once (RENAME) when every child has "
        "registered; time runs to the last page counted in the ebooks' status hashes (polled "
        "every 5 ms). Each run ends with SIGTERM to the supervisor, which must exit 0 with none "
        "of its children restarted."
    )
    section.notes.append(
        "Pool CPU = the children's CPU time summed over the run (above 100% means more than one "
        "core); redis-server CPU % of one core. The machine has 2 cores shared by redis-server, "
        "the pool processes and the bench's poller: past 2 processes they compete for the same "
        "cores, so the ratio shows contention, not Redis's limit."
    )
    return section


# --- 7. at the API's rate limit -------------------------------------------------------------


def rate_limits(bench: Bench) -> Section:
    """7. At an OpenAI-style rate limit: the governor on and off, side by side."""
    from bench.governor import full_cases, run_case, smoke_cases

    section = Section(
        7,
        "At the API's rate limit: OpenAI-style limited server (10 s bucket, refused requests "
        "counted), 2 s ± 20% a page, governor on vs off in the same run",
    )
    cases = smoke_cases() if bench.plan.smoke else full_cases()
    for case in cases:
        bench.server.flush()
        try:
            rows = run_case(case, bench.server.url, log=bench.log)
        except RuntimeError as exc:
            bench.errors.append(f"7{case.key}: {exc}")
            bench.log(f"  ! 7{case.key}: {exc}")
            continue
        section.runs[case.key] = rows
        for row in rows:
            section.rows.append({"case": case.key, "title": case.title, **row})
        governed = rows[0]
        pct, refused = governed["pct_of_limit"], governed["refused_pct"]
        section.checks += [
            _check(f"7{case.key} successes/min, % of the limit", "≥ 95%", pct,
                   pct is not None and pct >= 95),
            _check(f"7{case.key} requests refused, %", "≤ 1%", refused,
                   refused is not None and refused <= 1),
            _check(f"7{case.key} pages failed", "0", governed["failed"],
                   governed["failed"] == 0 and governed["left"] == 0),
        ]  # fmt: skip
    section.notes += [
        "Sizes scaled from the issue's so that the scenario takes a few minutes: (a) 600 RPM "
        "and 600 pages instead of 300 RPM and 1,200 (same shape, a minute instead of four); "
        "(b) 300 RPM, 300 pages (the seed's defaults can send 360/min at 2.5 s a page, so the "
        "limit binds); (c) 60k TPM, 60 pages of the default 500 words.",
        "The pool's limits are not set: every arm learns them from the server's "
        "x-ratelimit-limit-* headers. Both arms of a case run at once, each against its own "
        "server process and key prefix on the bench's redis-server. The ungoverned arm "
        "(RATE_LIMIT_GOVERNOR=false: 429s waited out with retry-after and jitter, no attempt "
        "spent) is stopped at max(2 x ideal, ideal + 20 s) if unfinished.",
        "% of the limit: successes/min between the 10th and 90th percentile of finish times, "
        "over the limit in pages/min (the RPM; for (c) the TPM / tokens the server counts per "
        "page). Reserved: the pool's estimate per request (prompt + max_tokens sized from the "
        "target length); used: usage prompt + completion tokens. The issue measured ~1,700 "
        "reserved per page with the old flat max_tokens=1,500.",
    ]
    return section


SCENARIOS: dict[int, Callable[..., Section]] = {
    1: overhead,
    2: slow_io,
    3: seed_table,
    4: pickup,
    5: redis_cost,
    6: scale_out,
    7: rate_limits,
}
