"""The README and docs/contract.md stay true to the code they describe."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from generator import GeneratorSettings
from pool import PoolSettings
from pool.wire import job_schema
from pool_app.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONTRACT = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")


def _table_rows(text: str, heading: str) -> dict[str, list[str]]:
    """First-column name → cells, for the first Markdown table after `heading`."""
    section = text[text.index(heading) :]
    rows: dict[str, list[str]] = {}
    started = False
    for line in section.splitlines():
        if line.startswith("|"):
            started = True
            cells = [c.strip() for c in line.strip("|").split("|")]
            name = re.fullmatch(r"`([^`]+)`", cells[0])
            if name:
                rows[name.group(1)] = cells[1:]
        elif started:
            break
    return rows


def test_readme_lists_every_env_var_with_its_default() -> None:
    """Each setting has a row, no row names a setting that does not exist, defaults agree."""
    rows = _table_rows(README, "## Configuration")
    fields = {**PoolSettings.model_fields, **GeneratorSettings.model_fields}
    expected = {name.upper() for name in fields} | {"REDIS_PUBLIC_URL"}
    assert set(rows) == expected
    for name, field in fields.items():
        default = rows[name.upper()][0]
        if field.default is None:
            assert default.startswith("—"), name
        else:
            assert default == f"`{field.default}`", name


def test_contract_lists_every_job_field() -> None:
    """The job table of docs/contract.md has exactly the schema's properties."""
    rows = _table_rows(CONTRACT, "## 1. The page job")
    schema = job_schema()
    assert set(rows) == set(schema["properties"])
    for name in schema["required"]:
        assert rows[name][1] == "**required**", name
    assert rows["language"][1] == '`"English"`'


def test_readme_commands_exist() -> None:
    """Every `ebook-pool X` the README names is a subcommand of the CLI."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    named = set(re.findall(r"ebook-pool ([a-z][a-z-]+)", README))
    assert named <= set(subparsers.choices), named - set(subparsers.choices)
    assert {"run", "demo", "enqueue", "status", "stats", "failed", "schema"} <= named
