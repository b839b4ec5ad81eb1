"""Scenario 7: at the API's rate limit, with the governor and without it, side by side.

An OpenAI-style limited server (`python -m generator.simulator --rate-bucket-s 10
--count-refused`, RPM/TPM set, 2 s ± 20% a page) in its own process, for each arm; real
`ebook-pool run` processes (replicas) on the bench's redis-server, the limits learned from the
server's `x-ratelimit-*` headers. Both arms of a case run at the same time, each against its own
server and key prefix: the governed one (RATE_LIMIT_GOVERNOR=true, the default) and the same
pool with RATE_LIMIT_GOVERNOR=false. The ungoverned arm is stopped at a time cap if it has not
finished, and its unfinished pages are reported.

Figures per arm: successes/min over the steady window (between the 10th and 90th percentile of
the pages' finish times) as % of the limit, % of requests refused (the server's /_sim/stats),
pages failed, tokens reserved (prompt estimate + max_tokens: what the pool and OpenAI count)
against tokens used (usage) per page, and wall time (enqueue to the last page).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis as AsyncRedis

from bench.harness import REPO
from bench.redis_server import stop_process

__all__ = ["LimitCase", "full_cases", "run_case", "smoke_cases"]

_API_KEY = "sk-bench-governor"
_STEADY = (0.10, 0.90)


@dataclass(frozen=True, slots=True)
class LimitCase:
    """One case: the server's limits, the pool's shape, the pages.

    Attributes:
        rpm / tpm: the simulator's limits (per minute).
        binding: "rpm" or "tpm", the limit the case is about.
    """

    key: str
    title: str
    rpm: int
    tpm: int
    binding: str
    replicas: int
    workers: int
    processing_delay_ms: int
    pages: int
    latency_s: float


def full_cases() -> tuple[LimitCase, ...]:
    """The published sizes, scaled so that each case takes about a minute (see the notes)."""
    return (
        LimitCase("a", "600 RPM, 3 replicas x 50 workers", 600, 50_000_000, "rpm", 3, 50, 0, 600, 2.0),
        LimitCase("b", "300 RPM, the seed's defaults: 3 replicas x 5 workers, PROCESSING_DELAY 500",
                  300, 50_000_000, "rpm", 3, 5, 500, 300, 2.0),
        LimitCase("c", "60k TPM, 1 replica x 50 workers, 500-word pages", 100_000, 60_000, "tpm",
                  1, 50, 0, 60, 2.0),
    )  # fmt: skip


def smoke_cases() -> tuple[LimitCase, ...]:
    """A few seconds each, for CI's --smoke."""
    return (
        LimitCase("a", "1200 RPM, 3 x 10", 1_200, 50_000_000, "rpm", 3, 10, 0, 60, 0.3),
        LimitCase("b", "600 RPM, seed defaults 3 x 5, delay 500", 600, 50_000_000, "rpm", 3, 5, 500,
                  30, 0.3),
        LimitCase("c", "240k TPM, 1 x 20", 100_000, 240_000, "tpm", 1, 20, 0, 30, 0.3),
    )  # fmt: skip


class _Server:
    """The limited simulator in its own process, on a free port."""

    def __init__(self, case: LimitCase) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable, "-m", "generator.simulator", "--host", "127.0.0.1",
            "--port", str(self.port), "--latency-s", str(case.latency_s), "--jitter", "0.2",
            "--seed", "7", "--rpm", str(case.rpm), "--tpm", str(case.tpm),
            "--rate-bucket-s", "10", "--count-refused",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    stop_process(self.proc)
                    raise RuntimeError("the simulator did not start") from None
                time.sleep(0.05)

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_sim/stats", timeout=10) as answer:
            stats: dict[str, Any] = json.loads(answer.read())
        return stats

    def stop(self) -> None:
        stop_process(self.proc)


@dataclass(slots=True)
class _Arm:
    governor: bool
    prefix: str
    server: _Server
    procs: list[subprocess.Popen[bytes]]
    ebook: str
    logs: Path
    started: float = 0.0
    ended: float | None = None
    capped: bool = False


def _start_arm(case: LimitCase, redis_url: str, *, governor: bool, logs: Path) -> _Arm:
    prefix = f"gov7{case.key}-{'on' if governor else 'off'}"
    server = _Server(case)
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "KEY_PREFIX": prefix,
        "CONCURRENT_WORKERS": str(case.workers),
        "PROCESSING_DELAY": str(case.processing_delay_ms),
        "OPENAI_BASE_URL": f"{server.url}/v1",
        "OPENAI_API_KEY": _API_KEY,
        "RATE_LIMIT_GOVERNOR": "true" if governor else "false",
        "STATS_INTERVAL": "10000",
        "LOG_PAGE_LINES_PER_S": "5",
        "PROCESSES": "1",
    }
    for name in ("OPENAI_RPM_LIMIT", "OPENAI_TPM_LIMIT", "OPENAI_MAX_TOKENS", "HTTP_PORT", "PORT"):
        env.pop(name, None)  # limits learned from the server's headers; pages sized per page
    procs = []
    for n in range(case.replicas):
        out = (logs / f"{prefix}-{n}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "pool", "run"],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )
    return _Arm(governor, prefix, server, procs, f"bench-{prefix}", logs)


async def _wait_for_pools(redis: AsyncRedis, arm: _Arm, replicas: int) -> None:
    from pool import Keys

    keys = Keys(arm.prefix)
    deadline = time.monotonic() + 60
    while await redis.scard(keys.pools) < replicas:
        if time.monotonic() > deadline or any(p.poll() is not None for p in arm.procs):
            raise RuntimeError(f"{arm.prefix}: the pool processes did not start (see {arm.logs})")
        await asyncio.sleep(0.1)


async def _enqueue(redis: AsyncRedis, arm: _Arm, case: LimitCase) -> list[Any]:
    from pool import Keys
    from pool_app.producer import build_jobs, enqueue_ebook

    jobs = build_jobs(
        ebook_id=arm.ebook, title="Rate limits in practice", pages=case.pages,
        topic="Working with an API at its rate limit",
    )  # fmt: skip
    arm.started = time.time()
    await enqueue_ebook(redis, Keys(arm.prefix), jobs)
    return jobs


async def _finished(redis: AsyncRedis, arm: _Arm, total: int) -> bool:
    from pool import Keys

    status = await redis.hgetall(Keys(arm.prefix).status(arm.ebook))
    done = int(status.get(b"done", 0)) + int(status.get(b"failed", 0))
    return done >= total


def _stop(arm: _Arm) -> None:
    for proc in arm.procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in arm.procs:
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            stop_process(proc)


async def _figures(
    redis: AsyncRedis, arm: _Arm, case: LimitCase, jobs: list[Any]
) -> dict[str, Any]:
    from generator import GeneratorSettings
    from pool import Keys
    from pool_app.wiring import build_generator

    keys = Keys(arm.prefix)
    status = {
        k.decode(): v.decode() for k, v in (await redis.hgetall(keys.status(arm.ebook))).items()
    }
    records = [json.loads(v) for v in (await redis.hgetall(keys.pages(arm.ebook))).values()]
    sim = arm.server.stats()
    requests = sim["requests"]
    refused = sim["by_status"].get("429", 0)
    finish_ms = sorted(r["generatedAt"] for r in records)
    # What each request costs at admission (prompt estimate + max_tokens): what the governor
    # reserves and what OpenAI counts against the TPM, from the generator the pool runs.
    generator = build_generator(GeneratorSettings(), workers=1, base_url=f"{arm.server.url}/v1",
                                api_key=_API_KEY)  # fmt: skip
    costs = [generator.request_cost(job) for job in jobs]
    await generator.aclose()
    reserved = sum(c.tokens for c in costs) / len(costs)
    used = (
        sum(r["promptTokens"] + r["completionTokens"] for r in records) / len(records)
        if records
        else None
    )
    admitted = (  # tokens the server counts per page: its prompt count + max_tokens
        (sim["prompt_tokens"] / max(1, sim["by_status"].get("200", 0)))
        + sum(c.max_tokens for c in costs) / len(costs)
    )
    steady_per_min = None
    if len(finish_ms) >= 10:
        lo = finish_ms[int(_STEADY[0] * (len(finish_ms) - 1))]
        hi = finish_ms[int(_STEADY[1] * (len(finish_ms) - 1))]
        inside = sum(1 for t in finish_ms if lo <= t <= hi) - 1
        if hi > lo:
            steady_per_min = inside / ((hi - lo) / 60_000)
    limit_per_min = case.rpm if case.binding == "rpm" else case.tpm / admitted
    end = arm.ended if arm.ended is not None else time.time()
    return {
        "arm": "governor" if arm.governor else "off",
        "pages": case.pages,
        "done": int(status.get("done", 0)),
        "failed": int(status.get("failed", 0)),
        "left": case.pages - int(status.get("done", 0)) - int(status.get("failed", 0)),
        "requests": requests,
        "refused": refused,
        "refused_pct": round(100 * refused / requests, 2) if requests else None,
        "ok_per_min_steady": None if steady_per_min is None else round(steady_per_min, 1),
        "limit_pages_per_min": round(limit_per_min, 1),
        "pct_of_limit": None
        if steady_per_min is None
        else round(100 * steady_per_min / limit_per_min, 1),
        "tokens_reserved_per_page": round(reserved),
        "tokens_used_per_page": None if used is None else round(used),
        "tokens_admitted_per_page": round(admitted),
        "wall_s": round(end - arm.started, 1),
        "finished": not arm.capped,
    }


def run_case(case: LimitCase, redis_url: str, log: Any = print) -> list[dict[str, Any]]:
    """Both arms of `case` at once; one row of figures per arm (governor first)."""
    return asyncio.run(_run_case(case, redis_url, log))


async def _run_case(case: LimitCase, redis_url: str, log: Any) -> list[dict[str, Any]]:
    logs = Path(tempfile.mkdtemp(prefix=f"bench-governor-{case.key}-"))
    ideal_s = case.pages / (case.rpm if case.binding == "rpm" else case.tpm / 1_500) * 60
    cap_s = max(2.0 * ideal_s, ideal_s + 20)  # the ungoverned arm's time cap
    redis = AsyncRedis.from_url(redis_url)
    arms = [
        _start_arm(case, redis_url, governor=True, logs=logs),
        _start_arm(case, redis_url, governor=False, logs=logs),
    ]
    try:
        for arm in arms:
            await _wait_for_pools(redis, arm, case.replicas)
        jobs = await _enqueue(redis, arms[0], case)
        await _enqueue(redis, arms[1], case)
        log(f"[7{case.key}] {case.title}: {case.pages} pages, both arms running (logs: {logs})")
        while any(arm.ended is None for arm in arms):
            await asyncio.sleep(0.2)
            now = time.time()
            for arm in arms:
                if arm.ended is not None:
                    continue
                if await _finished(redis, arm, case.pages):
                    arm.ended = now
                elif not arm.governor and now - arm.started > cap_s:
                    log(f"[7{case.key}] the ungoverned arm is stopped at its cap of {cap_s:.0f}s")
                    arm.ended, arm.capped = now, True
                    _stop(arm)
                elif arm.governor and now - arm.started > 5 * ideal_s + 120:
                    raise RuntimeError(f"7{case.key}: the governed arm did not finish")
        for arm in arms:
            _stop(arm)
        rows = [await _figures(redis, arm, case, jobs) for arm in arms]
    finally:
        for arm in arms:
            _stop(arm)
            arm.server.stop()
        await redis.aclose()
    for row in rows:
        log(f"[7{case.key}] {row['arm']}: {json.dumps(row)}")
    return rows
