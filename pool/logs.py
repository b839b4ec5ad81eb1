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
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
import traceback
from collections.abc import Iterable
from datetime import UTC
from typing import TYPE_CHECKING, Any, Literal, Protocol

from loguru import logger

from pool.shared import replace_secrets

if TYPE_CHECKING:
    from loguru import Message, Record

__all__ = ["LogStream", "configure_logging", "json_level", "reset_logging"]

# loguru appends the newline and the exception (if any) itself.
_TEXT_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | {message}"
)
_MIN_SECRET_LEN = 4  # shorter "secrets" would mask ordinary words
_RESERVED = frozenset({"timestamp", "level", "message", "logger", "exception"})


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
    """
    out = stream if stream is not None else sys.stdout
    masked = tuple(sorted({s for s in secrets if s and len(s) >= _MIN_SECRET_LEN}, key=len))[::-1]

    def redact(text: str) -> str:
        return replace_secrets(text, masked)

    logger.remove()
    if fmt == "json":

        def json_sink(message: Message) -> None:
            out.write(redact(_json_line(message.record)) + "\n")
            out.flush()

        logger.add(json_sink, level=level, format="{message}", backtrace=False, diagnose=False)
    else:

        def text_sink(message: Message) -> None:
            out.write(redact(str(message)))
            out.flush()

        logger.add(
            text_sink,
            level=level,
            format=_TEXT_FORMAT,
            colorize=_isatty(out),
            backtrace=False,
            diagnose=False,
        )
    _route_stdlib_logging()


def reset_logging() -> None:
    """Back to loguru's default (everything to stderr) and no `logging` routing; for tests."""
    logger.remove()
    logger.add(sys.stderr)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _InterceptHandler)]:
        root.removeHandler(handler)


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
