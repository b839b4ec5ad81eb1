"""The `ebook-pool` command line: config errors, enqueue, status, stats, failed, schema, run."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_sync
from redis.asyncio import Redis

from generator import GeneratorSettings
from generator.simulator import Simulator, SimulatorConfig
from pool import CONTRACT_VERSION, JobFatalError, Pool, PoolSettings, decode_job
from pool.config import ConfigError
from pool.connections import pool_max_connections, pool_redis, pool_socket_timeout_s
from pool.keys import Keys
from pool.logs import reset_logging
from pool.store import Store
from pool_app.cli import main
from pool_app.producer import build_jobs, enqueue_ebook
from pool_app.wiring import build_generator
from tests.fakes import FakeGenerator, fast_settings, job, running, status, wait_until
from tests.redis_server import RedisServer, free_port

KEYS = Keys()
ENV_NAMES = frozenset(
    [name.upper() for name in PoolSettings.model_fields]
    + [name.upper() for name in GeneratorSettings.model_fields]
    + ["REDIS_PUBLIC_URL"]
)
SECRET_KEY = "sk-test-0123456789abcdefSECRET"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    reset_logging()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> RedisServer:
    """A clean environment whose REDIS_URL is the tests' private server."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    return redis_server


@pytest.fixture
def db(redis_server: RedisServer) -> Iterator[redis_sync.Redis]:
    """A synchronous client on an emptied private server, for tests that call `main`."""
    client = redis_sync.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


def clean_env(**extra: str) -> dict[str, str]:
    """The process environment without any of our variables, plus `extra`."""
    out = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    out.update(extra)
    return out


def run_cli(*args: str, timeout_s: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pool", *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=timeout_s,
        check=False,
    )


def produce(url: str, payloads: list[str], *, script: dict[str, Any] | None = None) -> None:
    """Push `payloads` and run a real pool (with a scripted fake generator) until all are handled."""

    async def go() -> None:
        client = Redis.from_url(url)
        try:
            await client.lpush(KEYS.queue, *payloads)
            pool = Pool(
                redis=client,
                generator=FakeGenerator(script=script or {}),
                settings=fast_settings(redis_url=url),
            )
            async with running(pool):

                async def drained() -> bool:
                    return pool.stats.processed >= len(payloads)

                await wait_until(drained, what="every job handled")
        finally:
            await client.aclose()

    asyncio.run(go())


# --- configuration errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("CONCURRENT_WORKERS", "lots", "CONCURRENT_WORKERS: Input should be a valid integer"),
        (
            "CONCURRENT_WORKERS",
            "0",
            "CONCURRENT_WORKERS: Input should be greater than or equal to 1",
        ),
        ("POLL_INTERVAL", "5", "POLL_INTERVAL: Input should be greater than or equal to 10"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT: Input should be 'text' or 'json'"),
        (
            "HEARTBEAT_TIMEOUT",
            "1000",
            "HEARTBEAT_TIMEOUT must be at least twice HEARTBEAT_INTERVAL",
        ),
        ("REDIS_URL", "http://u:s3cretpw@host:1", "REDIS_URL must start with redis://"),
        ("OPENAI_TEMPERATURE", "9", "OPENAI_TEMPERATURE: Input should be less than or equal to 2"),
        ("OPENAI_BASE_URL", "ftp://example", "OPENAI_BASE_URL: must be an http:// or https:// URL"),
    ],
)
def test_bad_env_var_is_one_line_and_exit_2(
    env: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    shown: str,
) -> None:
    """`run` with a bad variable prints one line naming it, exit 2, no traceback, no secret."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY)
    monkeypatch.setenv(name, value)
    assert main(["run"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("ebook-pool: error: ")
    assert shown in err
    assert err.count("\n") == 1
    assert "Traceback" not in err and "s3cretpw" not in err and SECRET_KEY not in err
    assert out == ""


def test_run_without_api_key_or_base_url_is_a_config_error(
    env: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the demo falls back to the simulator; `run` refuses with one clear line."""
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ebook-pool: error: OPENAI_API_KEY: not set")
    assert err.count("\n") == 1


def test_config_error_in_a_real_process_has_no_traceback() -> None:
    """`python -m pool` (= `ebook-pool run`) exits 2 with exactly one stderr line."""
    proc = run_cli(CONCURRENT_WORKERS="-3", OPENAI_API_KEY=SECRET_KEY)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "ebook-pool: error: CONCURRENT_WORKERS: Input should be greater than or equal to 1"
    ]
    assert proc.stdout == ""


def test_usage_errors_exit_2_and_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse errors and a missing command are usage errors; --help is not."""
    assert main([]) == 2
    assert main(["no-such-command"]) == 2
    assert main(["enqueue", "--title", "T"]) == 2  # neither --pages nor --outline-file
    assert main(["--help"]) == 0
    assert "enqueue" in capsys.readouterr().out


async def test_build_generator_needs_a_key_or_a_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compatible server may need no key (a placeholder is sent); OpenAI itself needs one."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY: not set"):
        build_generator(GeneratorSettings(), workers=2)
    local = build_generator(GeneratorSettings(openai_base_url="http://127.0.0.1:9/v1"), workers=2)
    try:
        assert "127.0.0.1:9" in repr(local)
    finally:
        await local.aclose()


# --- redis clients -----------------------------------------------------------------------------


async def test_pool_client_is_sized_and_timed_for_blocking_claims() -> None:
    """The pool's client waits for a free connection and outlasts the claimer's BLMOVE."""
    settings = PoolSettings(concurrent_workers=500, poll_interval=30_000)
    client = pool_redis(settings)
    try:
        pool = client.connection_pool
        assert type(pool).__name__ == "BlockingConnectionPool"
        assert pool.max_connections == pool_max_connections(500) == 68
        assert pool.connection_kwargs["socket_timeout"] == pool_socket_timeout_s(settings) == 35
        assert pool.connection_kwargs["socket_connect_timeout"] == 5
    finally:
        await client.aclose()
    assert pool_max_connections(5) == 9
    assert pool_socket_timeout_s(PoolSettings(poll_interval=1_000)) == 10


def test_unreachable_redis_is_one_line_with_the_masked_url(
    env: RedisServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """One-shot commands report a dead Redis in one line, password masked, exit 1."""
    port = free_port()
    monkeypatch.setenv("REDIS_URL", f"redis://user:hunter2pw@127.0.0.1:{port}/0")
    for argv in (["status", "x"], ["stats"], ["failed", "list"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith(
            f"ebook-pool: error: cannot reach Redis at redis://user:***@127.0.0.1:{port}/0"
        )
        assert err.count("\n") == 1
        assert "hunter2pw" not in err and "Traceback" not in err


def test_a_redis_error_reply_is_one_line_too(
    env: RedisServer, db: redis_sync.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reachable Redis that answers with an error is reported as such, not as unreachable."""
    db.set(KEYS.status("clash"), "a string where a hash belongs")
    assert main(["status", "clash"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"ebook-pool: error: Redis at {env.url} answered with an error: WRONGTYPE"
    )
    assert err.count("\n") == 1


# --- schema ------------------------------------------------------------------------------------


def test_schema_is_json_with_camel_case_properties(capsys: pytest.CaptureFixture[str]) -> None:
    """`schema` prints the contract's JSON Schema, with the wire (camelCase) names."""
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    props = schema["properties"]
    assert {"ebookId", "pageIndex", "totalPages", "title", "pageTitle", "targetWords"} <= set(props)
    assert not [p for p in props if "_" in p]
    assert set(schema["required"]) == {"ebookId", "pageIndex", "totalPages", "title"}
    assert schema["x-contract-version"] == CONTRACT_VERSION


# --- enqueue -----------------------------------------------------------------------------------


def test_enqueue_pushes_every_page_in_order_and_writes_the_status(
    env: RedisServer, db: redis_sync.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Page 0 comes out of the queue first; every job decodes; the status says queued."""
    code = main(
        [
            "enqueue", "--title", "Bees", "--topic", "Urban beekeeping", "--pages", "3",
            "--language", "pt-BR", "--style", "calm", "--audience", "city dwellers",
            "--instructions", "Use examples", "--model", "gpt-4o", "--target-words", "300",
            "--ebook-id", "bees-1",
        ]
    )  # fmt: skip
    assert code == 0
    assert capsys.readouterr().out == "bees-1\n"
    popped = [db.rpop(KEYS.queue) for _ in range(3)]
    assert db.llen(KEYS.queue) == 0
    jobs = [decode_job(raw, max_bytes=65_536) for raw in popped if raw is not None]
    assert [j.page_index for j in jobs] == [0, 1, 2]
    first = jobs[0]
    assert (first.ebook_id, first.total_pages, first.title, first.topic) == (
        "bees-1",
        3,
        "Bees",
        "Urban beekeeping",
    )
    assert (first.language, first.style, first.audience, first.model, first.target_words) == (
        "pt-BR",
        "calm",
        "city dwellers",
        "gpt-4o",
        300,
    )
    assert first.instructions == "Use examples" and first.id == "bees-1:0"
    st = {k.decode(): v.decode() for k, v in db.hgetall(KEYS.status("bees-1")).items()}
    assert st["total"] == "3" and st["state"] == "queued" and st["done"] == "0"
    assert int(st["createdAt"]) > 1_600_000_000_000


def test_enqueue_with_an_outline_file(
    env: RedisServer, db: redis_sync.Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One heading per line (Markdown markers and blank lines dropped) → one page each."""
    outline = tmp_path / "outline.md"
    outline.write_text(
        "# Getting started\n\n- Tools you need\n2. First steps\n   Going further  \n"
    )
    assert main(["enqueue", "--title", "Guide", "--outline-file", str(outline)]) == 0
    ebook_id = capsys.readouterr().out.strip()
    assert re.fullmatch(r"\d{13}-[a-z0-9]{6}", ebook_id)
    jobs = [decode_job(db.rpop(KEYS.queue) or b"", max_bytes=65_536) for _ in range(4)]
    headings = ["Getting started", "Tools you need", "First steps", "Going further"]
    assert [j.page_title for j in jobs] == headings
    assert jobs[2].outline == headings and jobs[2].total_pages == 4


def test_enqueue_refuses_bad_input_and_an_existing_ebook(
    env: RedisServer, db: redis_sync.Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad flags exit 2 without writing; a second enqueue of one id exits 1 and changes nothing."""
    assert main(["enqueue", "--title", "T", "--pages", "0"]) == 2
    assert main(["enqueue", "--title", "T", "--pages", "2", "--ebook-id", "has space"]) == 2
    assert main(["enqueue", "--title", "T", "--outline-file", str(tmp_path / "nope.txt")]) == 2
    assert db.llen(KEYS.queue) == 0
    assert main(["enqueue", "--title", "T", "--pages", "2", "--ebook-id", "dup"]) == 0
    capsys.readouterr()
    assert main(["enqueue", "--title", "T", "--pages", "5", "--ebook-id", "dup"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert db.llen(KEYS.queue) == 2
    assert db.hget(KEYS.status("dup"), "total") == b"2"


async def test_enqueue_wait_exits_0_when_done_and_1_when_a_page_failed(
    redis: Redis, redis_server: RedisServer
) -> None:
    """`--wait` follows the ebook to its end state and reports it in the exit code."""
    gen = FakeGenerator(delay_s=0.05, script={"w-bad:1": [JobFatalError("refused by the model")]})
    pool = Pool(redis=redis, generator=gen, settings=fast_settings())
    async with running(pool):
        codes = {}
        for ebook in ("w-ok", "w-bad"):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pool", "enqueue", "--title", "W", "--pages", "3",
                "--ebook-id", ebook, "--wait",
                env=clean_env(REDIS_URL=redis_server.url),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
            codes[ebook] = proc.returncode
            assert out.decode() == f"{ebook}\n"
            assert "3 pages" in err.decode()
    assert codes == {"w-ok": 0, "w-bad": 1}
    assert (await status(redis, "w-bad"))["state"] == "partial"


# --- status ------------------------------------------------------------------------------------


def test_status_table_and_json(
    env: RedisServer, db: redis_sync.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """`status` shows counters and one row per page, failed pages with their reason."""
    payloads = [job("s1", i, 3, pageTitle=f"Part {i}") for i in range(3)]
    produce(env.url, payloads, script={"s1:1": [JobFatalError("content_filter: refused")]})
    capsys.readouterr()

    assert main(["status", "s1"]) == 0
    table = capsys.readouterr().out
    assert "State     partial" in table
    assert "2/3 done, 1 failed, 0 pending" in table
    assert re.search(r"^1\s+failed\s+.*content_filter: refused", table, re.M)
    assert re.search(r"^2\s+done\s+1\s+7\s+.*Part 2$", table, re.M)

    assert main(["status", "s1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["state"], data["total"], data["done"], data["failed"]) == ("partial", 3, 2, 1)
    assert [p["status"] for p in data["pages"]] == ["done", "failed", "done"]
    assert "content_filter: refused" in data["pages"][1]["error"]
    assert data["finishedAt"] >= data["startedAt"] >= data["createdAt"]


def test_status_of_an_unknown_ebook_exits_1(
    env: RedisServer, db: redis_sync.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """An id with no status hash is an error the script can test for."""
    assert main(["status", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ebook-pool: error: unknown ebook nope") and err.count("\n") == 1


def test_status_of_a_queued_ebook_shows_pending_pages(
    env: RedisServer, db: redis_sync.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Right after enqueue, nothing is done and every page is pending."""
    assert main(["enqueue", "--title", "Q", "--pages", "2", "--ebook-id", "q1"]) == 0
    capsys.readouterr()
    assert main(["status", "q1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["state"] == "queued" and data["pending"] == 2
    assert [p["status"] for p in data["pages"]] == ["pending", "pending"]


# --- stats -------------------------------------------------------------------------------------


def test_stats_shows_queue_failed_and_live_pools(
    env: RedisServer, db: redis_sync.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """`stats` counts the queue, the in-flight jobs and the failed list, and lists live pools."""
    produce(env.url, ["not json"])  # one dead letter
    capsys.readouterr()
    db.lpush(KEYS.queue, job("x", 0, 2), job("x", 1, 2))
    db.lpush(KEYS.processing("pool-b"), job("y", 0, 1))

    async def beat() -> None:
        client = Redis.from_url(env.url)
        store = Store(client, KEYS)
        base = {"workers": 5, "active": 1, "processed": 40, "success": 39, "failed": 1}
        await store.heartbeat("pool-a", {**base, "paused": None, "pages_per_min": 12.5}, 60_000)
        await store.heartbeat("pool-b", {**base, "paused": "PoolFatalError: invalid key"}, 60_000)
        await client.aclose()

    asyncio.run(beat())
    assert main(["stats", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["queueDepth"], data["inFlight"], data["failed"]) == (2, 1, 1)
    assert sorted(p["id"] for p in data["pools"]) == ["pool-a", "pool-b"]

    assert main(["stats"]) == 0
    table = capsys.readouterr().out
    assert "Queue depth  2" in table and "Pools        2 live" in table
    assert re.search(r"^pool-a\s+5\s+1\s+40\s+39\s+1\s+12\.5\s+.*running$", table, re.M)
    assert re.search(r"^pool-b\s+.*PAUSED: PoolFatalError: invalid key$", table, re.M)


# --- failed ------------------------------------------------------------------------------------


def _seed_failures(url: str) -> None:
    produce(
        url,
        [job("f1", 0, 2), job("f1", 1, 2), job("f2", 0, 1), '{"broken": true}'],
        script={
            "f1:1": [JobFatalError("context_length_exceeded")],
            "f2:0": [JobFatalError("refusal")],
        },
    )


def test_failed_list_filters_limits_and_prints_json(
    env: RedisServer, db: redis_sync.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """`failed list` shows dead letters newest first; --ebook and --limit narrow it down."""
    _seed_failures(env.url)
    capsys.readouterr()
    assert main(["failed", "list", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert len(entries) == 3
    assert {e.get("errorType") for e in entries} == {"fatal", "invalid"}
    original = next(e for e in entries if e.get("ebookId") == "f1")
    assert original["payload"] == job("f1", 1, 2) and original["pageIndex"] == 1

    assert main(["failed", "list", "--ebook", "f2", "--json"]) == 0
    assert [e["ebookId"] for e in json.loads(capsys.readouterr().out)] == ["f2"]
    assert main(["failed", "list", "--limit", "1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1

    assert main(["failed", "list"]) == 0
    table = capsys.readouterr().out
    assert "context_length_exceeded" in table and "3 shown of 3" in table


def test_failed_retry_requeues_and_corrects_the_status(
    env: RedisServer, db: redis_sync.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Retrying an ebook's failures requeues the original payload and un-counts the failure."""
    _seed_failures(env.url)
    capsys.readouterr()
    assert db.hget(KEYS.status("f1"), "state") == b"partial"
    assert main(["failed", "retry", "--ebook", "f1"]) == 0
    assert "Put 1 failed jobs back" in capsys.readouterr().out
    assert db.lrange(KEYS.queue, 0, -1) == [job("f1", 1, 2).encode()]
    st = db.hgetall(KEYS.status("f1"))
    assert st[b"failed"] == b"0" and st[b"state"] == b"generating"
    assert db.hlen(KEYS.page_errors("f1")) == 0
    assert db.llen(KEYS.failed) == 2  # f2 and the invalid one are untouched


def test_failed_retry_all_leaves_invalid_payloads(
    env: RedisServer, db: redis_sync.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid payload would only fail again, so `retry --all` leaves it and says so."""
    _seed_failures(env.url)
    capsys.readouterr()
    assert main(["failed", "retry", "--all"]) == 0
    out, err = capsys.readouterr()
    assert "Put 2 failed jobs back" in out and "Left 1 invalid payloads" in err
    assert db.llen(KEYS.queue) == 2
    [left] = [json.loads(x) for x in db.lrange(KEYS.failed, 0, -1)]
    assert left["errorType"] == "invalid"


def test_failed_purge_needs_yes_off_a_terminal_and_respects_the_filter(
    env: RedisServer,
    db: redis_sync.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without --yes and without a terminal nothing is deleted; --ebook deletes only its jobs."""
    _seed_failures(env.url)
    capsys.readouterr()
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False)
    assert main(["failed", "purge", "--all"]) == 2
    assert "--yes" in capsys.readouterr().err
    assert db.llen(KEYS.failed) == 3
    assert main(["failed", "purge", "--ebook", "f2", "--yes"]) == 0
    assert "Deleted 1 failed jobs" in capsys.readouterr().out
    assert all(json.loads(x).get("ebookId") != "f2" for x in db.lrange(KEYS.failed, 0, -1))
    assert db.llen(KEYS.failed) == 2
    assert main(["failed", "purge", "--all", "--yes"]) == 0
    assert db.llen(KEYS.failed) == 0


# --- run, end to end ---------------------------------------------------------------------------


async def test_run_writes_pages_logs_json_and_exits_0_on_sigterm(
    redis: Redis, redis_server: RedisServer
) -> None:
    """A real `python -m pool` against the simulator: pages land, logs are JSON, SIGTERM → 0."""
    async with Simulator(SimulatorConfig(latency_s=0.05)) as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pool",
            env=clean_env(
                REDIS_URL=redis_server.url,
                OPENAI_BASE_URL=sim.base_url,
                OPENAI_API_KEY=SECRET_KEY,
                LOG_FORMAT="json",
                CONCURRENT_WORKERS="3",
                PROCESSING_DELAY="0",
                POLL_INTERVAL="100",
                STATS_INTERVAL="300",
            ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await enqueue_ebook(redis, KEYS, build_jobs(ebook_id="run-1", title="R", pages=4))

            async def finished() -> bool:
                return (await status(redis, "run-1")).get("state") == "done"

            await wait_until(finished, timeout_s=30, what="the ebook to be done")
            proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0
    assert err == b""
    text = out.decode()
    assert SECRET_KEY not in text
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert all({"timestamp", "level", "message"} <= set(line) for line in lines)
    messages = [line["message"] for line in lines]
    assert any("Generator: model=gpt-4o-mini" in m and "API key set (***)" in m for m in messages)
    assert any("[Stats] Uptime: " in m for m in messages)
    processing = [line for line in lines if "Processing job" in line["message"]]
    assert {line["page_index"] for line in processing} == {0, 1, 2, 3}
    assert all(line["ebook_id"] == "run-1" and "worker" in line for line in processing)
    pages = await redis.hgetall(KEYS.pages("run-1"))
    assert len(pages) == 4
    assert json.loads(pages[b"2"])["content"].startswith("## ")


async def test_simulate_llm_serves_until_sigterm(tmp_path: Path) -> None:
    """`ebook-pool simulate-llm` prints its base URL, answers, and stops cleanly."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pool", "simulate-llm", "--port", "0",
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base_url = ""
        async with asyncio.timeout(30):
            while not base_url:
                line = (await proc.stdout.readline()).decode()
                assert line, "the simulator exited before printing its URL"
                if line.startswith("OPENAI_BASE_URL="):
                    base_url = line.strip().split("=", 1)[1]
        reader, writer = await asyncio.open_connection(*_host_port(base_url))
        writer.write(b"GET /v1/models HTTP/1.0\r\nAuthorization: Bearer x\r\n\r\n")
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
        assert re.match(rb"HTTP/1\.[01] 200 ", answer)
        assert b'"sim-writer"' in answer
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0


def _host_port(base_url: str) -> tuple[str, int]:
    match = re.match(r"http://([^:/]+):(\d+)", base_url)
    assert match, base_url
    return match.group(1), int(match.group(2))
