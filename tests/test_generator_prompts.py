"""The prompts: what a page is asked to be, and the user's template override."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.prompts import (
    DEFAULT_PROMPTS,
    PLACEHOLDERS,
    build_prompt,
    load_prompts,
    page_title_of,
    target_words_of,
)
from pool.config import ConfigError
from pool.job import PageJob

OUTLINE = [f"Chapter {n}" for n in range(1, 11)]


def make_job(**changes: object) -> PageJob:
    fields: dict[str, object] = {
        "ebook_id": "book-1",
        "page_index": 4,
        "total_pages": 10,
        "title": "The Home Barista",
        "topic": "Making good coffee at home",
        "outline": OUTLINE,
        "language": "English",
    }
    fields.update(changes)
    return PageJob.model_validate(fields)


def test_system_prompt_asks_for_one_page_with_a_heading_and_no_preamble() -> None:
    """The rules: Markdown heading, the page only, no 'Sure, here is', no book title."""
    system = build_prompt(make_job(), max_tokens=1500).system
    assert '"## "' in system
    assert "no preamble" in system
    assert "Sure, here is" in system
    assert "Do not put the book's title on the page" in system


def test_user_prompt_has_book_page_position_and_title() -> None:
    """The user message names the book, topic, page N of M and the page's title."""
    user = build_prompt(make_job(page_title="Grinding"), max_tokens=1500).user
    assert 'Book: "The Home Barista"' in user
    assert "Topic: Making good coffee at home" in user
    assert "This is page 5 of 10." in user
    assert 'Write the page titled "Grinding".' in user


def test_page_title_falls_back_to_outline_entry_then_page_number() -> None:
    """Without page_title the outline entry is the title; without outline, 'Page N'."""
    assert page_title_of(make_job()) == "Chapter 5"
    assert page_title_of(make_job(outline=None)) == "Page 5"
    assert page_title_of(make_job(page_title="Water")) == "Water"


def test_outline_neighbours_give_continuity() -> None:
    """A middle page knows the previous and next entries and sees the outline around it."""
    user = build_prompt(make_job(), max_tokens=1500).user
    assert 'after "Chapter 4" and before "Chapter 6"' in user
    assert "→ 5. Chapter 5" in user
    assert "  2. Chapter 2" in user and "  8. Chapter 8" in user
    assert "Chapter 1\n" not in user  # only three entries on each side
    assert "…" in user


def test_first_last_and_only_page_notes() -> None:
    """The first page opens the book, the last closes it, a single page covers it all."""
    assert "opens the book" in build_prompt(make_job(page_index=0), max_tokens=1500).user
    assert (
        'closes the book after "Chapter 9"'
        in build_prompt(make_job(page_index=9), max_tokens=1500).user
    )
    only = make_job(page_index=0, total_pages=1, outline=None)
    assert "only page of the book" in build_prompt(only, max_tokens=1500).user


def test_language_style_audience_and_instructions() -> None:
    """Language goes to the rules; style, audience and instructions to the brief."""
    job = make_job(
        language="pt-BR", style="friendly", audience="beginners", instructions="Use one example."
    )
    prompt = build_prompt(job, max_tokens=1500)
    assert "Write in pt-BR." in prompt.system
    assert "Style: friendly" in prompt.user
    assert "Audience: beginners" in prompt.user
    assert "Additional instructions for this page:\nUse one example." in prompt.user


def test_missing_optional_fields_leave_no_blank_runs() -> None:
    """Optional blocks that are empty do not leave runs of blank lines."""
    user = build_prompt(make_job(topic=None, outline=None), max_tokens=1500).user
    assert "\n\n\n" not in user
    assert "Topic:" not in user and "Outline" not in user


def test_target_words_from_job_or_fitting_max_tokens() -> None:
    """The length is the job's target_words, else 500 words capped by the token limit."""
    assert target_words_of(make_job(target_words=800), max_tokens=1500) == 800
    assert target_words_of(make_job(), max_tokens=1500) == 500
    assert target_words_of(make_job(), max_tokens=300) == 180
    assert "about 800 words" in build_prompt(make_job(target_words=800), max_tokens=1500).system


def test_template_file_overrides_one_prompt(tmp_path: Path) -> None:
    """A TOML file with only `user` replaces the user prompt and keeps the built-in system one."""
    path = tmp_path / "prompts.toml"
    path.write_text(
        'user = """Livro: {title}. Página {page_number}/{total_pages}: {page_title}. '
        '{{literal}}"""\n',
        encoding="utf-8",
    )
    prompts = load_prompts(path)
    assert prompts.source == str(path)
    assert prompts.system == DEFAULT_PROMPTS.system
    rendered = build_prompt(make_job(), max_tokens=1500, prompts=prompts)
    assert rendered.user == "Livro: The Home Barista. Página 5/10: Chapter 5. {literal}"


def test_every_placeholder_renders(tmp_path: Path) -> None:
    """Every documented placeholder is accepted and filled."""
    path = tmp_path / "all.toml"
    body = " ".join(f"<{name}={{{name}}}>" for name in PLACEHOLDERS)
    path.write_text(f"system = '''{body}'''\n", encoding="utf-8")
    rendered = build_prompt(make_job(), max_tokens=1500, prompts=load_prompts(path)).system
    assert "<page_number=5>" in rendered
    assert "<previous_title=Chapter 4>" in rendered
    assert "{" not in rendered


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("user = 'Page {page_numbr}'", "unknown placeholder {page_numbr}"),
        ("user = 'Page {page_number'", "bad template"),
        ("user = 'Page {}'", "unknown placeholder {}"),
        ("user = 'Page {page_number:d}'", "does not render"),
        ("user = 'x'\nassistant = 'y'", "unknown key(s) ['assistant']"),
        ("user = ''", "'user' must be a non-empty string"),
        ("user = 3", "'user' must be a non-empty string"),
        ("", "defines neither"),
        ("user = 'unterminated", "not valid TOML"),
    ],
)
def test_bad_template_is_a_config_error(tmp_path: Path, content: str, message: str) -> None:
    """A bad template file stops start-up with one line naming PROMPT_TEMPLATE_FILE and why."""
    path = tmp_path / "bad.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_prompts(path)
    text = str(caught.value)
    assert text.startswith(f"PROMPT_TEMPLATE_FILE {path}:")
    assert message in text
    assert "\n" not in text


def test_unreadable_template_is_a_config_error(tmp_path: Path) -> None:
    """A missing file is reported the same way."""
    with pytest.raises(ConfigError, match="cannot read it"):
        load_prompts(tmp_path / "missing.toml")
