"""Configuration from environment variables.

The variable names and units (milliseconds) are the seed's, so an existing Railway service keeps
its settings. Each millisecond value is converted once here and exposed as `*_s` seconds.
A bad value raises `ConfigError` with one line naming the variable and what is allowed.

Redis over TLS and with a password: `REDIS_CA_CERT` (a path or the PEM text itself),
`REDIS_TLS_INSECURE` and `REDIS_PASSWORD` complete REDIS_URL; `pool.connections` applies them.
Neither the password nor the PEM text is ever echoed (`describe()`, error messages).

`PoolSettings` combines one mixin per concern (Redis, workers and timing, HTTP and dashboard,
progress events, logs, processes, rate limits, retention and prices). Each mixin is a plain
pydantic model holding its fields, their validators and converted values; only the combined
class is a `BaseSettings`, so pydantic-settings reads every mixin's fields from the environment.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from pool.shared import ConfigError, error_message, mask_url

__all__ = [
    "ConfigError",
    "HttpSettings",
    "LogSettings",
    "PoolSettings",
    "ProcessSettings",
    "ProgressEventSettings",
    "RateLimitSettings",
    "RedisSettings",
    "RetentionSettings",
    "WorkerSettings",
    "is_pem",
    "load_settings",
    "mask_url",
    "running_loop_name",
]

_MS = "milliseconds"
_PEM_MARKER = "-----BEGIN"
_MAX_SHOWN_PATH = 256  # a longer REDIS_CA_CERT is not echoed: it is not a path we could show


class RedisSettings(BaseModel):
    """Which Redis, how to reach it (TLS, password) and the key prefix."""

    redis_url: str = Field(
        default="redis://localhost:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "REDIS_PUBLIC_URL"),
        description="Redis to use; REDIS_PUBLIC_URL is read when REDIS_URL is not set.",
    )
    redis_password: SecretStr | None = Field(
        default=None,
        description="Password of Redis; replaces the one in REDIS_URL, if any. Never logged.",
    )
    redis_ca_cert: str | None = Field(
        default=None,
        description=(
            "CA certificate(s) that signed the server's, for rediss://: a path to a PEM file "
            "or the PEM text itself."
        ),
    )
    redis_tls_insecure: bool = Field(
        default=False,
        description="rediss:// without verifying the server's certificate (only when asked).",
    )
    key_prefix: str = Field(
        default="ebook",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Prefix of every Redis key the pool reads or writes.",
    )
    redis_require_noeviction: bool = Field(
        default=False,
        description="Refuse to start unless Redis's maxmemory-policy is noeviction.",
    )

    @field_validator("redis_password", "redis_ca_cert", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        """An empty variable (common on hosting dashboards) means not set."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("redis_ca_cert")
    @classmethod
    def _check_ca(cls, value: str | None) -> str | None:
        """A readable PEM file or PEM text that parses; PEM text comes back normalised."""
        if value is None:
            return None
        if is_pem(value):
            pem = value.strip()
            if "\n" not in pem and "\\n" in pem:  # pasted with escaped newlines
                pem = pem.replace("\\n", "\n")
            try:
                ssl.create_default_context().load_verify_locations(cadata=pem)
            except (ssl.SSLError, ValueError):
                raise ValueError(
                    f"PEM text ({len(pem.encode())} bytes) holds no certificate that can be parsed"
                ) from None
            return pem
        shown = value if len(value) <= _MAX_SHOWN_PATH and "\n" not in value else "the value"
        path = Path(value).expanduser()
        try:
            is_file = path.is_file()
        except OSError:  # e.g. a name too long for a path: not a file either
            is_file = False
        if not is_file:
            raise ValueError(
                f"{shown} is not a file (give the path of a PEM file or the PEM text itself, "
                f"which starts with {_PEM_MARKER})"
            )
        try:
            ssl.create_default_context().load_verify_locations(cafile=str(path))
        except ssl.SSLError:
            raise ValueError(f"{shown} holds no certificate that can be parsed") from None
        except OSError as exc:
            raise ValueError(
                f"{shown} cannot be read ({exc.strerror or type(exc).__name__})"
            ) from None
        return str(path)

    @property
    def redis_ca_pem(self) -> str | None:
        """REDIS_CA_CERT when it holds the PEM text itself."""
        ca = self.redis_ca_cert
        return ca if ca is not None and is_pem(ca) else None

    @property
    def redis_ca_path(self) -> str | None:
        """REDIS_CA_CERT when it is the path of a PEM file."""
        ca = self.redis_ca_cert
        return ca if ca is not None and not is_pem(ca) else None


class WorkerSettings(BaseModel):
    """Workers, retries, timing (in the seed's milliseconds, also as `*_s` seconds) and liveness."""

    concurrent_workers: int = Field(
        default=5, ge=1, le=10_000, description="Worker coroutines in this process."
    )
    processing_delay: int = Field(
        default=500, ge=0, le=3_600_000, description=f"Pause of a worker between jobs, {_MS}."
    )
    generation_timeout: int = Field(
        default=90_000, ge=100, le=3_600_000, description=f"Timeout of one LLM call, {_MS}."
    )
    poll_interval: int = Field(
        default=1_000,
        ge=10,
        le=60_000,
        description=f"Longest an idle pool blocks on the queue before looking again, {_MS}.",
    )
    max_retries: int = Field(
        default=3, ge=0, le=100, description="Retries after the first attempt (3 = 4 attempts)."
    )
    retry_backoff: int = Field(
        default=1_000, ge=1, le=600_000, description=f"Base of the exponential backoff, {_MS}."
    )
    retry_backoff_max: int = Field(
        default=60_000, ge=1, le=3_600_000, description=f"Cap of one backoff wait, {_MS}."
    )
    stats_interval: int = Field(
        default=60_000, ge=0, le=86_400_000, description=f"Between [Stats] lines, {_MS}; 0 = off."
    )
    shutdown_grace: int = Field(
        default=20_000,
        ge=0,
        le=3_600_000,
        description=f"On SIGTERM, how long in-flight pages may finish before they are given back, {_MS}.",
    )
    heartbeat_interval: int = Field(
        default=2_000, ge=100, le=60_000, description=f"Between heartbeats of this process, {_MS}."
    )
    heartbeat_timeout: int = Field(
        default=10_000,
        ge=1_000,
        le=600_000,
        description=f"A process silent this long is dead and its jobs go back to the queue, {_MS}.",
    )
    pause_probe_interval: int = Field(
        default=30_000,
        ge=100,
        le=3_600_000,
        description=f"While paused on a pool-fatal error, between probes of the API, {_MS}.",
    )
    max_job_bytes: int = Field(
        default=65_536, ge=256, le=16_777_216, description="Largest accepted job payload, bytes."
    )

    # Converted values, named with their unit.
    @property
    def processing_delay_s(self) -> float:
        return self.processing_delay / 1000

    @property
    def generation_timeout_s(self) -> float:
        return self.generation_timeout / 1000

    @property
    def poll_interval_s(self) -> float:
        return self.poll_interval / 1000

    @property
    def retry_backoff_s(self) -> float:
        return self.retry_backoff / 1000

    @property
    def retry_backoff_max_s(self) -> float:
        return self.retry_backoff_max / 1000

    @property
    def stats_interval_s(self) -> float:
        return self.stats_interval / 1000

    @property
    def shutdown_grace_s(self) -> float:
        return self.shutdown_grace / 1000

    @property
    def heartbeat_interval_s(self) -> float:
        return self.heartbeat_interval / 1000

    @property
    def heartbeat_timeout_s(self) -> float:
        return self.heartbeat_timeout / 1000

    @property
    def pause_probe_interval_s(self) -> float:
        return self.pause_probe_interval / 1000

    @property
    def max_attempts(self) -> int:
        return self.max_retries + 1


class HttpSettings(BaseModel):
    """The HTTP server: health checks, the dashboard and Prometheus metrics."""

    http_port: int | None = Field(
        default=None,
        ge=0,
        le=65_535,
        validation_alias=AliasChoices("HTTP_PORT", "PORT"),
        description="Port of /healthz and /readyz; PORT (set by Railway) is read when HTTP_PORT "
        "is not set; neither = no HTTP server.",
    )
    http_host: str = Field(
        default="0.0.0.0",
        min_length=1,
        description="Address the HTTP server binds to (0.0.0.0 = every IPv4 interface).",
    )
    dashboard_enabled: bool = Field(
        default=True,
        description="Serve the dashboard at / on the HTTP server (HTTP_PORT/PORT).",
    )
    dashboard_token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="Token the dashboard's actions (retry, purge, pause) need; unset = read-only.",
    )
    dashboard_max_ebooks: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Most recent ebooks the dashboard lists (found by SCAN).",
    )
    metrics_enabled: bool = Field(
        default=True,
        description="Serve Prometheus /metrics on the HTTP server (HTTP_PORT/PORT).",
    )


class ProgressEventSettings(BaseModel):
    """Progress events (issue 12): each page's outcome and ebook state change, to Redis."""

    progress_events: bool = Field(
        default=True,
        description="Publish each page's outcome and each ebook state change to Redis "
        "(a capped stream per ebook and a pub/sub channel).",
    )
    progress_events_maxlen: int = Field(
        default=1_000,
        ge=10,
        le=1_000_000,
        description="About how many events each ebook's event stream keeps (XADD MAXLEN ~).",
    )
    progress_events_ttl: int = Field(
        default=86_400_000,
        ge=1_000,
        description="An ebook's event stream expires this long after its last event, ms.",
    )


class LogSettings(BaseModel):
    """Log format, level and volume (issue 14)."""

    log_format: Literal["text", "json"] = Field(
        default="text", description="'text' for people, 'json' for Railway's log explorer."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Least severe level logged."
    )
    # Per-page lines past this rate are held back, with a summary line.
    log_page_lines_per_s: int = Field(
        default=50,
        ge=0,
        le=1_000_000,
        description="Most per-page lines (Processing/Completed job) written a second at INFO; "
        "the rest are held back (DEBUG if LOG_LEVEL=DEBUG) and counted in a summary line.",
    )

    @model_validator(mode="before")
    @classmethod
    def _log_case(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("log_level", "LOG_LEVEL"):
                if isinstance(data.get(key), str):
                    data[key] = data[key].upper()
            for key in ("log_format", "LOG_FORMAT"):
                if isinstance(data.get(key), str):
                    data[key] = data[key].lower()
        return data


class ProcessSettings(BaseModel):
    """How `run` runs: pool processes under a supervisor, and the event loop."""

    processes: Annotated[int, Field(ge=1, le=1_024)] | Literal["auto"] = Field(
        default=1,
        description="Pool processes `run` starts under one supervisor; 'auto' = the CPUs this "
        "process may use (cgroup quota aware); 1 = no supervisor.",
    )
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto",
        description="'auto' = uvloop where it is installed, else asyncio's loop; 'asyncio' turns "
        "uvloop off.",
    )

    @model_validator(mode="before")
    @classmethod
    def _process_case(cls, data: Any) -> Any:
        if isinstance(data, dict):
            lower = ("processes", "event_loop")
            for key in (*lower, *(name.upper() for name in lower)):
                if isinstance(data.get(key), str):
                    data[key] = data[key].lower()
        return data

    @field_validator("processes", mode="before")
    @classmethod
    def _processes_word(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip() != "auto" and not value.strip().isdigit():
            raise ValueError(f"must be a whole number of processes or 'auto' (got {value!r})")
        return value


class RateLimitSettings(BaseModel):
    """The rate-limit governor (issue 10): one budget per API key and model, shared over Redis."""

    openai_rpm_limit: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000_000,
        description="Requests per minute of the API budget every process on this Redis shares "
        "(per API key and model); unset = learned from the API's x-ratelimit-limit-requests.",
    )
    openai_tpm_limit: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000_000_000,
        description="Tokens per minute of that budget (prompt + max_tokens, as OpenAI counts "
        "them); unset = learned from x-ratelimit-limit-tokens.",
    )
    rate_limit_governor: bool = Field(
        default=True,
        description="Pace API requests with the shared budget; false sends them unpaced.",
    )
    rate_limit_max_wait: int = Field(
        default=300_000,
        ge=1_000,
        le=86_400_000,
        description=f"Longest a page waits for budget before it goes back to the queue, {_MS}.",
    )
    rate_limit_burst: int = Field(
        default=1_000,
        ge=0,
        le=60_000,
        description=f"Budget the shared bucket may spend at once, as {_MS} of the limit.",
    )
    rate_limit_refund_unused: bool = Field(
        default=False,
        description="Give the completion tokens a page did not use back to the TPM budget "
        "(for servers that count usage; OpenAI counts max_tokens).",
    )

    @model_validator(mode="before")
    @classmethod
    def _blank_limit_is_unset(cls, data: Any) -> Any:
        # Railway and docker-compose often define a variable as empty rather than not at all.
        if isinstance(data, dict):
            for key in list(data):
                if (
                    key.lower() in ("openai_rpm_limit", "openai_tpm_limit")
                    and isinstance(data[key], str)
                    and not data[key].strip()
                ):
                    data[key] = None
        return data

    @property
    def rate_limit_max_wait_s(self) -> float:
        return self.rate_limit_max_wait / 1000

    @property
    def rate_limit_burst_s(self) -> float:
        return self.rate_limit_burst / 1000


class RetentionSettings(BaseModel):
    """Pay once per page (issue 11): retention, the failed list's cap, the result cache, prices."""

    result_ttl: int = Field(
        default=604_800_000,
        ge=0,
        le=31_536_000_000,
        description=f"How long a finished ebook's keys are kept, {_MS}; 0 = keep for ever.",
    )
    failed_list_max: int = Field(
        default=10_000,
        ge=0,
        le=10_000_000,
        description="Most entries the failed list keeps (the oldest are dropped); 0 = no limit.",
    )
    cache_ttl: int = Field(
        default=0,
        ge=0,
        le=31_536_000_000,
        description=f"Keep each API answer this long and answer identical requests with it, "
        f"{_MS}; 0 = no result cache.",
    )
    price_table_file: str | None = Field(
        default=None,
        description="JSON or TOML file of model → {input, output} USD per 1M tokens, over the "
        "built-in prices.",
    )
    openai_price_input_per_1m: float | None = Field(
        default=None, ge=0, description="One input price for every model, USD per 1M tokens."
    )
    openai_price_output_per_1m: float | None = Field(
        default=None, ge=0, description="One output price for every model, USD per 1M tokens."
    )


# pydantic lists the fields of the most basic class first: the mixins are named last to first,
# so the fields (and `describe()`) read in the README's order, Redis first.
class PoolSettings(
    RetentionSettings,
    RateLimitSettings,
    ProcessSettings,
    LogSettings,
    ProgressEventSettings,
    HttpSettings,
    WorkerSettings,
    RedisSettings,
    BaseSettings,
):
    """Settings of the worker pool. Every field is read from the env var of the same name."""

    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, populate_by_name=True, hide_input_in_errors=True
    )

    @model_validator(mode="after")
    def _check(self) -> PoolSettings:
        """Rules across fields (one validator here keeps the order in which they are checked)."""
        if self.heartbeat_timeout < 2 * self.heartbeat_interval:
            raise ValueError(
                "HEARTBEAT_TIMEOUT must be at least twice HEARTBEAT_INTERVAL "
                f"({self.heartbeat_timeout} < 2 x {self.heartbeat_interval})"
            )
        scheme = urlsplit(self.redis_url).scheme
        if scheme not in {"redis", "rediss", "unix"}:
            raise ValueError(
                f"REDIS_URL must start with redis://, rediss:// or unix:// (got {scheme or 'no'} scheme)"
            )
        if scheme != "rediss":
            for name, value in (
                ("REDIS_CA_CERT", self.redis_ca_cert is not None),
                ("REDIS_TLS_INSECURE", self.redis_tls_insecure),
            ):
                if value:
                    raise ValueError(
                        f"{name} is set but REDIS_URL is not a rediss:// URL, so TLS is off; "
                        "use rediss:// or unset it"
                    )
        return self

    @property
    def inflight_ttl_ms(self) -> int:
        """Longest a job's in-flight marker lives: every attempt (its wait for the rate-limit
        budget, RATE_LIMIT_MAX_WAIT, its timeout and backoff), plus a heartbeat timeout. Every
        way a job ends deletes it before; this bounds a leak. A marker that expired while its
        job still waited for budget would let a second copy be generated."""
        per_attempt = self.rate_limit_max_wait + self.generation_timeout + self.retry_backoff_max
        return self.max_attempts * per_attempt + self.heartbeat_timeout

    def describe(self) -> dict[str, Any]:
        """The effective configuration as env var names → values, secrets masked."""
        out = {name.upper(): value for name, value in self.model_dump().items()}
        out["REDIS_URL"] = mask_url(self.redis_url)
        out["REDIS_PASSWORD"] = "***" if self.redis_password is not None else None
        out["DASHBOARD_TOKEN"] = "***" if self.dashboard_token is not None else None
        ca = self.redis_ca_cert
        if ca is not None and is_pem(ca):
            out["REDIS_CA_CERT"] = f"<PEM, {len(ca.encode())} bytes>"
        running = running_loop_name()
        if running is not None:  # the loop that actually runs, e.g. 'uvloop (auto)'
            out["EVENT_LOOP"] = f"{running} (auto)" if self.event_loop == "auto" else running
        return out


_S = TypeVar("_S", bound=BaseSettings)


def load_settings(cls: type[_S], **overrides: Any) -> _S:
    """Build settings from the environment, turning a validation error into a `ConfigError`.

    The message names the first bad variable, what was wrong and never echoes a secret value.
    """
    try:
        return cls(**overrides)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = [str(p) for p in err["loc"]]
        name = loc[0].upper() if loc else ""
        msg = error_message(err)
        if not name or name == "__ROOT__":
            raise ConfigError(f"invalid configuration: {msg}") from None
        raise ConfigError(f"{name}: {msg}") from None


def is_pem(value: str) -> bool:
    """Whether a certificate setting holds PEM text rather than a path."""
    return _PEM_MARKER in value


def running_loop_name() -> Literal["uvloop", "asyncio"] | None:
    """`uvloop` or `asyncio` for the loop running in this thread; None outside a loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
