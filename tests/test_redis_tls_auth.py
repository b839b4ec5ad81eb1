"""Redis with a password and over TLS, against real redis-servers (`--requirepass`, `--tls-port`).

The CA and the server certificates are made here with the `openssl` CLI. These pin down:
REDIS_PASSWORD, REDIS_CA_CERT (a path or the PEM text) and REDIS_TLS_INSECURE reach both Redis
clients; bad values are one-line configuration errors that echo neither the PEM nor a secret;
the password never shows in logs, command output or Redis; and which redis-py exception each
way of failing to connect raises (what `ebook-pool run` has to classify).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from generator import GeneratorSettings
from generator.simulator import Simulator, SimulatorConfig
from pool import PoolSettings
from pool import connections as connections_module
from pool.config import ConfigError, load_settings
from pool.connections import command_redis, pool_redis, redis_options
from pool.keys import Keys
from pool.logs import configure_logging, reset_logging
from pool_app.cli import main
from tests.fakes import wait_until
from tests.redis_server import RedisServer, TlsFiles, free_port, make_ca, make_tls_files

KEYS = Keys()
PASSWORD = "pw-Sup3r-s3cret-4b1d"
API_KEY = "sk-test-tls-0123456789SECRET"
OUR_VARS = frozenset(
    [name.upper() for name in PoolSettings.model_fields]
    + [name.upper() for name in GeneratorSettings.model_fields]
    + ["REDIS_PUBLIC_URL", "SSL_CERT_FILE", "SSL_CERT_DIR"]
)
Client = Callable[[PoolSettings], Redis]
CLIENTS = [pytest.param(pool_redis, id="pool_redis"), pytest.param(command_redis, id="command")]


# --- servers and certificates -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA and a server certificate for localhost and 127.0.0.1."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def wrong_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that signed nothing the servers use."""
    cert, _ = make_ca(tmp_path_factory.mktemp("wrong-ca"), "wrong-ca")
    return cert


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A plain redis-server that requires PASSWORD."""
    server = RedisServer(workdir=tmp_path_factory.mktemp("redis-auth"), password=PASSWORD)
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def tls_server(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TlsFiles
) -> Iterator[RedisServer]:
    """A TLS-only redis-server that also requires PASSWORD."""
    server = RedisServer(
        workdir=tmp_path_factory.mktemp("redis-tls"), password=PASSWORD, tls=tls_files
    )
    yield server.start()
    server.stop()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """None of our variables (nor SSL_CERT_FILE) leak in from the environment; logging reset."""
    for name in OUR_VARS:
        monkeypatch.delenv(name, raising=False)
    yield
    reset_logging()


def settings_from_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> PoolSettings:
    """PoolSettings read from the environment with `env` set, as `ebook-pool` reads them."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings(PoolSettings)


async def round_trip(make: Client, settings: PoolSettings) -> None:
    """Write and read back a key through a client made by `make`; it must work."""
    client = make(settings)
    try:
        await client.set("tls-auth:probe", "ok")
        assert await client.get("tls-auth:probe") == b"ok"
    finally:
        await client.aclose()


async def connect_error(make: Client, settings: PoolSettings) -> BaseException:
    """The exception a PING through a client made by `make` raises; it must raise one."""
    client = make(settings)
    try:
        await client.ping()
    except Exception as exc:
        return exc
    finally:
        await client.aclose()
    raise AssertionError("the connection was expected to fail")


# --- passwords -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", CLIENTS)
async def test_password_in_redis_url_connects(
    monkeypatch: pytest.MonkeyPatch, auth_server: RedisServer, make: Client
) -> None:
    """A password inside REDIS_URL authenticates both clients."""
    settings = settings_from_env(monkeypatch, REDIS_URL=auth_server.url_with_password())
    await round_trip(make, settings)


@pytest.mark.parametrize("make", CLIENTS)
@pytest.mark.parametrize("url_password", [None, "wrong-one"], ids=["url-without", "url-wrong"])
async def test_redis_password_alone_or_replacing_the_urls_connects(
    monkeypatch: pytest.MonkeyPatch,
    auth_server: RedisServer,
    make: Client,
    url_password: str | None,
) -> None:
    """REDIS_PASSWORD authenticates on its own and wins over a password in the URL."""
    url = auth_server.url if url_password is None else auth_server.url_with_password(url_password)
    settings = settings_from_env(monkeypatch, REDIS_URL=url, REDIS_PASSWORD=PASSWORD)
    await round_trip(make, settings)


def test_url_user_name_is_kept_when_redis_password_replaces_the_password() -> None:
    """`redis_options` passes the password only; the URL's ACL user name stays the URL's."""
    settings = PoolSettings(
        redis_url="redis://app:old@127.0.0.1:6390/0", redis_password=SecretStr(PASSWORD)
    )
    assert redis_options(settings) == {"password": PASSWORD}
    pool = pool_redis(settings).connection_pool
    assert pool.connection_kwargs["username"] == "app"
    assert pool.connection_kwargs["password"] == PASSWORD


def test_empty_redis_password_and_ca_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty variable, as dashboards leave them, is not a password or a CA."""
    settings = settings_from_env(monkeypatch, REDIS_PASSWORD="", REDIS_CA_CERT="  ")
    assert settings.redis_password is None and settings.redis_ca_cert is None
    assert redis_options(settings) == {}


# --- TLS -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", CLIENTS)
@pytest.mark.parametrize("form", ["path", "pem", "pem-escaped-newlines"])
async def test_tls_with_redis_ca_cert_connects(
    monkeypatch: pytest.MonkeyPatch,
    tls_server: RedisServer,
    tls_files: TlsFiles,
    make: Client,
    form: str,
) -> None:
    """REDIS_CA_CERT as a path, as PEM text, or as PEM pasted with `\\n` escapes verifies the
    server's certificate."""
    pem = tls_files.ca_cert.read_text()
    value = {
        "path": str(tls_files.ca_cert),
        "pem": pem,
        "pem-escaped-newlines": pem.strip().replace("\n", "\\n"),
    }[form]
    settings = settings_from_env(
        monkeypatch, REDIS_URL=tls_server.url, REDIS_PASSWORD=PASSWORD, REDIS_CA_CERT=value
    )
    options = redis_options(settings)
    if form == "path":
        assert options["ssl_ca_certs"] == str(tls_files.ca_cert) and "ssl_ca_data" not in options
    else:
        assert options["ssl_ca_data"] == pem.strip() and "ssl_ca_certs" not in options
    await round_trip(make, settings)


@pytest.mark.parametrize("make", CLIENTS)
async def test_tls_ca_in_the_url_query_and_ssl_cert_file_still_work(
    monkeypatch: pytest.MonkeyPatch, tls_server: RedisServer, tls_files: TlsFiles, make: Client
) -> None:
    """The two ways that worked before the settings: `?ssl_ca_certs=PATH` and SSL_CERT_FILE."""
    url = f"{tls_server.url_with_password()}?ssl_ca_certs={tls_files.ca_cert}"
    await round_trip(make, PoolSettings(redis_url=url))
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca_cert))
    await round_trip(make, PoolSettings(redis_url=tls_server.url_with_password()))


@pytest.mark.parametrize("make", CLIENTS)
@pytest.mark.parametrize("ca", ["wrong CA", "system CAs"])
async def test_tls_with_an_unknown_ca_fails_verification(
    tls_server: RedisServer, wrong_ca: Path, make: Client, ca: str
) -> None:
    """A certificate signed by a CA we were not given: redis-py's plain ConnectionError, raised
    while handling ssl.SSLCertVerificationError (its __context__), CERTIFICATE_VERIFY_FAILED
    in the text."""
    settings = PoolSettings(
        redis_url=tls_server.url,
        redis_password=SecretStr(PASSWORD),
        redis_ca_cert=str(wrong_ca) if ca == "wrong CA" else None,
    )
    exc = await connect_error(make, settings)
    assert type(exc) is redis_errors.ConnectionError
    assert isinstance(exc.__context__, ssl.SSLCertVerificationError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(exc)
    assert PASSWORD not in str(exc)


async def test_tls_host_name_must_match_the_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A certificate for `localhost` reached as 127.0.0.1 fails the same way, unless
    REDIS_TLS_INSECURE; as `localhost` it passes."""
    files = make_tls_files(tmp_path / "tls", names=("localhost",))
    server = RedisServer(workdir=tmp_path, tls=files).start()
    try:
        settings = PoolSettings(redis_url=server.url, redis_ca_cert=str(files.ca_cert))
        exc = await connect_error(pool_redis, settings)
        assert type(exc) is redis_errors.ConnectionError
        assert isinstance(exc.__context__, ssl.SSLCertVerificationError)
        assert "IP address mismatch" in str(exc)
        by_name = settings.model_copy(update={"redis_url": f"rediss://localhost:{server.port}/0"})
        await round_trip(pool_redis, by_name)
        await round_trip(pool_redis, settings.model_copy(update={"redis_tls_insecure": True}))
    finally:
        server.stop()


@pytest.mark.parametrize("make", CLIENTS)
async def test_tls_insecure_connects_despite_a_wrong_ca(
    monkeypatch: pytest.MonkeyPatch, tls_server: RedisServer, wrong_ca: Path, make: Client
) -> None:
    """REDIS_TLS_INSECURE=1 skips certificate and host name checks (TLS still on)."""
    settings = settings_from_env(
        monkeypatch,
        REDIS_URL=tls_server.url,
        REDIS_PASSWORD=PASSWORD,
        REDIS_CA_CERT=str(wrong_ca),
        REDIS_TLS_INSECURE="1",
    )
    assert redis_options(settings)["ssl_cert_reqs"] == "none"
    assert redis_options(settings)["ssl_check_hostname"] is False
    await round_trip(make, settings)


def test_tls_insecure_logs_a_warning_when_the_pool_client_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pool's client says at start that the server's certificate is not verified."""
    out = io.StringIO()
    configure_logging(stream=out)
    settings = settings_from_env(
        monkeypatch, REDIS_URL="rediss://127.0.0.1:6390/0", REDIS_TLS_INSECURE="true"
    )
    pool_redis(settings)
    [line] = out.getvalue().splitlines()
    assert "| WARNING  |" in line and "REDIS_TLS_INSECURE is on" in line
    out.seek(0)
    out.truncate()
    pool_redis(settings.model_copy(update={"redis_tls_insecure": False}))
    assert out.getvalue() == ""


# --- configuration errors and describe() ---------------------------------------------------------


def test_describe_masks_the_password_and_shows_the_ca_as_a_path_or_a_size(
    tls_files: TlsFiles,
) -> None:
    """The `Config:` line: REDIS_PASSWORD is '***', REDIS_CA_CERT a path or `<PEM, N bytes>`."""
    pem = tls_files.ca_cert.read_text()
    url = f"rediss://:{PASSWORD}@127.0.0.1:6390/0"
    by_text = PoolSettings(redis_url=url, redis_password=SecretStr(PASSWORD), redis_ca_cert=pem)
    described = by_text.describe()
    assert described["REDIS_PASSWORD"] == "***"
    assert described["REDIS_CA_CERT"] == f"<PEM, {len(pem.strip().encode())} bytes>"
    assert described["REDIS_TLS_INSECURE"] is False
    assert PASSWORD not in str(described) and "BEGIN" not in str(described)
    assert PASSWORD not in repr(by_text.model_copy(update={"redis_url": "rediss://h:6390/0"}))
    by_path = PoolSettings(redis_url=url, redis_ca_cert=str(tls_files.ca_cert))
    assert by_path.describe()["REDIS_CA_CERT"] == str(tls_files.ca_cert)
    assert by_path.describe()["REDIS_PASSWORD"] is None


@pytest.mark.parametrize(
    ("env", "shown"),
    [
        (
            {"REDIS_CA_CERT": "/nonexistent/ca.pem"},
            "REDIS_CA_CERT: /nonexistent/ca.pem is not a file",
        ),
        (
            {"REDIS_CA_CERT": "-----BEGIN CERTIFICATE-----\nMIIBnotbase64!!\n-----END CERTIFICATE-----"},
            "REDIS_CA_CERT: PEM text (",
        ),
        ({"REDIS_CA_CERT": "<file that is not PEM>"}, "holds no certificate that can be parsed"),
        (
            {"REDIS_URL": "redis://127.0.0.1:6390/0", "REDIS_CA_CERT": "<the CA>"},
            "REDIS_CA_CERT is set but REDIS_URL is not a rediss:// URL",
        ),
        (
            {"REDIS_URL": "redis://127.0.0.1:6390/0", "REDIS_TLS_INSECURE": "yes"},
            "REDIS_TLS_INSECURE is set but REDIS_URL is not a rediss:// URL",
        ),
        ({"REDIS_TLS_INSECURE": "maybe"}, "REDIS_TLS_INSECURE: Input should be a valid boolean"),
    ],
    ids=["missing-file", "bad-pem-text", "file-not-pem", "ca-without-tls", "insecure-no-tls",
         "not-a-bool"],
)  # fmt: skip
def test_bad_tls_settings_are_one_line_exit_2_without_the_pem_or_password(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    tls_files: TlsFiles,
    env: dict[str, str],
    shown: str,
) -> None:
    """`run` with a missing CA file, unparsable PEM, TLS options without rediss:// or a
    non-boolean REDIS_TLS_INSECURE prints one line naming the variable, exit 2."""
    not_pem = tmp_path / "not-a-cert.txt"
    not_pem.write_text("hello\n")
    values = {"<file that is not PEM>": str(not_pem), "<the CA>": str(tls_files.ca_cert)}
    monkeypatch.setenv("REDIS_URL", f"rediss://:{PASSWORD}@127.0.0.1:6390/0")
    monkeypatch.setenv("REDIS_PASSWORD", PASSWORD)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    for name, value in env.items():
        monkeypatch.setenv(name, values.get(value, value))
    assert main(["run"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("ebook-pool: error: ") and err.count("\n") == 1
    assert shown in err
    assert PASSWORD not in err and API_KEY not in err
    assert "MIIB" not in err and "BEGIN" not in err.replace("starts with -----BEGIN", "")


def test_a_long_value_that_is_neither_a_file_nor_pem_is_not_echoed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A certificate body pasted without its BEGIN line is refused without being repeated."""
    body = "MIIB" + "A" * 600
    with pytest.raises(ConfigError) as caught:
        settings_from_env(monkeypatch, REDIS_URL="rediss://h:6390/0", REDIS_CA_CERT=body)
    assert str(caught.value).startswith("REDIS_CA_CERT: the value is not a file")
    assert "MIIB" not in str(caught.value)


# --- which exception for which failure (for `ebook-pool run` to classify) ---------------------------


@pytest.fixture
async def not_redis() -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that answers anything with an HTTP 400; yields its port."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("make", CLIENTS)
@pytest.mark.parametrize(
    ("case", "error", "cause", "text"),
    [
        ("wrong password", redis_errors.AuthenticationError, None, "invalid username-password pair"),
        ("no password", redis_errors.AuthenticationError, None, ""),
        ("wrong CA", redis_errors.ConnectionError, ssl.SSLCertVerificationError,
         "CERTIFICATE_VERIFY_FAILED"),
        ("refused", redis_errors.ConnectionError, ConnectionRefusedError, "Error 111 connecting"),
        ("dns", redis_errors.ConnectionError, OSError, "connecting to nonexistent.invalid:6379"),
        ("not redis", redis_errors.InvalidResponse, None, 'Protocol error, got "H"'),
        ("plain client, TLS server", redis_errors.ConnectionError, ConnectionResetError,
         "Connection reset by peer"),
        ("TLS client, plain server", redis_errors.TimeoutError, TimeoutError,
         "Timeout connecting to server"),
    ],
)  # fmt: skip
async def test_each_connection_failure_raises_this_redis_py_exception(
    monkeypatch: pytest.MonkeyPatch,
    auth_server: RedisServer,
    tls_server: RedisServer,
    tls_files: TlsFiles,
    wrong_ca: Path,
    not_redis: int,
    make: Client,
    case: str,
    error: type[Exception],
    cause: type[BaseException] | None,
    text: str,
) -> None:
    """The exact class, the exception it was raised from (`__context__`; redis-py sets no
    `__cause__`) and a stable part of its text, for each way connecting can fail (the text of "no password" depends on the client's first command: see below)."""
    monkeypatch.setattr(connections_module, "_CONNECT_TIMEOUT_S", 0.5)  # the TLS-to-plain case
    ca = str(tls_files.ca_cert)
    settings: dict[str, Any] = {
        "wrong password": {"redis_url": auth_server.url, "redis_password": "wrong-password"},
        "no password": {"redis_url": auth_server.url},
        "wrong CA": {"redis_url": tls_server.url, "redis_password": PASSWORD,
                     "redis_ca_cert": str(wrong_ca)},
        "refused": {"redis_url": f"redis://127.0.0.1:{free_port()}/0"},
        "dns": {"redis_url": "redis://nonexistent.invalid:6379/0"},
        "not redis": {"redis_url": f"redis://:{PASSWORD}@127.0.0.1:{not_redis}/0"},
        "plain client, TLS server": {"redis_url": tls_server.url.replace("rediss:", "redis:"),
                                     "redis_password": PASSWORD},
        "TLS client, plain server": {"redis_url": auth_server.url.replace("redis:", "rediss:"),
                                     "redis_password": PASSWORD, "redis_ca_cert": ca},
    }[case]  # fmt: skip
    exc = await connect_error(make, PoolSettings(**settings))
    assert type(exc) is error
    if cause is None:
        assert exc.__context__ is None
    else:
        assert isinstance(exc.__context__, cause)
    assert text in str(exc)
    assert PASSWORD not in str(exc) and "wrong-password" not in str(exc)


def test_auth_errors_are_connection_errors_and_protocol_errors_are_not() -> None:
    """`except ConnectionError` also catches a wrong password; InvalidResponse and TimeoutError
    need their own clause."""
    assert issubclass(redis_errors.AuthenticationError, redis_errors.ConnectionError)
    assert not issubclass(redis_errors.InvalidResponse, redis_errors.ConnectionError)
    assert not issubclass(redis_errors.TimeoutError, redis_errors.ConnectionError)


async def test_no_password_text_depends_on_the_first_command(auth_server: RedisServer) -> None:
    """NOAUTH reaches redis-py as AuthenticationError either way, but the pool's client (health
    checks on) sends PING first and the command client sends HELLO first: two texts."""
    settings = PoolSettings(redis_url=auth_server.url)
    from_pool = await connect_error(pool_redis, settings)
    from_command = await connect_error(command_redis, settings)
    assert str(from_pool) == "Authentication required."
    assert str(from_command).startswith(
        "HELLO must be called with the client already authenticated"
    )


# --- end to end ----------------------------------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    """The process environment without any of our variables, plus `extra`."""
    out = {k: v for k, v in os.environ.items() if k not in OUR_VARS}
    out.update(extra)
    return out


async def cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run `python -m pool ARGS` to the end; returns (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pool", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def everything_in(redis: Redis) -> bytes:
    """Every key of the database and every value in it, as one blob to search."""
    parts: list[bytes] = []
    async for key in redis.scan_iter(count=1000):
        parts.append(key)
        raw = await redis.type(key)
        kind = raw.decode() if isinstance(raw, bytes) else raw
        value: Any
        if kind == "string":
            value = await redis.get(key)
        elif kind == "hash":
            value = await redis.hgetall(key)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "set":
            value = await redis.smembers(key)
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = await redis.xrange(key)
        else:
            raise AssertionError(f"unexpected Redis type {kind} of {key!r}")
        parts.append(repr(value).encode())
    return b"\n".join(parts)


async def test_enqueue_and_a_pool_over_tls_with_a_password_never_leak_it(
    tls_server: RedisServer, tls_files: TlsFiles
) -> None:
    """`ebook-pool enqueue` (password in the URL, CA as a path) and `ebook-pool run`
    (REDIS_PASSWORD, CA as PEM text) over TLS write the pages; the password is in none of the
    logs, `stats`/`status`/`failed list` output, failed entries or Redis keys and values."""
    pem = tls_files.ca_cert.read_text()
    observer = command_redis(
        PoolSettings(
            redis_url=tls_server.url, redis_password=SecretStr(PASSWORD), redis_ca_cert=pem
        )
    )
    await observer.flushall()
    commands_env = cli_env(
        REDIS_URL=tls_server.url_with_password(), REDIS_CA_CERT=str(tls_files.ca_cert)
    )
    code, out, err = await cli(
        "enqueue", "--title", "Secure Book", "--pages", "3", "--ebook-id", "tls-1",
        env=commands_env,
    )  # fmt: skip
    assert (code, out.strip()) == (0, "tls-1"), err
    await observer.lpush(KEYS.queue, b"not json at all")  # one entry for the failed list

    async with Simulator(SimulatorConfig(latency_s=0.02, seed=3)) as sim:
        pool_proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pool",
            env=cli_env(
                REDIS_URL=tls_server.url, REDIS_PASSWORD=PASSWORD, REDIS_CA_CERT=pem,
                OPENAI_BASE_URL=sim.base_url, OPENAI_API_KEY=API_KEY, LOG_LEVEL="DEBUG",
                CONCURRENT_WORKERS="2", PROCESSING_DELAY="0", POLL_INTERVAL="100",
                STATS_INTERVAL="300",
            ),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:

            async def finished() -> bool:
                state = await observer.hget(KEYS.status("tls-1"), "state")
                return state == b"done" and await observer.llen(KEYS.failed) == 1

            await wait_until(finished, timeout_s=30, what="the ebook done and one failed entry")
            outputs = {
                name: await cli(*args, env=commands_env)
                for name, args in [
                    ("stats", ("stats", "--json")),
                    ("status", ("status", "tls-1", "--json")),
                    ("failed list", ("failed", "list", "--json")),
                ]
            }
            pool_proc.send_signal(signal.SIGTERM)
            pool_out, pool_err = await asyncio.wait_for(pool_proc.communicate(), timeout=30)
        finally:
            if pool_proc.returncode is None:
                pool_proc.kill()
                await pool_proc.wait()
    try:
        assert await observer.hlen(KEYS.pages("tls-1")) == 3
        stored = await everything_in(observer)
    finally:
        await observer.aclose()

    assert pool_proc.returncode == 0
    logs = pool_out.decode() + pool_err.decode()
    assert "Redis connection successful" in logs
    assert "'REDIS_PASSWORD': '***'" in logs
    assert f"'REDIS_CA_CERT': '<PEM, {len(pem.strip().encode())} bytes>'" in logs
    assert "BEGIN CERTIFICATE" not in logs and API_KEY not in logs
    for name, (code, out, err) in outputs.items():
        assert code == 0, f"{name}: {err}"
        assert PASSWORD not in out + err, f"the password is in the output of `{name}`"
    data = {name: json.loads(out) for name, (_, out, _) in outputs.items()}
    assert len(data["stats"]["pools"]) == 1 and data["status"]["done"] == 3
    assert len(data["failed list"]) == 1
    assert PASSWORD not in logs, "the password is in the pool's logs"
    assert b"tls-1" in stored and b"not json at all" in stored
    assert PASSWORD.encode() not in stored, "the password is in a Redis key or value"


# --- what `ebook-pool run` and the one-shot commands do when Redis refuses us -------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("wrong password", "refused the password"),
        ("no password", "requires a password"),
        ("wrong CA", "TLS certificate did not verify"),
    ],
)
async def test_run_stops_with_one_line_and_exit_2_when_redis_refuses_us(
    case: str,
    expected: str,
    auth_server: RedisServer,
    tls_server: RedisServer,
    wrong_ca: Path,
) -> None:
    """A wrong password, no password, or a CA that does not verify will not fix itself:
    `ebook-pool run` exits 2 with one line (no retry loop, no traceback, no secret)."""
    env = {
        "wrong password": cli_env(REDIS_URL=auth_server.url_with_password("not-it")),
        "no password": cli_env(REDIS_URL=auth_server.url),
        "wrong CA": cli_env(
            REDIS_URL=tls_server.url, REDIS_PASSWORD=PASSWORD, REDIS_CA_CERT=str(wrong_ca)
        ),
    }[case]
    env["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"
    code, out, err = await cli("run", env=env)
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ebook-pool: error: "), err
    assert expected in lines[0]
    assert "Traceback" not in out + err and PASSWORD not in out + err and "not-it" not in out + err


async def test_a_one_shot_command_with_a_wrong_password_is_a_configuration_error(
    auth_server: RedisServer,
) -> None:
    """`ebook-pool stats` with a wrong password: exit 2 and the reason, not "cannot reach"."""
    code, out, err = await cli(
        "stats", env=cli_env(REDIS_URL=auth_server.url_with_password("not-it"))
    )
    assert out == "" and code == 2 and "refused the password" in err and "cannot reach" not in err


async def test_a_server_that_is_not_redis_stops_run_with_one_line(not_redis: int) -> None:
    """REDIS_URL pointing at an HTTP server: `ebook-pool run` exits 2 with one line."""
    env = cli_env(
        REDIS_URL=f"redis://127.0.0.1:{not_redis}/0", OPENAI_BASE_URL="http://127.0.0.1:9/v1"
    )
    code, out, err = await cli("run", env=env)
    assert code == 2 and "Traceback" not in out + err
    (line,) = err.strip().splitlines()
    assert line.startswith("ebook-pool: error: ") and "does not speak the Redis protocol" in line
