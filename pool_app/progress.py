"""A progress bar for one ebook, and the loop that waits for the ebook to finish.

On a terminal the bar redraws itself in place on stderr; elsewhere (CI, a pipe) it prints one
plain line each time the counts change, so a log file still shows the progress.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import TextIO

from redis.asyncio import Redis

from pool.clock import monotonic
from pool.ebooks import TERMINAL_STATES, EbookStatus, read_status
from pool.keys import Keys

__all__ = ["BarAwareStream", "ProgressBar", "wait_for_ebook"]

_CLEAR_LINE = "\r\x1b[K"


class ProgressBar:
    """`[██████░░░░░░] 6/12 pages | 1 failed | generating | 4.2s`.

    Args:
        total: pages in the ebook.
        stream: where the bar goes (stderr by default, so stdout stays clean for data).
        width: characters of the bar itself.
    """

    def __init__(self, total: int, *, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.tty = _isatty(self.stream)
        self._started = monotonic()
        self._done = 0
        self._failed = 0
        self._state = "queued"
        self._last_plain: tuple[int, int, str] | None = None
        self._shown = False

    def render(self) -> str:
        """The bar as one line of text, without a newline."""
        finished = min(self._done + self._failed, self.total)
        filled = round(self.width * finished / self.total)
        bar = "█" * filled + "░" * (self.width - filled)
        parts = [f"[{bar}] {self._done}/{self.total} pages"]
        if self._failed:
            parts.append(f"{self._failed} failed")
        parts += [self._state, f"{monotonic() - self._started:.1f}s"]
        return " | ".join(parts)

    def update(self, status: EbookStatus) -> None:
        """Show the counts of `status`."""
        self._done, self._failed, self._state = status["done"], status["failed"], status["state"]
        if self.tty:
            self.redraw()
        elif self._last_plain != (self._done, self._failed, self._state):
            self._last_plain = (self._done, self._failed, self._state)
            self.stream.write(self.render() + "\n")
            self.stream.flush()

    def redraw(self) -> None:
        """Draw the bar again in place (after something else wrote to the terminal)."""
        if self.tty:
            self.stream.write(_CLEAR_LINE + self.render())
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        """Erase the bar from the terminal line, so another line can be written there."""
        if self.tty and self._shown:
            self.stream.write(_CLEAR_LINE)
            self.stream.flush()
            self._shown = False

    def close(self) -> None:
        """Leave the final bar on its own line."""
        if self.tty:
            self.redraw()
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


class BarAwareStream:
    """A text stream that lifts the progress bar out of the way of each line written.

    Give it to `pool.logs.configure_logging(stream=...)` while a bar is on the terminal.
    """

    def __init__(self, stream: TextIO, bar: ProgressBar | None = None) -> None:
        self.stream = stream
        self.bar = bar

    def write(self, text: str) -> int:
        if self.bar is not None:
            self.bar.clear()
        n = self.stream.write(text)
        self.stream.flush()
        if self.bar is not None:
            self.bar.redraw()
        return n

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return _isatty(self.stream)


async def wait_for_ebook(
    redis: Redis,
    keys: Keys,
    ebook_id: str,
    *,
    on_update: Callable[[EbookStatus], None] | None = None,
    poll_s: float = 0.25,
    keep_going: Callable[[], bool] | None = None,
) -> EbookStatus | None:
    """Poll the ebook's status until its state is terminal.

    Args:
        on_update: called with every status read (e.g. `ProgressBar.update`).
        keep_going: checked before each poll; when it returns False, stop waiting early.

    Returns:
        The last status read; None if the ebook is unknown.
    """
    status: EbookStatus | None = None
    while keep_going is None or keep_going():
        status = await read_status(redis, keys, ebook_id)
        if status is None:
            return None
        if on_update is not None:
            on_update(status)
        if status["state"] in TERMINAL_STATES:
            break
        await asyncio.sleep(poll_s)
    return status


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
