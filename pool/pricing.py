"""What an API request cost: a built-in price table for OpenAI's common models, and overrides.

Prices are US dollars per 1M tokens (input, output), OpenAI's standard tier as published on
`PRICES_AS_OF`; cached-input discounts and the Batch API are not modelled. Overrides:

- `PRICE_TABLE_FILE`: a JSON or TOML file `{"model": {"input": 0.15, "output": 0.6}, ...}`,
  merged over the built-in table (a model there replaces the built-in one);
- `OPENAI_PRICE_INPUT_PER_1M` / `OPENAI_PRICE_OUTPUT_PER_1M`: one price for every model (an
  OpenAI-compatible server that bills its own way; 0 for a free local one).

A model is priced by its exact name, else by the longest table name it starts with followed by
`-` (the API reports `gpt-4o-mini-2024-07-18` for `gpt-4o-mini`); an unknown model costs 0.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pool.shared import ConfigError

__all__ = ["BUILTIN_PRICES", "PRICES_AS_OF", "PriceTable", "load_price_table"]

#: When the built-in prices were last checked. Not against OpenAI's own page (the session that
#: checked them could not read https://openai.com/api/pricing/): against third-party copies
#: of it that agree with each other, all fetched on 2026-12-01 (README, "What pages cost"):
#: deploybase.ai/articles/openai-pricing ("OpenAI pricing page, March 2026": the gpt-5,
#: gpt-4.1, gpt-4o, o3 and o4-mini rows), aimodelcalc.pages.dev ("platform.openai.com/docs/
#: pricing, May 2026": gpt-4o, gpt-4o-mini, o1, o3-mini, gpt-3.5-turbo), docs.rs
#: openai-models (o1, gpt-4o, gpt-4o-mini). gpt-4-turbo (10/30) only from an undated 2024 table
#: (github.com/kunishou/GenerativeAI-Cost): unverified.
PRICES_AS_OF = "2026-12-01"

#: Model → (input, output) USD per 1M tokens.
BUILTIN_PRICES: Mapping[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "o4-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o1": (15.00, 60.00),
    "gpt-4-turbo": (10.00, 30.00),
    "gpt-3.5-turbo": (0.50, 1.50),
}

_PER_TOKEN = 1e-6


@dataclass(slots=True)
class PriceTable:
    """Prices per model, and the cost of a request.

    Args:
        prices: model → (input, output) USD per 1M tokens.
        flat: one (input, output) price for every model, replacing the table.
        default_model: the model of a request whose model is not known (OPENAI_MODEL).
    """

    prices: Mapping[str, tuple[float, float]] = field(default_factory=lambda: BUILTIN_PRICES)
    flat: tuple[float, float] | None = None
    default_model: str | None = None
    _resolved: dict[str | None, tuple[float, float]] = field(default_factory=dict, repr=False)

    def price_of(self, model: str | None) -> tuple[float, float]:
        """(input, output) USD per 1M tokens of `model`; (0, 0) if it is not in the table."""
        found = self._resolved.get(model)
        if found is None:
            found = self._resolved[model] = self._lookup(model or self.default_model)
        return found

    def cost_usd(self, model: str | None, prompt_tokens: int, completion_tokens: int) -> float:
        """What a request with this usage cost."""
        if not (prompt_tokens or completion_tokens):
            return 0.0
        inp, out = self.price_of(model)
        return (prompt_tokens * inp + completion_tokens * out) * _PER_TOKEN

    def _lookup(self, model: str | None) -> tuple[float, float]:
        if self.flat is not None:
            return self.flat
        if model is None:
            return (0.0, 0.0)
        if model in self.prices:
            return self.prices[model]
        prefixes = [name for name in self.prices if model.startswith(name + "-")]
        return self.prices[max(prefixes, key=len)] if prefixes else (0.0, 0.0)


def load_price_table(
    *,
    file: str | None = None,
    input_per_1m: float | None = None,
    output_per_1m: float | None = None,
    default_model: str | None = None,
) -> PriceTable:
    """The built-in table with the overrides (see the module docstring).

    Raises:
        ConfigError: the file cannot be read or does not hold model → {input, output} numbers.
    """
    prices = dict(BUILTIN_PRICES)
    if file is not None:
        prices |= _read_file(Path(file))
    flat = None
    if input_per_1m is not None or output_per_1m is not None:
        flat = (input_per_1m or 0.0, output_per_1m or 0.0)
    return PriceTable(prices=prices, flat=flat, default_model=default_model)


def _read_file(path: Path) -> dict[str, tuple[float, float]]:
    try:
        text = path.read_text(encoding="utf-8")
        data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"PRICE_TABLE_FILE: cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"PRICE_TABLE_FILE: {path} must hold a table of models")
    out = {}
    for model, row in data.items():
        try:
            inp, outp = float(row["input"]), float(row["output"])
        except (TypeError, KeyError, ValueError):
            raise ConfigError(
                f"PRICE_TABLE_FILE: {model!r} needs numeric 'input' and 'output' (USD per 1M tokens)"
            ) from None
        if inp < 0 or outp < 0:
            raise ConfigError(f"PRICE_TABLE_FILE: {model!r} has a negative price")
        out[str(model)] = (inp, outp)
    return out
