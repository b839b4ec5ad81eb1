"""The prompts that turn one page job into one page of a book.

Two templates, `system` and `user`, written with `{placeholders}` (Python `str.format` syntax,
`{{` for a literal brace). The built-in ones are below; PROMPT_TEMPLATE_FILE points at a TOML
file that replaces either or both, e.g.::

    system = '''You write one page of a book at a time, in {language}. ...'''
    user = '''Book: "{title}". Page {page_number} of {total_pages}: "{page_title}". ...'''

`PLACEHOLDERS` lists every name a template may use. A template that uses an unknown name, does
not parse, or fails to render is rejected by `load_prompts` with a one-line `ConfigError`, so a
typo stops the pool at start-up instead of failing every page.
"""

from __future__ import annotations

import re
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pool.job import OUTLINE_RADIUS, PageJob
from pool.shared import ConfigError

__all__ = [
    "DEFAULT_PROMPTS",
    "PLACEHOLDERS",
    "PromptTemplates",
    "RenderedPrompt",
    "build_prompt",
    "load_prompts",
    "page_title_of",
    "target_words_of",
]

_SYSTEM = """\
You are an experienced author writing a book one page at a time. Each answer is exactly one \
page of the book, ready to print.

Rules:
- Write in {language}.
- Begin with a level-2 Markdown heading ("## ") carrying this page's title. Do not put the \
book's title on the page.
- Write about {target_words} words: paragraphs, with a list or a short example only where it \
helps the reader.
- Output the page and nothing else: no preamble such as "Sure, here is", no closing remarks, \
no notes about the writing.
- Keep continuity with the rest of the book: do not repeat what the neighbouring pages cover \
and do not summarise the book so far.
"""

_USER = """\
{book_block}

This is page {page_number} of {total_pages}. {position_note}

{outline_block}

Write the page titled "{page_title}".
{instructions_block}"""


@dataclass(frozen=True, slots=True)
class PromptTemplates:
    """The two prompt templates and where they came from (for logs)."""

    system: str
    user: str
    source: str = "built-in"


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """The system and user messages of one page."""

    system: str
    user: str


DEFAULT_PROMPTS = PromptTemplates(system=_SYSTEM, user=_USER)

#: Every name a template may use, with what it holds.
PLACEHOLDERS: dict[str, str] = {
    "title": "the book's title",
    "topic": "what the book is about ('' if not given)",
    "audience": "who the book is for ('' if not given)",
    "style": "tone and style ('' if not given)",
    "language": "language to write in, e.g. 'English'",
    "page_title": "this page's title (page_title, else its outline entry, else 'Page N')",
    "page_number": "1-based number of this page",
    "page_index": "0-based index of this page",
    "total_pages": "number of pages in the book",
    "target_words": "approximate length of the page in words",
    "instructions": "extra instructions for this page ('' if not given)",
    "previous_title": "title of the previous page ('' on the first page or without outline)",
    "next_title": "title of the next page ('' on the last page or without outline)",
    "book_block": "lines 'Book: ...', 'Topic: ...', 'Audience: ...', 'Style: ...' (given ones)",
    "position_note": "a sentence on where the page sits: opening, closing, or between neighbours",
    "outline_block": "the outline around this page, this page marked with '→' ('' without outline)",
    "instructions_block": "'Additional instructions for this page:' + instructions, or ''",
}

_OUTLINE_RADIUS = OUTLINE_RADIUS  # outline entries shown on each side of the page
_DEFAULT_WORDS = 500
_BLANK_LINES = re.compile(r"\n{3,}")
_TEMPLATE_KEYS = ("system", "user")


def page_title_of(job: PageJob) -> str:
    """The page's title: `page_title`, else its outline entry, else 'Page N'."""
    if job.page_title:
        return job.page_title
    entry = _outline_entry(job, job.page_index)
    return entry or f"Page {job.page_index + 1}"


def target_words_of(job: PageJob, *, max_tokens: int) -> int:
    """The page length asked for: `target_words`, else 500 words capped to fit `max_tokens`."""
    if job.target_words is not None:
        return job.target_words
    # About 0.75 words per token in English; keep headroom for the heading and other languages.
    fitting = int(max_tokens * 0.6) // 10 * 10
    return max(20, min(_DEFAULT_WORDS, fitting))


def build_prompt(
    job: PageJob, *, max_tokens: int, prompts: PromptTemplates = DEFAULT_PROMPTS
) -> RenderedPrompt:
    """Render the system and user messages of one page.

    Args:
        job: the page to write.
        max_tokens: the completion token limit of the call, used when the job sets no length.
        prompts: the templates; `load_prompts` has validated them.
    """
    fields = _fields(job, max_tokens=max_tokens)
    return RenderedPrompt(
        system=_tidy(prompts.system.format_map(fields)),
        user=_tidy(prompts.user.format_map(fields)),
    )


def load_prompts(path: Path | None) -> PromptTemplates:
    """The built-in prompts, with the templates in the TOML file at `path` replacing them.

    The file holds `system = '''...'''` and/or `user = '''...'''` and nothing else.

    Raises:
        ConfigError: the file cannot be read, is not TOML, has other keys, or a template uses
            an unknown placeholder or does not render.
    """
    if path is None:
        return DEFAULT_PROMPTS
    where = f"PROMPT_TEMPLATE_FILE {path}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_TEMPLATE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: 'system', 'user'")
    if not data:
        raise ConfigError(f"{where}: defines neither 'system' nor 'user'")
    templates = {"system": DEFAULT_PROMPTS.system, "user": DEFAULT_PROMPTS.user}
    for key, value in data.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: '{key}' must be a non-empty string")
        _check_template(value, where=f"{where}: '{key}'")
        templates[key] = value
    prompts = PromptTemplates(system=templates["system"], user=templates["user"], source=str(path))
    _trial_render(prompts, where=where)
    return prompts


def _check_template(template: str, *, where: str) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(
            f"{where}: bad template: {exc} (write {{{{ for a literal brace)"
        ) from None
    for _literal, name, _spec, _conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            known = ", ".join(PLACEHOLDERS)
            raise ConfigError(f"{where}: unknown placeholder {{{name}}}; known: {known}")


def _trial_render(prompts: PromptTemplates, *, where: str) -> None:
    # Catches what parsing cannot, e.g. a format spec like {page_number:d} on a string value.
    sample = PageJob(
        ebook_id="sample",
        page_index=1,
        total_pages=3,
        title="Sample",
        outline=["One", "Two", "Three"],
    )
    try:
        build_prompt(sample, max_tokens=1000, prompts=prompts)
    except (ValueError, KeyError, IndexError) as exc:
        raise ConfigError(f"{where}: template does not render: {exc}") from None


def _outline_entry(job: PageJob, index: int) -> str:
    entry = job.outline_entry(index) if index >= 0 else None
    return entry.strip() if entry is not None else ""


def _fields(job: PageJob, *, max_tokens: int) -> dict[str, str]:
    page_title = page_title_of(job)
    previous_title = _outline_entry(job, job.page_index - 1) if job.page_index > 0 else ""
    next_title = _outline_entry(job, job.page_index + 1)
    return {
        "title": job.title,
        "topic": job.topic or "",
        "audience": job.audience or "",
        "style": job.style or "",
        "language": job.language,
        "page_title": page_title,
        "page_number": str(job.page_index + 1),
        "page_index": str(job.page_index),
        "total_pages": str(job.total_pages),
        "target_words": str(target_words_of(job, max_tokens=max_tokens)),
        "instructions": job.instructions or "",
        "previous_title": previous_title,
        "next_title": next_title,
        "book_block": _book_block(job),
        "position_note": _position_note(job, previous_title, next_title),
        "outline_block": _outline_block(job),
        "instructions_block": (
            f"\nAdditional instructions for this page:\n{job.instructions}"
            if job.instructions
            else ""
        ),
    }


def _book_block(job: PageJob) -> str:
    lines = [f'Book: "{job.title}"']
    if job.topic:
        lines.append(f"Topic: {job.topic}")
    if job.audience:
        lines.append(f"Audience: {job.audience}")
    if job.style:
        lines.append(f"Style: {job.style}")
    return "\n".join(lines)


def _position_note(job: PageJob, previous_title: str, next_title: str) -> str:
    if job.total_pages == 1:
        return "It is the only page of the book: cover the subject completely."
    if job.page_index == 0:
        lead = f' The next page, "{next_title}", takes it from there.' if next_title else ""
        return f"It opens the book: introduce the subject and draw the reader in.{lead}"
    if job.page_index == job.total_pages - 1:
        after = f' after "{previous_title}"' if previous_title else ""
        return f"It closes the book{after}: bring the threads together and end clearly."
    if previous_title and next_title:
        return (
            f'It comes after "{previous_title}" and before "{next_title}": pick up where the '
            "previous page left off without repeating it, and leave the next page's subject "
            "for the next page."
        )
    return "It continues from the previous page and leads into the next one."


def _outline_block(job: PageJob) -> str:
    if not job.outline:
        return ""
    # The job may carry the whole outline or a window of it (`outline_start`); pages outside
    # what it carries are left out, and "…" marks pages of the book before or after the block.
    carried_end = job.outline_start + len(job.outline)
    first = max(0, job.outline_start, job.page_index - _OUTLINE_RADIUS)
    last = min(carried_end, job.page_index + _OUTLINE_RADIUS + 1)
    if first >= last:
        return ""
    book_end = max(job.total_pages, carried_end)
    lines = ["Outline around this page (→ marks this page):"]
    if first > 0:
        lines.append("  …")
    for index in range(first, last):
        mark = "→" if index == job.page_index else " "
        lines.append(f"{mark} {index + 1}. {job.outline[index - job.outline_start].strip()}")
    if last < book_end:
        lines.append("  …")
    return "\n".join(lines)


def _tidy(text: str) -> str:
    # Optional blocks render as '' and would leave runs of blank lines behind.
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()
