"""Page text that reads like a page: a heading, paragraphs, sometimes a list.

Deterministic: the same seed and prompt give the same page. Cheap: sentences are precomputed
templates around one subject slot, so a page is a few dozen string joins, and tokens are
counted as OpenAI's rule of thumb has it, four characters a token.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

__all__ = ["Page", "count_tokens", "cut_page", "find_page_title", "find_target_words", "write_page"]

_SENTENCES = (
    "Most readers come to {s} with a few assumptions, and it pays to look at them closely.",
    "The first thing to notice about {s} is how much depends on small, early choices.",
    "A good way to think about {s} is as a habit rather than a single decision.",
    "People who get good at {s} rarely do it by accident; they practise the basics until they are boring.",
    "It helps to start with a concrete example before reaching for the general rule.",
    "None of this requires special talent, only attention and a little patience.",
    "When {s} goes wrong, the cause is usually simpler than it first appears.",
    "There is no single right way here, but some ways are clearly better than others.",
    "Take a moment to compare this with what you already know.",
    "The details matter less than the direction: small steps, repeated often, add up.",
    "Experienced practitioners of {s} tend to keep their tools simple and their notes honest.",
    "A common mistake is to try everything at once and learn nothing from any of it.",
    "Try it once by hand, slowly, and the reasons behind each step become obvious.",
    "The rest of this page looks at what that means in practice.",
    "This is where {s} stops being an idea and starts being something you can do.",
    "Write down what you tried and what happened; memory is a poor laboratory.",
    "Most of the apparent complexity of {s} comes from a handful of recurring patterns.",
    "Once those patterns are familiar, the rest falls into place surprisingly quickly.",
    "It is worth asking, each time, what problem a given step is really solving.",
    "Good results come from understanding the trade-offs, not from memorising answers.",
    "Seen from a distance, {s} is mostly about noticing what changes and what stays the same.",
    "Resist the urge to optimise before you have something that works.",
    "Feedback, early and often, is the fastest teacher there is.",
    "The same principle applies whether you are just starting or have years of experience.",
    "In the end, {s} rewards those who keep things clear and consistent.",
    "A short checklist can prevent most of the errors that beginners make.",
    "Consider what would happen if you removed one step entirely: would anything break?",
    "That question alone clears away a surprising amount of unnecessary effort.",
    "The goal is not perfection but steady, visible progress.",
    "Each small improvement to {s} makes the next one easier to see.",
    "It is tempting to skip this part, and almost everyone who does regrets it later.",
    "Think of the reader, the user or the customer first, and the technique second.",
)

_LIST_ITEMS = (
    "Start small with {s} and build from there.",
    "Keep a record of what you change and why.",
    "Check the result against what you expected before moving on.",
    "Ask for feedback early, while changes are still cheap.",
    "Set aside regular time to practise {s}.",
    "Review your mistakes without judging them.",
    "Prefer simple, repeatable steps over clever ones.",
    "Return to the basics whenever you feel stuck.",
)

_LIST_INTROS = (
    "A few practical steps make this easier:",
    "In practice, that comes down to a handful of habits:",
    "Keep these points in mind:",
)

_TITLED = re.compile(r'titled\s+["“«]([^"”»\n]{1,200})["”»]', re.IGNORECASE)
_HEADING = re.compile(r"^#{1,3}\s+(.{1,200})$", re.MULTILINE)
_PAGE_OF = re.compile(r"\bpage\s+(\d{1,5})\s+of\s+(\d{1,5})\b", re.IGNORECASE)
_WORDS = re.compile(
    r"\b(?:about|around|approximately|roughly)\s+(\d{1,5})\s+words\b", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class Page:
    """A written page: its text, its size in tokens, and whether it hit the token limit."""

    text: str
    tokens: int
    truncated: bool


def count_tokens(text: str) -> int:
    """Tokens in `text` by OpenAI's rule of thumb: about four characters a token."""
    return max(1, math.ceil(len(text) / 4))


def find_page_title(prompt: str) -> str:
    """The page title a prompt asks for ('titled "…"', else a heading, else 'Page N')."""
    for pattern in (_TITLED, _HEADING):
        match = pattern.search(prompt)
        if match:
            return match.group(1).strip()
    match = _PAGE_OF.search(prompt)
    return f"Page {match.group(1)}" if match else "A New Page"


def find_target_words(prompt: str) -> int | None:
    """The length a prompt asks for ('about 500 words'), if it says."""
    match = _WORDS.search(prompt)
    return int(match.group(1)) if match else None


def write_page(prompt: str, *, max_tokens: int, seed: int) -> Page:
    """A page answering `prompt`, at most `max_tokens` tokens long.

    Args:
        prompt: the request's messages, joined; the title and length are read from it.
        max_tokens: the completion token limit; a longer page is cut and marked truncated.
        seed: the simulator's seed; with the prompt it fixes the text.
    """
    if max_tokens < 16:
        # A probe or a tiny completion: answer briefly, like a model would.
        return Page(text="OK", tokens=1, truncated=False)
    rng = random.Random(f"{seed}|{max_tokens}|{prompt}")
    title = find_page_title(prompt)
    subject = title.lower().rstrip(".:!?")
    words = find_target_words(prompt) or min(600, int(max_tokens * 0.6))
    parts = [f"## {title}\n"]
    written = 0
    with_list = rng.random() < 0.5
    paragraph_count = 0
    while written < words:
        size = rng.randint(3, 6)
        paragraph = " ".join(rng.choice(_SENTENCES).replace("{s}", subject) for _ in range(size))
        parts.append(paragraph + "\n")
        written += paragraph.count(" ") + 1
        paragraph_count += 1
        if with_list and paragraph_count == 2 and written < words:
            items = rng.sample(_LIST_ITEMS, rng.randint(3, 4))
            listing = "\n".join(f"- {item.replace('{s}', subject)}" for item in items)
            parts.append(f"{rng.choice(_LIST_INTROS)}\n\n{listing}\n")
            written += listing.count(" ") + len(items)
    text = "\n".join(parts).strip()
    tokens = count_tokens(text)
    if tokens <= max_tokens:
        return Page(text=text, tokens=tokens, truncated=False)
    return cut_page(text, tokens=max_tokens)


def cut_page(text: str, *, tokens: int) -> Page:
    """`text` cut to about `tokens` tokens, mid-sentence like a real truncated answer."""
    cut = text[: tokens * 4].rstrip()
    return Page(text=cut, tokens=count_tokens(cut), truncated=True)
