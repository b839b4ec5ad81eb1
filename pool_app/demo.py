"""`ebook-pool demo`: the whole path, on a machine where nothing is set up.

It picks the best Redis it can find, and the real API only if there is a key:

- Redis: REDIS_URL if it is set and answers (keys under "ebook-demo" unless KEY_PREFIX is
  set); else a private redis-server on a free port if the binary is on PATH (removed at the
  end); else fakeredis in this process, with lupa running the pool's Lua scripts, if it is
  installed (the dev group, or the `demo` extra: it is not part of the production install);
  with none of the three it stops with one line and exit code 2.
- Text: the OpenAI API if OPENAI_API_KEY (or OPENAI_BASE_URL) is set; else the built-in
  simulator in this process, which writes simulated placeholder text.

Then it queues a 12-page sample ebook exactly as a producer would, runs a real `Pool` on it
with a progress bar, writes the book to out/<ebook-id>.md and .epub (`pool_app.export`, what
`ebook-pool export` writes) and prints the [Stats] line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from generator import GeneratorSettings
from generator.simulator import Simulator, SimulatorConfig
from pool.config import ConfigError, PoolSettings, load_settings, mask_url
from pool.connections import pool_redis
from pool.generation import PageGenerator
from pool.keys import Keys
from pool.logs import configure_logging
from pool.stats import format_stats
from pool.store import Store
from pool.worker import Pool
from pool_app import export
from pool_app.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from pool_app.producer import (
    TERMINAL_STATES,
    EbookState,
    build_jobs,
    enqueue_ebook,
    new_ebook_id,
    read_errors,
    read_pages,
)
from pool_app.progress import BarAwareStream, ProgressBar, wait_for_ebook
from pool_app.redis_server import RedisServer, redis_server_binary
from pool_app.wiring import build_generator, describe_generator, secrets_of

__all__ = ["SAMPLE_OUTLINE", "SAMPLE_TITLE", "SAMPLE_TOPIC", "render_markdown", "run_demo"]

SAMPLE_TITLE = "Sourdough at Home: A Practical Guide for Busy Bakers"
SAMPLE_TOPIC = (
    "How to keep a sourdough starter alive and bake a reliable loaf on a normal work-week "
    "schedule, with everyday equipment and no special skills."
)
SAMPLE_OUTLINE = (
    "Why sourdough is worth the wait",
    "Flour, water, salt: choosing your ingredients",
    "Creating a starter from scratch",
    "Feeding and maintaining your starter",
    "Reading fermentation: time, temperature and smell",
    "Mixing and autolyse",
    "Stretch-and-fold instead of kneading",
    "Shaping a tight boule",
    "The cold retard: baking on your own schedule",
    "Scoring and baking in a Dutch oven",
    "Troubleshooting dense, flat or sour loaves",
    "Beyond the boule: baguettes, rolls and pizza",
)

# Used only for variables the user did not set: the demo should look like production.
_DEMO_DEFAULTS: Mapping[str, Any] = {
    "key_prefix": "ebook-demo",
    "concurrent_workers": 5,
    "stats_interval": 5_000,
}
# Fast enough for a 12-page book in a few seconds, slow enough that the workers overlap.
_SIMULATOR = SimulatorConfig(
    latency_s=0.4, latency_per_token_s=0.0005, jitter=0.5, models=(), seed=7
)
_TARGET_WORDS = 250
_PING_TIMEOUT_S = 3.0
# The private server and fakeredis need no password and speak no TLS: drop REDIS_PASSWORD etc.
_NO_REDIS_AUTH_OR_TLS: dict[str, Any] = {
    "redis_password": None,
    "redis_ca_cert": None,
    "redis_tls_insecure": False,
}


def run_demo(*, out_dir: Path) -> int:
    """Run the demo; returns the exit code (0 when every page was written)."""
    env = {name.lower() for name in os.environ}
    overrides = {k: v for k, v in _DEMO_DEFAULTS.items() if k not in env}
    settings = load_settings(PoolSettings, **overrides)
    gen_settings = load_settings(GeneratorSettings)
    configure_logging(
        fmt=settings.log_format,
        level=settings.log_level,
        secrets=secrets_of(settings, gen_settings),
    )
    redis_url_set = "redis_url" in env or "redis_public_url" in env
    return asyncio.run(_demo(settings, gen_settings, out_dir, redis_url_set=redis_url_set))


async def _demo(
    settings: PoolSettings, gen_settings: GeneratorSettings, out_dir: Path, *, redis_url_set: bool
) -> int:
    async with contextlib.AsyncExitStack() as stack:
        redis, settings = await _open_redis(stack, settings, use_url=redis_url_set)
        generator = await _open_generator(stack, gen_settings, settings.concurrent_workers)
        keys = Keys(settings.key_prefix)

        ebook_id = new_ebook_id()
        jobs = build_jobs(
            ebook_id=ebook_id,
            title=SAMPLE_TITLE,
            topic=SAMPLE_TOPIC,
            outline=SAMPLE_OUTLINE,
            audience="home bakers with a full-time job",
            style="warm, practical, concrete",
            target_words=_TARGET_WORDS,
        )
        await enqueue_ebook(redis, keys, jobs)
        _say(f"Queued '{SAMPLE_TITLE}': {len(jobs)} pages as ebook {ebook_id} on {keys.queue}.")

        bar = ProgressBar(len(jobs))
        _log_to(settings, gen_settings, BarAwareStream(sys.stdout, bar if bar.tty else None))
        pool = Pool(redis=redis, generator=generator, settings=settings)
        started = time.monotonic()
        task = asyncio.create_task(pool.run(install_signal_handlers=True))
        try:
            # A paused pool (bad key, no quota) would wait for an operator: the demo gives up.
            status = await wait_for_ebook(
                redis,
                keys,
                ebook_id,
                on_update=bar.update,
                keep_going=lambda: not task.done() and not pool.paused,
            )
        finally:
            reason = pool.pause_reason
            pool.stop()
            await task
            bar.close()
            _log_to(settings, gen_settings, sys.stdout)
        if reason is not None:
            _say(
                f"The pool paused: {reason.rstrip('.')}. Fix it, or unset OPENAI_API_KEY to use the simulator."
            )
            return EXIT_FAILED
        if status is None or status["state"] not in TERMINAL_STATES:
            _say("Interrupted before the ebook was finished.")
            return EXIT_INTERRUPTED

        pages = await read_pages(redis, keys, ebook_id)
        errors = await read_errors(redis, keys, ebook_id)
        book = _book(pages, errors, ebook_id=ebook_id)
        path = _write(out_dir / f"{ebook_id}.md", export.render_markdown(book).encode())
        epub_path = _write(out_dir / f"{ebook_id}.epub", export.render_epub(book))
        depth = await Store(redis, keys).queue_depth()
        _say(
            f"Ebook {ebook_id}: {status['state']}, {status['done']}/{status['total']} pages "
            f"in {time.monotonic() - started:.1f}s."
        )
        _say(f"Wrote {path} and {epub_path.name}")
        _say(format_stats(pool.stats.snapshot(), queue_depth=depth))
        return EXIT_OK if status["state"] == EbookState.DONE else EXIT_FAILED
    raise AssertionError("unreachable")  # pragma: no cover - the exit stack never swallows


def render_markdown(pages: Mapping[int, Mapping[str, Any]], errors: Mapping[int, str]) -> str:
    """The sample ebook as one Markdown document, pages in order; a failed page says why."""
    return export.render_markdown(_book(pages, errors, ebook_id="sample"))


def _book(
    pages: Mapping[int, Mapping[str, Any]], errors: Mapping[int, str], *, ebook_id: str
) -> export.Book:
    return export.book_from(
        ebook_id, pages, errors, total=len(SAMPLE_OUTLINE), title=SAMPLE_TITLE,
        subtitle=SAMPLE_TOPIC, headings=dict(enumerate(SAMPLE_OUTLINE)),
    )  # fmt: skip


# --- Redis ------------------------------------------------------------------------------------


async def _open_redis(
    stack: contextlib.AsyncExitStack, settings: PoolSettings, *, use_url: bool
) -> tuple[Redis, PoolSettings]:
    """The best Redis available, registered on `stack` for closing, and the settings to match."""
    if use_url:
        client = pool_redis(settings)
        shown = mask_url(settings.redis_url)
        try:
            await asyncio.wait_for(client.ping(), _PING_TIMEOUT_S)
        except Exception as exc:  # any reason it cannot be used: say it, and fall back
            await client.aclose()
            _say(f"Redis: REDIS_URL ({shown}) does not answer ({_one_line(exc)}); not using it.")
        else:
            stack.push_async_callback(client.aclose)
            _say(f"Redis: {shown} (REDIS_URL), keys under '{settings.key_prefix}:'.")
            return client, settings

    if redis_server_binary() is not None:
        server = RedisServer()
        stack.callback(server.stop)
        url = server.start().url
        settings = settings.model_copy(update={"redis_url": url, **_NO_REDIS_AUTH_OR_TLS})
        client = pool_redis(settings)
        stack.push_async_callback(client.aclose)
        _say(f"Redis: a private redis-server at {url} (stopped and deleted at the end).")
        return client, settings

    fake = _fake_redis()
    stack.push_async_callback(fake.aclose)
    settings = settings.model_copy(
        update={"redis_url": "redis://fakeredis.in-process/0", **_NO_REDIS_AUTH_OR_TLS}
    )
    _say(
        "Redis: fakeredis, in this process (no REDIS_URL and no redis-server on PATH); "
        "the pool's Lua scripts run on lupa. Install redis-server to use a real one."
    )
    return fake, settings


NO_REDIS = (
    "no Redis: REDIS_URL unreachable, no redis-server on PATH, and fakeredis is not installed "
    "(install redis-server, or pip install 'ebook-pool[demo]')"
)


def _fake_redis() -> Redis:
    """fakeredis in this process, imported only here: it is not in the production install.

    Raises:
        ConfigError: fakeredis is not installed (exit code 2, one line).
    """
    try:
        import fakeredis
    except ImportError:
        raise ConfigError(NO_REDIS) from None

    class BlockingFakeRedis(fakeredis.FakeAsyncRedis):
        """fakeredis with a BLMOVE that blocks.

        fakeredis 2.40 answers BLMOVE at once with nil instead of waiting, which turns the
        pool's idle claimer into a busy loop that starves the event loop. BRPOPLPUSH is the
        same move (right end out, left end in) and does block, so it stands in for that
        direction.
        """

        async def blmove(
            self,
            first_list: str,
            second_list: str,
            timeout: int,  # noqa: ASYNC109 - redis-py's name for it
            src: str = "LEFT",
            dest: str = "RIGHT",
        ) -> Any:
            if (src.upper(), dest.upper()) == ("RIGHT", "LEFT"):
                return await self.brpoplpush(first_list, second_list, timeout)
            return await super().blmove(first_list, second_list, timeout, src, dest)

    return BlockingFakeRedis()


# --- text -------------------------------------------------------------------------------------


async def _open_generator(
    stack: contextlib.AsyncExitStack, gen_settings: GeneratorSettings, workers: int
) -> PageGenerator:
    """The OpenAI generator if there is a key or a base URL, else the simulator's."""
    if gen_settings.openai_api_key is not None or gen_settings.openai_base_url is not None:
        _say(f"Text: the real API ({describe_generator(gen_settings)}).")
        return build_generator(gen_settings, workers=workers)
    simulator = Simulator(_SIMULATOR, host="127.0.0.1", port=0)
    await stack.enter_async_context(simulator)
    _say(
        "Text: simulated text from the built-in OpenAI simulator (OPENAI_API_KEY is not set). "
        "Set OPENAI_API_KEY to have a real model write the book."
    )
    return build_generator(
        gen_settings, workers=workers, base_url=simulator.base_url, api_key="sk-simulator"
    )


# --- output -----------------------------------------------------------------------------------


def _log_to(settings: PoolSettings, gen_settings: GeneratorSettings, stream: Any) -> None:
    configure_logging(
        fmt=settings.log_format,
        level=settings.log_level,
        stream=stream,
        secrets=secrets_of(settings, gen_settings),
        page_lines_per_s=settings.log_page_lines_per_s,
    )


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _say(text: str) -> None:
    """A line for the person running the demo (not a log line)."""
    print(text, flush=True)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
