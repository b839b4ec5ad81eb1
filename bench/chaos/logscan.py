"""What the pool processes' logs say: worker restarts, crash loops, tracebacks, chosen lines."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CRASH_LOOP_RESTARTS", "LogFigures", "grep", "scan_logs"]

#: A worker that restarts this many times in one process is in a crash loop.
CRASH_LOOP_RESTARTS = 3

_RESTART = re.compile(r"\[Worker-(\d+)\] Crashed; restarting")
_TRACEBACK = "Traceback (most recent call last)"


@dataclass
class LogFigures:
    """Counts over every pool log of a scenario."""

    restarts: int = 0
    crash_loops: int = 0
    tracebacks: int = 0
    exceptions: dict[str, int] = field(default_factory=dict)


def scan_logs(paths: list[Path]) -> LogFigures:
    """Count "Crashed; restarting" lines, crash loops and tracebacks (with their last line)."""
    figures = LogFigures()
    exceptions: Counter[str] = Counter()
    for path in paths:
        text = path.read_text(errors="replace")
        per_worker = Counter(m.group(1) for m in _RESTART.finditer(text))
        figures.restarts += sum(per_worker.values())
        figures.crash_loops += sum(1 for n in per_worker.values() if n >= CRASH_LOOP_RESTARTS)
        figures.tracebacks += text.count(_TRACEBACK)
        exceptions.update(_exception_names(text))
    figures.exceptions = dict(exceptions.most_common(8))
    return figures


_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit))\b[:]?", re.M)


def _exception_names(text: str) -> list[str]:
    """The exception class names that end tracebacks (loguru prints them alone on a line)."""
    return [m.group(1).rsplit(".", 1)[-1] for m in _EXC_LINE.finditer(text)]


def grep(paths: list[Path], pattern: str, *, since: dict[Path, int] | None = None) -> list[str]:
    """Lines matching `pattern` in `paths`, from byte offset `since[path]` on if given."""
    regex = re.compile(pattern)
    out: list[str] = []
    for path in paths:
        data = path.read_bytes()[(since or {}).get(path, 0) :]
        out += [line for line in data.decode(errors="replace").splitlines() if regex.search(line)]
    return out
