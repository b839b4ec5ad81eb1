"""`ebook-pool export`: an ebook's stored pages as one book, Markdown, HTML or EPUB.

Data first: `read_book` gathers the title and one `Chapter` per page (its heading, and its text
or why there is none); each renderer formats that same list, with a table of contents whose
entries are the pages. The HTML escapes every character of the model's text before giving it
structure (headings, paragraphs), so no markup a model writes reaches a reader; the EPUB is
built with ebooklib from the same HTML.
"""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from pool.deadletters import decode_failed
from pool.ebooks import read_errors, read_pages, read_status
from pool.keys import Keys

__all__ = [
    "FORMATS",
    "Book",
    "Chapter",
    "book_from",
    "read_book",
    "render",
    "render_epub",
    "render_html",
    "render_markdown",
]

Format = Literal["md", "html", "epub"]
FORMATS: tuple[Format, ...] = ("md", "html", "epub")

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


@dataclass(frozen=True, slots=True)
class Chapter:
    """One page: its heading, and its Markdown, or why it has none (`missing`)."""

    index: int
    heading: str
    content: str | None
    missing: str | None = None


@dataclass(frozen=True, slots=True)
class Book:
    """An ebook ready to render."""

    ebook_id: str
    title: str
    chapters: Sequence[Chapter]
    subtitle: str | None = None
    language: str = "en"


def book_from(
    ebook_id: str,
    pages: Mapping[int, Mapping[str, Any]],
    errors: Mapping[int, str],
    *,
    total: int | None = None,
    title: str | None = None,
    subtitle: str | None = None,
    headings: Mapping[int, str] | None = None,
) -> Book:
    """The book from stored page records and the reasons of the failed pages.

    Args:
        total: pages in the ebook (else the highest stored or failed index + 1).
        title: the book's title (else the `title` its pages recorded, else the ebook id).
        headings: page index → heading, for pages whose record has no `pageTitle` (or that
            have no record: a failed page's title from its dead letter).
    """
    indexes = [*pages, *errors]
    count = total if total is not None else (max(indexes) + 1 if indexes else 0)
    chapters = []
    for i in range(count):
        page = pages.get(i)
        heading = (page or {}).get("pageTitle") or (headings or {}).get(i) or f"Page {i + 1}"
        if page is not None:
            chapters.append(Chapter(i, str(heading), str(page.get("content", "")).strip()))
        else:
            why = errors.get(i)
            missing = (
                f"This page could not be written: {why}"
                if why is not None
                else "This page is not written yet."
            )
            chapters.append(Chapter(i, str(heading), None, missing))
    recorded = next((str(p["title"]) for p in pages.values() if p.get("title")), None)
    return Book(ebook_id, title or recorded or ebook_id, chapters, subtitle)


async def read_book(redis: Redis, keys: Keys, ebook_id: str) -> Book | None:
    """The ebook as stored in Redis, or None if it is unknown."""
    status = await read_status(redis, keys, ebook_id)
    pages = await read_pages(redis, keys, ebook_id)
    if status is None and not pages:
        return None
    errors = await read_errors(redis, keys, ebook_id)
    total = status["total"] if status else None
    missing = {i for i in errors if i not in pages}
    headings = await _failed_headings(redis, keys, ebook_id, missing) if missing else {}
    return book_from(ebook_id, pages, errors, total=total, headings=headings)


async def _failed_headings(
    redis: Redis, keys: Keys, ebook_id: str, indexes: set[int]
) -> dict[int, str]:
    """The pageTitle of each failed page in `indexes`, from its dead letter's payload (a failed
    page has no record; the failed list holds at most FAILED_LIST_MAX entries)."""
    found: dict[int, str] = {}
    for raw in await redis.lrange(keys.failed, 0, -1):
        entry = decode_failed(raw if isinstance(raw, bytes) else raw.encode())
        index, payload = entry.page_index, entry.job_bytes
        if entry.ebook_id != ebook_id or index not in indexes or index in found or not payload:
            continue
        try:
            title = json.loads(payload).get("pageTitle")
        except (ValueError, AttributeError):
            continue
        if isinstance(title, str) and title.strip():
            found[index] = title.strip()
    return found


def render(book: Book, fmt: Format) -> bytes:
    """The book in `fmt`, as the bytes of a file."""
    if fmt == "md":
        return render_markdown(book).encode("utf-8")
    if fmt == "html":
        return render_html(book).encode("utf-8")
    return render_epub(book)


def render_markdown(book: Book) -> str:
    """One Markdown document: title, contents, then each page (a failed page says why)."""
    parts = [f"# {book.title}\n"]
    if book.subtitle:
        parts.append(f"_{book.subtitle}_\n")
    parts.append("## Contents\n")
    parts.append("\n".join(f"{c.index + 1}. {c.heading}" for c in book.chapters) + "\n")
    for c in book.chapters:
        parts.append(f"<!-- page {c.index + 1} of {len(book.chapters)} -->")
        if c.content is not None:
            parts.append(c.content + "\n")
        else:
            parts.append(f"## {c.heading}\n\n> {c.missing}\n")
    return "\n".join(parts)


def render_html(book: Book) -> str:
    """One HTML5 document with a linked table of contents; every text is escaped."""
    e = html.escape
    toc = "\n".join(
        f'<li><a href="#page-{c.index + 1}">{e(c.heading)}</a></li>' for c in book.chapters
    )
    body = "\n".join(
        f'<section id="page-{c.index + 1}">\n{_chapter_html(c)}\n</section>' for c in book.chapters
    )
    subtitle = f"<p><em>{e(book.subtitle)}</em></p>\n" if book.subtitle else ""
    return (
        f'<!DOCTYPE html>\n<html lang="{e(book.language)}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{e(book.title)}</title>\n</head>\n<body>\n<h1>{e(book.title)}</h1>\n{subtitle}"
        f'<nav id="contents">\n<h2>Contents</h2>\n<ol>\n{toc}\n</ol>\n</nav>\n{body}\n'
        "</body>\n</html>\n"
    )


def render_epub(book: Book) -> bytes:
    """An EPUB 3 file (ebooklib): one chapter per page, its table of contents the pages."""
    from ebooklib import epub  # only when an EPUB is asked for

    out = epub.EpubBook()
    out.set_identifier(f"ebook-pool:{book.ebook_id}")
    out.set_title(book.title)
    out.set_language(book.language)
    chapters = []
    for c in book.chapters:
        chapter = epub.EpubHtml(
            title=c.heading, file_name=f"page-{c.index + 1}.xhtml", lang=book.language
        )
        chapter.content = f"<html><body>{_chapter_html(c)}</body></html>"
        out.add_item(chapter)
        chapters.append(chapter)
    out.toc = chapters
    out.add_item(epub.EpubNcx())
    out.add_item(epub.EpubNav())
    out.spine = ["nav", *chapters]
    buffer = io.BytesIO()
    epub.write_epub(buffer, out)
    return buffer.getvalue()


def _chapter_html(c: Chapter) -> str:
    if c.content is None:
        return f"<h2>{html.escape(c.heading)}</h2>\n<blockquote>{html.escape(c.missing or '')}</blockquote>"
    text = c.content
    if not _HEADING.match(text.lstrip().split("\n", 1)[0]):
        text = f"## {c.heading}\n\n{text}"
    return _markdown_blocks(text)


def _markdown_blocks(text: str) -> str:
    """Headings and paragraphs of Markdown, every character escaped (no inline markup)."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.strip().split("\n")
        heading = _HEADING.match(lines[0])
        if heading:
            level = max(2, len(heading.group(1)))  # h1 is the book's title
            out.append(f"<h{level}>{html.escape(heading.group(2).strip())}</h{level}>")
            lines = lines[1:]
        if lines:
            out.append("<p>" + "<br>\n".join(html.escape(line) for line in lines) + "</p>")
    return "\n".join(out)
