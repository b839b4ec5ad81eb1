"""The one place that builds the real parts from settings: the generator, the Redis client and
the pool. `ebook-pool run`, the demo and the bench use it, so each runs what production runs."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from loguru import logger
from redis.asyncio import Redis

from pool.cache import PageCache, RedisPageCache
from pool.config import PoolSettings
from pool.connections import pool_redis
from pool.ebook_events import EbookEventPublisher
from pool.generation import PageGenerator
from pool.keys import Keys
from pool.pricing import PriceTable, load_price_table
from pool.ratelimit import ApiIdentity, Governor
from pool.shared import ConfigError, mask_url
from pool.worker import Pool
from pool_app.metrics import PoolMetrics

if TYPE_CHECKING:  # the generator (and the openai SDK) is imported only when one is built
    from generator import GeneratorSettings, OpenAIPageGenerator

__all__ = [
    "build_cache",
    "build_generator",
    "build_governor",
    "build_metrics",
    "build_pool",
    "build_pricing",
    "build_publisher",
    "check_credentials",
    "describe_generator",
    "secrets_of",
]


def build_pool(
    settings: PoolSettings, generator: PageGenerator, *, default_model: str | None = None
) -> tuple[Redis, Pool]:
    """The pool's Redis client (a blocking pool sized from CONCURRENT_WORKERS) and the pool,
    with the rate-limit governor (`build_governor`), the ledger's prices and, if CACHE_TTL is
    set, the result cache.

    The caller runs the pool and closes the client.

    Args:
        default_model: OPENAI_MODEL, the model of a job that names none (for its price).

    Raises:
        ConfigError: a bad PRICE_TABLE_FILE, or CACHE_TTL with a generator that cannot name
            its requests.
    """
    redis = pool_redis(settings)
    pool = Pool(
        redis=redis,
        generator=generator,
        settings=settings,
        governor=build_governor(settings, generator, redis),
        pricing=build_pricing(settings, default_model=default_model),
        cache=build_cache(settings, redis, generator),
    )
    return redis, pool


def build_pricing(settings: PoolSettings, *, default_model: str | None = None) -> PriceTable:
    """The ledger's prices: the built-in table with PRICE_TABLE_FILE and OPENAI_PRICE_* over it."""
    return load_price_table(
        file=settings.price_table_file,
        input_per_1m=settings.openai_price_input_per_1m,
        output_per_1m=settings.openai_price_output_per_1m,
        default_model=default_model,
    )


def build_cache(settings: PoolSettings, redis: Redis, generator: PageGenerator) -> PageCache | None:
    """The result cache if CACHE_TTL is set, keyed by the generator's `request_key`.

    Raises:
        ConfigError: CACHE_TTL is set but the generator has no `request_key`.
    """
    if settings.cache_ttl == 0:
        return None
    request_key = getattr(generator, "request_key", None)
    if request_key is None:
        raise ConfigError(f"CACHE_TTL: {type(generator).__name__} cannot name its requests")
    return RedisPageCache(
        redis=redis, keys=Keys(settings.key_prefix), request_key=request_key,
        ttl_ms=settings.cache_ttl,
    )  # fmt: skip


def build_governor(
    settings: PoolSettings, generator: PageGenerator, redis: Redis
) -> Governor | None:
    """The shared rate-limit budget of the generator's API, or None.

    None when RATE_LIMIT_GOVERNOR=false (said in one WARNING line: requests go out unpaced),
    or when the generator calls no API it can name (`api_identity`: a test double, a no-op).
    """
    if not settings.rate_limit_governor:
        logger.warning(
            "[Worker Pool] RATE_LIMIT_GOVERNOR=false: requests are not paced by the shared "
            "budget; a 429 is waited out (retry-after) without spending an attempt"
        )
        return None
    api = getattr(generator, "api_identity", None)
    if not isinstance(api, ApiIdentity):
        return None
    return Governor(redis, Keys(settings.key_prefix), settings, api)


def build_metrics(pool: Pool, settings: PoolSettings, *, default_model: str) -> PoolMetrics:
    """The pool's Prometheus metrics, subscribed to its events; serve them with
    `pool_app.health.health_app(..., metrics=...)`. The cost is priced with the pool's
    ledger prices (`Pool.pricing`, `pool.pricing`).

    Args:
        default_model: OPENAI_MODEL, for the cost of jobs that name no model.
    """
    metrics = PoolMetrics(
        pool,
        concurrency_limit=settings.concurrent_workers,
        default_model=default_model,
        price=pool.pricing.cost_usd,
    )
    pool.events.subscribe(metrics.on_event, metrics.kinds)
    return metrics


def build_publisher(pool: Pool, redis: Redis, settings: PoolSettings) -> EbookEventPublisher | None:
    """The progress-event publisher, subscribed to the pool's events (None when
    PROGRESS_EVENTS is off). The caller drains it after the pool stopped."""
    if not settings.progress_events:
        return None
    publisher = EbookEventPublisher(
        redis,
        keys=pool.keys,
        pool_id=pool.id,
        maxlen=settings.progress_events_maxlen,
        ttl_ms=settings.progress_events_ttl,
    )
    pool.events.subscribe(publisher.on_event, EbookEventPublisher.KINDS)
    return publisher


def build_generator(
    settings: GeneratorSettings,
    *,
    workers: int,
    base_url: str | None = None,
    api_key: str | None = None,
) -> OpenAIPageGenerator:
    """The OpenAI page generator from settings.

    A server given by OPENAI_BASE_URL (or `base_url`) may need no key: a placeholder is sent.

    Args:
        workers: CONCURRENT_WORKERS; the HTTP connection pool gets one connection per worker.

    Raises:
        ConfigError: no key and no base URL, or a bad prompt template.
    """
    from generator import OpenAIPageGenerator

    check_credentials(settings, base_url=base_url, api_key=api_key)
    if api_key is None and settings.openai_api_key is None:
        api_key = "no-key"
    return OpenAIPageGenerator.from_settings(
        settings, api_key=api_key, base_url=base_url, max_connections=workers
    )


def check_credentials(
    settings: GeneratorSettings, *, base_url: str | None = None, api_key: str | None = None
) -> None:
    """The one check that the generator can authenticate: a key, or a server that needs none.

    Raises:
        ConfigError: neither an API key nor a base URL.
    """
    has_key = api_key is not None or settings.openai_api_key is not None
    if not has_key and base_url is None and settings.openai_base_url is None:
        raise ConfigError(
            "OPENAI_API_KEY: not set (set it, or OPENAI_BASE_URL for a server that needs no "
            "key; `ebook-pool demo` runs without either)"
        )


def describe_generator(settings: GeneratorSettings, *, base_url: str | None = None) -> str:
    """Model, API and key of the generator for the start-up log line, the key masked."""
    url = base_url or settings.openai_base_url
    key = "set (***)" if settings.openai_api_key is not None else "not set"
    max_tokens = settings.openai_max_tokens or "sized per page"
    return (
        f"model={settings.openai_model}, "
        f"base URL={mask_url(url) if url else 'OpenAI (default)'}, API key {key}, "
        f"max tokens={max_tokens}, temperature={settings.openai_temperature}"
    )


def secrets_of(settings: PoolSettings, gen_settings: GeneratorSettings | None) -> list[str]:
    """The values the logs must never show: API key, REDIS_PASSWORD, the dashboard token and
    URL passwords."""
    values = [_password(settings.redis_url)]
    if settings.redis_password is not None:
        values.append(settings.redis_password.get_secret_value())
    if settings.dashboard_token is not None:
        values.append(settings.dashboard_token.get_secret_value())
    if gen_settings is not None:
        if gen_settings.openai_api_key is not None:
            values.append(gen_settings.openai_api_key.get_secret_value())
        if gen_settings.openai_base_url is not None:
            values.append(_password(gen_settings.openai_base_url))
    return [v for v in values if v]


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None
