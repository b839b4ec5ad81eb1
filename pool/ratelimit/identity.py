"""Which budget a request draws from: the API (base URL and key) and the model.

OpenAI's limits belong to an organization/project and a model, and a key belongs to one
project, so the pool keys a budget on the base URL, a fingerprint of the key and the model.
The fingerprint is the first 8 hex digits of the key's SHA-256: enough to tell two keys apart,
useless to recover one. The key itself is never stored or logged.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pool.config import mask_url

__all__ = ["OPENAI_BASE_URL", "ApiIdentity", "key_fingerprint"]

#: The base URL the openai SDK uses when OPENAI_BASE_URL is not set.
OPENAI_BASE_URL = "https://api.openai.com/v1"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:@+=/-]")


def key_fingerprint(api_key: str) -> str:
    """First 8 hex digits of the SHA-256 of `api_key` ("none" without a key)."""
    if not api_key:
        return "none"
    return hashlib.sha256(api_key.encode()).hexdigest()[:8]


@dataclass(frozen=True, slots=True)
class ApiIdentity:
    """One API as the rate limits see it.

    Attributes:
        base_url: the API's base URL, without a trailing slash, credentials masked.
        key_fingerprint: `key_fingerprint(api_key)`.
    """

    base_url: str
    key_fingerprint: str

    @classmethod
    def of(cls, base_url: str | None, api_key: str) -> ApiIdentity:
        """The identity of the API at `base_url` (None: OpenAI's) used with `api_key`."""
        url = mask_url((base_url or OPENAI_BASE_URL).strip().rstrip("/"))
        return cls(base_url=url, key_fingerprint=key_fingerprint(api_key))

    def budget_id(self, model: str) -> str:
        """The id of this API's budget for `model`, safe in a Redis key name."""
        url = hashlib.sha256(self.base_url.encode()).hexdigest()[:8]
        return f"{url}-{self.key_fingerprint}-{_UNSAFE.sub('_', model)[:100]}"
