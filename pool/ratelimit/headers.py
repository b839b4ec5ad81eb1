"""The numbers in an answer's `x-ratelimit-*` headers that the governor acts on."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RateHeaders"]


@dataclass(frozen=True, slots=True)
class RateHeaders:
    """Limits and what remains of them, as the API reported; None where it did not say.

    Attributes:
        limit_requests / limit_tokens: `x-ratelimit-limit-requests|tokens` (per minute).
        remaining_requests / remaining_tokens: `x-ratelimit-remaining-requests|tokens`.
    """

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None

    @classmethod
    def parse(cls, headers: Mapping[str, str] | None) -> RateHeaders:
        """Read them from response headers (any case); bad or missing values are None."""
        if not headers:
            return cls()
        lower = {k.lower(): v for k, v in headers.items()}

        def number(name: str) -> int | None:
            raw = lower.get(f"x-ratelimit-{name}")
            try:
                value = float(raw) if raw is not None else math.nan
            except ValueError:
                return None
            return int(value) if math.isfinite(value) and value >= 0 else None

        return cls(
            limit_requests=number("limit-requests"),
            limit_tokens=number("limit-tokens"),
            remaining_requests=number("remaining-requests"),
            remaining_tokens=number("remaining-tokens"),
        )

    @property
    def has_limits(self) -> bool:
        """The answer said at least one limit."""
        return self.limit_requests is not None or self.limit_tokens is not None
