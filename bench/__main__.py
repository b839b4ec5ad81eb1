"""`python -m bench`: measure our pool against arq, SAQ, taskiq, BullMQ, streaq and rq.

Starts its own redis-server (and the LLM simulator for scenarios 2, 3 and 7), installs the peers'
venvs under bench/.peers/ if needed, runs the scenarios, prints the tables and writes
bench/results/<name>.json and .md ("latest" for a full run of everything, "smoke" for --smoke,
"governor" for --scenarios 7 alone, "partial" otherwise). Exits 1 if a run failed or a figure is missing or zero.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

from bench.catalog import OURS, OURS_ASYNCIO, select_peers
from bench.machine import PEER_PACKAGES, describe_machine
from bench.peers_env import ensure_venv, installed_versions
from bench.redis_server import RedisServer
from bench.results import write_results
from bench.scenarios import SCENARIOS, Bench, Plan, Section


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat (CI)")
    parser.add_argument(
        "--scenarios",
        default="1,2,3,4,5,6,7",
        help="comma-separated scenario numbers (default all)",
    )
    parser.add_argument("--repeats", type=int, help="runs per figure (default 3; 1 with --smoke)")
    parser.add_argument(
        "--peers",
        help="comma-separated peers (arq,saq,taskiq,bullmq,streaq,rq), 'none'; default all",
    )
    parser.add_argument("--output", help="name of the results files (default: see above)")
    return parser.parse_args(argv)


def _insane(sections: list[Section]) -> list[str]:
    """Figures that cannot be right: a contender or level with no result, or zero throughput."""
    problems = []
    for section in sections:
        for row in section.rows:
            label = next(str(v) for v in row.values())
            for key in ("pages_per_s", "p50_ms", "commands_per_page", "pages_per_min"):
                if key not in row:
                    continue
                value = row[key]
                if value is None:
                    problems.append(f"scenario {section.id}, {label}: no {key}")
                elif key != "p50_ms" and value["median"] <= 0:
                    problems.append(f"scenario {section.id}, {label}: {key} is {value['median']}")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    scenario_ids = sorted({int(s) for s in args.scenarios.split(",") if s.strip()})
    unknown = [s for s in scenario_ids if s not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {sorted(SCENARIOS)}")
    plan = Plan.smoke_plan(args.repeats or 1) if args.smoke else Plan.full(args.repeats or 3)
    peers = select_peers(args.peers)
    started = time.monotonic()

    pythons = {env: ensure_venv(env) for env in sorted({p.env for p in peers if p.env})}
    peer_versions = {
        env: installed_versions(py, list(PEER_PACKAGES)) for env, py in pythons.items()
    }
    machine = describe_machine(peer_versions)
    peer_targets = [(p, p.target(pythons[p.env] if p.env else None)) for p in peers]

    sections: list[Section] = []
    with RedisServer() as server:
        bench = Bench(
            server=server,
            plan=plan,
            peers=peer_targets,
            ours=OURS.target(),
            ours_asyncio=OURS_ASYNCIO.target(),
        )
        overhead_runs: dict[str, list[dict[str, Any]]] | None = None
        for sid in scenario_ids:
            print(f"\n=== scenario {sid} ===", flush=True)
            if sid == 5 and overhead_runs is not None:
                section = SCENARIOS[5](bench, overhead_runs)
            else:
                section = SCENARIOS[sid](bench)
            if sid == 1:
                overhead_runs = section.runs
            sections.append(section)
    errors = bench.errors + _insane(sections)

    if args.output:
        stem = args.output
    elif args.smoke:
        stem = "smoke"
    elif scenario_ids == [7]:
        stem = "governor"
    elif scenario_ids == sorted(SCENARIOS) and args.peers is None:
        stem = "latest"
    else:
        stem = "partial"
    settings = {
        "argv": shlex.join(sys.argv[1:] if argv is None else argv),
        "smoke": plan.smoke,
        "repeats": plan.repeats,
        "plan": vars(plan)
        if hasattr(plan, "__dict__")
        else {f: getattr(plan, f) for f in plan.__slots__},
        "duration_s": round(time.monotonic() - started, 1),
    }
    json_path, md_path = write_results(sections, machine, settings, errors, stem=stem)
    print("\n" + md_path.read_text())
    print(f"written: {json_path} and {md_path}")
    if errors:
        print(f"\n{len(errors)} problem(s):", file=sys.stderr)
        for error in errors:
            print(f"  - {error.splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
