"""`ebook-pool demo` end to end, as a new user runs it: each Redis it can fall back to."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis as redis_sync

from generator import GeneratorSettings
from generator.simulator import Simulator, SimulatorConfig
from pool import PoolSettings
from pool.keys import Keys
from pool.logs import reset_logging
from pool_app.cli import main
from pool_app.demo import SAMPLE_OUTLINE, render_markdown
from tests.redis_server import RedisServer, free_port

ENV_NAMES = frozenset(
    [name.upper() for name in PoolSettings.model_fields]
    + [name.upper() for name in GeneratorSettings.model_fields]
    + ["REDIS_PUBLIC_URL"]
)


def clean_env(**env: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    clean.update(env)
    return clean


def run_demo(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pool", "demo"],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def assert_book_written(cwd: Path, stdout: str) -> str:
    """The demo wrote out/<id>.md with the 12 pages in order; returns the ebook id."""
    [path] = (cwd / "out").glob("*.md")
    ebook_id = path.stem
    assert re.fullmatch(r"\d{13}-[a-z0-9]{6}", ebook_id)
    assert f"Wrote out/{ebook_id}.md" in stdout
    text = path.read_text(encoding="utf-8")
    markers = [int(n) for n in re.findall(r"<!-- page (\d+) of 12 -->", text)]
    assert markers == list(range(1, 13))
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == ["Contents", *SAMPLE_OUTLINE]  # the simulator heads each page with it
    assert "could not be written" not in text
    return ebook_id


def test_demo_on_an_external_redis_url(redis_server: RedisServer, tmp_path: Path) -> None:
    """With REDIS_URL set and reachable, the demo uses it under the 'ebook-demo' prefix."""
    db = redis_sync.Redis.from_url(redis_server.url)
    db.flushall()
    proc = run_demo(tmp_path, REDIS_URL=redis_server.url)
    assert proc.returncode == 0, proc.stderr
    assert f"Redis: {redis_server.url} (REDIS_URL), keys under 'ebook-demo:'" in proc.stdout
    assert "simulated text" in proc.stdout
    assert re.search(r"^\[Stats\] .*Processed: 12 \| Success: 12 \| Failed: 0", proc.stdout, re.M)
    ebook_id = assert_book_written(tmp_path, proc.stdout)
    keys = Keys("ebook-demo")
    status = db.hgetall(keys.status(ebook_id))
    assert status[b"state"] == b"done" and status[b"done"] == b"12"
    assert db.hlen(keys.pages(ebook_id)) == 12
    assert not [k for k in db.keys("*") if not k.startswith(b"ebook-demo:")]
    db.close()


def test_demo_starts_a_private_redis_server_and_stops_it(tmp_path: Path) -> None:
    """Without REDIS_URL, a redis-server on PATH is started for the demo and stopped after."""
    proc = run_demo(tmp_path)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"a private redis-server at redis://127\.0\.0\.1:(\d+)/0", proc.stdout)
    assert match, proc.stdout
    assert_book_written(tmp_path, proc.stdout)
    with socket.socket() as s:  # nothing listens there any more
        assert s.connect_ex(("127.0.0.1", int(match.group(1)))) != 0


def test_demo_falls_back_to_fakeredis(tmp_path: Path) -> None:
    """No reachable REDIS_URL and no redis-server on PATH: fakeredis in-process, still 12 pages."""
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    proc = run_demo(tmp_path, PATH=str(empty_bin), REDIS_URL=dead_url)
    assert proc.returncode == 0, proc.stderr
    assert f"REDIS_URL ({dead_url}) does not answer" in proc.stdout
    assert "Redis: fakeredis, in this process" in proc.stdout
    assert "lupa" in proc.stdout
    assert_book_written(tmp_path, proc.stdout)


def test_demo_without_any_redis_or_fakeredis_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """fakeredis is not in the production install: without it and any Redis, one line, exit 2."""
    monkeypatch.setitem(sys.modules, "fakeredis", None)  # `import fakeredis` raises ImportError
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    try:
        code = main(["demo", "--out", str(tmp_path / "out")])
    finally:
        reset_logging()
    assert code == 2
    assert capsys.readouterr().err == (
        "ebook-pool: error: no Redis: REDIS_URL unreachable, no redis-server on PATH, and "
        "fakeredis is not installed (install redis-server, or pip install 'ebook-pool[demo]')\n"
    )
    assert not (tmp_path / "out").exists()


def test_markdown_says_why_a_page_is_missing() -> None:
    """A failed page keeps its place in the book, with the reason instead of text."""
    pages = {i: {"content": f"## {h}\n\nText {i}."} for i, h in enumerate(SAMPLE_OUTLINE)}
    del pages[3]
    text = render_markdown(pages, {3: "refusal: the model declined"})
    assert f"## {SAMPLE_OUTLINE[3]}\n\n> This page could not be written: refusal" in text
    assert text.index("Text 2.") < text.index("could not be written") < text.index("Text 4.")


async def test_demo_stops_when_the_api_refuses_the_key(tmp_path: Path) -> None:
    """With a key the API rejects, the pool pauses; the demo says why and exits 1, not hangs."""
    key = "sk-wrong-0123456789abcdef"
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    async with Simulator(SimulatorConfig(bad_key=True)) as sim:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pool", "demo",
            cwd=tmp_path,
            env=clean_env(PATH=str(empty_bin), OPENAI_BASE_URL=sim.base_url, OPENAI_API_KEY=key),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    text = out.decode()
    assert proc.returncode == 1
    assert "Text: the real API (model=gpt-4o-mini" in text
    assert "The pool paused: HTTP 401 invalid_api_key" in text
    assert key not in text
    assert not (tmp_path / "out").exists()  # no half-written book
