"""What Railway installs: the locked production set carries no test-only or bench-only package.

Railpack's Python provider installs a uv project with `uv sync --locked --no-dev
--no-install-project`, then `uv sync --locked --no-dev --no-editable` (railwayapp/railpack,
core/providers/python/python.go). `--no-dev` drops the dev group; the bench group is not a
default group, so it is not installed either. `uv export` with the same flags lists that set.
"""

from __future__ import annotations

import re
import shutil
import site
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    """The normalized distribution name of a PEP 508 requirement."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _production_set() -> set[str]:
    # Where `make` puts uv (pip's user install) when it is not on PATH otherwise.
    user_bin = Path(site.getuserbase()) / "bin"
    uv = shutil.which("uv") or shutil.which("uv", path=str(user_bin))
    assert uv is not None, "uv is not installed: run the tests with `make test`"
    out = subprocess.run(
        [
            uv,
            "export",
            "--locked",
            "--no-dev",
            "--no-hashes",
            "--no-header",
            "--no-emit-project",
            "--format",
            "requirements-txt",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return {_name(line) for line in out.splitlines() if line and not line.startswith((" ", "#"))}


def test_production_install_has_no_dev_or_bench_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    groups = pyproject["dependency-groups"]
    test_and_bench = {_name(req) for group in ("dev", "bench") for req in groups[group]}
    production = _production_set()
    assert "redis" in production and "openai" in production  # the export did list something
    assert production.isdisjoint(test_and_bench), sorted(production & test_and_bench)


def test_production_install_has_no_fakeredis() -> None:
    """fakeredis (and lupa, its Lua) is the demo's fallback only: the dev group or `[demo]`."""
    production = _production_set()
    assert "fakeredis" not in production
    assert "lupa" not in production
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["optional-dependencies"]["demo"] == ["fakeredis[lua]>=2.26"]


def test_bench_group_is_not_installed_by_default() -> None:
    """`uv sync --no-dev` keeps every other default group: bench must not become one."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    default_groups = pyproject.get("tool", {}).get("uv", {}).get("default-groups", ["dev"])
    assert default_groups == ["dev"]
