"""In LOG_FORMAT=json, the numbers of the pool's lines are top-level fields of the right type."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from pool import Pool
from pool.generation import JobFatalError, RetryableError
from pool.logs import configure_logging, reset_logging
from tests.fakes import FakeGenerator, fast_settings, job, push, running, status, wait_until


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure_logging(fmt="json", stream=out)
    yield out
    reset_logging()


def _line(lines: list[dict[str, Any]], text: str) -> dict[str, Any]:
    [found] = [line for line in lines if text in line["message"]]
    return found


def _types(line: dict[str, Any], **expected: type | tuple[type, ...]) -> None:
    for name, kind in expected.items():
        assert isinstance(line[name], kind), (name, line)
        assert not isinstance(line[name], bool) or kind is bool, (name, line)


async def test_page_and_stats_lines_carry_numeric_fields(
    redis: Redis, json_log: io.StringIO
) -> None:
    """Processing, Completed, Attempt failed, Failed, Invalid and [Stats] lines: typed fields."""
    gen = FakeGenerator(
        script={
            "a:0": [RetryableError("HTTP 500 from the API"), None],
            "a:1": [JobFatalError("HTTP 400: the prompt is too long")],
        }
    )
    pool = Pool(redis=redis, generator=gen, settings=fast_settings())
    await push(redis, job("a", 0, 2), job("a", 1, 2), b'{"ebookId": "a", "pageIndex": "x"}')

    async def ended() -> bool:
        st = await status(redis, "a")
        return st.get("done") == "1" and st.get("failed") == "1"

    async with running(pool):
        await wait_until(ended, what="page 0 stored and page 1 failed")
    lines = [json.loads(text) for text in json_log.getvalue().splitlines()]

    first = _line(lines, "PageIndex=0 (Attempt 1/4)")
    assert first["level"] == "info"
    assert (first["ebook_id"], first["page_index"], first["job_id"]) == ("a", 0, "a:0")
    assert (first["attempt"], first["max_attempts"]) == (1, 4)
    _types(first, worker=int, page_index=int, attempt=int, max_attempts=int)
    assert "page_line" not in first

    retry = _line(lines, "Attempt 1/4 failed for EbookID=a, PageIndex=0")
    assert retry["level"] == "warn"
    assert (retry["attempt"], retry["max_attempts"]) == (1, 4)
    _types(retry, worker=int, page_index=int, retry_in_s=float)

    done = _line(lines, "Completed job: EbookID=a, PageIndex=0")
    assert (done["tokens"], done["attempt"], done["page_index"]) == (7, 2, 0)
    _types(done, worker=int, duration_s=float, tokens=int, attempt=int)
    assert done["duration_s"] >= 0

    fail = _line(lines, "Failed job: EbookID=a, PageIndex=1 (not retryable)")
    assert fail["level"] == "error"
    assert (fail["attempts"], fail["max_attempts"], fail["failure"]) == (1, 4, "fatal")
    _types(fail, worker=int, page_index=int, attempts=int)

    invalid = _line(lines, "Invalid job sent to the failed list")
    assert invalid["level"] == "warn" and invalid["ebook_id"] == "a"
    _types(invalid, worker=int)

    stats = _line(lines, "[Worker Pool] Stopped. [Stats]")
    assert (stats["processed"], stats["success"], stats["failed"]) == (3, 1, 2)
    assert stats["success_rate_pct"] == 33.3
    assert stats["queue_depth"] == 0 and stats["active"] == 0 and stats["paused"] is False
    _types(
        stats,
        uptime_s=float, processed=int, success=int, failed=int, success_rate_pct=float,
        active=int, pages_per_min=float, p50_s=float, p95_s=float, queue_depth=int, paused=bool,
    )  # fmt: skip
