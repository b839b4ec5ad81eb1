"""The kinds of answer the simulator serves, and how one is chosen for a request.

A fault comes either from a marker in the prompt, which makes it deterministic for that one
request (a job whose instructions say `[sim:context_length]` always fails that way), or from
the configured rates, drawn from the simulator's seeded random sequence (so a retried request
is not doomed to the same fault).

Markers: `[sim:NAME]` with NAME one of the `Kind` values below that a request can trigger
(`server_error`, `hang`, `drop`, `malformed`, `no_choices`, `truncated`, `empty`, `refusal`,
`content_filter`, `context_length`, `content_policy`, `invalid_prompt`), or
`[sim:status=NNN]` / `[sim:status=NNN:code]` for an error answer of any status and code.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from enum import StrEnum

from generator.simulator.config import SimulatorConfig

__all__ = ["MARKER_KINDS", "Fault", "Kind", "draw_fault", "find_marker"]


class Kind(StrEnum):
    """What one answer was; the stats count answers by kind."""

    OK = "ok"
    RATE_LIMITED = "rate_limited"
    BAD_KEY = "bad_key"
    PERMISSION_DENIED = "permission_denied"
    MODEL_NOT_FOUND = "model_not_found"
    INSUFFICIENT_QUOTA = "insufficient_quota"
    BAD_REQUEST = "bad_request"
    CONTEXT_LENGTH = "context_length"
    CONTENT_POLICY = "content_policy"
    INVALID_PROMPT = "invalid_prompt"
    STATUS = "status"
    SERVER_ERROR = "server_error"
    HANG = "hang"
    DROP = "drop"
    MALFORMED = "malformed"
    NO_CHOICES = "no_choices"
    TRUNCATED = "truncated"
    EMPTY = "empty"
    REFUSAL = "refusal"
    CONTENT_FILTER = "content_filter"


#: Kinds a `[sim:NAME]` marker can ask for.
MARKER_KINDS = frozenset(
    {
        Kind.SERVER_ERROR,
        Kind.HANG,
        Kind.DROP,
        Kind.MALFORMED,
        Kind.NO_CHOICES,
        Kind.TRUNCATED,
        Kind.EMPTY,
        Kind.REFUSAL,
        Kind.CONTENT_FILTER,
        Kind.CONTEXT_LENGTH,
        Kind.CONTENT_POLICY,
        Kind.INVALID_PROMPT,
    }
)

_MARKER = re.compile(
    r"\[sim:(?:status=(?P<status>\d{3})(?::(?P<code>[\w.-]+))?|(?P<name>[a-z_]+))\]"
)


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault to serve; `status` and `code` only for `Kind.STATUS`."""

    kind: Kind
    status: int = 0
    code: str | None = None


def find_marker(prompt: str) -> Fault | None:
    """The first valid `[sim:...]` marker in the prompt, if any."""
    for match in _MARKER.finditer(prompt):
        if match.group("status"):
            status = int(match.group("status"))
            if 400 <= status <= 599:
                return Fault(Kind.STATUS, status=status, code=match.group("code"))
        elif match.group("name") in MARKER_KINDS:
            return Fault(Kind(match.group("name")))
    return None


def draw_fault(config: SimulatorConfig, rng: random.Random) -> Fault | None:
    """A random fault by the configured rates, or None for a normal answer."""
    rates = (
        (config.error_rate, Kind.SERVER_ERROR),
        (config.hang_rate, Kind.HANG),
        (config.drop_rate, Kind.DROP),
        (config.malformed_rate, Kind.MALFORMED),
        (config.truncate_rate, Kind.TRUNCATED),
        (config.empty_rate, Kind.EMPTY),
    )
    if not any(rate for rate, _ in rates):
        return None
    draw = rng.random()
    for rate, kind in rates:
        if draw < rate:
            if kind is Kind.MALFORMED and rng.random() < 0.5:
                kind = Kind.NO_CHOICES
            return Fault(kind)
        draw -= rate
    return None
