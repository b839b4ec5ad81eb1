"""What the dashboard shows, read from Redis through the pool's own store and producer functions.

Everything here returns JSON-ready data (camelCase keys, like the contract and `--json` of the
CLI). Nothing reads a setting: no URL, password or key can end up in it. Heartbeat snapshots
are copied field by field from a list of known fields, so a field added to them later is not
shown until it is added here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from pool.clock import now_ms
from pool.control import read_operator_pause
from pool.deadletters import FailedEntry
from pool.ebooks import EbookStatus, read_errors, read_pages, read_status, read_statuses
from pool.keys import Keys
from pool.ratelimit import BudgetSnapshot, budget_use, read_budgets
from pool.store import Store
from pool_app.dashboard.markdown import render_markdown
from pool_app.reports import pools_report_data, status_counts, status_data

__all__ = [
    "FAILED_SHOWN",
    "EbookList",
    "ebook_detail",
    "ebook_row",
    "failed_id",
    "failed_row",
    "find_failed",
    "list_ebooks",
    "overview",
]

#: Failed entries the overview lists (newest first); the count covers all of them.
FAILED_SHOWN = 50
_SCAN_COUNT = 1_000
#: SCAN calls one listing makes at most (so at most ~100,000 keys examined).
_SCAN_CALLS = 100
_ERROR_CHARS = 300
_POOL_FIELDS = (
    "host",
    "pid",
    "workers",
    "active",
    "processed",
    "success",
    "failed",
    "pages_per_min",
    "p50_s",
    "p95_s",
    "uptime_s",
    "paused",
    "at",
)


class EbookList:
    """The ids of the ebooks to list, newest first, whether the listing was cut short, and how
    many SCAN calls it took (1 = a small database: cheap to list again)."""

    def __init__(self, ids: Sequence[str], truncated: bool, scan_calls: int = 1) -> None:
        self.ids = list(ids)
        self.truncated = truncated
        self.scan_calls = scan_calls


async def list_ebooks(redis: Redis, keys: Keys, *, limit: int) -> EbookList:
    """The `limit` most recently created ebooks, found by SCAN over their status keys.

    The SCAN stops after `_SCAN_CALLS` calls, or once it has found `10 x limit` ebooks: on a
    Redis with more than that, the list is the most recent of those found (`truncated`).
    """
    head = f"{keys.prefix}:ebook:"
    tail = ":status"
    found: list[str] = []
    cursor: int | bytes = 0
    calls = 0
    truncated = False
    while True:
        cursor, batch = await redis.scan(
            cursor=int(cursor), match=f"{head}*{tail}", count=_SCAN_COUNT
        )
        calls += 1
        for key in batch:
            name = key.decode() if isinstance(key, bytes) else str(key)
            if name.startswith(head) and name.endswith(tail):
                found.append(name[len(head) : -len(tail)])
        if int(cursor) == 0:
            break
        if calls >= _SCAN_CALLS or len(found) >= 10 * limit:
            truncated = True
            break
    statuses = await read_statuses(redis, keys, sorted(set(found)))
    newest = sorted(
        statuses.values(), key=lambda s: (s["created_at"] or 0, s["ebook_id"]), reverse=True
    )
    if len(newest) > limit:
        truncated = True
    return EbookList([s["ebook_id"] for s in newest[:limit]], truncated, calls)


def ebook_row(status: EbookStatus) -> dict[str, Any]:
    """One ebook in the overview: counters, state, times and `cost` (USD, its ledger)."""
    return {**status_counts(status), "cost": status["ledger"]["costUsd"]}


def failed_id(entry: FailedEntry) -> str:
    """A short, stable id of a failed entry (its SHA-256), for URLs and actions."""
    return hashlib.sha256(entry.raw).hexdigest()[:20]


def failed_row(entry: FailedEntry, *, full: bool = False) -> dict[str, Any]:
    """A failed entry for the dashboard; `full` adds the payload and every stored field."""
    d = entry.data
    error = str(d.get("error", ""))
    if not full and len(error) > _ERROR_CHARS:
        error = error[: _ERROR_CHARS - 1] + "…"
    row: dict[str, Any] = {
        "id": failed_id(entry),
        "ebookId": entry.ebook_id,
        "pageIndex": entry.page_index,
        "errorType": d.get("errorType"),
        "attempts": d.get("attempts"),
        "error": error,
        "failedAt": d.get("failedAt") if isinstance(d.get("failedAt"), int) else None,
        "retryable": d.get("errorType") != "invalid" and entry.job_bytes is not None,
    }
    if full:
        row.update(
            {
                "poolId": d.get("poolId"),
                "jobId": d.get("jobId"),
                "totalPages": d.get("totalPages"),
                "payload": d.get("payload"),
                "payloadBase64": d.get("payloadBase64"),
                "payloadBytes": d.get("payloadBytes"),
                "payloadSha256": d.get("payloadSha256"),
                "payloadTruncated": bool(d.get("payloadTruncated")),
            }
        )
    return row


async def find_failed(store: Store, entry_id: str) -> FailedEntry | None:
    """The failed entry with this id, or None (already retried or purged)."""
    for entry in await store.failed():
        if failed_id(entry) == entry_id:
            return entry
    return None


async def overview(
    redis: Redis, keys: Keys, *, ebooks: EbookList | None = None, max_ebooks: int = 100
) -> dict[str, Any]:
    """The whole picture: queue, processes, pause flag, ebooks and the newest failed jobs.

    `ebooks` reuses an earlier listing (the SCAN is the expensive part); their statuses are
    read afresh.
    """
    store = Store(redis, keys)
    pools = await store.live_pools()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.llen(keys.queue)
        pipe.llen(keys.failed)
        depth, failed_count = await pipe.execute()
    report = pools_report_data(
        queue_depth=int(depth),
        in_flight=await store.in_flight(list(pools)),
        failed=int(failed_count),
        pools=pools,
    )
    if ebooks is None:
        ebooks = await list_ebooks(redis, keys, limit=max_ebooks)
    statuses = await read_statuses(redis, keys, ebooks.ids)
    pool_rows = [{"id": p["id"], **{f: p.get(f) for f in _POOL_FIELDS}} for p in report["pools"]]
    return {
        "at": now_ms(),
        "queueDepth": report["queueDepth"],
        "inFlight": report["inFlight"],
        "failedCount": report["failed"],
        "pagesPerMin": round(sum(_number(p.get("pages_per_min")) for p in pool_rows), 2),
        "pools": pool_rows,
        "operatorPause": await read_operator_pause(redis, keys),
        "budget": budget_tile(await read_budgets(redis, keys)),
        "ebooks": [ebook_row(statuses[i]) for i in ebooks.ids if i in statuses],
        "ebooksTruncated": ebooks.truncated,
        "failed": [failed_row(e) for e in await store.failed(0, FAILED_SHOWN - 1)],
    }


async def ebook_detail(redis: Redis, keys: Keys, ebook_id: str) -> dict[str, Any] | None:
    """One ebook: status, one row per page (its Markdown and safe HTML), its failed entries and
    token totals; None if the ebook is unknown."""
    status = await read_status(redis, keys, ebook_id)
    if status is None:
        return None
    pages = await read_pages(redis, keys, ebook_id)
    errors = await read_errors(redis, keys, ebook_id)
    data = status_data(status, pages, errors)
    for row in data["pages"]:
        page = pages.get(row["pageIndex"])
        if page is not None:
            content = page.get("content")
            content = content if isinstance(content, str) else ""
            row["content"] = content
            row["html"] = render_markdown(content)  # escaped first: see pool_app.dashboard.markdown
    failed = [e for e in await Store(redis, keys).failed() if e.ebook_id == ebook_id]
    data["failedJobs"] = [failed_row(e) for e in failed]
    data["promptTokens"] = sum(_int(p.get("promptTokens")) for p in pages.values())
    data["completionTokens"] = sum(_int(p.get("completionTokens")) for p in pages.values())
    data["cost"] = status["ledger"]["costUsd"]
    return data


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def budget_tile(budgets: list[BudgetSnapshot]) -> dict[str, Any] | None:
    """The overview's budget card: the busiest share of any limit in use over the last minute
    (RPM or TPM, 0..1) and the [Stats] line's words for every budget; None before any budget."""
    shares = [
        pct / 100
        for b in budgets
        for pct in (b["rpm_use_pct"], b["tpm_use_pct"])
        if pct is not None
    ]
    if not budgets:
        return None
    return {"used": max(shares, default=0.0), "note": budget_use(budgets)}
