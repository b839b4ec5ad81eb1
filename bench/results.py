"""Tables for people (Markdown) and the raw figures (JSON), written to bench/results/."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.scenarios import Section

__all__ = ["render_markdown", "write_results"]

_TIMES, _DASH = "\u00d7", "\u2013"  # typographic x and dash for the tables
RESULTS_DIR = Path(__file__).resolve().parent / "results"
README = Path(__file__).resolve().parent / "README.md"
_START, _END = "<!-- latest:start -->", "<!-- latest:end -->"


def _fmt(summary: dict[str, float] | None, digits: int = 0, spread: bool = True) -> str:
    if summary is None:
        return "—"
    median = f"{summary['median']:,.{digits}f}"
    if not spread or summary["n"] < 2:
        return median
    return f"{median} ({summary['min']:,.{digits}f}{_DASH}{summary['max']:,.{digits}f})"


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}{_TIMES}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _overhead(section: Section) -> list[str]:
    return _table(
        [
            "queue",
            "at-least-once",
            "jobs/run",
            "pages/s",
            "ours ÷ it",
            "CPU µs/page (worker + redis)",
            "peak RSS MB",
        ],
        [
            [
                f"**{r['queue']}**" if r["queue"].startswith("ours") else r["queue"],
                "yes" if r["at_least_once"] else "no",
                f"{r['jobs']:,}" if r["jobs"] else "—",
                _fmt(r["pages_per_s"]),
                _ratio(r["ours_ratio"]),
                f"{_fmt(r['cpu_us_per_page'], spread=False)} ({_fmt(r['worker_cpu_us_per_page'], spread=False)} + {_fmt(r['redis_cpu_us_per_page'], spread=False)})",
                _fmt(r["peak_rss_mb"], spread=False),
            ]
            for r in section.rows
        ],
    )


def _slow_io(section: Section) -> list[str]:
    return _table(
        [
            "in flight",
            "processes",
            "latency s",
            "event loop",
            "jobs",
            "ideal pages/s",
            "steady pages/s",
            "steady % of ideal",
            "end-to-end pages/s",
            "end-to-end %",
            "pool CPU %",
            "CPU ms/page",
            "peak RSS MB",
        ],
        [
            [
                f"{r['concurrency']:,}",
                str(r.get("processes", "1")),
                f"{r.get('latency_s', 1.0):g}",
                r.get("loop", "asyncio"),
                f"{r['jobs']:,}",
                f"{r['ideal_pages_per_s']:,.0f}",
                _fmt(r["steady_pages_per_s"]),
                _fmt(r["steady_pct_of_ideal"], 1),
                _fmt(r["pages_per_s"]),
                _fmt(r["pct_of_ideal"], 1),
                _fmt(r["cpu_pct"], spread=False),
                _fmt(r["cpu_ms_per_page"], 2, spread=False),
                _fmt(r["peak_rss_mb"]),
            ]
            for r in section.rows
        ],
    )


def _seed(section: Section) -> list[str]:
    return _table(
        ["workers", "jobs", "ideal pages/min", "pages/min (end to end)", "% of ideal"],
        [
            [
                f"{r['workers']:,}",
                f"{r['jobs']:,}",
                f"{r['ideal_pages_per_min']:,.1f}",
                _fmt(r["pages_per_min"], 1),
                _fmt(r["pct_of_ideal"], 1),
            ]
            for r in section.rows
        ],
    )


def _pickup(section: Section) -> list[str]:
    return _table(
        ["queue", "p50 ms", "p99 ms", "max ms"],
        [
            [
                f"**{r['queue']}**" if r["queue"].startswith("ours") else r["queue"],
                _fmt(r["p50_ms"], 2),
                _fmt(r["p99_ms"], 2),
                _fmt(r["max_ms"], 1, spread=False),
            ]
            for r in section.rows
        ],
    )


def _redis_cost(section: Section) -> list[str]:
    return _table(
        [
            "queue",
            "commands/page",
            "of which scripts",
            "other commands",
            "round trips/page",
            "most frequent (per page)",
        ],
        [
            [
                f"**{r['queue']}**" if r["queue"].startswith("ours") else r["queue"],
                _fmt(r["commands_per_page"], 1, spread=False),
                _fmt(r["scripts_per_page"], 2, spread=False),
                _fmt(r["other_commands_per_page"], 1, spread=False),
                _fmt(r["round_trips_per_page"], 2),
                ", ".join(f"{k} {v:g}" for k, v in r["top_commands"].items()),
            ]
            for r in section.rows
        ],
    )


def _scale(section: Section) -> list[str]:
    return _table(
        [
            "--processes",
            "pages/s",
            "vs 1 process",
            "redis-server CPU %",
            "pool CPU %",
            "pool CPU µs/page",
            "peak RSS MB per process",
        ],
        [
            [
                str(r["processes"]),
                _fmt(r["pages_per_s"]),
                _ratio(r["vs_one"]),
                _fmt(r["redis_cpu_pct"], spread=False),
                _fmt(r.get("pool_cpu_pct"), spread=False),
                _fmt(r.get("pool_cpu_us_per_page"), spread=False),
                _fmt(r.get("peak_rss_mb"), spread=False),
            ]
            for r in section.rows
        ],
    )


def _governor(section: Section) -> list[str]:
    def cell(value: Any, suffix: str = "") -> str:
        return "-" if value is None else f"{value:,}{suffix}"

    return _table(
        [
            "case",
            "governor",
            "successes/min (steady)",
            "% of limit",
            "refused",
            "pages failed",
            "not finished",
            "tokens reserved / used per page",
            "wall time",
        ],
        [
            [
                f"({r['case']}) {r['title']}",
                "**on**" if r["arm"] == "governor" else "off",
                cell(r["ok_per_min_steady"]),
                cell(r["pct_of_limit"], "%"),
                cell(r["refused_pct"], "%"),
                str(r["failed"]),
                str(r["left"]),
                f"{cell(r['tokens_reserved_per_page'])} / {cell(r['tokens_used_per_page'])}",
                f"{r['wall_s']:.0f} s" + ("" if r["finished"] else " (cap)"),
            ]
            for r in section.rows
        ],
    )


_RENDERERS: dict[int, Callable[[Section], list[str]]] = {
    1: _overhead,
    2: _slow_io,
    3: _seed,
    4: _pickup,
    5: _redis_cost,
    6: _scale,
    7: _governor,
}


def render_markdown(
    sections: list[Section], machine: dict[str, Any], settings: dict[str, Any], errors: list[str]
) -> str:
    """The whole report: machine, one table per scenario, the targets, any errors."""
    peers = ", ".join(
        f"{env}: " + " ".join(f"{k} {v}" for k, v in versions.items())
        for env, versions in machine["packages_peers"].items()
    )
    out = [
        "# Benchmark results",
        "",
        f"{machine['date']} · commit {machine['git_commit']} · {machine['cpu_model']}, "
        f"{machine['cores']} cores, {machine['ram_gib']} GiB · {machine['os']} · "
        f"Python {machine['python']} · redis-server {machine['redis_server']} · "
        f"load average at start {machine['load_average_at_start']}",
        "",
        f"Ours: {' '.join(f'{k} {v}' for k, v in machine['packages_ours'].items())}  ",
        f"Peers (one venv each): {peers}",
        "",
        f"Run: `{('python -m bench ' + settings['argv']).strip()}` · "
        f"{settings['repeats']} repeat(s) per figure, "
        f"median (min{_DASH}max) · "
        + ("**smoke run: sizes too small to mean anything**" if settings["smoke"] else "full run"),
        "",
    ]
    checks: list[dict[str, Any]] = []
    for section in sections:
        out += [f"## {section.id}. {section.title}", ""]
        out += _RENDERERS[section.id](section)
        out.append("")
        out += [f"- {note}" for note in section.notes]
        out.append("")
        checks += section.checks
    if checks:
        out += ["## Targets", ""]
        out += _table(
            ["what", "target", "measured", "met"],
            [
                [c["what"], c["target"], str(c["value"]), "yes" if c["met"] else "**no**"]
                for c in checks
            ],
        )
        out.append("")
    if errors:
        out += ["## Errors", ""] + [f"- `{e.splitlines()[0]}`" for e in errors] + [""]
    return "\n".join(out)


def write_results(
    sections: list[Section],
    machine: dict[str, Any],
    settings: dict[str, Any],
    errors: list[str],
    *,
    stem: str,
) -> tuple[Path, Path]:
    """Write `<stem>.json` (everything) and `<stem>.md` (the tables) into bench/results/."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    raw = {
        "machine": machine,
        "settings": settings,
        "errors": errors,
        "scenarios": [dataclasses.asdict(s) for s in sections],
    }
    json_path = RESULTS_DIR / f"{stem}.json"
    md_path = RESULTS_DIR / f"{stem}.md"
    json_path.write_text(json.dumps(raw, indent=1, default=str) + "\n")
    markdown = render_markdown(sections, machine, settings, errors)
    md_path.write_text(markdown)
    if stem == "latest":
        _update_readme(markdown)
    return json_path, md_path


def _update_readme(markdown: str) -> None:
    """Copy the latest tables into bench/README.md, between its two markers."""
    if not README.exists():
        return
    text = README.read_text()
    if _START not in text or _END not in text:
        return
    head, rest = text.split(_START, 1)
    _, tail = rest.split(_END, 1)
    body = markdown.split("\n", 1)[1].replace("\n## ", "\n### ")  # one level down
    README.write_text(f"{head}{_START}\n{body.strip()}\n{_END}{tail}")
