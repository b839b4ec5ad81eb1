"""Settings of the OpenAI page generator, read from environment variables.

The API key is a `SecretStr`: it never appears in `repr`, logs or error messages. Whether a
missing key means "start the simulator" is the CLI's decision, not this module's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pool.shared import mask_url

__all__ = ["GeneratorSettings"]

_OPTIONAL = (
    "openai_api_key",
    "openai_max_tokens",
    "openai_base_url",
    "openai_organization",
    "openai_project",
    "prompt_template_file",
)


class GeneratorSettings(BaseSettings):
    """Settings of `OpenAIPageGenerator`. Every field is read from the env var of the same name.

    Load them with `pool.config.load_settings(GeneratorSettings)` so that a bad value becomes a
    one-line `ConfigError` naming the variable.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    openai_api_key: SecretStr | None = Field(
        default=None, description="API key; unset means the CLI decides (e.g. the simulator)."
    )
    openai_base_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible API, e.g. http://localhost:8089/v1.",
    )
    openai_model: str = Field(
        default="gpt-4o-mini", min_length=1, max_length=200, description="Default model."
    )
    openai_max_tokens: int | None = Field(
        default=None,
        ge=16,
        le=128_000,
        description="Flat completion token limit of a page; unset = sized from the page's "
        "target length (see pool.ratelimit.sizing).",
    )
    openai_max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        default="max_tokens",
        description=(
            "Request field that carries the token limit: 'max_tokens' works with every "
            "OpenAI-compatible server, OpenAI's reasoning models want 'max_completion_tokens'."
        ),
    )
    openai_temperature: float = Field(
        default=0.7, ge=0.0, le=2.0, description="Default sampling temperature."
    )
    openai_organization: str | None = Field(default=None, description="OpenAI organization id.")
    openai_project: str | None = Field(default=None, description="OpenAI project id.")
    probe_timeout: int = Field(
        default=30_000,
        ge=100,
        le=600_000,
        description="Timeout of one probe of the API while the pool is paused, milliseconds.",
    )
    prompt_template_file: Path | None = Field(
        default=None, description="TOML file overriding the 'system' and/or 'user' prompt."
    )

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        # Railway and docker-compose often define a variable as empty rather than not at all.
        if isinstance(data, dict):
            for key in list(data):
                if (
                    key.lower() in _OPTIONAL
                    and isinstance(data[key], str)
                    and not data[key].strip()
                ):
                    data[key] = None
        return data

    @field_validator("openai_base_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("prompt_template_file")
    @classmethod
    def _check_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @property
    def probe_timeout_s(self) -> float:
        return self.probe_timeout / 1000

    def describe(self) -> dict[str, Any]:
        """The effective configuration as env var names → values, secrets masked."""
        out = {name.upper(): value for name, value in self.model_dump().items()}
        out["OPENAI_API_KEY"] = "***" if self.openai_api_key is not None else None
        if self.openai_base_url is not None:
            out["OPENAI_BASE_URL"] = mask_url(self.openai_base_url)
        if self.prompt_template_file is not None:
            out["PROMPT_TEMPLATE_FILE"] = str(self.prompt_template_file)
        return out
