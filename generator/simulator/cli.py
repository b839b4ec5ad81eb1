"""The simulator as its own process: `ebook-pool simulate-llm` or `python -m generator.simulator`.

Every `SimulatorConfig` field is a flag of the same name (`rate_window_s` → `--rate-window-s`,
booleans as `--bad-key/--no-bad-key`, lists comma-separated, `none` for no limit).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from loguru import logger

from generator.simulator.config import SimulatorConfig, field_specs, replace_config
from generator.simulator.server import Simulator

__all__ = ["DEFAULT_PORT", "add_simulator_arguments", "main", "run_simulator"]

DEFAULT_PORT = 8089
_DEST = "sim_"  # prefix of the argparse destinations, so a parent CLI's own flags cannot clash


def add_simulator_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --host, --port and one flag per `SimulatorConfig` field to `parser`."""
    parser.add_argument(
        "--host",
        dest=f"{_DEST}host",
        default="127.0.0.1",
        metavar="HOST",
        help="Interface to listen on (0.0.0.0 for all; default 127.0.0.1).",
    )
    parser.add_argument(
        "--port",
        dest=f"{_DEST}port",
        type=int,
        default=DEFAULT_PORT,
        metavar="PORT",
        help=f"Port to listen on; 0 picks a free one (default {DEFAULT_PORT}).",
    )
    for spec in field_specs():
        flag = "--" + spec.name.replace("_", "-")
        default = spec.default
        if isinstance(default, tuple):
            default = ",".join(default)
        elif default is None:
            default = "none"
        help_text = f"{spec.help} (default: {default})"
        kwargs: dict[str, Any] = {"dest": _DEST + spec.name, "default": argparse.SUPPRESS}
        if spec.kind is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, help=help_text, **kwargs
            )
        else:
            choices = list(spec.choices) or None
            parser.add_argument(
                flag,
                choices=choices,
                metavar=_metavar(spec.kind, choices),
                help=help_text,
                **kwargs,
            )


def run_simulator(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM with the flags parsed by `add_simulator_arguments`.

    Returns the process exit code: 0 after a clean stop, 2 for a bad flag value.
    """
    values = {k.removeprefix(_DEST): v for k, v in vars(args).items() if k.startswith(_DEST)}
    host, port = values.pop("host", "127.0.0.1"), values.pop("port", DEFAULT_PORT)
    try:
        config = replace_config(SimulatorConfig(), values)
    except ValueError as exc:
        print(f"simulate-llm: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(Simulator(config, host=host, port=port)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse `argv` and serve; the entry point of `python -m generator.simulator`."""
    parser = argparse.ArgumentParser(
        prog="python -m generator.simulator",
        description="An OpenAI-compatible API that writes fake pages, with rate limits and faults.",
    )
    add_simulator_arguments(parser)
    return run_simulator(parser.parse_args(argv))


async def _serve(simulator: Simulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with simulator:
            print(f"OPENAI_BASE_URL={simulator.base_url}", flush=True)
            logger.info("simulator config: {}", simulator.config.to_json())
            await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def _metavar(kind: type, choices: list[str] | None) -> str | None:
    if choices:
        return None
    return {int: "N", float: "X", tuple: "A,B,..."}.get(kind, "TEXT")
