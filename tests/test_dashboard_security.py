"""No page or endpoint of the dashboard shows a secret, even when Redis fails; Markdown from a
page never becomes HTML."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from redis.asyncio import Redis

from pool import PoolSettings, load_settings
from pool.store import Store
from pool_app.dashboard import TOKEN_HEADER, dashboard_app
from pool_app.dashboard.data import failed_id
from pool_app.dashboard.markdown import render_markdown
from tests.dashboard_helpers import KEYS, TOKEN, dashboard, next_event, seed
from tests.redis_server import RedisServer, free_port

PASSWORD = "redis-pw-Zq81xT3v"
API_KEY = "sk-test-NEVERSHOWN-4f9a2c"


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server that requires PASSWORD."""
    server = RedisServer(workdir=tmp_path, password=PASSWORD).start()
    yield server
    server.stop()


def _secret_env(
    monkeypatch: pytest.MonkeyPatch, url: str, *, password_env: bool = False
) -> PoolSettings:
    for name in ("REDIS_PUBLIC_URL", "HTTP_PORT", "PORT", "KEY_PREFIX", "REDIS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", url)
    if password_env:
        monkeypatch.setenv("REDIS_PASSWORD", PASSWORD)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("DASHBOARD_TOKEN", TOKEN)
    return load_settings(PoolSettings)


def _clean(where: str, text: str) -> None:
    for secret in (PASSWORD, API_KEY, TOKEN):
        assert secret not in text, f"{where} shows a secret"


@pytest.mark.parametrize("password_env", [False, True], ids=["in-REDIS_URL", "REDIS_PASSWORD"])
async def test_no_page_or_endpoint_shows_a_secret(
    locked_redis: RedisServer, monkeypatch: pytest.MonkeyPatch, password_env: bool
) -> None:
    """Every route, GET and POST, with the Redis password in REDIS_URL (or REDIS_PASSWORD), a
    key in OPENAI_API_KEY and a DASHBOARD_TOKEN."""
    url = locked_redis.url if password_env else locked_redis.url_with_password()
    settings = _secret_env(monkeypatch, url, password_env=password_env)
    redis = Redis.from_url(locked_redis.url_with_password())
    try:
        await seed(redis)
        await redis.set(KEYS.paused, "maintenance")
        fid = failed_id((await Store(redis, KEYS).failed())[-1])
        app = dashboard_app(settings)
        params = {"fid": fid, "name": "dashboard.js"}
        async with dashboard(settings) as client:
            seen = 0
            for route in app.router.routes():
                info = route.resource.get_info() if route.resource else {}
                path = info.get("path") or info.get("formatter", "")
                path = re.sub(r"\{(\w+)\}", lambda m: params[m.group(1)], path)
                query = "?id=book-1" if path.startswith(("/ebook", "/api/ebook")) else ""
                if route.method == "GET" and path == "/events":
                    async with client.get("/events?ebook=book-1") as resp:
                        _clean("/events", str(await next_event(resp)))
                        _clean("/events headers", str(resp.headers))
                    seen += 1
                    continue
                for headers in ({}, {TOKEN_HEADER: TOKEN}):
                    if route.method == "GET":
                        resp = await client.get(path + query)
                    elif route.method == "POST":
                        resp = await client.post(path, json={"reason": "x"}, headers=headers)
                    else:
                        continue
                    _clean(f"{route.method} {path}", _readable(await resp.read()))
                    _clean(f"{route.method} {path} headers", str(resp.headers))
                    seen += 1
            assert seen >= 25  # every route was tried
            for missing in ("/nope", "/ebook?id=unknown", "/failed/x", "/api/failed/y/retry"):
                _clean(missing, await (await client.get(missing)).text())
    finally:
        await redis.aclose()


def _readable(body: bytes) -> str:
    """A response as text; an EPUB (a zip) as the text of every file in it."""
    if not body.startswith(b"PK"):
        return body.decode()
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        return "\n".join(z.read(name).decode() for name in z.namelist())


async def test_a_redis_failure_shows_no_url_or_password(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    settings = _secret_env(monkeypatch, url)
    async with dashboard(settings) as client:
        resp = await client.get("/api/overview")
        body = await resp.text()
        assert resp.status == 503 and "Redis unavailable" in body
        _clean("/api/overview", body)
        assert "127.0.0.1" not in body
        page = await client.get("/")
        assert page.status == 200  # the page itself needs no Redis
        async with client.get("/events") as stream:
            event = await next_event(stream)
        assert event["error"].startswith("Redis unavailable")
        _clean("/events", str(event))


def test_markdown_escapes_everything_then_renders_a_little() -> None:
    html = render_markdown(
        "# T <i>x</i>\n\n1. a\n2. **b** and `<code>`\n\n> said\n\n```\n<script>\n```\n\n---\n"
        "a_b_c and 2*3*4 *em*"
    )
    assert html == (
        "<h1>T &lt;i&gt;x&lt;/i&gt;</h1>\n"
        "<ol><li>a</li><li><strong>b</strong> and <code>&lt;code&gt;</code></li></ol>\n"
        "<blockquote><p>said</p></blockquote>\n"
        "<pre><code>&lt;script&gt;</code></pre>\n"
        "<hr>\n"
        "<p>a_b_c and 2*3*4 <em>em</em></p>"
    )
    allowed = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "strong", "em"}
    allowed |= {"code", "pre", "blockquote", "hr"}
    for hostile in (
        '<img src=x onerror="alert(1)">',
        "<a href='javascript:alert(1)'>x</a>",
        "[x](javascript:alert(1))",
        "**<svg onload=alert(1)>**",
        '" onmouseover="alert(1)',
        "- <iframe src=//x>\n- `</code><script>`",
    ):
        out = render_markdown(hostile)
        assert set(re.findall(r"</?(\w+)", out)) <= allowed, out
        assert not re.search(r"<\w+\s", out), out  # no tag of ours carries an attribute
        assert '"' not in out and "'" not in out, out


def test_app_is_an_aiohttp_application() -> None:
    assert isinstance(
        dashboard_app(PoolSettings(redis_url="redis://127.0.0.1:1/0")), web.Application
    )
