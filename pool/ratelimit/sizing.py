"""How many completion tokens to ask for a page: enough for its length, not a flat 1,500.

OpenAI counts a request's `max_tokens` against the tokens-per-minute limit at admission,
whatever the page then uses, so a generous flat limit spends budget on nothing. The limit of
a page of `target_words` words is

    ceil(target_words * TOKENS_PER_WORD * MARGIN) + HEADING_TOKENS
    = ceil(words * 1.4 * 1.3) + 100          (500 words → 1,010 tokens)

1.4 tokens a word covers English (about 1.3) and most European languages; the 30% margin
covers a model that writes longer than asked; 100 tokens the heading and Markdown. A page cut
off at that limit (`finish_reason: "length"`) is retried once with `grown_max_tokens`, twice the
limit, and keeps that limit for its later attempts.
"""

from __future__ import annotations

import math

__all__ = [
    "GROWTH",
    "HEADING_TOKENS",
    "MARGIN",
    "MAX_GROWN_TOKENS",
    "TOKENS_PER_WORD",
    "grown_max_tokens",
    "page_max_tokens",
]

TOKENS_PER_WORD = 1.4
MARGIN = 1.3
HEADING_TOKENS = 100
GROWTH = 2.0
#: A grown limit stays at most this (or the limit it grew from, if that was larger already).
MAX_GROWN_TOKENS = 32_768


def page_max_tokens(target_words: int) -> int:
    """The completion token limit of a page of about `target_words` words."""
    if target_words < 1:
        raise ValueError(f"target_words must be >= 1, not {target_words}")
    return math.ceil(target_words * TOKENS_PER_WORD * MARGIN) + HEADING_TOKENS


def grown_max_tokens(limit: int) -> int:
    """The larger limit for the retry of a page that was cut off at `limit`."""
    return max(limit, min(math.ceil(limit * GROWTH), MAX_GROWN_TOKENS))
