"""Many deadlines on one timer: a coarse `asyncio.timeout` for a thousand requests at once.

`asyncio.timeout` schedules and cancels a timer handle per use and runs a small state machine
in Python; around every API request of a no-op page that was a few percent of the pool's CPU.
The bound on a request is a safety net over the generator's own timeout (GENERATION_TIMEOUT
plus a second), so it does not need to be exact to the millisecond: `Deadlines` keeps the
deadlines in a dict and one repeating timer, armed only while some are pending, cancels the
tasks whose deadline passed, at most `resolution_s` late.

    deadlines = Deadlines()
    with deadlines.bound(30.0):
        page = await generator.generate(job, timeout_s=29.0)  # TimeoutError after ~30 s

A deadline's `TimeoutError` replaces the `CancelledError` only when the cancellation was the
deadline's own; a task also cancelled by someone else (a shutdown) stays cancelled, as with
`asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

__all__ = ["Deadline", "Deadlines"]


class Deadlines:
    """The deadlines of one event loop's tasks, checked every `resolution_s`.

    Args:
        resolution_s: how late, at most, a deadline is enforced.
    """

    def __init__(self, *, resolution_s: float = 0.25) -> None:
        self.resolution_s = resolution_s
        self._due: dict[Deadline, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def bound(self, timeout_s: float) -> Deadline:
        """A context manager that cancels the current task `timeout_s` from now and turns
        that cancellation into `TimeoutError`."""
        return Deadline(self, timeout_s)

    def __len__(self) -> int:
        return len(self._due)

    def _add(self, deadline: Deadline, when: float, loop: asyncio.AbstractEventLoop) -> None:
        self._due[deadline] = when
        if self._timer is None:
            self._timer = loop.call_later(self.resolution_s, self._sweep, loop)

    def _remove(self, deadline: Deadline) -> None:
        self._due.pop(deadline, None)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        expired = [d for d, when in self._due.items() if when <= now]
        for deadline in expired:
            del self._due[deadline]
            deadline.expire()
        if self._due:
            self._timer = loop.call_later(self.resolution_s, self._sweep, loop)


class Deadline:
    """One use of `Deadlines.bound`: enter it in the task it bounds."""

    __slots__ = ("_cancelling", "_deadlines", "_task", "_timeout_s", "expired")

    def __init__(self, deadlines: Deadlines, timeout_s: float) -> None:
        self._deadlines = deadlines
        self._timeout_s = timeout_s
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self.expired = False  #: whether the deadline passed and cancelled the task

    def __enter__(self) -> Deadline:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("Deadlines.bound() must be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        loop = asyncio.get_running_loop()
        self._deadlines._add(self, loop.time() + self._timeout_s, loop)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._deadlines._remove(self)
        if not self.expired:
            return
        assert self._task is not None
        if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    def expire(self) -> None:
        """The deadline passed: cancel the task (called by the sweep)."""
        if self._task is not None and not self._task.done():
            self.expired = True
            self._task.cancel()
