"""What the budgets look like now, for `ebook-pool stats`, the [Stats] line and pool events.

`read_budgets` reads every budget from Redis (no governor needed, so the CLI can call it);
`Governor.snapshot()` adds what only a process knows: its concurrency limit and waiters.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from redis.asyncio import Redis

from pool.keys import Keys

__all__ = [
    "BudgetSnapshot",
    "LocalBudgetSnapshot",
    "budget_use",
    "describe_budget",
    "read_budgets",
]

Source = Literal["set", "learned", "unknown"]
_WINDOW_S = 60


class BudgetSnapshot(TypedDict):
    """One budget, shared by every process, as Redis has it.

    Attributes:
        budget: its id (`ApiIdentity.budget_id`); base_url, key (fingerprint), model: whose.
        rpm / tpm: the limits in force (None: unknown); rpm_source / tpm_source: "set" (env),
            "learned" (x-ratelimit-limit-* headers) or "unknown".
        requests_last_min / tokens_last_min / refusals_last_min: over the last 60 s.
        rpm_use_pct / tpm_use_pct: those as % of the limits (None without a limit).
        grants_total / refusals_total: since the budget was created (it expires after a day
            unused).
        cooldown_s: left of a shared cool-down (0: none).
        booked_s: how far ahead requests are already reserved (the line's length in time).
        learning: limits unknown, one scout request at a time learns them.
    """

    budget: str
    base_url: str
    key: str
    model: str
    rpm: int | None
    tpm: int | None
    rpm_source: Source
    tpm_source: Source
    requests_last_min: int
    tokens_last_min: int
    refusals_last_min: int
    rpm_use_pct: float | None
    tpm_use_pct: float | None
    grants_total: int
    refusals_total: int
    cooldown_s: float
    booked_s: float
    learning: bool


class LocalBudgetSnapshot(TypedDict):
    """One budget as one process sees it (`Governor.snapshot()`)."""

    budget: str
    model: str
    rpm: int | None
    tpm: int | None
    concurrency: int
    ceiling: int
    in_flight: int
    waiting: int
    latency_s: float
    refusals: int


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(fields: dict[object, object]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in fields.items()}


def _str(fields: dict[str, str], name: str, default: str = "") -> str:
    return fields.get(name, default)


def _float(fields: dict[str, str], name: str) -> float:
    try:
        return float(_str(fields, name, "0"))
    except ValueError:
        return 0.0


def _source(text: str) -> Source:
    return text if text in ("set", "learned") else "unknown"  # type: ignore[return-value]


def _pct(used: int, limit: int | None) -> float | None:
    return round(100 * used / limit, 1) if limit else None


def _last_minute(ring: dict[str, str], now_s: int) -> tuple[int, int, int]:
    requests = tokens = refusals = 0
    for slot in range(_WINDOW_S):
        sec = _float(ring, f"s{slot}")
        if now_s - _WINDOW_S < sec <= now_s:
            requests += int(_float(ring, f"r{slot}"))
            tokens += int(_float(ring, f"t{slot}"))
            refusals += int(_float(ring, f"x{slot}"))
    return max(0, requests), max(0, tokens), refusals


async def read_budgets(redis: Redis, keys: Keys) -> list[BudgetSnapshot]:
    """Every budget the pool has paced (and not forgotten), by model then id."""
    ids = sorted(_text(v) for v in await redis.smembers(keys.rate_budgets))
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        pipe.time()
        for budget in ids:
            pipe.hgetall(keys.rate_budget(budget))
            pipe.hgetall(keys.rate_use(budget))
        replies = await pipe.execute()
    seconds, micros = replies[0]
    now_ms = int(seconds) * 1000 + int(micros) / 1000
    out: list[BudgetSnapshot] = []
    for i, budget in enumerate(ids):
        state, ring = _decode(replies[1 + 2 * i]), _decode(replies[2 + 2 * i])
        if not state:
            continue  # expired; its id is dropped from the set below
        rpm = int(_float(state, "rpm")) or None
        tpm = int(_float(state, "tpm")) or None
        requests, tokens, refusals = _last_minute(ring, int(now_ms // 1000))
        booked = max(_float(state, "tat_r"), _float(state, "tat_t")) - _float(state, "burst_ms")
        out.append(
            BudgetSnapshot(
                budget=budget,
                base_url=_str(state, "base_url"),
                key=_str(state, "key"),
                model=_str(state, "model"),
                rpm=rpm,
                tpm=tpm,
                rpm_source=_source(_str(state, "rpm_src")),
                tpm_source=_source(_str(state, "tpm_src")),
                requests_last_min=requests,
                tokens_last_min=tokens,
                refusals_last_min=refusals,
                rpm_use_pct=_pct(requests, rpm),
                tpm_use_pct=_pct(tokens, tpm),
                grants_total=int(_float(state, "grants")),
                refusals_total=int(_float(state, "refusals")),
                cooldown_s=round(max(0.0, _float(state, "cd_until") - now_ms) / 1000, 3),
                booked_s=round(max(0.0, booked - now_ms) / 1000, 3),
                learning=(rpm is None or tpm is None) and _float(state, "nohdr_until") <= now_ms,
            )
        )
    gone = [b for b, state in zip(ids, replies[1::2], strict=True) if not state]
    if gone:
        await redis.srem(keys.rate_budgets, *gone)
    out.sort(key=lambda b: (b["model"], b["budget"]))
    return out


def _limit_text(used: int, limit: int | None, pct: float | None, source: Source, unit: str) -> str:
    if limit is None:
        return f"{used} {unit} ({'learning' if source == 'unknown' else 'no limit'})"
    return f"{used}/{limit} {unit} ({pct:.1f}%, {source})"


def describe_budget(b: BudgetSnapshot) -> str:
    """One line for people: limits, use over the last minute, refusals, any cool-down."""
    parts = [
        f"{b['model']} @ {b['base_url']} (key {b['key']})",
        _limit_text(b["requests_last_min"], b["rpm"], b["rpm_use_pct"], b["rpm_source"], "RPM"),
        _limit_text(b["tokens_last_min"], b["tpm"], b["tpm_use_pct"], b["tpm_source"], "TPM"),
        f"refused {b['refusals_last_min']} in the last minute",
    ]
    if b["cooldown_s"] > 0:
        parts.append(f"COOL-DOWN {b['cooldown_s']:.1f}s")
    if b["booked_s"] > 0:
        parts.append(f"booked {b['booked_s']:.1f}s ahead")
    return " | ".join(parts)


def budget_use(budgets: list[BudgetSnapshot]) -> str:
    """Budget use for the [Stats] line, e.g. "gpt-4o-mini 98.7% RPM 41.0% TPM" ("" if none)."""
    parts = []
    for b in budgets:
        rpm = f"{b['rpm_use_pct']:.1f}% RPM" if b["rpm_use_pct"] is not None else "RPM ?"
        tpm = f"{b['tpm_use_pct']:.1f}% TPM" if b["tpm_use_pct"] is not None else "TPM ?"
        cooling = f" cool-down {b['cooldown_s']:.1f}s" if b["cooldown_s"] > 0 else ""
        parts.append(f"{b['model']} {rpm} {tpm}{cooling}")
    return ", ".join(parts)
