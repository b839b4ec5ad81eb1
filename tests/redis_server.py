"""Start and stop private redis-server processes for the tests (never a shared one).

A server can require a password (`password=`, redis' `--requirepass`) and/or speak only TLS
(`tls=`, from `make_tls_files`: a CA and a server certificate made with the `openssl` CLI).
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

__all__ = ["RedisServer", "TlsFiles", "free_port", "make_ca", "make_tls_files"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a test CA and of a server certificate it signed (for localhost, 127.0.0.1)."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError(
            "openssl is not on PATH; the TLS tests need it (apt-get install openssl)"
        )
    proc = subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def make_ca(workdir: Path, name: str = "ca") -> tuple[Path, Path]:
    """A self-signed CA (P-256 key, 2 days) in `workdir`: returns (certificate, key) paths."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = workdir / f"{name}.crt", workdir / f"{name}.key"
    _openssl(
        "req", "-x509", "-new", "-nodes",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", str(key), "-out", str(cert), "-days", "2",
        "-subj", f"/CN=ebook-pool test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
        cwd=workdir,
    )  # fmt: skip
    return cert, key


def make_tls_files(workdir: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> TlsFiles:
    """A CA and a server certificate it signed for `names` (host names or IPs), in `workdir`."""
    ca_cert, ca_key = make_ca(workdir, "ca")
    san = ",".join(f"IP:{n}" if _is_ip(n) else f"DNS:{n}" for n in names)
    server_cert, server_key = workdir / "server.crt", workdir / "server.key"
    csr, ext = workdir / "server.csr", workdir / "server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        f"subjectAltName={san}\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    _openssl(
        "req", "-new", "-nodes",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", str(server_key), "-out", str(csr), "-subj", f"/CN={names[0]}",
        cwd=workdir,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(server_cert), "-days", "2", "-extfile", str(ext),
        cwd=workdir,
    )  # fmt: skip
    return TlsFiles(ca_cert=ca_cert, ca_key=ca_key, server_cert=server_cert, server_key=server_key)


@dataclass
class RedisServer:
    """One redis-server on 127.0.0.1 and a free port, its data in `workdir`.

    With `aof=True` every write is fsynced to an append-only file, so a restart keeps them.
    With `password` it requires AUTH (`--requirepass`). With `tls` it listens only for TLS on
    `port` (`--port 0 --tls-port PORT`), does not ask clients for a certificate, and `url` is
    a `rediss://` URL. `url` never carries the password; `url_with_password()` does.
    """

    workdir: Path
    aof: bool = False
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    password: str | None = None
    tls: TlsFiles | None = None

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

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not on PATH; the tests need it (apt-get install redis-server)"
            )
        args = [
            binary,
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "yes" if self.aof else "no",
            "--appendfsync", "always",
            "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        if self.tls is None:
            args += ["--port", str(self.port)]
        else:
            args += [
                "--port", "0",
                "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.server_cert),
                "--tls-key-file", str(self.tls.server_key),
                "--tls-ca-cert-file", str(self.tls.ca_cert),
                "--tls-auth-clients", "no",
            ]  # fmt: skip
        if self.password is not None:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._answers():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited: {(self.workdir / 'redis.log').read_text()}"
                )
            time.sleep(0.02)  # polling for readiness, bounded by the deadline
        raise RuntimeError("redis-server did not answer PING within 10 s")

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

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        self.proc = None


def _ping(s: socket.socket) -> bool:
    s.sendall(b"PING\r\n")
    answer = s.recv(64)
    return answer.startswith((b"+PONG", b"-NOAUTH"))


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
