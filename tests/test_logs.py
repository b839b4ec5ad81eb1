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

from pool.logs import configure_logging, flush_page_lines, json_level, reset_logging


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


# --- the per-page line budget (LOG_PAGE_LINES_PER_S) ----------------------------------------


class _Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _page_line(i: int, level: str = "info") -> None:
    logger.bind(page_line=True, worker=1, page_index=i).log(
        level.upper(), f"[Worker-1] Completed job: EbookID=e, PageIndex={i} in 0.0s"
    )


def test_a_burst_of_page_lines_yields_the_budget_and_one_summary() -> None:
    """12,345 page lines in an instant: 50 are written, then one summary counts the rest."""
    out, clock = io.StringIO(), _Clock()
    configure_logging(fmt="json", stream=out, page_lines_per_s=50, clock=clock)
    for i in range(12_345):
        _page_line(i)
    assert len(_json_lines(out)) == 50
    clock.now += 10.0
    logger.info("[Worker Pool] next line")
    lines = _json_lines(out)
    assert len(lines) == 50 + 1 + 1
    summary = lines[50]
    assert summary["message"] == (
        "[Worker Pool] 12,295 per-page lines not shown in the last 10s "
        "(over LOG_PAGE_LINES_PER_S=50); the [Stats] line has the totals"
    )
    assert summary["level"] == "info"
    assert summary["page_lines_held_back"] == 12_295
    assert summary["page_lines_per_s"] == 50
    assert summary["window_s"] == 10.0
    assert lines[51]["message"] == "[Worker Pool] next line"
    assert all("page_line" not in line for line in lines)


def test_the_budget_renews_every_second_and_summaries_wait_ten_seconds() -> None:
    """Each second lets the budget through again; no summary before 10 s have passed."""
    out, clock = io.StringIO(), _Clock()
    configure_logging(fmt="json", stream=out, page_lines_per_s=5, clock=clock)
    for _ in range(9):  # 9 seconds of 8 lines: 5 written, 3 held back each
        for i in range(8):
            _page_line(i)
        clock.now += 1.0
    assert len(_json_lines(out)) == 9 * 5
    clock.now += 0.5  # 9.5 s after the first held-back line
    _page_line(0)
    assert not any("not shown" in line["message"] for line in _json_lines(out))
    clock.now += 0.5
    _page_line(0)
    summaries = [line for line in _json_lines(out) if "not shown" in line["message"]]
    assert [s["page_lines_held_back"] for s in summaries] == [9 * 3]


def test_warnings_errors_and_other_lines_are_never_held_back() -> None:
    """Over the budget, a page line at WARNING/ERROR and any unmarked INFO line still pass."""
    out, clock = io.StringIO(), _Clock()
    configure_logging(fmt="json", stream=out, page_lines_per_s=1, clock=clock)
    for i in range(3):
        _page_line(i)
        _page_line(i, "warning")
        _page_line(i, "error")
        logger.info("[Worker Pool] not a page line")
    levels = [line["level"] for line in _json_lines(out)]
    assert levels.count("warn") == 3 and levels.count("error") == 3
    assert sum("not a page line" in line["message"] for line in _json_lines(out)) == 3
    assert levels.count("info") == 1 + 3  # one page line, three other lines


def test_at_debug_level_held_back_lines_are_written_at_debug() -> None:
    """LOG_LEVEL=DEBUG: lines over the budget are demoted to debug, not dropped or summarized."""
    out, clock = io.StringIO(), _Clock()
    configure_logging(fmt="json", level="DEBUG", stream=out, page_lines_per_s=2, clock=clock)
    for i in range(5):
        _page_line(i)
    clock.now += 20.0
    logger.info("later")
    assert [line["level"] for line in _json_lines(out)] == ["info"] * 2 + ["debug"] * 3 + ["info"]


def test_demoted_text_lines_say_debug() -> None:
    """In text, a demoted page line carries DEBUG in its level column; its text is unchanged."""
    out, clock = io.StringIO(), _Clock()
    configure_logging(fmt="text", level="DEBUG", stream=out, page_lines_per_s=0, clock=clock)
    _page_line(7)
    assert re.fullmatch(
        r"\S+ \S+ \| DEBUG    \| \[Worker-1\] Completed job: EbookID=e, PageIndex=7 in 0\.0s\n",
        out.getvalue(),
    )


def test_flush_writes_the_summary_at_once() -> None:
    """At shutdown the pool flushes: the held-back count is written even before 10 s."""
    out, clock = io.StringIO(), _Clock()
    configure_logging(fmt="text", stream=out, page_lines_per_s=0, clock=clock)
    for i in range(3):
        _page_line(i)
    clock.now += 2.0
    flush_page_lines()
    flush_page_lines()  # nothing more held back: no second summary
    assert out.getvalue().count("\n") == 1
    assert out.getvalue().endswith(
        "| INFO     | [Worker Pool] 3 per-page lines not shown in the last 2s "
        "(over LOG_PAGE_LINES_PER_S=0); the [Stats] line has the totals\n"
    )


def test_without_a_budget_every_page_line_is_written() -> None:
    """configure_logging without page_lines_per_s (every command but run and demo) holds none."""
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    for i in range(200):
        _page_line(i)
    flush_page_lines()
    assert len(_json_lines(out)) == 200
