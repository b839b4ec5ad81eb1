"""No payload can hurt the pool: a fast subset of the chaos fuzz (bench/chaos/payloads.py).

60 malformed payloads covering every kind in `KINDS` (random bytes and JSON drawn with
hypothesis, seeded; lone surrogates raw and escaped, deep nesting, sizes at and over
MAX_JOB_BYTES, duplicate keys, NaN...) shuffled among 20 valid jobs, one in-process pool on the
session's private redis-server. Target behaviour (docs/contract.md, issue 8):

- each malformed payload yields exactly one entry in `{prefix}:failed`, with a non-empty
  `error` and `errorType` `invalid` (or `poison`), that can be told apart by the sha256 of the
  raw bytes (`payloadSha256`, else the decoded `payloadBase64`, else `payload`);
- none of them is stored, every valid job is, and no worker crashes ("Crashed; restarting").
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from loguru import logger
from redis.asyncio import Redis

from bench.chaos.ledger import entry_digest, sha256
from bench.chaos.payloads import KINDS, half_emoji_job, malformed_payloads, valid_job
from pool import Pool
from pool.keys import Keys
from tests.fakes import FakeGenerator, failed, fast_settings, running

KEYS = Keys()
MALFORMED = 60
VALID = 20
DEADLINE_S = 20.0


@pytest.fixture
def log_messages() -> Iterator[list[str]]:
    """Every message the pool logs during the test."""
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m.record["message"])), level="DEBUG")
    yield messages
    logger.remove(sink)


async def _stored(redis: Redis, ebook: str) -> int:
    return int(await redis.hlen(KEYS.pages(ebook)))


async def test_every_malformed_payload_is_failed_and_every_valid_job_stored(
    redis: Redis, log_messages: list[str]
) -> None:
    bad = malformed_payloads(MALFORMED, seed=0)
    assert {kind for kind, _ in bad} == set(KINDS)
    items = bad + [
        ("valid", (half_emoji_job if i % 4 == 3 else valid_job)("fuzz-ok", i, VALID))
        for i in range(VALID)
    ]
    random.Random(0).shuffle(items)
    await redis.lpush(KEYS.queue, *[payload for _, payload in items])

    pool = Pool(
        redis=redis, generator=FakeGenerator(), settings=fast_settings(concurrent_workers=8)
    )
    async with running(pool):
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            if (
                await redis.llen(KEYS.failed) >= MALFORMED
                and await _stored(redis, "fuzz-ok") == VALID
            ):
                break
            await asyncio.sleep(0.05)  # poll interval of the deadline loop

    entries = await failed(redis)
    expected = Counter(sha256(payload) for _, payload in bad)
    kind_of = {sha256(payload): kind for kind, payload in bad}
    seen = Counter(entry_digest(e) for e in entries)
    missing = sorted({kind_of[d] for d in expected if seen[d] < expected[d]})
    extra = sum(n for d, n in seen.items() if d not in expected)
    crashes = [m for m in log_messages if "Crashed; restarting" in m]
    queued = await redis.llen(KEYS.queue)

    assert not missing, f"kinds not (all) in the failed list: {missing}; {queued} still queued"
    assert extra == 0 and len(entries) == MALFORMED, f"{len(entries)} entries, {extra} unmatched"
    for e in entries:
        assert e.get("errorType") in {"invalid", "poison"}, e
        assert isinstance(e.get("error"), str) and e["error"].strip(), e
    assert await _stored(redis, "fuzz-ok") == VALID
    half = json.loads(await redis.hget(KEYS.pages("fuzz-ok"), "3") or b"{}")
    assert half["pageTitle"] == "\ufffd Section 4" and half["metadata"] == {
        "cut\ufffd": "ok \ufffd"
    }
    assert not [k async for k in redis.scan_iter(match=KEYS.pages("fuzz-bad-*"))]
    assert not crashes, f"{len(crashes)} worker restarts, e.g. {crashes[0]}"
