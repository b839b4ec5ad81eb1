"""What a request cost in USD, for the `ebook_pool_cost_usd_total` metric.

TODO(ledger): the ledger issue brings the real price table (and cost per ebook); replace this
tiny table with it when that module lands. Until then, only OpenAI's gpt-4o-mini and gpt-4o
are priced (USD per million tokens, standard tier, as published in 2025); every other model
(the simulator's, a local server's) costs 0.
"""

from __future__ import annotations

import functools

__all__ = ["cost_usd", "price_per_token"]

#: model → (USD per million prompt tokens, USD per million completion tokens). Longest match
#: wins, so a dated snapshot such as "gpt-4o-mini-2024-07-18" is priced as "gpt-4o-mini".
_USD_PER_MILLION: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
}


@functools.lru_cache(maxsize=256)
def price_per_token(model: str) -> tuple[float, float]:
    """USD per prompt token and per completion token of `model`; (0, 0) when not priced."""
    for name in sorted(_USD_PER_MILLION, key=len, reverse=True):
        if model == name or model.startswith(f"{name}-"):
            prompt, completion = _USD_PER_MILLION[name]
            return prompt / 1e6, completion / 1e6
    return 0.0, 0.0


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """What `model` charges for one request with these token counts."""
    prompt, completion = price_per_token(model)
    return prompt * prompt_tokens + completion * completion_tokens
