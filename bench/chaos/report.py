"""The suite's figures: one `Outcome` per scenario, its targets, the table and the files.

Targets (a missed one makes the run exit 1): 0 lost, 0 crash loops, every malformed payload in
the failed list (and none stored), every valid job stored. A scenario that expects data loss
(Redis restarted without persistence) reports its losses without making them a target.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos.ledger import Ledger
from bench.chaos.logscan import CRASH_LOOP_RESTARTS, LogFigures

__all__ = ["Outcome", "render_markdown", "render_table", "write_results"]


@dataclass
class Outcome:
    """What one scenario did and what became of its jobs."""

    scenario: str
    disruption: str
    ledger: Ledger
    logs: LogFigures
    llm_requests: int
    generated_twice: int
    drain_s: float | None
    duration_s: float
    details: dict[str, Any] = field(default_factory=dict)
    expect_loss: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def missed(self) -> list[str]:
        """The targets this scenario missed, one short phrase each."""
        led, out = self.ledger, []
        if not self.expect_loss:
            if led.lost:
                out.append(f"{led.lost} lost")
            if led.stored < led.valid_pushed:
                out.append(f"{led.valid_pushed - led.stored} valid not stored")
        if self.logs.crash_loops:
            out.append(f"{self.logs.crash_loops} crash loops")
        if led.malformed_in_failed < led.malformed_pushed:
            out.append(f"{led.malformed_pushed - led.malformed_in_failed} malformed not failed")
        if led.malformed_stored:
            out.append(f"{led.malformed_stored} malformed stored")
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "scenario": self.scenario,
            "disruption": self.disruption,
            **self.ledger.as_dict(),
            "llm_requests": self.llm_requests,
            "generated_twice": self.generated_twice,
            "worker_restarts": self.logs.restarts,
            "crash_loops": self.logs.crash_loops,
            "tracebacks": self.logs.tracebacks,
            "exceptions": self.logs.exceptions,
            "drain_s": None if self.drain_s is None else round(self.drain_s, 1),
            "duration_s": round(self.duration_s, 1),
            "expect_loss": self.expect_loss,
            "missed": self.missed,
            "details": self.details,
            "notes": self.notes,
        }


_HEADER = [
    "scenario", "disruption", "pushed", "stored", "failed (by type)", "lost (pending)",
    "malformed in failed", "generated twice", "restarts", "crash loops", "tracebacks",
    "drain", "targets",
]  # fmt: skip


def _row(o: Outcome) -> list[str]:
    led = o.ledger
    failed = ", ".join(f"{k} {v}" for k, v in sorted(led.failed_by_type.items())) or "0"
    pushed = f"{led.valid_pushed}" + (
        f" + {led.malformed_pushed} bad" if led.malformed_pushed else ""
    )
    lost = f"{led.lost}" + (f" ({led.pending})" if led.pending else "")
    if o.expect_loss:
        lost += " (expected)"
    bad = f"{led.malformed_in_failed}/{led.malformed_pushed}" if led.malformed_pushed else "-"
    drain = "timeout" if o.drain_s is None else f"{o.drain_s:.1f}s"
    return [
        o.scenario, o.disruption, pushed, str(led.stored), failed, lost, bad,
        str(o.generated_twice), str(o.logs.restarts), str(o.logs.crash_loops),
        str(o.logs.tracebacks), drain, "ok" if not o.missed else "MISSED: " + "; ".join(o.missed),
    ]  # fmt: skip


def render_table(outcomes: list[Outcome]) -> str:
    """The results as a Markdown table (also what is printed)."""
    rows = [_HEADER, ["---"] * len(_HEADER), *(_row(o) for o in outcomes)]
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def _kinds_table(by_kind: dict[str, dict[str, int]]) -> str:
    lines = [
        "| kind | pushed | in failed list (by hash) | still queued | page stored "
        "| not found (by hash) |",
        "|---|---|---|---|---|---|",
    ]
    for kind, row in by_kind.items():
        lines.append(
            f"| {kind} | {row['pushed']} | {row['failed']} | {row['queued']} | {row['stored']} "
            f"| {row['unseen']} |"
        )
    return "\n".join(lines)


def _machine() -> str:
    try:
        redis_v = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=False
        ).stdout.split()[2]
    except (OSError, IndexError):
        redis_v = "?"
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, redis-server {redis_v}"
    )


def render_markdown(outcomes: list[Outcome], command: str) -> str:
    """The whole report: table, how it was made, and each scenario's details."""
    parts = [
        "# Chaos suite results",
        "",
        f"`{command}` on {time.strftime('%Y-%m-%d %H:%M')} ({_machine()}).",
        "",
        render_table(outcomes),
        "",
        "- **pushed**: valid page jobs (+ malformed payloads). **stored**: valid pages in their "
        "ebook's pages hash. **lost**: valid jobs neither stored nor in the failed list at the "
        "end (in brackets: how many of those were still queued or claimed when the scenario "
        "stopped waiting).",
        "- **malformed in failed**: malformed payloads found in `{prefix}:failed`, matched by "
        "the sha256 of their bytes (`payloadSha256`, else the decoded `payloadBase64`, else "
        "`payload`); entries whose payload was kept lossily are matched by count.",
        "- **generated twice**: requests the simulator received (`/_sim/stats`) beyond one per "
        "stored page. **restarts**: `Crashed; restarting` lines in the pool logs; a **crash "
        f"loop** is one worker restarting {CRASH_LOOP_RESTARTS}+ times in one process. "
        "**tracebacks**: `Traceback (most recent call last)` in the pool logs. **drain**: "
        "from the last disruption (the pool's start for the fuzz) until nothing is queued or "
        "claimed.",
        "",
    ]
    for o in outcomes:
        parts += [f"## {o.scenario}", ""]
        parts += [f"- {note}" for note in o.notes]
        if o.logs.exceptions:
            parts.append(f"- exceptions in the logs: {o.logs.exceptions}")
        by_kind = o.ledger.by_kind
        if by_kind:
            parts += [
                "",
                "Each malformed payload in one column: its failed entry found by hash, still "
                "queued or claimed, its page stored (the pool accepted it), or none of these "
                "(e.g. a failed entry that kept the payload lossily: see 'malformed in failed').",
                "",
                _kinds_table(by_kind),
            ]
        parts.append("")
    return "\n".join(parts)


def write_results(outcomes: list[Outcome], out_dir: Path, name: str, command: str) -> None:
    """Write `<name>.md` and `<name>.json` under `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.md").write_text(render_markdown(outcomes, command))
    data = {
        "command": command,
        "machine": _machine(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "ok": all(not o.missed for o in outcomes),
        "scenarios": [o.as_dict() for o in outcomes],
    }
    (out_dir / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
