"""One child of `bench.supervised`: the bench's pool, served until SIGTERM/SIGINT.

    python -m bench.supervised_pool --redis-url URL --concurrency C [--option key=value ...]

The pool is built as `bench.ours` builds it (`bench_settings`, `bench_generator`: the no-op
generator, or `generator=openai` on `base_url`; progress events on, as `ebook-pool run` has
them) and run with the pool's own signal handlers, so the supervisor's forwarded SIGTERM stops
it exactly as it stops `ebook-pool run`. Jobs are pushed and counted by the parent
(`bench.multiprocess`). Exits 0 after a graceful stop, 1 with one line on stderr otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from bench.child import Probe
from bench.ours import bench_generator, bench_settings
from pool.logs import configure_logging
from pool_app import eventloop
from pool_app.gc_tuning import tune_gc
from pool_app.wiring import build_pool, build_publisher

__all__ = ["main", "serve"]

_PUBLISH_DRAIN_S = 5.0
#: The probe only counts; it never ends the run (the parent watches Redis for that).
_UNBOUNDED = 2**62


async def serve(redis_url: str, concurrency: int, options: Mapping[str, str]) -> None:
    """Run the bench's pool until a signal stops it."""
    settings = bench_settings(redis_url, concurrency)
    generator = bench_generator(options, concurrency, Probe(jobs=_UNBOUNDED))
    redis, pool = build_pool(settings, generator)
    publisher = build_publisher(pool, redis, settings)
    try:
        await pool.run(install_signal_handlers=True)  # closes the generator
        if publisher is not None:
            await publisher.drain(_PUBLISH_DRAIN_S)
    finally:
        await redis.aclose()


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.supervised_pool", description=__doc__)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    options = dict(opt.split("=", 1) for opt in args.option)
    # As `ebook-pool run` sets up its log at LOG_LEVEL=WARNING, the same level as the peers'
    # loggers: warnings and errors only.
    configure_logging(level="WARNING", stream=sys.stderr)
    tune_gc()  # as `ebook-pool run` does
    try:
        eventloop.run(
            serve(args.redis_url, args.concurrency, options),
            event_loop=options.get("loop", "uvloop"),
        )
    except Exception as exc:
        print(f"bench pool process failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
