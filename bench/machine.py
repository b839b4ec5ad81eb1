"""The machine and software a run was measured on, for bench/results/."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psutil

from bench.harness import REPO
from bench.redis_server import redis_server_version

__all__ = ["describe_machine"]

#: Our side of the comparison: what the pool runs on.
_OUR_PACKAGES = (
    "redis",
    "hiredis",
    "openai",
    "httpx",
    "httpx2",
    "pydantic",
    "tenacity",
    "loguru",
    "aiohttp",
)
#: Each peer venv: the library and what it talks to Redis with.
PEER_PACKAGES = (
    "arq", "saq", "taskiq", "taskiq-redis", "bullmq", "streaq", "rq",
    "redis", "hiredis", "coredis",
)  # fmt: skip


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    if commit := os.environ.get("BENCH_GIT_COMMIT"):  # a run from an exported snapshot
        return commit
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _versions(names: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def describe_machine(peer_versions: dict[str, dict[str, str]]) -> dict[str, Any]:
    """CPU, cores, RAM, OS, Python, redis-server and every package version that matters."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "redis_server": redis_server_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "packages_ours": _versions(_OUR_PACKAGES),
        "packages_peers": peer_versions,
    }
