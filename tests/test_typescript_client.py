"""The TypeScript client against the real Python pool: Node enqueues and reads through
`@ebook-pool/client` (ioredis and node-redis), the pool (`python -m pool run`, the simulator as
its LLM) writes, Node follows the pool's progress events (its stream, XREAD BLOCK) to the final
state, and invalid jobs pushed from Node land in the failed list with their reasons.

Needs `node` and `npm ci` in clients/typescript (CI: .ci/run): without them this test fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_sync

from pool.wire import EbookStatusHash, FailedEntryRecord, PageRecord, ProgressEvent
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "clients" / "typescript"
PREFIX = "tsclient"


@pytest.fixture
def node_build() -> Path:
    node = shutil.which("node")
    assert node is not None, "node is not on PATH: the TypeScript client cannot be tested"
    assert (PACKAGE / "node_modules").is_dir(), "run `npm ci` in clients/typescript first"
    tsc = PACKAGE / "node_modules" / "typescript" / "bin" / "tsc"
    subprocess.run([node, str(tsc), "-p", "tsconfig.test.json"], cwd=PACKAGE, check=True)
    return PACKAGE / "build" / "e2e" / "run.js"


@pytest.fixture
def pool_url(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    """A clean database, the simulator and one pool process on it; both stopped at the end."""
    with redis_sync.Redis.from_url(redis_server.url) as db:
        db.flushall()
    with (tmp_path / "sim.log").open("wb") as log:  # the child keeps its own descriptor
        sim = subprocess.Popen(
            [sys.executable, "-m", "generator.simulator", "--port", "0", "--seed", "1"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert sim.stdout is not None
    base_url = sim.stdout.readline().strip().removeprefix("OPENAI_BASE_URL=")
    sim.stdout.close()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "KEY_PREFIX": PREFIX,
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": base_url,
        "PROCESSING_DELAY": "0",
        "POLL_INTERVAL": "100",
        "STATS_INTERVAL": "0",
    }
    with (tmp_path / "pool.log").open("wb") as log:
        pool = subprocess.Popen(
            [sys.executable, "-m", "pool", "run"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield redis_server.url
    finally:
        for proc in (pool, sim):
            proc.terminate()
            proc.wait(timeout=20)
        print((tmp_path / "pool.log").read_text(errors="replace")[-3000:])


def test_node_enqueues_the_pool_writes_node_reads(node_build: Path, pool_url: str) -> None:
    """Pages, progress, refusals and dead letters all round-trip between Node and the pool."""
    node = shutil.which("node")
    assert node is not None
    run = subprocess.run(
        [node, str(node_build)],
        env={**os.environ, "REDIS_URL": pool_url, "KEY_PREFIX": PREFIX},
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)

    # ioredis: six pages in order, the metadata copied, progress from queued to done.
    assert [p["index"] for p in out["io"]["pages"]] == list(range(6))
    assert out["io"]["pages"][1]["title"] == "Flour"
    assert all(p["meta"] == {"userId": "u_42"} for p in out["io"]["pages"])
    assert out["io"]["contentOk"] is True
    _assert_followed(out["events"], "e2e-io", 6)
    # Without keepListening it ends after the first final state: the events up to it.
    first = out["firstPass"]
    assert first == out["events"][: len(first)] and first[-1]["what"] == "state done 6/0/6"
    assert not [e for e in first[:-1] if e["what"].startswith("state done")]
    # Resumed after the second event: the same events from the third; after the last event:
    # one final state (from the stream, or derived from the status hash when none is left).
    assert out["resumed"] == first[2:]
    [after] = out["afterLast"]
    assert (after["ebookId"], after["what"]) == ("e2e-io", "state done 6/0/6")
    # Polling (mode "poll"): one state event from the status hash, no stream id.
    assert out["polled"] == [{"id": None, "ebookId": "e2e-io", "what": "state done 6/0/6"}]
    # node-redis: the same, and an existing id refused.
    assert out["node"] == {"state": "done", "done": 3, "pages": 3}
    _assert_followed(out["nodeEvents"], "e2e-node", 3)
    assert out["duplicate"] == "EbookExistsError"
    # The client refused an oversized page before pushing anything.
    assert "page 0: the job is" in out["refused"] and "65536-byte limit" in out["refused"]
    assert out["refusedPushedNothing"] is True
    # Invalid jobs from Node: each in the failed list with its reason; their ebooks ended.
    assert out["bad"]["state"] == "partial"
    assert (out["bad"]["done"], out["bad"]["failed"]) == (1, 3)
    assert set(out["bad"]["errors"]) == {"1", "2", "4"}
    assert out["big"] == {"state": "failed", "failed": 1}
    reasons = {(e["ebookId"], e["pageIndex"]): e for e in out["failed"]}
    assert set(reasons) == {("e2e-bad", 1), ("e2e-bad", 2), ("e2e-bad", 4), ("e2e-big", 0)}
    assert all(e["errorType"] == "invalid" for e in out["failed"])
    assert "title" in reasons["e2e-bad", 1]["error"]
    assert "tittle" in reasons["e2e-bad", 2]["error"]
    assert "out of range" in reasons["e2e-bad", 4]["error"]
    assert "over the 65536-byte limit" in reasons["e2e-big", 0]["error"]
    assert out["retry"] == {"retried": 0, "skipped": 4}

    # And what Node read is what the Python models accept.
    with redis_sync.Redis.from_url(pool_url, decode_responses=True) as db:
        for raw in db.hgetall(f"{PREFIX}:ebook:e2e-io:pages").values():
            PageRecord.model_validate_json(raw, strict=True)
        status = db.hgetall(f"{PREFIX}:ebook:e2e-bad:status")
        assert EbookStatusHash.model_validate(status).state == "partial"
        for raw in db.lrange(f"{PREFIX}:failed", 0, -1):
            FailedEntryRecord.model_validate_json(raw, strict=True)
        for ebook, events in (("e2e-io", out["events"]), ("e2e-node", out["nodeEvents"])):
            entries = db.xrange(f"{PREFIX}:ebook:{ebook}:events")
            for _, fields in entries:
                ProgressEvent.model_validate_json(fields["data"], strict=True)
            # Node read the stream from its start up to the first final state, in order.
            ids = [i for i, _ in entries]
            assert [e["id"] for e in events] == ids[: len(events)]


def _assert_followed(events: list[dict[str, str]], ebook: str, pages: int) -> None:
    """Node received every page's succeeded event and the final `done` state event, each with
    its stream id, in stream order."""
    assert events, f"no progress events for {ebook}"
    assert all(e["ebookId"] == ebook for e in events)
    ids = [e["id"] for e in events]
    assert all(ids), ids
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))), ids
    assert len(set(ids)) == len(ids)
    page_events = [e["what"] for e in events if e["what"].startswith("page ")]
    assert sorted(set(page_events)) == sorted(f"page {i} succeeded" for i in range(pages))
    assert events[-1]["what"] == f"state done {pages}/0/{pages}"
