"""`python -m bench.chaos [--quick] [--scenarios ...]`: run the chaos suite, print the table.

Writes bench/results/chaos.md and chaos.json (chaos-quick.* with --quick, chaos-partial.* when
only some scenarios run) and exits 1 if a target was missed: 0 lost, 0 crash loops, every
malformed payload in the failed list, every valid job stored. The whole run takes about
10 minutes on 2 cores, --quick about 2. Everything listens on 127.0.0.1; every child process
is stopped at the end, whatever happened.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.chaos import fuzz, kill_storm, redeploy, redis_restarts
from bench.chaos.report import Outcome, render_table, write_results

RESULTS = Path(__file__).resolve().parents[1] / "results"


@dataclass(frozen=True)
class Sizes:
    """How hard each scenario pushes."""

    kills: int
    redis_restarts: int
    redeploys: int
    malformed: int
    valid: int
    fuzz_timeout_s: float
    drain_timeout_s: float


FULL = Sizes(100, 10, 10, 1_000, 100, fuzz_timeout_s=120, drain_timeout_s=120)
QUICK = Sizes(20, 3, 3, 250, 50, fuzz_timeout_s=40, drain_timeout_s=60)


def _scenarios(
    args: argparse.Namespace, sizes: Sizes, root: Path
) -> dict[str, Callable[[], Outcome]]:
    drain = sizes.drain_timeout_s
    return {
        "kill-storm": lambda: kill_storm.run(
            root, kills=sizes.kills, seed=args.seed, drain_timeout_s=drain
        ),
        "redis-aof": lambda: redis_restarts.run_aof(
            root, restarts=sizes.redis_restarts, seed=args.seed, drain_timeout_s=drain
        ),
        "redis-no-persistence": lambda: redis_restarts.run_no_persistence(
            root, quiet_s=3.0, timeout_s=drain
        ),
        "redeploy": lambda: redeploy.run(
            root, cycles=sizes.redeploys, draining_s=args.draining_s, drain_timeout_s=drain
        ),
        "fuzz": lambda: fuzz.run(
            root,
            malformed=sizes.malformed,
            valid=sizes.valid,
            seed=args.seed,
            timeout_s=args.fuzz_timeout_s or sizes.fuzz_timeout_s,
        ),
    }


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (~2 min)")
    parser.add_argument(
        "--scenarios",
        help="comma-separated: kill-storm, redis-aof, redis-no-persistence, redeploy, fuzz",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument(
        "--draining-s", type=float, default=5.0,
        help="redeploy: SIGKILL this long after SIGTERM (Railway's drainingSeconds; default 5)",
    )  # fmt: skip
    parser.add_argument("--fuzz-timeout-s", type=float, help="give up on the fuzz after this")
    parser.add_argument("--keep-logs", action="store_true", help="keep the scenario directories")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the selected scenarios; 0 if every target was met, else 1."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    sizes = QUICK if args.quick else FULL
    work = tempfile.mkdtemp(prefix="chaos-") if args.keep_logs else None
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        root = Path(work or tmp)
        table = _scenarios(args, sizes, root)
        chosen = args.scenarios.split(",") if args.scenarios else list(table)
        unknown = [c for c in chosen if c not in table]
        if unknown:
            raise SystemExit(f"unknown scenario(s) {unknown}; known: {list(table)}")
        outcomes: list[Outcome] = []
        started = time.monotonic()
        for name in chosen:
            print(f"=== {name} ===", flush=True)
            t0 = time.monotonic()
            outcomes.append(table[name]())
            print(f"    {time.monotonic() - t0:.0f}s; missed: {outcomes[-1].missed}", flush=True)
    command = "python -m bench.chaos" + (" " + " ".join(sys.argv[1:]) if argv is None else "")
    name = "chaos-quick" if args.quick else "chaos"
    if args.scenarios:
        name += "-partial"
    write_results(outcomes, RESULTS, name, command.strip())
    print()
    print(render_table(outcomes))
    print(f"\n{time.monotonic() - started:.0f}s in all; written to {RESULTS / name}.md/.json")
    if work:
        print(f"logs kept in {work}")
    missed = [o.scenario for o in outcomes if o.missed]
    if missed:
        print(f"targets missed in: {', '.join(missed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
