"""`SimulatorConfig`: everything the simulator can be told, in one frozen dataclass.

The same field names are the CLI flags (`--rpm 60`, `--bad-key`) and the keys of
`POST /_sim/config` (`{"rpm": 60, "bad_key": true}`); `replace_config` checks and applies a
partial update from either, so the three ways of configuring it cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DEFAULT_MODELS",
    "FAULT_RATES",
    "RetryHint",
    "SimulatorConfig",
    "field_specs",
    "replace_config",
]

#: Models the simulator knows by default; any other name gets a 404 `model_not_found`.
DEFAULT_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-3.5-turbo",
    "o4-mini",
    "sim-writer",
)

RetryHint = Literal["all", "ms", "seconds", "date", "message", "none"]

#: The fields that are probabilities of a random fault, per chat completion request.
FAULT_RATES = (
    "error_rate",
    "hang_rate",
    "drop_rate",
    "malformed_rate",
    "truncate_rate",
    "empty_rate",
)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """How the simulated OpenAI API behaves. Change it at runtime with `Simulator.update`."""

    seed: int = field(default=0, metadata=_help("Seed of the page texts and of the fault draws."))
    models: tuple[str, ...] = field(
        default=DEFAULT_MODELS,
        metadata=_help("Known model names (comma-separated); empty = accept any model."),
    )
    latency_s: float = field(default=0.0, metadata=_help("Fixed latency of an answer, seconds."))
    latency_per_token_s: float = field(
        default=0.0,
        metadata=_help("Extra latency per completion token, seconds (0.01 = 100 tok/s)."),
    )
    jitter: float = field(
        default=0.2, metadata=_help("Relative random spread of the latency (0.2 = ±20%%).")
    )
    rpm: int | None = field(default=None, metadata=_help("Requests per window; none = unlimited."))
    tpm: int | None = field(
        default=None,
        metadata=_help("Tokens (prompt + max_tokens) per window; none = unlimited."),
    )
    rate_window_s: float = field(
        default=60.0,
        metadata=_help("Window the rpm/tpm limits refill over, seconds (60 = per minute)."),
    )
    rate_bucket_s: float | None = field(
        default=None,
        metadata=_help(
            "Seconds of the rpm/tpm limits a bucket holds, its burst; none = rate_window_s "
            "(the whole window). 10 = OpenAI-like, limits enforced over shorter spans."
        ),
    )
    count_refused: bool = field(
        default=False,
        metadata=_help(
            "A refused request still takes its units from the limits, as OpenAI counts them."
        ),
    )
    retry_hint: RetryHint = field(
        default="all",
        metadata=_help(
            "What a 429 rate_limit_exceeded says about when to retry: all (retry-after-ms, "
            "retry-after and the message), ms, seconds, date (retry-after as HTTP date), "
            "message ('try again in 1.5s'), none."
        ),
    )
    ratelimit_headers: bool = field(
        default=True, metadata=_help("Send x-ratelimit-* headers (when rpm/tpm is set).")
    )
    context_window: int = field(
        default=128_000,
        metadata=_help("Prompt + max_tokens above this gets 400 context_length_exceeded."),
    )
    error_rate: float = field(default=0.0, metadata=_help("Probability of a 500/502/503 answer."))
    hang_rate: float = field(
        default=0.0,
        metadata=_help("Probability of no answer for hang_s (past the client timeout)."),
    )
    drop_rate: float = field(
        default=0.0, metadata=_help("Probability of closing the connection without an answer.")
    )
    malformed_rate: float = field(
        default=0.0,
        metadata=_help("Probability of a 200 whose body is broken JSON or has no choices."),
    )
    truncate_rate: float = field(
        default=0.0, metadata=_help("Probability of a cut-off page with finish_reason 'length'.")
    )
    empty_rate: float = field(
        default=0.0, metadata=_help("Probability of a 200 with empty content.")
    )
    hang_s: float = field(default=600.0, metadata=_help("How long a hang lasts, seconds."))
    bad_key: bool = field(
        default=False, metadata=_help("Answer every /v1 request with 401 invalid_api_key.")
    )
    insufficient_quota: bool = field(
        default=False, metadata=_help("Answer completions with 429 insufficient_quota.")
    )
    permission_denied: bool = field(
        default=False, metadata=_help("Answer completions and model lookups with 403.")
    )

    def __post_init__(self) -> None:
        for name in (*FAULT_RATES, "jitter"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        total = sum(getattr(self, name) for name in FAULT_RATES)
        if total > 1.0 + 1e-9:
            raise ValueError(f"the fault rates add up to {total:g}, more than 1")
        for name in ("latency_s", "latency_per_token_s", "hang_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a number >= 0, not {value}")
        if not (math.isfinite(self.rate_window_s) and self.rate_window_s > 0):
            raise ValueError(f"rate_window_s must be > 0, not {self.rate_window_s}")
        bucket = self.rate_bucket_s
        if bucket is not None and not (math.isfinite(bucket) and bucket > 0):
            raise ValueError(f"rate_bucket_s must be > 0 or none, not {bucket}")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or none, not {value}")
        if self.context_window < 1:
            raise ValueError(f"context_window must be >= 1, not {self.context_window}")

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-ready values (what `GET /_sim/config` returns)."""
        out = dataclasses.asdict(self)
        out["models"] = list(self.models)
        return out


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How one config field is parsed: its base type, whether it may be None, its choices."""

    name: str
    kind: type
    optional: bool
    choices: tuple[str, ...]
    help: str
    default: Any


def _spec(f: dataclasses.Field[Any], hint: Any) -> FieldSpec:
    optional = False
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        optional = type(None) in args
        hint = next(a for a in args if a is not type(None))
    choices: tuple[str, ...] = ()
    if typing.get_origin(hint) is Literal:
        choices = tuple(str(a) for a in typing.get_args(hint))
        kind: type = str
    elif typing.get_origin(hint) is tuple:
        kind = tuple
    else:
        kind = hint
    return FieldSpec(f.name, kind, optional, choices, f.metadata.get("help", ""), f.default)


def field_specs() -> tuple[FieldSpec, ...]:
    """How each field of `SimulatorConfig` is parsed, in declaration order."""
    hints = typing.get_type_hints(SimulatorConfig)
    return tuple(_spec(f, hints[f.name]) for f in dataclasses.fields(SimulatorConfig))


def replace_config(config: SimulatorConfig, changes: Mapping[str, Any]) -> SimulatorConfig:
    """`config` with `changes` applied, values given as JSON values or as CLI strings.

    Raises:
        ValueError: an unknown field, a value of the wrong type, or a value out of range;
            the message is one line that names the field.
    """
    specs = {spec.name: spec for spec in field_specs()}
    unknown = sorted(set(changes) - set(specs))
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; known: {', '.join(specs)}")
    parsed = {name: _parse(specs[name], value) for name, value in changes.items()}
    return dataclasses.replace(config, **parsed)


def _parse(spec: FieldSpec, value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
    if spec.optional and (
        value is None or (isinstance(value, str) and value.lower() in ("none", ""))
    ):
        return None
    try:
        if spec.kind is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in (
                "1",
                "true",
                "yes",
                "on",
                "0",
                "false",
                "no",
                "off",
            ):
                return value.lower() in ("1", "true", "yes", "on")
        elif spec.kind is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str):
                return int(value)
        elif spec.kind is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                return float(value)
        elif spec.kind is tuple:
            if isinstance(value, str):
                return tuple(v.strip() for v in value.split(",") if v.strip())
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                return tuple(value)
        elif spec.kind is str and isinstance(value, str):
            if spec.choices and value not in spec.choices:
                raise ValueError(
                    f"{spec.name} must be one of {', '.join(spec.choices)}, not {value!r}"
                )
            return value
    except ValueError as exc:
        if spec.name in str(exc):
            raise
        raise ValueError(f"{spec.name}: {exc}") from None
    expected = {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        tuple: "a list of names",
    }
    raise ValueError(f"{spec.name} must be {expected.get(spec.kind, 'a string')}, not {value!r}")
