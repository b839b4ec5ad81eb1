"""Fast unit tests: the page-job contract, settings from the env, the stats line."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from pool import (
    ConfigError,
    InvalidJob,
    PageJob,
    PoolSettings,
    decode_job,
    job_schema,
    load_settings,
)
from pool.config import (
    HttpSettings,
    LogSettings,
    ProcessSettings,
    ProgressEventSettings,
    RateLimitSettings,
    RedisSettings,
    RetentionSettings,
    WorkerSettings,
    mask_url,
)
from pool.stats import Stats, format_stats


def test_job_defaults_its_id_and_reads_camel_case() -> None:
    """jobId defaults to ebookId:pageIndex; camelCase fields map to snake_case attributes."""
    job = decode_job(
        b'{"ebookId":"e1","pageIndex":2,"totalPages":3,"title":"T","pageTitle":"Intro",'
        b'"maxTokens":900,"targetWords":400}',
        max_bytes=10_000,
    )
    assert job.id == "e1:2" and job.page_title == "Intro" and job.max_tokens == 900
    assert job.language == "English" and job.target_words == 400
    assert decode_job(job.to_wire(), max_bytes=10_000) == job


def test_explicit_job_id_is_kept() -> None:
    job = PageJob(ebook_id="e", page_index=0, total_pages=1, title="T", job_id="custom-1")
    assert job.id == "custom-1"
    assert json.loads(job.to_wire())["jobId"] == "custom-1"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"ebookId": "e", "pageIndex": 0, "totalPages": 1}, "title: Field required"),
        ({"ebookId": "has space", "pageIndex": 0, "totalPages": 1, "title": "T"}, "ebookId"),
        ({"ebookId": "e", "pageIndex": 1.5, "totalPages": 2, "title": "T"}, "pageIndex"),
        ({"ebookId": "e", "pageIndex": 0, "totalPages": 0, "title": "T"}, "totalPages"),
        ({"ebookId": "e", "pageIndex": 0, "totalPages": 1, "title": "T", "v": 99}, "v:"),
        ({"ebookId": "e", "pageIndex": 0, "totalPages": 1, "title": "", "model": "m"}, "title"),
    ],
)
def test_contract_violations_name_the_field(payload: dict[str, object], reason: str) -> None:
    with pytest.raises(InvalidJob, match=reason):
        decode_job(json.dumps(payload), max_bytes=10_000)


def test_schema_is_camel_case_and_lists_required_fields() -> None:
    schema = job_schema()
    assert set(schema["required"]) == {"ebookId", "pageIndex", "totalPages", "title"}
    assert "pageTitle" in schema["properties"] and "page_title" not in schema["properties"]
    assert schema["x-contract-version"] == 1


def test_settings_defaults_are_the_seeds(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONCURRENT_WORKERS", "PROCESSING_DELAY", "REDIS_URL", "REDIS_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings(PoolSettings)
    assert (s.concurrent_workers, s.processing_delay, s.generation_timeout) == (5, 500, 90_000)
    assert (s.poll_interval, s.max_retries, s.max_attempts) == (1_000, 3, 4)
    assert s.generation_timeout_s == 90.0 and s.poll_interval_s == 1.0


def test_redis_public_url_is_the_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_PUBLIC_URL", "redis://default:s3cret@host:6379")
    s = load_settings(PoolSettings)
    assert s.redis_url == "redis://default:s3cret@host:6379"
    assert "s3cret" not in str(s.describe())
    monkeypatch.setenv("REDIS_URL", "redis://primary:6379")
    assert load_settings(PoolSettings).redis_url == "redis://primary:6379"


# A few variables of each settings mixin (pool/config.py), as the env gives them: strings.
_FROM_ENV: dict[type[BaseModel], dict[str, tuple[str, object]]] = {
    RedisSettings: {
        "REDIS_URL": ("redis://cache.internal:6380/2", "redis://cache.internal:6380/2"),
        "KEY_PREFIX": ("books", "books"),
        "REDIS_REQUIRE_NOEVICTION": ("true", True),
    },
    WorkerSettings: {
        "CONCURRENT_WORKERS": ("7", 7),
        "RETRY_BACKOFF_MAX": ("45000", 45_000),
        "HEARTBEAT_TIMEOUT": ("12000", 12_000),
    },
    HttpSettings: {
        "PORT": ("8081", 8081),
        "DASHBOARD_MAX_EBOOKS": ("25", 25),
        "METRICS_ENABLED": ("false", False),
    },
    ProgressEventSettings: {
        "PROGRESS_EVENTS": ("0", False),
        "PROGRESS_EVENTS_MAXLEN": ("500", 500),
    },
    LogSettings: {
        "LOG_LEVEL": ("debug", "DEBUG"),
        "LOG_FORMAT": ("JSON", "json"),
        "LOG_PAGE_LINES_PER_S": ("5", 5),
    },
    ProcessSettings: {"PROCESSES": ("Auto", "auto"), "EVENT_LOOP": ("asyncio", "asyncio")},
    RateLimitSettings: {
        "OPENAI_RPM_LIMIT": ("500", 500),
        "OPENAI_TPM_LIMIT": (" ", None),
        "RATE_LIMIT_BURST": ("2000", 2_000),
    },
    RetentionSettings: {
        "RESULT_TTL": ("0", 0),
        "CACHE_TTL": ("3600000", 3_600_000),
        "OPENAI_PRICE_INPUT_PER_1M": ("0.15", 0.15),
    },
}
_ALIASES = {"PORT": "http_port"}


def test_every_settings_mixin_is_read_from_the_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """PoolSettings is its mixins combined: each mixin's variables load, aliases and case too."""
    mixins = [base for base in PoolSettings.__mro__ if base in _FROM_ENV]
    assert set(mixins) == set(_FROM_ENV)
    assert {name for m in mixins for name in m.model_fields} == set(PoolSettings.model_fields)
    monkeypatch.delenv("HTTP_PORT", raising=False)
    for variables in _FROM_ENV.values():
        for name, (raw, _) in variables.items():
            monkeypatch.setenv(name, raw)
    s = load_settings(PoolSettings)
    for mixin, variables in _FROM_ENV.items():
        for name, (_, expected) in variables.items():
            field = _ALIASES.get(name, name.lower())
            assert field in mixin.model_fields, name
            assert getattr(s, field) == expected, name
    assert s.retry_backoff_max_s == 45.0 and s.rate_limit_burst_s == 2.0
    assert s.describe()["LOG_LEVEL"] == "DEBUG" and s.describe()["HTTP_PORT"] == 8081


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CONCURRENT_WORKERS", "five", "CONCURRENT_WORKERS: Input should be a valid integer"),
        (
            "CONCURRENT_WORKERS",
            "0",
            "CONCURRENT_WORKERS: Input should be greater than or equal to 1",
        ),
        ("GENERATION_TIMEOUT", "-1", "GENERATION_TIMEOUT: Input should be greater than or equal"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT: Input should be 'text' or 'json'"),
        ("KEY_PREFIX", "has space", "KEY_PREFIX: String should match pattern"),
        ("REDIS_URL", "http://x:pw@h", "REDIS_URL must start with redis://"),
    ],
)
def test_bad_env_var_gives_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings(PoolSettings)
    text = str(info.value)
    assert message in text and "\n" not in text and "pw" not in text


def test_mask_url_hides_only_the_password() -> None:
    assert (
        mask_url("redis://default:abc@h.example:6380/1") == "redis://default:***@h.example:6380/1"
    )
    assert mask_url("redis://localhost:6379") == "redis://localhost:6379"


def test_stats_line_keeps_the_seeds_fields() -> None:
    stats = Stats()
    for d in (1.0, 2.0, 3.0):
        stats.record_success(d)
    stats.record_failure()
    stats.active = 2
    line = format_stats(stats.snapshot(), queue_depth=7)
    assert line.startswith("[Stats] Uptime: 0s | Processed: 4 | Success: 3 | Failed: 1 | ")
    assert "| Success Rate: 75.0% | Active: 2 | Pages/min: " in line
    assert "| p50: 2.0s | p95: 3.0s | Queue: 7 | " in line
    assert line.endswith("| OK/min: 180.0 | Failed/min: 60.0")  # appended, after the seed's
