"""The event loop of `ebook-pool run`: uvloop where it is installed (Linux, macOS), else asyncio's.

EVENT_LOOP chooses: `auto` (the default) takes uvloop when it can be imported and asyncio's
own loop otherwise; `uvloop` insists on it (a configuration error where it is missing);
`asyncio` turns uvloop off. The pool's code is the same on both loops.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from pool.config import ConfigError, running_loop_name

__all__ = [
    "EventLoopChoice",
    "LoopName",
    "loop_factory",
    "resolve_event_loop",
    "run",
    "running_loop_name",
    "uvloop_available",
]

T = TypeVar("T")
EventLoopChoice = Literal["auto", "uvloop", "asyncio"]
LoopName = Literal["uvloop", "asyncio"]


def uvloop_available() -> bool:
    """Whether uvloop can be imported here (it is not built for Windows)."""
    return importlib.util.find_spec("uvloop") is not None


def resolve_event_loop(choice: str, *, available: bool | None = None) -> LoopName:
    """The loop that EVENT_LOOP=`choice` runs on.

    Args:
        available: whether uvloop is importable; default: look.

    Raises:
        ConfigError: `uvloop` was asked for and is not installed.
    """
    have_uvloop = uvloop_available() if available is None else available
    if choice == "asyncio":
        return "asyncio"
    if choice == "uvloop" and not have_uvloop:
        raise ConfigError("EVENT_LOOP: uvloop is not installed here (use auto or asyncio)")
    return "uvloop" if have_uvloop else "asyncio"


def loop_factory(name: LoopName) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A factory of new loops of kind `name` for `asyncio.Runner` (None: asyncio's default)."""
    if name == "asyncio":
        return None
    import uvloop  # only imported when chosen

    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], *, event_loop: str = "auto") -> T:
    """`asyncio.run(main)` on the loop EVENT_LOOP=`event_loop` selects; returns its result."""
    try:
        factory = loop_factory(resolve_event_loop(event_loop))
    except BaseException:
        main.close()  # never awaited: say so quietly instead of a RuntimeWarning
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
