"""One API budget in Redis, shared by every process: typed calls to its Lua scripts.

Every call is one atomic script on Redis's clock, so processes on machines whose clocks
disagree still share one schedule. Redis errors are raised as they are: the caller's outage
guard waits them out, and no request goes out unpaced because Redis could not be asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from pool.keys import Keys
from pool.ratelimit.headers import RateHeaders
from pool.ratelimit.identity import ApiIdentity
from pool.ratelimit.scripts import BudgetScripts

__all__ = ["BudgetConfig", "Cooldown", "Reservation", "SharedBudget", "requests_per_s"]

ReservationKind = Literal["go", "scout", "learning", "cooldown", "too_large", "too_long"]

_STATE_TTL_MS = 86_400_000  # a budget nobody used for a day is forgotten


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    """What every process must agree on for one budget.

    Attributes:
        rpm / tpm: configured limits (None: learn them from the API's headers).
        burst_ms: how much of the limit, in ms of it, may be spent at once.
        scout_ttl_ms: longest a scout request holds the learning slot (a crashed scout frees
            it after this).
        no_headers_ms: when a scout's answer tells no limits, how long to go unpaced before
            trying to learn them again.
    """

    rpm: int | None = None
    tpm: int | None = None
    burst_ms: float = 1_000.0
    scout_ttl_ms: int = 120_000
    no_headers_ms: int = 600_000


@dataclass(frozen=True, slots=True)
class Reservation:
    """The answer of `reserve`.

    Attributes:
        kind: see reserve.lua: go, scout, learning, cooldown, too_large, too_long.
        delay_s: go: wait this long, then send; learning/cooldown: ask again after this long;
            too_long: how long it would have waited.
        go_at_ms: go/scout: Redis time at which the request may be sent.
        rpm / tpm: the limits in force (None: unknown).
        now_ms: Redis time of the answer.
    """

    kind: ReservationKind
    delay_s: float
    go_at_ms: float | None
    rpm: int | None
    tpm: int | None
    now_ms: float


@dataclass(frozen=True, slots=True)
class Cooldown:
    """A shared cool-down as Redis has it: it lasts until `until_ms` (Redis time)."""

    now_ms: float
    until_ms: float
    since_ms: float

    @property
    def left_s(self) -> float:
        return max(0.0, self.until_ms - self.now_ms) / 1000

    def shifted_go_ms(self, go_at_ms: float) -> float:
        """When a request reserved for `go_at_ms` goes now: after the cool-down, same spacing."""
        if self.now_ms >= self.until_ms:
            return go_at_ms
        return self.until_ms + max(0.0, go_at_ms - self.since_ms)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _limit(value: object) -> int | None:
    number = int(float(_text(value)))
    return number if number > 0 else None


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


class SharedBudget:
    """The budget of one API and model in Redis.

    Args:
        redis: the client (errors are raised, not handled).
        keys: the key schema.
        scripts: the registered Lua scripts.
        api: the API this budget belongs to.
        model: the model.
        config: limits and tuning shared by every process.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: BudgetScripts,
        api: ApiIdentity,
        model: str,
        config: BudgetConfig,
    ) -> None:
        self.api = api
        self.model = model
        self.id = api.budget_id(model)
        self.config = config
        self._scripts = scripts
        self._redis = redis
        self._keys = keys
        self._state = keys.rate_budget(self.id)
        self._ring = [self._state, keys.rate_use(self.id), keys.rate_scout(self.id)]

    async def reserve(self, tokens: int, *, max_delay_s: float, scout_token: str) -> Reservation:
        """Reserve one request and `tokens` tokens, unless it would wait over `max_delay_s`."""
        cfg = self.config
        reply = await self._scripts.reserve(
            keys=[*self._ring, self._keys.rate_budgets],
            args=[
                cfg.rpm or 0,
                cfg.tpm or 0,
                tokens,
                f"{cfg.burst_ms:.3f}",
                f"{max(0.0, max_delay_s) * 1000:.3f}",
                scout_token,
                cfg.scout_ttl_ms,
                self.id,
                self.api.base_url,
                self.model,
                self.api.key_fingerprint,
                _STATE_TTL_MS,
            ],
        )
        kind, delay, go, rpm, tpm, now = (_text(v) for v in reply)
        return Reservation(
            kind=kind,  # type: ignore[arg-type]  # one of the script's kinds
            delay_s=float(delay) / 1000,
            go_at_ms=float(go) if go else None,
            rpm=_limit(rpm),
            tpm=_limit(tpm),
            now_ms=float(now),
        )

    async def settle(
        self, token_correction: int, headers: RateHeaders, *, scout_token: str = ""
    ) -> None:
        """Charge (> 0) or refund (< 0) tokens, learn limits, cap the bucket to `remaining`."""
        cfg = self.config
        await self._scripts.settle(
            keys=self._ring,
            args=[
                token_correction,
                _opt(headers.limit_requests),
                _opt(headers.limit_tokens),
                _opt(headers.remaining_requests),
                _opt(headers.remaining_tokens),
                cfg.rpm or 0,
                cfg.tpm or 0,
                f"{cfg.burst_ms:.3f}",
                scout_token,
                cfg.no_headers_ms,
            ],
        )

    async def refuse(
        self, wait_s: float, headers: RateHeaders, *, scout_token: str = ""
    ) -> Cooldown:
        """Start or extend the shared cool-down by `wait_s` from now; learn from the headers."""
        cfg = self.config
        reply = await self._scripts.refuse(
            keys=self._ring,
            args=[
                f"{max(0.0, wait_s) * 1000:.3f}",
                _opt(headers.limit_requests),
                _opt(headers.limit_tokens),
                _opt(headers.remaining_requests),
                _opt(headers.remaining_tokens),
                cfg.rpm or 0,
                cfg.tpm or 0,
                f"{cfg.burst_ms:.3f}",
                scout_token,
            ],
        )
        left, since, now = (float(_text(v)) for v in reply)
        return Cooldown(now_ms=now, until_ms=now + left, since_ms=since)

    async def release(self, tokens: int, *, refund: bool, scout_token: str = "") -> None:
        """End a reservation with no answer: `refund` it if the request was never sent."""
        cfg = self.config
        await self._scripts.release(
            keys=self._ring,
            args=["1" if refund else "0", tokens, cfg.rpm or 0, cfg.tpm or 0, scout_token],
        )

    async def cooldown(self) -> Cooldown:
        """The shared cool-down now (ended if `now_ms >= until_ms`)."""
        reply = await self._scripts.check(keys=[self._state], args=[])
        now, until, since = (float(_text(v)) for v in reply)
        return Cooldown(now_ms=now, until_ms=until, since_ms=since)


def requests_per_s(rpm: int | None, tpm: int | None, tokens_per_request: float) -> float | None:
    """Requests per second the limits allow for requests of `tokens_per_request` (None: no limit)."""
    rates = []
    if rpm:
        rates.append(rpm / 60)
    if tpm and tokens_per_request > 0:
        rates.append(tpm / 60 / tokens_per_request)
    return min(rates) if rates else None
