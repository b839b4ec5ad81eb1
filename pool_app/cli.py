"""`ebook-pool`: run the pool, enqueue ebooks, look at the queue, and try it all in a demo.

The only place that builds the real collaborators (Redis client, OpenAI generator) and
configures logging. Exit codes: 0 ok, 1 the operation failed (unknown ebook, failed ebook,
Redis unreachable), 2 usage or configuration error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from loguru import logger
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from generator import GeneratorSettings
from generator.simulator import add_simulator_arguments, run_simulator
from pool.clock import now_ms
from pool.config import ConfigError, PoolSettings, load_settings, mask_url
from pool.connections import command_redis
from pool.deadletters import FailedEntry
from pool.ebooks import TERMINAL_STATES, delete_ebook
from pool.job import InvalidJob
from pool.keys import Keys
from pool.logs import configure_logging
from pool.outage import RedisConfigError, fatal_reason
from pool.ratelimit import read_budgets
from pool.store import Store
from pool.wire import job_schema, schema_files, wire_schemas
from pool_app import eventloop
from pool_app.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from pool_app.export import FORMATS, read_book, render
from pool_app.gc_tuning import tune_gc
from pool_app.health import health_app, serving
from pool_app.producer import (
    EbookExists,
    EbookState,
    build_jobs,
    enqueue_ebook,
    new_ebook_id,
    read_errors,
    read_pages,
    read_status,
)
from pool_app.progress import ProgressBar, wait_for_ebook
from pool_app.reports import (
    failed_data,
    format_failed,
    format_pools_report,
    format_status,
    pools_report_data,
    pools_report_json,
    status_data,
)
from pool_app.supervisor import resolve_processes, run_supervisor
from pool_app.wiring import (
    build_generator,
    build_metrics,
    build_pool,
    build_pricing,
    build_publisher,
    check_credentials,
    describe_generator,
    secrets_of,
)

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

PROG = "ebook-pool"

_UNREACHABLE = (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError)
_PUBLISH_DRAIN_S = 5.0  # after the pool stopped, how long its last progress events may take
_OUTLINE_MARKER = re.compile(r"^(#{1,6}|[-*+]|\d+[.)])\s+")


class CommandError(Exception):
    """A command failed in a way the user should read as one line; carries the exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `ebook-pool` command line with `argv` (default: `sys.argv[1:]`); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's --help and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except ConfigError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except CommandError as exc:
        return _fail(str(exc), exc.code)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        # A bug: through the configured sink, so a JSON log gets one line, not a raw traceback.
        logger.exception(f"{PROG}: unexpected error")
        return EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A Redis-backed worker pool that writes ebook pages with an LLM.",
        epilog="Configuration comes from environment variables; see README.md.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("run", help="Run a pool process until SIGTERM/SIGINT (what Railway runs).")
    p.add_argument(
        "--processes",
        metavar="N|auto",
        help="Run N pool processes under a supervisor; auto = the CPUs this process may use "
        "(default: PROCESSES, 1).",
    )
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser(
        "demo",
        help="Write a sample 12-page ebook end to end, with nothing set up.",
        description=(
            "Uses REDIS_URL if set and reachable, else a private redis-server, else an "
            "in-process fake Redis; uses OPENAI_API_KEY if set, else the built-in simulator."
        ),
    )
    p.add_argument(
        "--out", type=Path, default=Path("out"), help="Directory for the Markdown (default: out)."
    )
    p.set_defaults(handler=_cmd_demo)

    _add_enqueue(sub)

    p = sub.add_parser("status", help="Show one ebook's progress and pages.")
    p.add_argument("ebook_id", metavar="EBOOK_ID")
    p.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    p.set_defaults(handler=_cmd_status)

    p = sub.add_parser("stats", help="Show the queue and the live pool processes.")
    p.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    p.set_defaults(handler=_cmd_stats)

    _add_book_commands(sub)

    p = sub.add_parser("failed", help="List, retry or purge failed jobs (the dead letters).")
    _add_failed_actions(p)

    p = sub.add_parser(
        "schema",
        help="Print the JSON Schema of a page job, or of every wire record (--all).",
        description="JSON Schemas (draft 2020-12) of the wire contract (docs/contract.md).",
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="Every wire record (page job, page record, status, failed entry, progress event, "
        "stats) as one JSON object: name → schema.",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="With --all: write DIR/<Name>.json, one file per record (what schemas/ holds).",
    )
    p.set_defaults(handler=_cmd_schema)

    _add_dashboard(sub)

    p = sub.add_parser(
        "simulate-llm",
        help="Serve a fake OpenAI-compatible API (see docs/simulator.md).",
        description="An OpenAI-compatible API that writes fake pages, with rate limits and faults.",
    )
    add_simulator_arguments(p)
    p.set_defaults(handler=_cmd_simulate)
    return parser


def _add_book_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`export` and `delete`: one ebook as a book, and its keys gone."""
    p = sub.add_parser("export", help="Write one ebook as a book: Markdown, HTML or EPUB.")
    p.add_argument("ebook_id", metavar="EBOOK_ID")
    p.add_argument("--format", choices=FORMATS, default="md", help="File format (default: md).")
    p.add_argument(
        "--out",
        type=Path,
        metavar="PATH",
        help="File to write (default: EBOOK_ID.FORMAT; - = stdout).",
    )
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser(
        "delete", help="Delete every key of one ebook (status, pages, errors, events stream)."
    )
    p.add_argument("ebook_id", metavar="EBOOK_ID")
    p.set_defaults(handler=_cmd_delete)


def _add_dashboard(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "dashboard",
        help="Serve the dashboard alone (no pool): queue, processes, ebooks, failed jobs.",
        description="The dashboard that `ebook-pool run` serves at / on HTTP_PORT/PORT, alone.",
    )
    p.add_argument("--host", help="Address to bind (default: HTTP_HOST, 0.0.0.0).")
    p.add_argument(
        "--port", type=int, help="Port (default: HTTP_PORT, else PORT, else 8080; 0 = any free)."
    )
    p.set_defaults(handler=_cmd_dashboard)


def _add_enqueue(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("enqueue", help="Queue every page of one ebook; prints the ebook id.")
    p.add_argument("--title", required=True, help="Title of the ebook.")
    p.add_argument("--topic", help="What the book is about (a sentence or a paragraph).")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--pages", type=int, metavar="N", help="Number of pages.")
    size.add_argument(
        "--outline-file",
        type=Path,
        metavar="PATH",
        help="One page heading per line ('-' for stdin); sets the number of pages.",
    )
    p.add_argument("--language", help="Language to write in (default: English).")
    p.add_argument("--style", help="Tone and style, e.g. 'friendly, practical'.")
    p.add_argument("--audience", help="Who the book is for.")
    p.add_argument("--instructions", help="Extra instructions for every page.")
    p.add_argument("--model", help="Model for these pages (default: OPENAI_MODEL).")
    p.add_argument("--target-words", type=int, metavar="N", help="Approximate words per page.")
    p.add_argument(
        "--ebook-id", help="Id of the ebook (default: generated, e.g. 1704123456789-abc123)."
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="Show progress until the ebook is finished; exit 1 if a page failed.",
    )
    p.set_defaults(handler=_cmd_enqueue)


def _add_failed_actions(p: argparse.ArgumentParser) -> None:
    failed_sub = p.add_subparsers(title="actions", metavar="ACTION", required=True)
    f = failed_sub.add_parser("list", help="Show failed jobs, newest first.")
    f.add_argument("--ebook", metavar="ID", help="Only the jobs of this ebook.")
    f.add_argument("--limit", type=int, default=20, metavar="N", help="At most N (default 20).")
    f.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    f.set_defaults(handler=_cmd_failed_list)
    for action, help_text, handler in (
        ("retry", "Put failed jobs back on the queue.", _cmd_failed_retry),
        ("purge", "Delete failed jobs for good.", _cmd_failed_purge),
    ):
        f = failed_sub.add_parser(action, help=help_text)
        which = f.add_mutually_exclusive_group(required=True)
        which.add_argument("--ebook", metavar="ID", help="Only the jobs of this ebook.")
        which.add_argument("--all", action="store_true", help="Every failed job.")
        if action == "purge":
            f.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        f.set_defaults(handler=handler)


# --- run ------------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    flag = {} if args.processes is None else {"processes": args.processes}
    settings = load_settings(PoolSettings, **flag)
    gen_settings = load_settings(GeneratorSettings)
    check_credentials(gen_settings)
    build_pricing(settings)  # a bad PRICE_TABLE_FILE stops here, exit 2
    configure_logging(
        fmt=settings.log_format,
        level=settings.log_level,
        secrets=secrets_of(settings, gen_settings),
        page_lines_per_s=settings.log_page_lines_per_s,
    )
    loop = eventloop.resolve_event_loop(settings.event_loop)  # EVENT_LOOP=uvloop without it: 2
    processes = resolve_processes(settings.processes)
    if processes > 1:
        return run_supervisor(processes, shutdown_grace_s=settings.shutdown_grace_s)
    tune_gc()
    return eventloop.run(_run_pool(settings, gen_settings), event_loop=loop)


async def _run_pool(settings: PoolSettings, gen_settings: GeneratorSettings) -> int:
    generator = build_generator(gen_settings, workers=settings.concurrent_workers)
    redis, pool = build_pool(settings, generator, default_model=gen_settings.openai_model)
    publisher = build_publisher(pool, redis, settings)
    try:
        logger.info(f"[Worker Pool] Generator: {describe_generator(gen_settings)}")
        async with contextlib.AsyncExitStack() as http:
            if settings.http_port is not None:
                metrics = None
                if settings.metrics_enabled:
                    metrics = build_metrics(pool, settings, default_model=gen_settings.openai_model)
                app = health_app(pool, redis, settings=settings, metrics=metrics)
                await http.enter_async_context(
                    serving(app, host=settings.http_host, port=settings.http_port)
                )
            await pool.run(install_signal_handlers=True)
            if publisher is not None:
                await publisher.drain(_PUBLISH_DRAIN_S)
    except RedisConfigError as exc:
        logger.error(f"[Worker Pool] {exc}")
        return _fail(f"Redis at {mask_url(settings.redis_url)}: {exc}", EXIT_USAGE)
    except Exception:
        logger.exception("[Worker Pool] Crashed")
        return EXIT_FAILED
    finally:
        await redis.aclose()
    return EXIT_OK


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from pool_app.dashboard import dashboard_app

    settings = load_settings(PoolSettings)
    configure_logging(
        fmt=settings.log_format, level=settings.log_level, secrets=secrets_of(settings, None)
    )
    host = args.host or settings.http_host
    port = args.port if args.port is not None else settings.http_port
    port = 8080 if port is None else port
    if not 0 <= port <= 65_535:
        raise CommandError(f"--port must be 0-65535, not {port}", EXIT_USAGE)

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with serving(dashboard_app(settings), host=host, port=port, what="the dashboard"):
            await stop.wait()
        logger.info("[Dashboard] Stopped.")
        return EXIT_OK

    return asyncio.run(serve())


# --- demo, simulator, schema ------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from pool_app.demo import run_demo  # the demo's parts (simulator, producer): only when asked

    return run_demo(out_dir=args.out)


def _cmd_simulate(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(PoolSettings)
        fmt, level = settings.log_format, settings.log_level
    except ConfigError:  # the simulator does not need the pool's settings to be right
        fmt, level = "text", "INFO"
    configure_logging(fmt=fmt, level=level)
    return run_simulator(args)


def _cmd_schema(args: argparse.Namespace) -> int:
    if args.out is not None and not args.all:
        raise CommandError("--out needs --all", EXIT_USAGE)
    if not args.all:
        print(json.dumps(job_schema(), indent=2, ensure_ascii=False))
        return EXIT_OK
    schemas = wire_schemas()
    if args.out is None:
        print(json.dumps(schemas, indent=2, ensure_ascii=False))
        return EXIT_OK
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in schema_files(schemas).items():
        (args.out / name).write_text(text, encoding="utf-8")
    print(f"Wrote {len(schemas)} schemas to {args.out}", file=sys.stderr)
    return EXIT_OK


# --- one-shot commands against Redis ---------------------------------------------------------


def _one_shot(work: Callable[[Redis, Keys], Awaitable[int]]) -> int:
    """Run `work` with a short-lived client; an unreachable Redis becomes one line, exit 1."""
    settings = load_settings(PoolSettings)
    # Nothing here should log, but if a library does, keep stdout clean for the output.
    configure_logging(fmt=settings.log_format, level="WARNING", stream=sys.stderr)

    async def go() -> int:
        redis = command_redis(settings)
        try:
            return await work(redis, Keys(settings.key_prefix))
        except (redis_errors.RedisError, OSError) as exc:
            where = f"Redis at {mask_url(settings.redis_url)}"
            fatal = fatal_reason(exc)
            if fatal is not None:  # a password or TLS problem: a configuration error
                raise CommandError(f"{where}: {fatal}", EXIT_USAGE) from None
            if isinstance(exc, _UNREACHABLE):
                raise CommandError(f"cannot reach {where}: {_one_line(exc)}") from None
            raise CommandError(f"{where} answered with an error: {_one_line(exc)}") from None
        finally:
            await redis.aclose()

    return asyncio.run(go())


def _cmd_enqueue(args: argparse.Namespace) -> int:
    outline = _read_outline(args.outline_file) if args.outline_file is not None else None
    ebook_id = args.ebook_id or new_ebook_id()
    try:
        jobs = build_jobs(
            ebook_id=ebook_id,
            title=args.title,
            pages=args.pages,
            outline=outline,
            topic=args.topic,
            language=args.language,
            style=args.style,
            audience=args.audience,
            instructions=args.instructions,
            model=args.model,
            target_words=args.target_words,
        )
    except InvalidJob as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None

    async def work(redis: Redis, keys: Keys) -> int:
        try:
            await enqueue_ebook(redis, keys, jobs)
        except EbookExists as exc:
            raise CommandError(f"{exc}; choose another --ebook-id") from None
        print(
            f"Queued {len(jobs)} pages of {args.title!r} as ebook {ebook_id} on {keys.queue}",
            file=sys.stderr,
        )
        print(ebook_id, flush=True)
        if not args.wait:
            return EXIT_OK
        bar = ProgressBar(len(jobs))
        status = await wait_for_ebook(redis, keys, ebook_id, on_update=bar.update)
        bar.close()
        if status is None:
            raise CommandError(f"ebook {ebook_id} disappeared from Redis while waiting")
        print(
            f"Ebook {ebook_id}: {status['state']} "
            f"({status['done']}/{status['total']} pages, {status['failed']} failed)",
            file=sys.stderr,
        )
        return EXIT_OK if status["state"] == EbookState.DONE else EXIT_FAILED

    return _one_shot(work)


def _cmd_status(args: argparse.Namespace) -> int:
    async def work(redis: Redis, keys: Keys) -> int:
        status = await read_status(redis, keys, args.ebook_id)
        if status is None:
            raise CommandError(
                f"unknown ebook {args.ebook_id} (nothing at {keys.status(args.ebook_id)})"
            )
        pages = await read_pages(redis, keys, args.ebook_id)
        errors = await read_errors(redis, keys, args.ebook_id)
        data = status_data(status, pages, errors)
        print(json.dumps(data, ensure_ascii=False) if args.json else format_status(data))
        return EXIT_OK

    return _one_shot(work)


def _cmd_stats(args: argparse.Namespace) -> int:
    async def work(redis: Redis, keys: Keys) -> int:
        store = Store(redis, keys)
        pools = await store.live_pools()
        data = pools_report_data(
            queue_depth=await store.queue_depth(),
            in_flight=await store.in_flight(list(pools)),
            failed=await store.failed_count(),
            pools=pools,
            budgets=await read_budgets(redis, keys),
        )
        if args.json:
            print(json.dumps(pools_report_json(data), ensure_ascii=False))
        else:
            print(format_pools_report(data))
        return EXIT_OK

    return _one_shot(work)


def _cmd_export(args: argparse.Namespace) -> int:
    async def work(redis: Redis, keys: Keys) -> int:
        book = await read_book(redis, keys, args.ebook_id)
        if book is None:
            raise CommandError(f"unknown ebook {args.ebook_id} (no status and no pages)")
        data = render(book, args.format)
        if str(args.out) == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return EXIT_OK
        safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", args.ebook_id)
        path: Path = args.out or Path(f"{safe_id}.{args.format}")
        try:
            await asyncio.to_thread(path.write_bytes, data)
        except OSError as exc:
            raise CommandError(f"--out: {exc.strerror or exc}: {path}") from None
        done = sum(1 for c in book.chapters if c.content is not None)
        print(
            f"Wrote {path}: {done}/{len(book.chapters)} pages of {book.title!r}.", file=sys.stderr
        )
        return EXIT_OK

    return _one_shot(work)


def _cmd_delete(args: argparse.Namespace) -> int:
    async def work(redis: Redis, keys: Keys) -> int:
        status = await read_status(redis, keys, args.ebook_id)
        n = await delete_ebook(redis, keys, args.ebook_id)
        if n == 0:
            raise CommandError(f"unknown ebook {args.ebook_id} (no key to delete)")
        print(f"Deleted {n} keys of ebook {args.ebook_id}.")
        if status is not None and status["state"] not in TERMINAL_STATES:
            print(
                f"It was {status['state']}: jobs still queued or running will write it again.",
                file=sys.stderr,
            )
        return EXIT_OK

    return _one_shot(work)


def _cmd_failed_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CommandError("--limit must be at least 1", EXIT_USAGE)

    async def work(redis: Redis, keys: Keys) -> int:
        store = Store(redis, keys)
        total = await store.failed_count()
        if args.ebook is None:
            entries = await store.failed(0, args.limit - 1)
        else:
            entries = [e for e in await store.failed() if e.ebook_id == args.ebook]
            total = len(entries)
            entries = entries[: args.limit]
        if args.json:
            print(json.dumps(failed_data(entries), ensure_ascii=False))
        else:
            print(format_failed(entries, total=total))
        return EXIT_OK

    return _one_shot(work)


def _cmd_failed_retry(args: argparse.Namespace) -> int:
    async def work(redis: Redis, keys: Keys) -> int:
        store = Store(redis, keys)
        entries = _select(await store.failed(), args.ebook)
        invalid = [e for e in entries if e.error_type == "invalid"]
        retried = 0
        for entry in entries:
            if entry.error_type == "invalid":
                continue
            if await store.retry_failed(entry, now_ms=now_ms()):
                retried += 1
        print(f"Put {retried} failed jobs back on {keys.queue}.")
        if invalid:
            print(
                f"Left {len(invalid)} invalid payloads in the failed list: they would fail "
                "again as they are. Fix the producer, then `ebook-pool failed purge`.",
                file=sys.stderr,
            )
        return EXIT_OK

    return _one_shot(work)


def _cmd_failed_purge(args: argparse.Namespace) -> int:
    async def work(redis: Redis, keys: Keys) -> int:
        store = Store(redis, keys)
        entries = _select(await store.failed(), args.ebook)
        if not entries:
            print("No failed jobs to purge.")
            return EXIT_OK
        what = f"{len(entries)} failed jobs" + (f" of ebook {args.ebook}" if args.ebook else "")
        if not args.yes:
            _confirm(f"Delete {what} for good?")
        n = await store.purge_failed(None if args.all else entries)
        print(f"Deleted {n} failed jobs.")
        return EXIT_OK

    return _one_shot(work)


# --- helpers -------------------------------------------------------------------------------------


def _select(entries: list[FailedEntry], ebook_id: str | None) -> list[FailedEntry]:
    return entries if ebook_id is None else [e for e in entries if e.ebook_id == ebook_id]


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise CommandError("not a terminal: add --yes to purge without a prompt", EXIT_USAGE)
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in {"y", "yes"}:
        raise CommandError("nothing deleted", EXIT_FAILED)


def _read_outline(path: Path) -> list[str]:
    """Headings from a file, one per line; blank lines skipped, Markdown markers removed."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"--outline-file: {exc.strerror or exc}: {path}", EXIT_USAGE) from None
    headings = [_OUTLINE_MARKER.sub("", line.strip()) for line in text.splitlines()]
    return [h for h in headings if h]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code
