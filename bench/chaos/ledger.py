"""What happened to every pushed job: stored, failed (by reason), still pending, or lost.

The producer side (`Pushed`) remembers what a scenario pushed; `account()` reads Redis at the
end and matches it up:

- a valid job is stored if its page index is in its ebook's pages hash, failed if a failed
  entry names its `ebookId` and `pageIndex`; otherwise it is lost (`pending` counts the lost
  ones still sitting in the queue or a processing list when the scenario gave up waiting);
- a failed entry is matched to a malformed payload by the sha256 of the raw bytes: the entry's
  `payloadSha256` if the pool wrote one, else the hash of `payloadBase64` decoded, else of
  `payload` encoded as UTF-8 (surrogates passed through). Entries that match nothing (a payload
  kept lossily, e.g. invalid UTF-8 replaced by U+FFFD) are counted, and cover the malformed
  payloads found nowhere else, one for one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis import Redis

from pool.keys import Keys

__all__ = ["Ledger", "Pushed", "account", "entry_digest", "in_flight", "push", "sha256"]

_CHUNK = 200


def sha256(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class Pushed:
    """Everything a scenario pushed onto the queue."""

    keys: Keys
    valid: dict[str, int] = field(default_factory=dict)  # ebook id -> total pages
    malformed: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def valid_jobs(self) -> int:
        """Number of valid page jobs pushed."""
        return sum(self.valid.values())

    def declare(self, r: Redis, ebook_id: str, total: int) -> None:
        """Create the ebook's status hash with HSETNX, as the app does at enqueue."""
        status = self.keys.status(ebook_id)
        pipe = r.pipeline(transaction=True)
        for name, value in (("total", total), ("done", 0), ("failed", 0), ("state", "queued")):
            pipe.hsetnx(status, name, value)
        pipe.hsetnx(status, "createdAt", int(time.time() * 1000))
        pipe.execute()
        self.valid[ebook_id] = total

    def ebook(self, r: Redis, ebook_id: str, jobs: list[bytes]) -> None:
        """Declare the ebook, then LPUSH its jobs (page 0 first)."""
        self.declare(r, ebook_id, len(jobs))
        push(r, self.keys, jobs)


def push(r: Redis, keys: Keys, payloads: list[bytes]) -> None:
    """LPUSH `payloads` in order (the first is taken first), a few hundred per command."""
    for start in range(0, len(payloads), _CHUNK):
        r.lpush(keys.queue, *payloads[start : start + _CHUNK])


@dataclass
class Ledger:
    """The end state of one scenario's jobs."""

    valid_pushed: int = 0
    malformed_pushed: int = 0
    stored: int = 0
    failed_by_type: dict[str, int] = field(default_factory=dict)
    valid_failed: int = 0
    lost: int = 0
    pending: int = 0
    malformed_in_failed: int = 0
    malformed_stored: int = 0
    unmatched_failed: int = 0
    by_kind: dict[str, dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return dict(self.__dict__)


def entry_digest(entry: dict[str, Any]) -> str | None:
    """The sha256 of the raw payload a failed entry stands for, when it can be told."""
    if isinstance(entry.get("payloadSha256"), str):
        return str(entry["payloadSha256"])
    if isinstance(entry.get("payloadBase64"), str):
        try:
            return sha256(base64.b64decode(entry["payloadBase64"]))
        except ValueError:
            return None
    if isinstance(entry.get("payload"), str):
        return sha256(entry["payload"].encode("utf-8", "surrogatepass"))
    return None


def _pending_payloads(r: Redis, keys: Keys) -> list[bytes]:
    lists = [keys.queue, *r.scan_iter(match=keys.processing("*"), count=1000)]
    return [p for name in lists for p in r.lrange(name, 0, -1)]


def in_flight(r: Redis, keys: Keys) -> int:
    """Jobs queued or claimed and not finished."""
    names = [keys.queue, *r.scan_iter(match=keys.processing("*"), count=1000)]
    return sum(int(r.llen(n)) for n in names)


def account(r: Redis, pushed: Pushed) -> Ledger:
    """Match what was pushed with what Redis holds now."""
    keys = pushed.keys
    led = Ledger(valid_pushed=pushed.valid_jobs, malformed_pushed=len(pushed.malformed))
    stored: dict[str, set[int]] = {}
    for ebook in pushed.valid:
        stored[ebook] = {int(k) for k in r.hkeys(keys.pages(ebook))}
    led.stored = sum(len(v) for v in stored.values())

    pending = Counter(sha256(p) for p in _pending_payloads(r, keys))
    todo = Counter(sha256(p) for _, p in pushed.malformed)
    failed_types: Counter[str] = Counter()
    failed_valid: set[tuple[str, int]] = set()
    found: Counter[str] = Counter()
    unmatched = 0
    for raw in r.lrange(keys.failed, 0, -1):
        entry = json.loads(raw)
        failed_types[str(entry.get("errorType"))] += 1
        ebook, index = entry.get("ebookId"), entry.get("pageIndex")
        if ebook in pushed.valid and isinstance(index, int):
            failed_valid.add((ebook, index))
            continue
        digest = entry_digest(entry)
        if digest is not None and found[digest] < todo[digest]:
            found[digest] += 1
        else:
            unmatched += 1
    led.failed_by_type = dict(failed_types)
    led.valid_failed = len(failed_valid)
    led.unmatched_failed = unmatched

    for ebook, total in pushed.valid.items():
        led.lost += sum(
            1
            for index in range(total)
            if index not in stored[ebook] and (ebook, index) not in failed_valid
        )
    # Of the lost valid jobs, those still queued or claimed (not gone, just not done in time).
    led.pending = min(sum(n for d, n in pending.items() if d not in todo), led.lost)

    led.malformed_stored = sum(
        int(r.hlen(name)) for name in r.scan_iter(match=keys.pages("fuzz-bad-*"), count=1000)
    )
    _by_kind(led, pushed, found, pending, unmatched, lambda p: _was_stored(r, keys, p))
    return led


def _was_stored(r: Redis, keys: Keys, payload: bytes) -> bool:
    """True if the page this malformed payload names (read leniently) is in a pages hash."""
    try:
        data = json.loads(payload)
        ebook, index = data["ebookId"], int(data["pageIndex"])
    except Exception:
        return False
    if not isinstance(ebook, str):
        return False
    try:
        return bool(r.hexists(keys.pages(ebook), str(index)))
    except UnicodeEncodeError:
        return False


def _by_kind(
    led: Ledger,
    pushed: Pushed,
    found: Counter[str],
    pending: Counter[str],
    unmatched: int,
    stored: Callable[[bytes], bool],
) -> None:
    """Per malformed kind, each payload in one bucket: in the failed list (by hash), still
    queued or claimed, its page stored (accepted by the pool), or not found anywhere."""
    found, pending = Counter(found), Counter(pending)
    not_found = 0
    for kind, payload in pushed.malformed:
        row = led.by_kind.setdefault(
            kind, dict.fromkeys(("pushed", "failed", "queued", "stored", "unseen"), 0)
        )
        row["pushed"] += 1
        digest = sha256(payload)
        if found[digest] > 0:
            found[digest] -= 1
            row["failed"] += 1
        elif pending[digest] > 0:
            pending[digest] -= 1
            row["queued"] += 1
        elif stored(payload):
            row["stored"] += 1
        else:
            row["unseen"] += 1
            not_found += 1
    identified = sum(row["failed"] for row in led.by_kind.values())
    # Failed entries whose payload could not be hashed back stand for the payloads not found.
    led.malformed_in_failed = identified + min(unmatched, not_found)
