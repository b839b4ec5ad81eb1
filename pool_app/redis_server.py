"""The one redis-server launcher: a private server on a free loopback port, for the demo, the
tests and the bench. It never touches a Redis it did not start.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

__all__ = ["RedisServer", "TlsFiles", "free_port", "redis_server_binary", "stop_process"]


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a CA and of a server certificate it signed, for a TLS-only server."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str | None:
    """The redis-server on PATH, or None."""
    return shutil.which("redis-server")


def stop_process(proc: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> None:
    """SIGTERM a child we started, then SIGKILL it if it has not exited within `timeout_s`."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class RedisServer:
    """One redis-server on 127.0.0.1, its data in `workdir` (a temp dir, deleted on `stop`, if
    not given). `start()` returns self; `with RedisServer() as server:` also works.

    Args:
        workdir: where its log and data go.
        aof: fsync every write to an append-only file, so a restart keeps them.
        port: a fixed port (kept across restarts); by default a free one, retried if taken.
        extra_args: more redis-server arguments (e.g. `--maxclients 20000`).
        password: require AUTH with it (`--requirepass`); `url` never carries it,
            `url_with_password()` does.
        tls: listen only for TLS on `port` (clients need no certificate); `url` is `rediss://`.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        aof: bool = False,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        password: str | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self._own_dir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="ebook-redis-"))
        self.aof = aof
        self._fixed_port = port is not None
        self.port = port if port is not None else free_port()
        self.extra_args = list(extra_args)
        self.password = password
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls is not None else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def url_with_password(self, password: str | None = None) -> str:
        """`url` with `password` (default: the server's) in it, percent-encoded."""
        secret = password if password is not None else self.password
        if secret is None:
            return self.url
        scheme, rest = self.url.split("://", 1)
        return f"{scheme}://:{quote(secret, safe='')}@{rest}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def start(self, *, timeout_s: float = 10.0) -> RedisServer:
        """Start it and wait until it answers PING.

        Raises:
            RuntimeError: no redis-server on PATH, or it did not answer.
        """
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server is not on PATH (apt-get install redis-server)")
        for _ in range(1 if self._fixed_port else 3):  # the free port may be grabbed meanwhile
            args = [
                binary,
                *self._listen_args(),
                "--bind", "127.0.0.1",
                "--dir", str(self.workdir),
                "--save", "",
                "--appendonly", "yes" if self.aof else "no",
                "--appendfsync", "always",
                "--logfile", str(self.log_path),
                *(["--requirepass", self.password] if self.password is not None else []),
                *self.extra_args,
            ]  # fmt: skip
            self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_for_pong(timeout_s):
                self._fixed_port = True  # a restart comes back on the same port
                return self
            self.stop(keep_dir=True)
            if not self._fixed_port:
                self.port = free_port()
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        raise RuntimeError(f"redis-server did not answer PING within {timeout_s:.0f}s: {log}")

    def stop(self, *, kill: bool = False, keep_dir: bool | None = None) -> None:
        """Stop it (SIGKILL with `kill`, like a crash); a temp workdir is deleted unless kept."""
        if self.proc is not None:
            if kill:
                self.proc.kill()
                self.proc.wait(timeout=10)
            else:
                stop_process(self.proc)
            self.proc = None
        if keep_dir is None:
            keep_dir = kill or not self._own_dir
        if not keep_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _listen_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        return [
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.tls.server_cert),
            "--tls-key-file", str(self.tls.server_key),
            "--tls-ca-cert-file", str(self.tls.ca_cert),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def _wait_for_pong(self, timeout_s: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self._answers():
                return True
            time.sleep(0.02)  # polling for readiness, bounded by the deadline
        return False

    def _answers(self) -> bool:
        """Whether the server answers PING (NOAUTH counts: it is up and wants the password)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as raw:
                if self.tls is None:
                    return _ping(raw)
                context = ssl.create_default_context()  # liveness only: no verification
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                with context.wrap_socket(raw) as s:
                    return _ping(s)
        except OSError:
            return False


def _ping(s: socket.socket) -> bool:
    s.sendall(b"PING\r\n")
    return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
