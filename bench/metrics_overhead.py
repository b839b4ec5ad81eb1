"""What observing the pool costs: scenario 1 (no-op pages) with and without it, in one run.

    uv run --group bench python -m bench.metrics_overhead [--jobs 20000] [--repeats 5]

Three variants of our pool, interleaved repeat by repeat on one redis-server so outside load
hits them alike:

- `bare`: the pool alone (no progress events, no HTTP server);
- `events`: what `ebook-pool run` adds without a port: progress events (PROGRESS_EVENTS);
- `events+http+metrics`: also the HTTP server with /healthz, /readyz and /metrics, scraped
  every second (Prometheus usually scrapes every 15 s). Not the dashboard: its once-a-second
  sampler is its own cost.

Prints pages/s and CPU per page (pool process + redis-server, and each) side by side, median
and spread, and each variant's slowdown against `bare` (target: at most 5%). On a busy machine
pages/s swings with outside load; CPU per page is the steadier figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

from bench.catalog import OURS
from bench.harness import RunError, Target, run_once
from bench.redis_server import RedisServer

VARIANTS = {"bare": "none", "events": "events", "events+http+metrics": "all"}
_TARGET_SLOWDOWN = 0.05


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_overhead")
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every variant `--repeats` times and print the table; exit 1 if a run failed."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    base = OURS.target()
    with RedisServer() as server:
        for repeat in range(args.repeats):
            for name, observe in VARIANTS.items():
                target = Target(
                    name=base.name,
                    python=base.python,
                    module=base.module,
                    options={**base.options, "observe": observe},
                )
                print(f"run {repeat + 1}/{args.repeats}: {name}", flush=True)
                try:
                    run = run_once(
                        server, target, mode="throughput", jobs=args.jobs,
                        concurrency=args.concurrency,
                    )  # fmt: skip
                except RunError as exc:
                    print(f"  ! {name}: {str(exc).splitlines()[0]}", file=sys.stderr)
                    return 1
                runs[name].append(run)
    print()
    print(_table(runs, jobs=args.jobs, concurrency=args.concurrency, repeats=args.repeats))
    return 0


def _table(
    runs: dict[str, list[dict[str, Any]]], *, jobs: int, concurrency: int, repeats: int
) -> str:
    def median(values: list[float]) -> str:
        return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"

    bare = statistics.median(r["jobs_per_s"] for r in runs["bare"])
    lines = [
        f"Scenario 1 ({jobs:,} no-op pages, concurrency {concurrency}, median of {repeats}, "
        "min-max):",
        "",
        "| variant | pages/s | slower than bare | CPU µs/page: pool + Redis | pool | Redis |",
        "|---|---|---|---|---|---|",
    ]
    for name, variant_runs in runs.items():
        rates = [r["jobs_per_s"] for r in variant_runs]
        cpu = [(r["cpu_s"] + r["redis_cpu_s"]) / r["jobs"] * 1e6 for r in variant_runs]
        pool_cpu = [r["cpu_s"] / r["jobs"] * 1e6 for r in variant_runs]
        redis_cpu = [r["redis_cpu_s"] / r["jobs"] * 1e6 for r in variant_runs]
        slower = 1 - statistics.median(rates) / bare
        mark = "" if name == "bare" else (" ✓" if slower <= _TARGET_SLOWDOWN else " ✗ (> 5%)")
        slower_cell = "—" if name == "bare" else f"{slower:+.1%}{mark}"
        lines.append(
            f"| {name} | {median(rates)} | {slower_cell} | {median(cpu)} | {median(pool_cpu)} "
            f"| {median(redis_cpu)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
