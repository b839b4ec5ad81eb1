"""A flat summary of a pyinstrument session: where the CPU of a run went, by function.

pyinstrument's tree is hard to read for a worker pool (the same call sits under many
coroutines); `flat_summary` adds up self time per function and inclusive time per function of
the project's own code.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["flat_summary"]


def _walk(frame: Any, stack: tuple[str, ...], own: Counter[str], inclusive: Counter[str]) -> None:
    name = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
    own[name] += frame.total_self_time
    if name not in stack:  # count recursive frames once
        inclusive[name] += frame.time
    for child in frame.children:
        _walk(child, (*stack, name), own, inclusive)


def flat_summary(
    session: Any, *, top: int = 30, own_code: tuple[str, ...] = ("pool/", "generator/")
) -> str:
    """Top functions by self time, then the project's own functions by inclusive time."""
    root = session.root_frame()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    _walk(root, (), own, inclusive)
    total = root.time or 1.0
    lines = [f"duration {session.duration:.3f} s, cpu {session.cpu_time:.3f} s", "", "self time:"]
    for name, seconds in own.most_common(top):
        lines.append(f"  {100 * seconds / total:5.1f}%  {seconds:7.3f} s  {name}")
    lines += ["", "project functions, inclusive time:"]
    ours = [(n, s) for n, s in inclusive.most_common() if any(p in n for p in own_code)]
    for name, seconds in ours[:top]:
        lines.append(f"  {100 * seconds / total:5.1f}%  {seconds:7.3f} s  {name}")
    return "\n".join(lines) + "\n"
