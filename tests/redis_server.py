"""Private redis-server processes for the tests (never a shared one): the app's one launcher,
plus what only the TLS tests need: a CA and a server certificate made with the `openssl` CLI.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from pathlib import Path

from pool_app.redis_server import RedisServer, TlsFiles, free_port

__all__ = ["RedisServer", "TlsFiles", "free_port", "make_ca", "make_tls_files"]


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


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
