"""Prompt tokens of a chat request, counted the way OpenAI counts them before admitting it.

Known model families are counted with their real BPE vocabulary (bpe-openai, which ships the
vocabularies: tiktoken would download them at run time): `o200k_base` for gpt-4o, gpt-4.1,
gpt-4.5, gpt-5, chatgpt-4o and the o-series (o1, o3, o4…), `cl100k_base` for gpt-4 and
gpt-3.5. Any other model (a local server's, a future one) is estimated at `CHARS_PER_TOKEN`
characters a token, OpenAI's own rule of thumb for English text.

A chat request costs, per message, `TOKENS_PER_MESSAGE` plus its role and content, plus
`REPLY_PRIMING_TOKENS` for the assistant's reply header (the OpenAI cookbook's formula).
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Iterable
from typing import Protocol, cast

__all__ = [
    "CHARS_PER_TOKEN",
    "REPLY_PRIMING_TOKENS",
    "TOKENS_PER_MESSAGE",
    "count_prompt_tokens",
    "count_text_tokens",
    "encoding_name",
    "preload",
]

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING_TOKENS = 3

_O200K = re.compile(r"^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|chatgpt-4o|o\d)(\b|[-.:_])")
_CL100K = re.compile(r"^(gpt-4|gpt-3\.5|gpt-35)(\b|[-.:_])")


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


def encoding_name(model: str) -> str | None:
    """The BPE vocabulary of `model`, or None when the model is not a known OpenAI family.

    Fine-tuned names (`ft:gpt-4o-mini:org::id`) and provider prefixes (`openai/gpt-4o`) count
    as their base model.
    """
    name = model.strip().lower().removeprefix("ft:").rsplit("/", 1)[-1]
    if _O200K.match(name):
        return "o200k_base"
    if _CL100K.match(name):
        return "cl100k_base"
    return None


@functools.cache
def _encoding(name: str) -> _Encoding:
    # Importing bpe_openai reads both vocabularies (~0.4 s, once), with a deprecated
    # importlib.resources call that warns.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import bpe_openai  # type: ignore[import-untyped]

        return cast(_Encoding, bpe_openai.get_encoding(name))


def preload() -> None:
    """Load the vocabularies now (~0.4 s) rather than on the first request's count."""
    _encoding("o200k_base")
    _encoding("cl100k_base")


def count_text_tokens(text: str, model: str) -> int:
    """Tokens of `text` for `model`: exact for known families, else `CHARS_PER_TOKEN` chars."""
    if not text:
        return 0
    name = encoding_name(model)
    if name is None:
        return math.ceil(len(text) / CHARS_PER_TOKEN)
    return len(_encoding(name).encode_ordinary(text))


def count_prompt_tokens(messages: Iterable[tuple[str, str]], model: str) -> int:
    """Prompt tokens of a chat request made of (role, content) messages."""
    total = REPLY_PRIMING_TOKENS
    for role, content in messages:
        total += TOKENS_PER_MESSAGE + count_text_tokens(role, model)
        total += count_text_tokens(content, model)
    return total
