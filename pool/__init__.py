"""ebook-pool: a Redis-backed asyncio worker pool that writes ebook pages with an LLM."""

from pool.config import ConfigError, PoolSettings, load_settings
from pool.events import EventKind, PoolEvent, PoolEvents
from pool.generation import (
    GeneratedPage,
    GenerationError,
    JobFatalError,
    PageGenerator,
    PoolFatalError,
    RetryableError,
)
from pool.job import CONTRACT_VERSION, InvalidJob, PageJob, decode_job
from pool.jobrun import BeforeRequest
from pool.keys import Keys
from pool.store import Store
from pool.wire import job_schema
from pool.worker import Pool

__all__ = [
    "CONTRACT_VERSION",
    "BeforeRequest",
    "ConfigError",
    "EventKind",
    "GeneratedPage",
    "GenerationError",
    "InvalidJob",
    "JobFatalError",
    "Keys",
    "PageGenerator",
    "PageJob",
    "Pool",
    "PoolEvent",
    "PoolEvents",
    "PoolFatalError",
    "PoolSettings",
    "RetryableError",
    "Store",
    "decode_job",
    "job_schema",
    "load_settings",
]
