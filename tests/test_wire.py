"""The wire records: schemas/ in sync, what the pool writes validates, and the contract fixes
(out-of-range pages end the ebook, outline windows keep a long book's jobs small)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from redis.asyncio import Redis

from generator.prompts import build_prompt
from pool import JobFatalError, Pool
from pool.job import InvalidJob, decode_job
from pool.keys import Keys
from pool.wire import (
    EbookStatusHash,
    FailedEntryRecord,
    PageEvent,
    PageRecord,
    PoolStats,
    ProgressEvent,
    StateEvent,
    schema_files,
)
from pool_app.cli import main
from pool_app.producer import build_jobs, enqueue_ebook
from pool_app.wiring import build_publisher
from tests.fakes import FakeGenerator, failed, fast_settings, job, push, running, wait_until

KEYS = Keys()
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


def test_schemas_folder_matches_the_models() -> None:
    """schemas/ holds exactly what `ebook-pool schema --all --out schemas` writes today."""
    expected = schema_files()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in SCHEMAS.glob("*.json")}
    assert sorted(on_disk) == sorted(expected), "run: uv run ebook-pool schema --all --out schemas"
    for name, text in expected.items():
        assert on_disk[name] == text, f"schemas/{name} is stale: run ebook-pool schema --all --out"


def test_schema_all_prints_every_record_with_clean_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`schema --all` names every wire record, with no per-property titles like 'Jobid'."""
    assert main(["schema", "--all"]) == 0
    schemas = json.loads(capsys.readouterr().out)
    assert set(schemas) == {
        "PageJob",
        "PageRecord",
        "EbookStatusHash",
        "FailedEntry",
        "ProgressEvent",
        "PoolStats",
    }
    for name, schema in schemas.items():
        assert schema["title"] == name
        objects = [schema, *schema.get("$defs", {}).values()]
        assert all("title" not in p for o in objects for p in o.get("properties", {}).values())
    job_schema = schemas["PageJob"]
    assert "pageIndex < totalPages" in job_schema["$comment"]
    assert "null" in job_schema["$comment"]
    assert job_schema["properties"]["title"]["pattern"] == r"\S"
    assert job_schema["additionalProperties"] is False
    assert schemas["PageRecord"]["additionalProperties"] is True


def test_schema_out_needs_all(capsys: pytest.CaptureFixture[str]) -> None:
    """`schema --out DIR` without --all is a usage error, not a silent single-file write."""
    assert main(["schema", "--out", "x"]) == 2
    assert "--out needs --all" in capsys.readouterr().err


async def test_what_the_pool_writes_validates_against_the_wire_models(redis: Redis) -> None:
    """Page records, the status hash and failed entries the pool writes fit their models."""
    pool = Pool(redis=redis, generator=FakeGenerator(), settings=fast_settings())
    await push(redis, job("w", 0, 2, metadata={"u": 1}), job("w", 1, 2), b"\xff", "{}")
    async with running(pool):
        await wait_until(lambda: _len(redis, KEYS.failed, 2), what="two dead letters")
        await wait_until(lambda: _hlen(redis, KEYS.pages("w"), 2), what="two pages")
    for raw in (await redis.hgetall(KEYS.pages("w"))).values():
        record = PageRecord.model_validate_json(raw, strict=True)
        assert record.content and record.attempts == 1
    status = {k.decode(): v.decode() for k, v in (await redis.hgetall(KEYS.status("w"))).items()}
    assert EbookStatusHash.model_validate(status).state == "done"
    entries = await failed(redis)
    kinds = {FailedEntryRecord.model_validate(e, strict=True).error_type for e in entries}
    assert kinds == {"invalid"}


async def test_the_progress_events_a_pool_publishes_validate_against_the_wire_model(
    redis: Redis,
) -> None:
    """Every stream entry's `data` and every channel message of a real run (pages stored and
    failed, states) is a `ProgressEvent`, strictly, with nothing outside the model."""
    gen = FakeGenerator(script={"ev:1": [JobFatalError("HTTP 400 context_length_exceeded")]})
    settings = fast_settings()
    pool = Pool(redis=redis, generator=gen, settings=settings)
    publisher = build_publisher(pool, redis, settings)
    assert publisher is not None
    pubsub = redis.pubsub()
    await pubsub.subscribe(KEYS.events_channel)
    await pubsub.get_message(timeout=1.0)  # the subscribe confirmation
    async with running(pool):
        await push(redis, *[job("ev", i, 3) for i in range(3)])
        await wait_until(lambda: _state(redis, "ev", "partial"), what="the ebook to end")
    await publisher.drain(5.0)
    entries = await redis.xrange(KEYS.ebook_events("ev"))
    events = [ProgressEvent.model_validate_json(f[b"data"], strict=True).root for _, f in entries]
    for event in events:
        assert not event.model_extra, event.model_extra
    pages = [e for e in events if isinstance(e, PageEvent)]
    states = [e for e in events if isinstance(e, StateEvent)]
    assert sorted((e.page_index, e.outcome) for e in pages) == [
        (0, "succeeded"), (1, "failed"), (2, "succeeded"),
    ]  # fmt: skip
    assert [e.error_type for e in pages if e.outcome == "failed"] == ["fatal"]
    assert states[0].previous is None  # "generating" too, unless the pages were quicker
    assert events[-1] == states[-1] and states[-1].state == "partial"
    received = []
    while (message := await pubsub.get_message(timeout=0.5)) is not None:
        if message["type"] == "message":
            received.append(ProgressEvent.model_validate_json(message["data"], strict=True).root)
    await pubsub.aclose()
    assert [m.model_extra for m in received] == [{"id": i.decode()} for i, _ in entries]


async def test_stats_json_is_camel_case_and_validates(
    redis: Redis, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stats --json` of a live pool: camelCase keys only, and a valid `PoolStats`."""
    monkeypatch.setenv("REDIS_URL", _url(redis))
    pool = Pool(redis=redis, generator=FakeGenerator(), settings=fast_settings())
    async with running(pool):
        await wait_until(lambda: _exists(redis, KEYS.heartbeat(pool.id)), what="heartbeat")
        assert await asyncio.to_thread(main, ["stats", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    stats = PoolStats.model_validate(data, strict=True)
    assert [p.id for p in stats.pools] == [pool.id]
    assert not [k for p in data["pools"] for k in p if "_" in k]
    assert "uptimeSeconds" in data["pools"][0] and "pagesPerMin" in data["pools"][0]


async def test_out_of_range_page_counts_as_failed_once_and_the_ebook_ends(redis: Redis) -> None:
    """pageIndex == totalPages pushed twice is one failed page (2 + 1 = 3, partial); the copy
    claimed with it is skipped as in flight."""
    pool = Pool(redis=redis, generator=FakeGenerator(), settings=fast_settings())
    bad = job("o", 3, 3)
    await push(redis, job("o", 0, 3), job("o", 1, 3), bad, bad)  # one claim takes all four
    async with running(pool):
        await wait_until(lambda: _state(redis, "o", "partial"), what="the ebook to end")
    status = await redis.hgetall(KEYS.status("o"))
    assert (status[b"done"], status[b"failed"], status[b"total"]) == (b"2", b"1", b"3")
    assert status[b"skipped"] == b"1" and await redis.llen(KEYS.failed) == 1
    assert await redis.hgetall(KEYS.page_errors("o")) == {
        b"3": (await failed(redis))[0]["error"].encode()
    }
    assert all(e["pageIndex"] == 3 and e["totalPages"] == 3 for e in await failed(redis))


async def test_oversized_page_with_readable_ids_counts_as_failed(redis: Redis) -> None:
    """A page over MAX_JOB_BYTES whose ids parse still fails its page, so the ebook ends."""
    pool = Pool(redis=redis, generator=FakeGenerator(), settings=fast_settings(max_job_bytes=1024))
    await push(redis, job("s", 0, 2), job("s", 1, 2, instructions="x" * 2000))
    async with running(pool):
        await wait_until(lambda: _state(redis, "s", "partial"), what="the ebook to end")
    [entry] = await failed(redis)
    assert entry["payloadTruncated"] is True and entry["pageIndex"] == 1
    assert "over the 1024-byte limit" in entry["error"]


def test_salvage_reads_negative_and_out_of_range_indexes_but_not_bad_totals() -> None:
    """Ids of an invalid job: any integer index with a total in 1..10,000; else the ebook only."""
    cases = {
        job("e", -1, 3): ("e", -1, 3),
        job("e", 7, 3): ("e", 7, 3),
        job("e", 0, 0): ("e", None, None),
        job("e", "0", 3): ("e", None, None),
        job("e", 0, 3, title=" "): ("e", 0, 3),
    }
    for payload, expected in cases.items():
        with pytest.raises(InvalidJob) as caught:
            decode_job(payload, max_bytes=65_536)
        ids = caught.value.ids
        assert (ids.ebook_id, ids.page_index, ids.total_pages) == expected, payload


def test_a_300_page_book_with_long_headings_fits_and_keeps_its_neighbours() -> None:
    """300 headings of 250 chars: every job is far under 64 KiB and prompts see neighbours."""
    outline = [f"{i:03d} " + "h" * 246 for i in range(300)]
    jobs = build_jobs(ebook_id="long", title="Long", outline=outline)
    sizes = [len(j.to_wire().encode()) for j in jobs]
    assert max(sizes) < 4_096 < 300 * 250
    for j in jobs:
        assert decode_job(j.to_wire(), max_bytes=65_536) == j
    user = build_prompt(jobs[150], max_tokens=1000).user
    assert all(outline[i] in user for i in range(147, 154))
    assert outline[146] not in user and outline[154] not in user
    assert f'after "{outline[149]}" and before "{outline[151]}"' in user
    last = build_prompt(jobs[299], max_tokens=1000).user
    assert f'after "{outline[298]}"' in last and "→ 300." in last


def test_a_window_and_the_whole_outline_give_the_same_prompt() -> None:
    """Sending only the window (outlineStart) renders exactly the prompt of the whole outline."""
    outline = [f"Heading {i}" for i in range(20)]
    (whole,) = [j for j in build_jobs(ebook_id="b", title="B", pages=20) if j.page_index == 9]
    whole = whole.model_copy(update={"outline": outline, "page_title": outline[9]})
    windowed = build_jobs(ebook_id="b", title="B", outline=outline)[9]
    assert windowed.outline_start == 6 and len(windowed.outline or []) == 7
    assert build_prompt(windowed, max_tokens=800) == build_prompt(whole, max_tokens=800)


async def test_enqueued_long_book_jobs_decode(redis: Redis) -> None:
    """The producer's outline windows survive the queue: every pushed job decodes."""
    outline = [f"Heading {i}" for i in range(40)]
    await enqueue_ebook(redis, KEYS, build_jobs(ebook_id="q", title="Q", outline=outline))
    raws = await redis.lrange(KEYS.queue, 0, -1)
    decoded = [decode_job(r, max_bytes=65_536) for r in raws]
    assert sorted(j.page_index for j in decoded) == list(range(40))
    assert all(j.outline_entry(j.page_index) == outline[j.page_index] for j in decoded)


# --- helpers -------------------------------------------------------------------------------------


async def _len(redis: Redis, key: str, n: int) -> bool:
    return int(await redis.llen(key)) >= n


async def _hlen(redis: Redis, key: str, n: int) -> bool:
    return int(await redis.hlen(key)) >= n


async def _exists(redis: Redis, key: str) -> bool:
    return bool(await redis.exists(key))


async def _state(redis: Redis, ebook: str, state: str) -> bool:
    return await redis.hget(KEYS.status(ebook), "state") == state.encode()


def _url(redis: Redis) -> str:
    kw = redis.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/{kw.get('db', 0)}"
