"""The peers' venvs: one per library under bench/.peers/, installed by the bench itself.

Each library gets its own venv because they disagree about redis-py (arq < 6, SAQ < 8,
taskiq-redis >= 8) and each should be measured at its latest release. Versions are pinned in
bench/peers/requirements/<name>.txt (compiled from <name>.in with `uv pip compile`); a venv is
reinstalled when its requirements file changes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from bench.harness import REPO

__all__ = ["PEERS_DIR", "REQUIREMENTS_DIR", "ensure_venv", "installed_versions"]

PEERS_DIR = REPO / "bench" / ".peers"
REQUIREMENTS_DIR = REPO / "bench" / "peers" / "requirements"
_MARKER = "bench-requirements.sha256"


def _uv() -> str:
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is not on PATH; it installs the peers' venvs")
    return uv


def ensure_venv(env: str, *, log: bool = True) -> Path:
    """The interpreter of the venv for `env` (e.g. "arq"), created or updated as needed."""
    requirements = REQUIREMENTS_DIR / f"{env}.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    venv = PEERS_DIR / env
    python = venv / "bin" / "python"
    marker = venv / _MARKER
    if python.exists() and marker.exists() and marker.read_text() == digest:
        return python
    if log:
        print(f"[bench] installing {env} into {venv.relative_to(REPO)}", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    # The project's own interpreter (a venv's python resolves to its base CPython).
    base = getattr(sys, "_base_executable", sys.executable)
    run = {"check": True, "cwd": REPO, "stdout": subprocess.DEVNULL}
    subprocess.run([_uv(), "venv", "--quiet", "--python", base, str(venv)], **run)  # type: ignore[call-overload]
    subprocess.run(  # type: ignore[call-overload]
        [_uv(), "pip", "install", "--quiet", "--python", str(python), "-r", str(requirements)],
        **run,
    )
    marker.write_text(digest)
    return python


def installed_versions(python: Path, packages: list[str]) -> dict[str, str]:
    """Versions of `packages` in the venv of `python` (missing ones are left out)."""
    script = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))"
    )
    out = subprocess.run(
        [str(python), "-c", script, *packages], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout))
