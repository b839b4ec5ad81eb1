"""GeneratorSettings: env vars, defaults, secrets kept out of sight, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator import GeneratorSettings
from pool.config import ConfigError, load_settings

KEY = "sk-proj-settings-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_MODEL",
        "OPENAI_MAX_TOKENS",
        "OPENAI_MAX_TOKENS_FIELD",
        "OPENAI_TEMPERATURE",
        "OPENAI_ORGANIZATION",
        "OPENAI_PROJECT",
        "PROBE_TIMEOUT",
        "PROMPT_TEMPLATE_FILE",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    """Without env vars: no key, the default model and limits."""
    settings = load_settings(GeneratorSettings)
    assert settings.openai_api_key is None
    assert settings.openai_base_url is None
    assert settings.openai_model == "gpt-4o-mini"
    assert settings.openai_max_tokens is None  # sized per page
    assert settings.openai_temperature == 0.7
    assert settings.probe_timeout_s == 30.0


def test_reads_env_and_hides_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Values come from the env; the key is in neither repr nor describe()."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8089/v1/")
    monkeypatch.setenv("OPENAI_MODEL", "gpt-4o")
    monkeypatch.setenv("OPENAI_MAX_TOKENS", "900")
    settings = load_settings(GeneratorSettings)
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == KEY
    assert settings.openai_base_url == "http://localhost:8089/v1"
    assert settings.openai_max_tokens == 900
    assert KEY not in repr(settings)
    assert KEY not in str(settings.describe())
    assert settings.describe()["OPENAI_API_KEY"] == "***"


def test_blank_optional_vars_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty OPENAI_API_KEY (as Railway may define it) is no key at all."""
    monkeypatch.setenv("OPENAI_API_KEY", "")
    monkeypatch.setenv("OPENAI_BASE_URL", " ")
    settings = load_settings(GeneratorSettings)
    assert settings.openai_api_key is None
    assert settings.openai_base_url is None


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("OPENAI_BASE_URL", "localhost:8089", "OPENAI_BASE_URL: must be an http"),
        ("OPENAI_TEMPERATURE", "3", "OPENAI_TEMPERATURE:"),
        ("OPENAI_MAX_TOKENS", "lots", "OPENAI_MAX_TOKENS:"),
        ("OPENAI_MAX_TOKENS_FIELD", "max_output", "OPENAI_MAX_TOKENS_FIELD:"),
        ("PROMPT_TEMPLATE_FILE", "/nonexistent/prompts.toml", "PROMPT_TEMPLATE_FILE: no such file"),
    ],
)
def test_bad_value_is_one_line_naming_the_var(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    """A bad env var is a ConfigError whose one line starts with the var's name."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(GeneratorSettings)
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


def test_template_file_path_is_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """PROMPT_TEMPLATE_FILE must exist and is kept as a path."""
    path = tmp_path / "p.toml"
    path.write_text("user = 'x'", encoding="utf-8")
    monkeypatch.setenv("PROMPT_TEMPLATE_FILE", str(path))
    assert load_settings(GeneratorSettings).prompt_template_file == path
