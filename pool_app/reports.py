"""What `ebook-pool status`, `stats` and `failed list` print: tables for people, JSON for scripts.

Each report is built once as JSON-ready data (camelCase keys, like the contract), and the human
table is drawn from that same data, so `--json` and the table never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic.alias_generators import to_camel

from pool.clock import iso
from pool.deadletters import FailedEntry
from pool.ebooks import LEDGER_FIELDS, EbookStatus
from pool.ratelimit import BudgetSnapshot, describe_budget

__all__ = [
    "failed_data",
    "format_failed",
    "format_pools_report",
    "format_status",
    "pools_report_data",
    "pools_report_json",
    "status_counts",
    "status_data",
]

_ERROR_WIDTH = 70


def _usd(value: Any) -> str:
    return "-" if value is None else f"${float(value):.4f}"


def status_data(
    status: EbookStatus,
    pages: Mapping[int, Mapping[str, Any]],
    errors: Mapping[int, str],
) -> dict[str, Any]:
    """One ebook: its counters, timestamps and one row per page (done, failed or pending)."""
    rows: list[dict[str, Any]] = []
    for index in range(status["total"]):
        page = pages.get(index)
        if page is not None:
            rows.append(
                {
                    "pageIndex": index,
                    "status": "done",
                    "pageTitle": page.get("pageTitle"),
                    "attempts": page.get("attempts"),
                    "completionTokens": page.get("completionTokens"),
                    "durationMs": page.get("durationMs"),
                    "model": page.get("model"),
                }
            )
        elif index in errors:
            rows.append({"pageIndex": index, "status": "failed", "error": errors[index]})
        else:
            rows.append({"pageIndex": index, "status": "pending"})
    return {
        **status_counts(status),
        "startedAt": status["started_at"],
        "skipped": status["skipped"],
        "ledger": dict(status["ledger"]),
        "pages": rows,
    }


def status_counts(status: EbookStatus) -> dict[str, Any]:
    """An ebook's id, state, page counts and times as the wire (camelCase) has them."""
    return {
        "ebookId": status["ebook_id"],
        "state": status["state"],
        "total": status["total"],
        "done": status["done"],
        "failed": status["failed"],
        "pending": max(status["total"] - status["done"] - status["failed"], 0),
        "createdAt": status["created_at"],
        "updatedAt": status["updated_at"],
        "finishedAt": status["finished_at"],
    }


def format_status(data: Mapping[str, Any]) -> str:
    """The human table of `status_data`."""
    lines = [
        f"Ebook     {data['ebookId']}",
        f"State     {data['state']}",
        f"Pages     {data['done']}/{data['total']} done, {data['failed']} failed, "
        f"{data['pending']} pending",
    ]
    for label, key in (
        ("Created", "createdAt"),
        ("Started", "startedAt"),
        ("Updated", "updatedAt"),
        ("Finished", "finishedAt"),
    ):
        lines.append(f"{label:<9} {_when(data[key])}")
    ledger = data["ledger"]
    lines.append(
        f"Cost      {_usd(ledger['costUsd'])}: {ledger['requests']} requests, "
        f"{ledger['promptTokens']} prompt + {ledger['completionTokens']} completion tokens, "
        f"{ledger['wastedTokens']} wasted"
    )
    if data["skipped"] or ledger["cacheHits"] or ledger["cacheMisses"]:
        lines.append(
            f"Saved     {data['skipped']} copies skipped, {ledger['cacheHits']} cache hits "
            f"({ledger['tokensSaved']} tokens), {ledger['cacheMisses']} misses"
        )
    rows = [
        (
            str(p["pageIndex"]),
            p["status"],
            _cell(p.get("attempts")),
            _cell(p.get("completionTokens")),
            _seconds(p.get("durationMs")),
            p.get("pageTitle") or p.get("error") or "",
        )
        for p in data["pages"]
    ]
    if rows:
        lines.append("")
        lines += _table(("Page", "Status", "Attempts", "Tokens", "Time", "Title / error"), rows)
    return "\n".join(lines)


def pools_report_data(
    *,
    queue_depth: int,
    in_flight: int,
    failed: int,
    pools: Mapping[str, Mapping[str, Any]],
    budgets: Sequence[BudgetSnapshot] = (),
) -> dict[str, Any]:
    """The queue's counters, the ledger summed over the live pool processes, every live pool
    process's last heartbeat (as stored), and the rate-limit budgets
    (`pool.ratelimit.read_budgets`)."""
    totals = {
        name: sum(p.get(name) or 0 for p in pools.values()) for name in (*LEDGER_FIELDS, "skipped")
    }
    totals["costUsd"] = round(totals["costUsd"], 6)
    return {
        "queueDepth": queue_depth,
        "inFlight": in_flight,
        "failed": failed,
        "ledger": totals,
        "pools": [dict(snapshot, id=pool_id) for pool_id, snapshot in pools.items()],
        "budgets": [dict(b) for b in budgets],
    }


def pools_report_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """`stats --json`: `pools_report_data` with every key camelCase, nested ones too, like the
    rest of the wire (`pool.wire.PoolStats`); the heartbeat itself stores snake_case
    (`pages_per_min`)."""
    return {
        **data,
        "pools": [_camel(p) for p in data["pools"]],
        "budgets": [_camel(b) for b in data.get("budgets", [])],
    }


# Snake-case keys whose camelCase would hide the unit ("uptimeS").
_SNAPSHOT_NAMES = {
    "uptime_s": "uptimeSeconds",
    "p50_s": "p50Seconds",
    "p95_s": "p95Seconds",
    "latency_s": "latencySeconds",
    "cooldown_s": "cooldownSeconds",
    "booked_s": "bookedSeconds",
}


def _camel(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {_SNAPSHOT_NAMES.get(k, to_camel(k)): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def format_pools_report(data: Mapping[str, Any]) -> str:
    """The human table of `pools_report_data`."""
    pools: Sequence[Mapping[str, Any]] = data["pools"]
    lines = [
        f"Queue depth  {data['queueDepth']}",
        f"In flight    {data['inFlight']}",
        f"Failed       {data['failed']}",
        f"Pools        {len(pools)} live",
    ]
    t = data["ledger"]
    lines.append(
        f"Cost         {_usd(t['costUsd'])} since the live processes started: "
        f"{t['requests']} requests, {t['promptTokens'] + t['completionTokens']} tokens, "
        f"{t['wastedTokens']} wasted, {t['skipped']} skipped, {t['cacheHits']} cache hits"
    )
    if pools:
        rows = [
            (
                str(p.get("id", "?")),
                _cell(p.get("workers")),
                _cell(p.get("active")),
                _cell(p.get("processed")),
                _cell(p.get("success")),
                _cell(p.get("failed")),
                _rate(p.get("pages_per_min")),
                _cell(p.get("requests")),
                _cell(p.get("wastedTokens")),
                _usd(p.get("costUsd")),
                _uptime(p.get("uptime_s")),
                f"PAUSED: {p['paused']}" if p.get("paused") else "running",
            )
            for p in pools
        ]
        lines.append("")
        lines += _table(
            (
                "Pool",
                "Workers",
                "Active",
                "Processed",
                "Success",
                "Failed",
                "Pages/min",
                "Requests",
                "Wasted",
                "Cost",
                "Uptime",
                "State",
            ),
            rows,
        )
    lines += _budget_lines(data.get("budgets", []), pools)
    return "\n".join(lines)


def _budget_lines(budgets: Sequence[Any], pools: Sequence[Mapping[str, Any]]) -> list[str]:
    """The rate-limit budgets (limits, use over the last minute, refusals, cool-down) and each
    process's concurrency for them."""
    lines = ["", "Rate limits (shared by every process, last minute)"]
    if not budgets:
        return [*lines, "  none paced yet"]
    lines += [f"  {describe_budget(b)}" for b in budgets]
    for p in pools:
        governor = p.get("governor")
        if not isinstance(governor, Mapping):
            continue
        if not governor.get("enabled", True):
            lines.append(f"  {p.get('id', '?')}: governor off (RATE_LIMIT_GOVERNOR=false)")
            continue
        for local in governor.get("budgets", []):
            lines.append(
                f"  {p.get('id', '?')} {local.get('model')}: concurrency "
                f"{local.get('concurrency')} of {local.get('ceiling')}, "
                f"{local.get('in_flight')} in flight, {local.get('waiting')} waiting, "
                f"latency {_rate(local.get('latency_s'))}s, {local.get('refusals')} refused"
            )
    return lines


def failed_data(entries: Sequence[FailedEntry]) -> list[dict[str, Any]]:
    """The failed entries as stored (payload, error, errorType, attempts, ids...)."""
    return [dict(entry.data) for entry in entries]


def format_failed(entries: Sequence[FailedEntry], *, total: int) -> str:
    """The human table of failed entries, newest first."""
    if not entries:
        return f"No failed jobs shown ({total} in the failed list)."
    rows = []
    for entry in entries:
        error = entry.error
        if len(error) > _ERROR_WIDTH:
            error = error[: _ERROR_WIDTH - 1] + "…"
        rows.append(
            (
                _when(entry.failed_at),
                entry.error_type,
                _cell(entry.attempts),
                entry.ebook_id or "?",
                _cell(entry.page_index),
                error,
            )
        )
    lines = _table(("Failed at", "Type", "Attempts", "Ebook", "Page", "Error"), rows)
    lines.append("")
    lines.append(f"{len(entries)} shown of {total} in the failed list.")
    return "\n".join(lines)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _when(ms: Any) -> str:
    return iso(ms) if isinstance(ms, int) else "-"


def _seconds(ms: Any) -> str:
    return f"{ms / 1000:.1f}s" if isinstance(ms, int | float) else "-"


def _rate(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "-"


def _uptime(value: Any) -> str:
    return f"{value:.0f}s" if isinstance(value, int | float) else "-"
