"""Small helpers both the pool and the generator may import: the configuration error, secret
redaction and one-line validation errors. Imports nothing of the pool."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["ConfigError", "error_line", "error_message", "mask_url", "replace_secrets"]


class ConfigError(Exception):
    """A setting is missing or invalid; the message is one line naming it."""


def mask_url(url: str) -> str:
    """`url` with any password replaced by '***' (for logs and errors)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def replace_secrets(text: str, secrets: Iterable[str]) -> str:
    """`text` with each non-empty secret replaced by `***` (pass longer secrets first)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def error_message(err: Any) -> str:
    """The message of one pydantic error (`ValidationError.errors()` item), without its prefix."""
    return str(err["msg"]).removeprefix("Value error, ")


def error_line(err: Any, *, subject: str) -> str:
    """One pydantic error as `where: what`; `subject` names the whole value (an empty loc)."""
    where = ".".join(str(p) for p in err["loc"]) or subject
    return f"{where}: {error_message(err)}"
