"""Log sinks: configured once, by the entry point (`pool_app.cli`), never by a library module.

Modules `from loguru import logger` and bind context (`logger.bind(worker=3, ebook_id=...)`);
this module decides where the lines go and what they look like:

- LOG_FORMAT=text: `2026-11-22 05:10:09.123 | INFO     | [Worker-3] Processing job: ...` on
  stdout (Railway shows every stderr line as an error).
- LOG_FORMAT=json: one JSON object per line on stdout: `timestamp`, `level` (debug, info, warn,
  error), `message`, the bound context as top-level fields, and `exception` when there is one,
  so that a traceback is one field of one line instead of thirty lines on stderr.

Secrets handed to `configure_logging` are replaced by `***` wherever they would appear, and
loguru's `diagnose` (which prints local variables in tracebacks) is off.

Per-page lines (`Processing job`, `Completed job`) are bound with `page_line=True` where they are
logged. At full speed there are thousands a second, over what a log host keeps (Railway: 500
lines/s per replica, the rest dropped at random), so `PageLineGuard` lets at most
LOG_PAGE_LINES_PER_S of them a second through at INFO and holds back the rest (or writes them at
DEBUG when LOG_LEVEL=DEBUG), with one summary line every 10 s saying how many it held back.
WARNING and ERROR lines are never held back.
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
import traceback
from collections.abc import Callable, Iterable
from datetime import UTC
from typing import TYPE_CHECKING, Any, Literal, Protocol

from loguru import logger

from pool.clock import monotonic
from pool.shared import replace_secrets

if TYPE_CHECKING:
    from loguru import Message, Record

__all__ = [
    "LogStream",
    "PageLineGuard",
    "configure_logging",
    "flush_page_lines",
    "json_level",
    "page_line_wanted",
    "reset_logging",
]

# loguru appends the newline and the exception (if any) itself.
_TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | {message}"
)
_MIN_SECRET_LEN = 4  # shorter "secrets" would mask ordinary words
_RESERVED = frozenset({"timestamp", "level", "message", "logger", "exception"})
_PAGE_LINE = "page_line"  # the bound marker of a per-page line: read by the guard, not written
_SUMMARY_EVERY_S = 10.0  # at most one "lines not shown" summary this often
_WARNING_NO = logging.WARNING  # loguru's WARNING has the same number as the standard library's

_guard: PageLineGuard | None = None  # the guard of the current sink, for `flush_page_lines`
_page_lines_shown = True  # whether INFO reaches the sink (False at LOG_LEVEL=WARNING or ERROR)


class LogStream(Protocol):
    """Where log lines go: a text stream such as `sys.stdout`."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


def configure_logging(
    *,
    fmt: Literal["text", "json"] = "text",
    level: str = "INFO",
    stream: LogStream | None = None,
    secrets: Iterable[str | None] = (),
    page_lines_per_s: int | None = None,
    clock: Callable[[], float] = monotonic,
) -> None:
    """Replace every loguru sink with one that writes `fmt` lines to `stream` (stdout).

    Also routes the standard `logging` module (httpx, openai, asyncio) into the same sink at
    WARNING and above, so that no library writes raw lines to stderr. Safe to call again: the
    previous configuration is replaced.

    Args:
        fmt: "text" for people, "json" for a log explorer.
        level: the least severe loguru level written (DEBUG, INFO, WARNING, ERROR).
        stream: where lines go; defaults to `sys.stdout` at the time of the call.
        secrets: values that must never be written (API keys, passwords); None is skipped.
        page_lines_per_s: most per-page lines written a second at INFO (LOG_PAGE_LINES_PER_S);
            None: every one.
        clock: seconds on a clock that never jumps, for the guard (tests pass their own).
    """
    global _guard, _page_lines_shown
    out = stream if stream is not None else sys.stdout
    masked = tuple(sorted({s for s in secrets if s and len(s) >= _MIN_SECRET_LEN}, key=len))[::-1]

    def redact(text: str) -> str:
        return replace_secrets(text, masked)

    logger.remove()
    _guard = None
    _page_lines_shown = logger.level(level).no <= logging.INFO
    if page_lines_per_s is not None:
        _guard = PageLineGuard(
            page_lines_per_s, keep_as_debug=logger.level(level).no < logging.INFO, clock=clock
        )
    if fmt == "json":

        def json_sink(message: Message) -> None:
            out.write(redact(_json_line(message.record)) + "\n")
            out.flush()

        logger.add(
            json_sink,
            level=level,
            format="{message}",
            filter=_guard,
            backtrace=False,
            diagnose=False,
        )
    else:

        def text_sink(message: Message) -> None:
            out.write(redact(str(message)))
            out.flush()

        logger.add(
            text_sink,
            level=level,
            format=_TEXT_FORMAT,
            filter=_guard,
            colorize=_isatty(out),
            backtrace=False,
            diagnose=False,
        )
    _route_stdlib_logging()


def reset_logging() -> None:
    """Back to loguru's default (everything to stderr) and no `logging` routing; for tests."""
    global _guard, _page_lines_shown
    _guard = None
    _page_lines_shown = True
    logger.remove()
    logger.add(sys.stderr)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _InterceptHandler)]:
        root.removeHandler(handler)


def page_line_wanted() -> bool:
    """Whether a per-page line would be written now; call sites skip building it otherwise.

    At full speed most page lines are held back or below the level, and building a loguru
    record (with its bound context) is most of the cost of a no-op page's log line.
    """
    if not _page_lines_shown:
        return False
    return _guard is None or _guard.room()


def flush_page_lines() -> None:
    """Write the summary of the per-page lines held back so far, if any (at shutdown)."""
    if _guard is not None:
        _guard.flush()


class PageLineGuard:
    """The sink's filter: at most `per_s` per-page INFO lines a second; the rest held back.

    A per-page line is one bound with `page_line=True`. Past the budget of the current second
    it is not written (or written at DEBUG when `keep_as_debug`, i.e. LOG_LEVEL=DEBUG), and
    counted; the first line of any kind once 10 s have passed since the first line held back
    is preceded by one INFO summary line saying how many were. WARNING and ERROR lines always
    pass. One event loop logs the page lines, so no lock.

    Args:
        per_s: the budget, lines a second (0: no per-page line at INFO).
        keep_as_debug: write held-back lines at DEBUG instead of dropping them.
        clock: seconds on a clock that never jumps.
    """

    def __init__(
        self, per_s: int, *, keep_as_debug: bool = False, clock: Callable[[], float] = monotonic
    ) -> None:
        self.per_s = per_s
        self.keep_as_debug = keep_as_debug
        self._clock = clock
        self._second_started = float("-inf")
        self._passed = 0  # page lines written in the current second
        self._held = 0  # page lines held back since the last summary
        self._held_since = 0.0
        self._summarizing = False
        debug = logger.level("DEBUG")
        self._debug = (debug.name, debug.no, debug.icon)

    def __call__(self, record: Record) -> bool:
        """Whether loguru writes `record` (held-back lines kept at DEBUG are changed to it)."""
        if self._summarizing:
            return True
        now = self._clock()
        if self._held and now - self._held_since >= _SUMMARY_EVERY_S:
            self._summarize(now)
        if not record["extra"].get(_PAGE_LINE) or record["level"].no >= _WARNING_NO:
            return True
        if now - self._second_started >= 1.0:
            self._second_started, self._passed = now, 0
        if self._passed < self.per_s:
            self._passed += 1
            return True
        if self.keep_as_debug:
            level_type: Any = type(record["level"])
            record["level"] = level_type(*self._debug)
            return True
        if not self._held:
            self._held_since = now
        self._held += 1
        return False

    def room(self) -> bool:
        """Whether a page line may still pass this second; if not, count it as held back.

        For `page_line_wanted`: a line refused here is never built, and the summary counts it.
        """
        if self.keep_as_debug:
            return True
        now = self._clock()
        if now - self._second_started >= 1.0 or self._passed < self.per_s:
            return True
        if not self._held:
            self._held_since = now
        self._held += 1
        return False

    def flush(self) -> None:
        """Write the summary now if any line is held back."""
        if self._held:
            self._summarize(self._clock())

    def _summarize(self, now: float) -> None:
        held, window_s = self._held, now - self._held_since
        self._held = 0
        self._summarizing = True
        try:
            logger.bind(
                page_lines_held_back=held, window_s=round(window_s, 1), page_lines_per_s=self.per_s
            ).info(
                "[Worker Pool] {:,} per-page lines not shown in the last {:.0f}s "
                "(over LOG_PAGE_LINES_PER_S={}); the [Stats] line has the totals",
                held, max(window_s, 1.0), self.per_s,
            )  # fmt: skip
        finally:
            self._summarizing = False


def json_level(levelno: int) -> str:
    """The level name a JSON line carries: debug, info, warn or error."""
    if levelno < logging.INFO:
        return "debug"
    if levelno < logging.WARNING:
        return "info"  # INFO and loguru's SUCCESS
    if levelno < logging.ERROR:
        return "warn"
    return "error"  # ERROR and CRITICAL


def _json_line(record: Record) -> str:
    data: dict[str, Any] = {
        "timestamp": record["time"]
        .astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "level": json_level(record["level"].no),
        "message": record["message"],
        "logger": record["name"],
    }
    for key, value in record["extra"].items():
        if key != _PAGE_LINE:
            data[f"extra_{key}" if key in _RESERVED else key] = value
    exc = record["exception"]
    if exc is not None and exc.type is not None:
        data["exception"] = {
            "type": exc.type.__name__,
            "message": str(exc.value),
            "traceback": "".join(traceback.format_exception(exc.type, exc.value, exc.traceback)),
        }
    return json.dumps(data, ensure_ascii=False, default=str)


class _InterceptHandler(logging.Handler):
    """Hands standard-library log records to loguru, keeping their level and origin."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        # Point loguru at the code that called `logging`, so `logger` names the library.
        frame, depth = inspect.currentframe(), 0
        while frame is not None and (depth == 0 or frame.f_code.co_filename == logging.__file__):
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def _route_stdlib_logging() -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _InterceptHandler)]:
        root.removeHandler(handler)
    handler = _InterceptHandler()
    # Libraries log request details (and, at DEBUG, headers) below WARNING: never forward those.
    handler.setLevel(logging.WARNING)
    root.addHandler(handler)


def _isatty(stream: LogStream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False
