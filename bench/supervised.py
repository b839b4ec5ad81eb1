"""`ebook-pool run --processes N|auto` for the bench: the real supervisor, bench pools as children.

    python -m bench.supervised --processes N|auto --redis-url URL
        (--concurrency C | --total-concurrency T) [--option key=value ...]

`auto` is resolved by `pool_app.supervisor.resolve_processes`, as `ebook-pool run` resolves it;
then `pool_app.supervisor.run_supervisor` runs that many `python -m bench.supervised_pool`
children (the bench's pool: no-op generator, or the real one on the simulator), forwards
SIGTERM/SIGINT to them and restarts any that crashes. The only difference from `ebook-pool run`
is the child's command. `--total-concurrency T` splits T pages in flight over the children
(T / N each, rounded up).

First line on stdout, before any child starts:
    {"event": "supervising", "processes": N, "concurrency": C}
Exit code: the supervisor's (0 after a graceful stop).
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from loguru import logger

from pool_app.supervisor import resolve_processes, run_supervisor

__all__ = ["child_command", "main"]

#: The children hold no job when the bench stops them; this bounds a stop that goes wrong.
SHUTDOWN_GRACE_S = 10.0


def child_command(redis_url: str, concurrency: int, options: list[str]) -> list[str]:
    """The command of one child: `python -m bench.supervised_pool ...`."""
    cmd = [sys.executable, "-m", "bench.supervised_pool", "--redis-url", redis_url]
    cmd += ["--concurrency", str(concurrency)]
    for option in options:
        cmd += ["--option", option]
    return cmd


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.supervised", description=__doc__)
    parser.add_argument("--processes", required=True, help="N or auto")
    parser.add_argument("--redis-url", required=True)
    per = parser.add_mutually_exclusive_group(required=True)
    per.add_argument("--concurrency", type=int, help="pages in flight per process")
    per.add_argument("--total-concurrency", type=int, help="pages in flight over all processes")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        processes = resolve_processes(
            args.processes if args.processes == "auto" else int(args.processes)
        )
    except ValueError:
        print(f"--processes must be a number or auto, not {args.processes!r}", file=sys.stderr)
        return 2
    if args.concurrency is not None:
        concurrency = args.concurrency
    else:
        concurrency = math.ceil(args.total_concurrency / processes)
    print(
        json.dumps({"event": "supervising", "processes": processes, "concurrency": concurrency}),
        flush=True,
    )
    logger.remove()
    logger.add(sys.stderr, level="INFO")  # the supervisor's few lines: starts, stops, restarts
    return run_supervisor(
        processes,
        shutdown_grace_s=SHUTDOWN_GRACE_S,
        command=child_command(args.redis_url, concurrency, args.option),
    )


if __name__ == "__main__":
    sys.exit(main())
