"""`ebook-pool export` (Markdown, HTML, EPUB read back), `ebook-pool delete`, and the exit-2
line of a bad PRICE_TABLE_FILE."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from ebooklib import ITEM_DOCUMENT, epub
from redis.asyncio import Redis

from generator import GeneratorSettings
from pool import GeneratedPage, JobFatalError, Pool, PoolSettings
from pool.keys import Keys
from pool.logs import reset_logging
from pool_app.cli import main
from tests.fakes import FakeGenerator, fast_settings, job, push, running, status, wait_until
from tests.redis_server import RedisServer

KEYS = Keys()
HOSTILE = '<script>alert("x")</script> & <b>bold</b>'
TITLES = ["Opening <One>", "Middle & More", "The End"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> Iterator[None]:
    for name in [*PoolSettings.model_fields, *GeneratorSettings.model_fields]:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    yield
    reset_logging()


async def _book(redis: Redis) -> None:
    """Ebook "ex": page 0 with hostile markup, page 1 plain, page 2 failed for good."""
    gen = FakeGenerator()
    gen.script["ex:0"] = [GeneratedPage(content=f"{HOSTILE}\n\nSecond paragraph.", model="m")]
    gen.script["ex:2"] = [JobFatalError("refusal: no thanks", code="refusal")]
    await push(
        redis, *(job("ex", i, 3, title="Export <Test>", pageTitle=TITLES[i]) for i in range(3))
    )
    async with running(Pool(redis=redis, generator=gen, settings=fast_settings())):
        await wait_until(lambda: _ended(redis, "ex"), what="the ebook to end")


async def _ended(redis: Redis, ebook: str) -> bool:
    return (await status(redis, ebook)).get("state") == "partial"


async def _export(tmp_path: Path, fmt: str) -> Path:
    out = tmp_path / f"book.{fmt}"
    assert await asyncio.to_thread(main, ["export", "ex", "--format", fmt, "--out", str(out)]) == 0
    return out


class _Html(HTMLParser):
    """Tags, ids and text of a document, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if found.get("id"):
            self.ids.append(str(found["id"]))
        if tag == "a" and found.get("href"):
            self.links.append(str(found["href"]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


async def test_epub_opens_with_ebooklib_and_its_contents_are_the_pages(
    redis: Redis, tmp_path: Path
) -> None:
    """The EPUB reads back: title, one TOC entry and one chapter per page, failed page says why."""
    await _book(redis)
    book = epub.read_epub(str(await _export(tmp_path, "epub")))
    assert book.get_metadata("DC", "title")[0][0] == "Export <Test>"
    assert [link.title for link in book.toc] == TITLES
    chapters = {
        item.get_name(): item.get_content().decode()
        for item in book.get_items_of_type(ITEM_DOCUMENT)
        if item.get_name().startswith("page-")
    }
    assert sorted(chapters) == ["page-1.xhtml", "page-2.xhtml", "page-3.xhtml"]
    assert (
        "&lt;script&gt;" in chapters["page-1.xhtml"] and "<script>" not in chapters["page-1.xhtml"]
    )
    assert "refusal: no thanks" in chapters["page-3.xhtml"]


async def test_html_is_escaped_and_its_contents_link_to_every_page(
    redis: Redis, tmp_path: Path
) -> None:
    """Parsed HTML: no tag from the model's text, the text kept literally, TOC links resolve."""
    await _book(redis)
    parser = _Html()
    parser.feed((await _export(tmp_path, "html")).read_text(encoding="utf-8"))
    assert "script" not in parser.tags and "b" not in parser.tags
    text = "".join(parser.text)
    assert HOSTILE in text and "Export <Test>" in text and "Opening <One>" in text
    assert parser.links == ["#page-1", "#page-2", "#page-3"]
    assert {"page-1", "page-2", "page-3"} <= set(parser.ids)
    assert "This page could not be written: refusal: no thanks" in text


async def test_markdown_has_the_title_contents_and_pages_in_order(
    redis: Redis, tmp_path: Path
) -> None:
    """Markdown: title, a numbered contents list of the pages, the pages in order."""
    await _book(redis)
    text = (await _export(tmp_path, "md")).read_text(encoding="utf-8")
    assert text.startswith("# Export <Test>\n")
    assert "1. Opening <One>\n2. Middle & More\n3. The End\n" in text
    first, second, third = (text.index(f"<!-- page {i} of 3 -->") for i in (1, 2, 3))
    assert first < text.index(HOSTILE) < second < text.index("Text of ex:1.") < third
    assert "> This page could not be written: refusal: no thanks" in text


async def test_export_of_an_unknown_ebook_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """No status and no pages: one line, exit 1, no file."""
    assert await asyncio.to_thread(main, ["export", "nope", "--format", "md", "--out", "-"]) == 1
    err = capsys.readouterr().err
    assert "unknown ebook nope" in err and err.count("\n") == 1


async def test_delete_removes_every_key_of_one_ebook_only(
    redis: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """`delete` removes status, pages, errors and the progress-event stream of that ebook;
    another ebook is untouched."""
    await _book(redis)
    await redis.xadd(KEYS.ebook_events("ex"), {"data": "{}", "state": "done"})
    await redis.hset(KEYS.status("other"), mapping={"total": "1", "done": "0"})
    assert await asyncio.to_thread(main, ["delete", "ex"]) == 0
    assert "Deleted 4 keys of ebook ex." in capsys.readouterr().out
    assert await redis.exists(*KEYS.ebook_keys("ex"), KEYS.ebook_events("ex")) == 0
    assert await redis.exists(KEYS.status("other")) == 1
    assert await asyncio.to_thread(main, ["delete", "ex"]) == 1  # nothing left to delete
    assert "unknown ebook ex" in capsys.readouterr().err


async def test_delete_of_an_unfinished_ebook_warns_that_jobs_will_write_it_again(
    redis: Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """A queued ebook is deleted, with a stderr line saying queued jobs will recreate it."""
    await redis.hset(KEYS.status("q"), mapping={"total": "2", "done": "0", "state": "queued"})
    assert await asyncio.to_thread(main, ["delete", "q"]) == 0
    assert "It was queued: jobs still queued or running" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "shown"),
    [
        (None, "cannot read"),
        ("{not json", "cannot read"),
        ('["gpt-4o"]', "must hold a table of models"),
        ('{"gpt-4o": {"input": 1}}', "'gpt-4o' needs numeric 'input' and 'output'"),
        ('{"gpt-4o": {"input": "x", "output": 1}}', "needs numeric"),
        ('{"gpt-4o": {"input": -1, "output": 1}}', "'gpt-4o' has a negative price"),
    ],
)
def test_bad_price_table_file_is_one_line_naming_it_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    content: str | None,
    shown: str,
) -> None:
    """`run` with a broken PRICE_TABLE_FILE: one stderr line naming it, exit 2, nothing else."""
    path = tmp_path / "prices.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-price")
    monkeypatch.setenv("PRICE_TABLE_FILE", str(path))
    assert main(["run"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("ebook-pool: error: PRICE_TABLE_FILE: ") and shown in err
    assert err.count("\n") == 1 and "Traceback" not in err and out == ""


def test_a_toml_price_table_file_is_read(tmp_path: Path) -> None:
    """A TOML file overrides one model and keeps the built-in others."""
    from pool.pricing import BUILTIN_PRICES, load_price_table

    path = tmp_path / "prices.toml"
    path.write_text("[my-model]\ninput = 1.5\noutput = 2\n", encoding="utf-8")
    table = load_price_table(file=str(path))
    assert table.price_of("my-model") == (1.5, 2.0)
    assert table.price_of("gpt-4o-mini") == BUILTIN_PRICES["gpt-4o-mini"]
    assert json.dumps(table.cost_usd("my-model", 1_000_000, 500_000)) == "2.5"
