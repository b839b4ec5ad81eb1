"""Rolling statistics of one pool process, and the `[Stats]` line users grep for."""

from __future__ import annotations

from collections import deque
from typing import TypedDict

from pool.clock import monotonic
from pool.events import EventKind, PoolEvent
from pool.ratelimit import BudgetSnapshot, budget_use

__all__ = ["Stats", "StatsSnapshot", "format_stats", "stats_fields"]

_WINDOW_S = 60.0  # pages/min is measured over the last minute
_SAMPLES = 1_000  # p50/p95 over the last this many pages


class StatsSnapshot(TypedDict):
    uptime_s: float
    processed: int
    success: int
    failed: int
    active: int
    pages_per_min: float
    ok_per_min: float
    failed_per_min: float
    p50_s: float | None
    p95_s: float | None


class Stats:
    """Counters and recent generation times of one process. Not thread-safe; one event loop.

    The pool subscribes `on_event` to its events for the counters; nothing bumps them inline.
    `active` is a gauge the worker loop keeps (pages being worked on right now).
    """

    def __init__(self) -> None:
        self.started = monotonic()
        self.success = 0
        self.failed = 0
        self.active = 0
        self._durations: deque[float] = deque(maxlen=_SAMPLES)
        self._finished_at: deque[float] = deque()
        self._failed_at: deque[float] = deque()

    @property
    def processed(self) -> int:
        return self.success + self.failed

    #: The events `on_event` counts (subscribe it to these only).
    KINDS = (EventKind.JOB_SUCCEEDED, EventKind.JOB_FAILED)

    def on_event(self, event: PoolEvent) -> None:
        """Count what the pool's events say (see `pool.events`)."""
        kind = event.kind
        if kind is EventKind.JOB_SUCCEEDED:
            self.record_success(event.duration_s or 0.0)
        elif kind is EventKind.JOB_FAILED:
            self.record_failure()

    def record_success(self, duration_s: float) -> None:
        self.success += 1
        self._durations.append(duration_s)
        self._mark_finished()

    def record_failure(self) -> None:
        self.failed += 1
        self._failed_at.append(self._mark_finished())

    def _mark_finished(self) -> float:
        now = monotonic()
        self._finished_at.append(now)
        self._forget_before(now - _WINDOW_S)
        return now

    def _forget_before(self, since: float) -> None:
        for times in (self._finished_at, self._failed_at):
            while times and times[0] < since:
                times.popleft()

    def snapshot(self) -> StatsSnapshot:
        now = monotonic()
        self._forget_before(now - _WINDOW_S)
        uptime = now - self.started
        window = max(min(uptime, _WINDOW_S), 1.0)
        ordered = sorted(self._durations)
        return StatsSnapshot(
            uptime_s=uptime,
            processed=self.processed,
            success=self.success,
            failed=self.failed,
            active=self.active,
            pages_per_min=len(self._finished_at) * 60.0 / window,
            ok_per_min=(len(self._finished_at) - len(self._failed_at)) * 60.0 / window,
            failed_per_min=len(self._failed_at) * 60.0 / window,
            p50_s=_quantile(ordered, 0.50),
            p95_s=_quantile(ordered, 0.95),
        )


def _quantile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def success_rate_pct(snap: StatsSnapshot) -> float:
    """Pages stored out of pages processed, in percent (0 before the first)."""
    return 100.0 * snap["success"] / snap["processed"] if snap["processed"] else 0.0


def stats_fields(
    snap: StatsSnapshot,
    *,
    queue_depth: int | None,
    budgets: list[BudgetSnapshot] | None = None,
) -> dict[str, float | int | None]:
    """The `[Stats]` line's numbers as the fields of a JSON log line (rounded as shown, finer).

    With `budgets`, the highest use of any budget over the last minute, as % of its RPM and
    TPM (`rpm_use_pct`, `tpm_use_pct`; None without a limit).
    """

    def seconds(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "uptime_s": round(snap["uptime_s"], 1),
        "processed": snap["processed"],
        "success": snap["success"],
        "failed": snap["failed"],
        "success_rate_pct": round(success_rate_pct(snap), 1),
        "active": snap["active"],
        "pages_per_min": round(snap["pages_per_min"], 1),
        "ok_per_min": round(snap["ok_per_min"], 1),
        "failed_per_min": round(snap["failed_per_min"], 1),
        "p50_s": seconds(snap["p50_s"]),
        "p95_s": seconds(snap["p95_s"]),
        "queue_depth": queue_depth,
        **(_budget_fields(budgets) if budgets else {}),
    }


def _budget_fields(budgets: list[BudgetSnapshot]) -> dict[str, float | int | None]:
    rpm = [b["rpm_use_pct"] for b in budgets if b["rpm_use_pct"] is not None]
    tpm = [b["tpm_use_pct"] for b in budgets if b["tpm_use_pct"] is not None]
    return {
        "rpm_use_pct": max(rpm, default=None),
        "tpm_use_pct": max(tpm, default=None),
        "refusals_last_min": sum(b["refusals_last_min"] for b in budgets),
    }


def format_stats(
    snap: StatsSnapshot, *, queue_depth: int | None, budgets: list[BudgetSnapshot] | None = None
) -> str:
    """The seed's `[Stats]` line, extended with pages/min, p50/p95, queue depth, pages/min that
    succeeded and failed, and the use of the rate-limit budgets (when there are any)."""
    rate = success_rate_pct(snap)
    p50 = "-" if snap["p50_s"] is None else f"{snap['p50_s']:.1f}s"
    p95 = "-" if snap["p95_s"] is None else f"{snap['p95_s']:.1f}s"
    queue = "?" if queue_depth is None else str(queue_depth)
    return (
        f"[Stats] Uptime: {snap['uptime_s']:.0f}s | Processed: {snap['processed']} | "
        f"Success: {snap['success']} | Failed: {snap['failed']} | Success Rate: {rate:.1f}% | "
        f"Active: {snap['active']} | Pages/min: {snap['pages_per_min']:.1f} | "
        f"p50: {p50} | p95: {p95} | Queue: {queue} | "
        f"OK/min: {snap['ok_per_min']:.1f} | Failed/min: {snap['failed_per_min']:.1f}"
        + (f" | Budget: {budget_use(budgets)}" if budgets else "")
    )
