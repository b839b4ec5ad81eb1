"""Log sinks: text lines people can read, JSON lines a log explorer can filter, no secrets."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger

from pool.logs import configure_logging, json_level, reset_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    reset_logging()


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_line_has_message_level_timestamp_and_bound_context() -> None:
    """Each record is one JSON object whose bound context sits at the top level."""
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    logger.bind(worker=3, ebook_id="e-1", page_index=2, job_id="e-1:2").info(
        "[Worker-3] Processing job: EbookID=e-1, PageIndex=2 (Attempt 1/4)"
    )
    [line] = _json_lines(out)
    assert line["message"] == "[Worker-3] Processing job: EbookID=e-1, PageIndex=2 (Attempt 1/4)"
    assert line["level"] == "info"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["timestamp"])
    assert (line["worker"], line["ebook_id"], line["page_index"], line["job_id"]) == (
        3,
        "e-1",
        2,
        "e-1:2",
    )
    assert line["logger"] == __name__


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("debug", "debug"),
        ("info", "info"),
        ("success", "info"),
        ("warning", "warn"),
        ("error", "error"),
        ("critical", "error"),
    ],
)
def test_json_levels_are_mapped_to_four_names(method: str, expected: str) -> None:
    """loguru's levels become debug/info/warn/error, the names log explorers filter on."""
    out = io.StringIO()
    configure_logging(fmt="json", level="DEBUG", stream=out)
    getattr(logger, method)("x")
    assert _json_lines(out)[0]["level"] == expected


def test_json_level_of_stdlib_numbers() -> None:
    """The mapping also holds for the standard library's numeric levels."""
    assert [json_level(n) for n in (5, 10, 20, 25, 30, 40, 50)] == [
        "debug",
        "debug",
        "info",
        "info",
        "warn",
        "error",
        "error",
    ]


def test_exception_is_a_field_of_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A traceback never spills as raw lines: it is one field, and stderr stays empty."""
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        logger.bind(worker=1).exception("[Worker-1] Crashed; restarting in 1s")
    text = out.getvalue()
    assert text.count("\n") == 1
    [line] = _json_lines(out)
    assert line["level"] == "error"
    assert line["worker"] == 1
    assert line["exception"]["type"] == "ZeroDivisionError"
    assert "division by zero" in line["exception"]["message"]
    assert "Traceback (most recent call last)" in line["exception"]["traceback"]
    assert capsys.readouterr().err == ""


def test_level_is_honoured() -> None:
    """Records below LOG_LEVEL are dropped."""
    out = io.StringIO()
    configure_logging(fmt="json", level="WARNING", stream=out)
    logger.info("quiet")
    logger.warning("loud")
    assert [line["message"] for line in _json_lines(out)] == ["loud"]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_masked_everywhere(fmt: str) -> None:
    """A secret handed to configure_logging never appears, in messages or tracebacks."""
    secret = "sk-live-0123456789abcdef"
    out = io.StringIO()
    configure_logging(fmt=fmt, stream=out, secrets=[secret, None, "ab"])
    logger.info(f"key is {secret}")
    try:
        raise RuntimeError(f"auth failed for {secret}")
    except RuntimeError:
        logger.exception("boom")
    text = out.getvalue()
    assert secret not in text
    assert "key is ***" in text
    assert "auth failed for ***" in text
    logger.info("about")  # the too-short "secret" "ab" was ignored: ordinary words survive
    assert "about" in out.getvalue()


def test_text_line_looks_like_the_seed() -> None:
    """Text lines: timestamp with milliseconds, padded level, the message; nothing else."""
    out = io.StringIO()
    configure_logging(fmt="text", stream=out)
    logger.bind(worker=3).info("[Worker-3] Processing job: EbookID=x, PageIndex=0 (Attempt 1/4)")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| INFO     \| "
        r"\[Worker-3\] Processing job: EbookID=x, PageIndex=0 \(Attempt 1/4\)\n",
        out.getvalue(),
    )


def test_text_goes_to_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    """Railway shows stderr as errors, so an INFO line must go to stdout."""
    configure_logging(fmt="text")
    logger.info("hello")
    captured = capsys.readouterr()
    assert "hello" in captured.out
    assert captured.err == ""


def test_stdlib_warnings_are_routed_and_chatter_is_not() -> None:
    """Libraries' WARNINGs reach the same sink as JSON; their INFO/DEBUG chatter does not."""
    out = io.StringIO()
    configure_logging(fmt="json", level="DEBUG", stream=out)
    lib = logging.getLogger("some.library")
    lib.info("HTTP Request: POST /v1/chat/completions 200")
    lib.warning("connection pool is full")
    [line] = _json_lines(out)
    assert line["message"] == "connection pool is full"
    assert line["level"] == "warn"


def test_configuring_twice_replaces_the_sink() -> None:
    """The entry point may reconfigure (the demo does): lines go only to the newest sink."""
    first, second = io.StringIO(), io.StringIO()
    configure_logging(fmt="json", stream=first)
    configure_logging(fmt="json", stream=second)
    logger.info("once")
    logging.getLogger("lib").warning("also once")
    assert first.getvalue() == ""
    assert [line["message"] for line in _json_lines(second)] == ["once", "also once"]


def test_bound_fields_cannot_overwrite_the_core_fields() -> None:
    """Context named like a core field is kept under another name instead of replacing it."""
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    logger.bind(message="ctx", level="x").info("real")
    [line] = _json_lines(out)
    assert line["message"] == "real" and line["level"] == "info"
    assert line["extra_message"] == "ctx" and line["extra_level"] == "x"
