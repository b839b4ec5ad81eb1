"""The governor: every API request of every process waits for its share of one shared budget.

    permit = await governor.acquire(cost)            # before every request, retries included
    try:
        page = await generator.generate(job, ...)
    except Exception as exc:
        if is_rate_refusal(exc):
            await permit.refused(exc)               # shared cool-down; then acquire again
        else:
            await permit.failed()                   # a real fault: spends an attempt
        raise
    await permit.settle_page(page)                  # usage and headers correct the budget

or all of it in one call, refusals waited out inside: `await governor.call(cost, send)`.

`acquire` holds one of this process's concurrency slots (`AdaptiveConcurrency`), then
reserves one request and the request's estimated tokens in the shared budget
(`SharedBudget.reserve`, one Lua script on Redis time). It returns a `Permit` once the
reservation's time has come, or raises `RequestTooLarge` (the page can never fit the TPM
limit: fail it) or `BudgetWaitTooLong` (RATE_LIMIT_MAX_WAIT spent: give the page back to the
queue). Redis errors are raised unchanged from `acquire`, so the caller's outage guard waits
them out and no request goes out unpaced. The calls after a request (`settle*`, `refused`,
`failed`, `release`) never raise Redis errors: the request has happened, a correction that
cannot be written is logged and dropped, and the local slot is freed first.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TypedDict, TypeVar

from loguru import logger
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pool.clock import monotonic
from pool.config import PoolSettings
from pool.generation import GeneratedPage, JobFatalError
from pool.keys import Keys
from pool.ratelimit.bucket import BudgetConfig, SharedBudget, requests_per_s
from pool.ratelimit.concurrency import AdaptiveConcurrency
from pool.ratelimit.cost import RequestCost
from pool.ratelimit.errors import BudgetWaitTooLong, RequestTooLarge
from pool.ratelimit.headers import RateHeaders
from pool.ratelimit.identity import ApiIdentity
from pool.ratelimit.refusals import (
    is_rate_refusal,
    is_request_too_large,
    refusal_headers,
    refusal_wait_s,
)
from pool.ratelimit.scripts import BudgetScripts
from pool.ratelimit.snapshot import BudgetSnapshot, LocalBudgetSnapshot, read_budgets

__all__ = ["DEFAULT_COOLDOWN_S", "Governor", "GovernorSnapshot", "Permit"]

#: Cool-down after a refusal that did not say how long to wait (a 503, a bare 429).
DEFAULT_COOLDOWN_S = 1.0
_SCOUT_TTL_EXTRA_S = 5.0  # a scout holds the learning slot for its timeout plus this
_CALIBRATION_WEIGHT = 0.2
_CALIBRATION_RANGE = (0.5, 4.0)
_LOG = "[Rate Limit]"

T = TypeVar("T")


class GovernorSnapshot(TypedDict):
    """What one process's governor knows: `enabled`, its API, and its budgets."""

    enabled: bool
    base_url: str
    key: str
    budgets: list[LocalBudgetSnapshot]


class _Budget:
    """One model's budget in this process: the shared state, the local limit, calibration."""

    def __init__(self, shared: SharedBudget, ceiling: int, clock: Callable[[], float]) -> None:
        self.shared = shared
        self.concurrency = AdaptiveConcurrency(ceiling, clock=clock)
        # One request at a time until Redis has answered once: its rate is unknown until then.
        self.concurrency.learning = True
        self.rpm: int | None = shared.config.rpm
        self.tpm: int | None = shared.config.tpm
        #: usage.prompt_tokens / our estimate, a moving average (the API counts its own way).
        self.prompt_ratio = 1.0
        self._tokens_per_request: float | None = None

    def reserved_prompt(self, cost: RequestCost) -> int:
        return math.ceil(cost.prompt_tokens * self.prompt_ratio)

    def calibrate(self, estimated: int, actual: int) -> None:
        if estimated > 0 and actual > 0:
            ratio = actual / estimated
            low, high = _CALIBRATION_RANGE
            self.prompt_ratio += _CALIBRATION_WEIGHT * (ratio - self.prompt_ratio)
            self.prompt_ratio = min(high, max(low, self.prompt_ratio))

    def limits(self, rpm: int | None, tpm: int | None, tokens: int) -> None:
        self.rpm, self.tpm = rpm, tpm
        old = self._tokens_per_request
        self._tokens_per_request = tokens if old is None else old + 0.2 * (tokens - old)
        self.concurrency.set_rate(requests_per_s(rpm, tpm, self._tokens_per_request))


class Permit:
    """Leave to send one request; end it with exactly one of its methods (later calls no-op).

    Attributes:
        cost: what the request was estimated at.
        go_at_ms: Redis time from which it was allowed to go (None: governor off).
        reserved_at_ms: Redis time of its reservation (None: governor off).
        scout: it went alone, to learn the limits from its answer.
        waited_s: how long `acquire` took.
        reserved_tokens: tokens it reserved (calibrated prompt estimate + max_tokens).
    """

    def __init__(
        self,
        governor: Governor,
        budget: _Budget | None,
        cost: RequestCost,
        *,
        reserved_prompt: int = 0,
        go_at_ms: float | None = None,
        reserved_at_ms: float | None = None,
        scout_token: str = "",
        started: float = 0.0,
    ) -> None:
        self.cost = cost
        self.go_at_ms = go_at_ms
        self.reserved_at_ms = reserved_at_ms
        self.scout = bool(scout_token)
        self.reserved_prompt = reserved_prompt
        self.reserved_tokens = reserved_prompt + cost.max_tokens
        self.waited_s = 0.0
        self._governor = governor
        self._budget = budget
        self._scout_token = scout_token
        self._started = started
        self._sent_at: float | None = None
        self._ended = False

    @property
    def ended(self) -> bool:
        """One of settle, refused, failed or release was called."""
        return self._ended

    def _sent(self) -> None:
        self._sent_at = self._governor.clock()
        self.waited_s = self._sent_at - self._started

    def _end(self) -> _Budget | None:
        if self._ended:
            return None
        self._ended = True
        if self._budget is not None:
            if self.scout:  # whatever the answer, the next request finds out what comes next
                self._budget.concurrency.learning = False
            self._budget.concurrency.release()
        return self._budget

    async def settle(
        self,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The request was answered: correct the reservation from usage and headers.

        Args:
            prompt_tokens / completion_tokens: the answer's usage (0: not reported).
            headers: the answer's `x-ratelimit-*` headers (learned limits, remaining).
        """
        budget = self._end()
        if budget is None:
            return
        now = self._governor.clock()
        if self._sent_at is not None:
            budget.concurrency.answered(now - self._sent_at)
        correction = 0
        if prompt_tokens > 0 or completion_tokens > 0:
            if prompt_tokens > 0:
                budget.calibrate(self.cost.prompt_tokens, prompt_tokens)
                correction += prompt_tokens - self.reserved_prompt
            if self._governor.refund_unused:
                correction += min(0, completion_tokens - self.cost.max_tokens)
        await self._governor._quietly(
            "settle",
            budget.shared.settle(
                correction, RateHeaders.parse(headers), scout_token=self._scout_token
            ),
        )

    async def settle_page(self, page: GeneratedPage) -> None:
        """`settle` with a generated page's usage and rate-limit headers."""
        await self.settle(page.prompt_tokens, page.completion_tokens, page.rate_limits)

    async def refused(
        self,
        error: BaseException | None = None,
        *,
        retry_after_s: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> float:
        """The API refused the request for rate (429, 503): cool down every process.

        The request is not a failed attempt: `acquire` again and send it again.

        Args:
            error: the refusal (`retry_after_s` and any `rate_limits` headers are read from it).
            retry_after_s / headers: instead of, or over, what `error` carries.

        Returns:
            Seconds left of the shared cool-down (0 if it could not be written).
        """
        budget = self._end()
        if budget is None:
            return 0.0
        budget.concurrency.refused()
        if error is not None:
            retry_after_s = retry_after_s if retry_after_s is not None else refusal_wait_s(error)
            headers = headers if headers is not None else refusal_headers(error)
        return await self._governor._cool_down(
            budget, retry_after_s, headers, scout_token=self._scout_token
        )

    async def failed(self) -> None:
        """The request was sent and ended in another error (5xx, timeout, bad answer).

        Its reservation stands: the API may have counted it.
        """
        budget = self._end()
        if budget is not None and self.scout:
            await self._governor._quietly(
                "release", budget.shared.release(0, refund=False, scout_token=self._scout_token)
            )

    async def release(self) -> None:
        """The request was never sent: give its reservation back."""
        budget = self._end()
        if budget is None:
            return
        await self._governor._quietly(
            "release",
            budget.shared.release(self.reserved_tokens, refund=True, scout_token=self._scout_token),
        )


class Governor:
    """Paces the requests of one process to one API with the budget every process shares.

    Args:
        redis: the pool's Redis client.
        keys: the key schema.
        settings: OPENAI_RPM_LIMIT, OPENAI_TPM_LIMIT, RATE_LIMIT_* and CONCURRENT_WORKERS
            (the ceiling of concurrency) are read from them.
        api: the API (`ApiIdentity.of(base_url, api_key)` or a generator's `api_identity`).
        ceiling: most requests in flight per budget (default CONCURRENT_WORKERS).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        settings: PoolSettings,
        api: ApiIdentity,
        *,
        ceiling: int | None = None,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        self.enabled = settings.rate_limit_governor
        self.api = api
        self.max_wait_s = settings.rate_limit_max_wait_s
        self.refund_unused = settings.rate_limit_refund_unused
        self.clock = clock
        self.ceiling = ceiling or settings.concurrent_workers
        self._redis = redis
        self._keys = keys
        self._config = BudgetConfig(
            rpm=settings.openai_rpm_limit,
            tpm=settings.openai_tpm_limit,
            burst_ms=float(settings.rate_limit_burst),
            scout_ttl_ms=int((settings.generation_timeout_s + _SCOUT_TTL_EXTRA_S) * 1000),
        )
        self._scripts = BudgetScripts.register(redis)
        self._budgets: dict[str, _Budget] = {}

    # -- before a request ------------------------------------------------------------------

    async def acquire(self, cost: RequestCost, *, waiting_since: float | None = None) -> Permit:
        """Wait until `cost` may be sent, and return the permit to end afterwards.

        Args:
            cost: the request's estimate (`generator.request_cost(job)`).
            waiting_since: when (this governor's clock) the page started waiting for budget;
                pass the first acquire's start again after a refusal, so that
                RATE_LIMIT_MAX_WAIT bounds the page's whole wait. Default: now.

        Raises:
            RequestTooLarge: `cost` needs more tokens than the TPM limit (fail the page).
            BudgetWaitTooLong: waiting would outlast RATE_LIMIT_MAX_WAIT (give it back).
            redis.exceptions.RedisError: Redis could not be asked (wait it out, try again).
        """
        started = self.clock() if waiting_since is None else waiting_since
        if not self.enabled:
            unpaced = Permit(self, None, cost, reserved_prompt=cost.prompt_tokens, started=started)
            unpaced._sent()
            return unpaced
        budget = self.budget(cost.model)
        reserved_prompt = budget.reserved_prompt(cost)
        tokens = reserved_prompt + cost.max_tokens
        if budget.tpm is not None and tokens > budget.tpm:
            raise self._too_large(cost, tokens, budget.tpm)
        deadline = started + self.max_wait_s
        if not await budget.concurrency.acquire(timeout_s=max(0.0, deadline - self.clock())):
            raise BudgetWaitTooLong(self.clock() - started, "no request slot came free")
        permit: Permit | None = None
        try:
            while True:
                left = deadline - self.clock()
                scout_token = secrets.token_hex(8)
                answer = await budget.shared.reserve(
                    tokens, max_delay_s=left, scout_token=scout_token
                )
                budget.limits(answer.rpm, answer.tpm, tokens)
                budget.concurrency.learning = answer.kind in ("scout", "learning")
                if answer.kind == "too_large":
                    raise self._too_large(cost, tokens, answer.tpm or 0)
                if answer.kind == "too_long" or answer.delay_s > left:
                    raise BudgetWaitTooLong(
                        self.clock() - started,
                        f"the budget of {cost.model} is booked {answer.delay_s:.1f}s ahead",
                    )
                if answer.kind in ("cooldown", "learning"):
                    await asyncio.sleep(answer.delay_s)
                    continue
                permit = Permit(
                    self,
                    budget,
                    cost,
                    reserved_prompt=reserved_prompt,
                    go_at_ms=answer.go_at_ms,
                    reserved_at_ms=answer.now_ms,
                    scout_token=scout_token if answer.kind == "scout" else "",
                    started=started,
                )
                if answer.delay_s > 0:
                    await self._wait_turn(budget, permit, answer.delay_s, deadline, started)
                permit._sent()
                return permit
        except BaseException:
            if permit is None:
                budget.concurrency.release()
            else:
                await permit.release()
            raise

    async def _wait_turn(
        self, budget: _Budget, permit: Permit, delay_s: float, deadline: float, started: float
    ) -> None:
        """Sleep until the permit's time; if a cool-down began meanwhile, move with it."""
        await asyncio.sleep(delay_s)
        while True:
            cooldown = await budget.shared.cooldown()
            assert permit.go_at_ms is not None
            go_at = cooldown.shifted_go_ms(permit.go_at_ms)
            wait_s = (go_at - cooldown.now_ms) / 1000
            if wait_s <= 0:
                return
            if self.clock() + wait_s > deadline:
                raise BudgetWaitTooLong(
                    self.clock() - started, f"a cool-down of {cooldown.left_s:.1f}s"
                )
            permit.go_at_ms = go_at
            await asyncio.sleep(wait_s)

    @asynccontextmanager
    async def request(
        self, cost: RequestCost, *, waiting_since: float | None = None
    ) -> AsyncIterator[Permit]:
        """`acquire` as a context: an exception ends the permit as a refusal or a failure.

        Call `permit.settle(...)` inside on success; leaving without it counts as `failed`.
        """
        permit = await self.acquire(cost, waiting_since=waiting_since)
        try:
            yield permit
        except BaseException as exc:
            if isinstance(exc, Exception) and is_rate_refusal(exc):
                await permit.refused(exc)
            else:
                await permit.failed()
            raise
        else:
            await permit.failed()  # no-op after settle

    async def call(
        self,
        cost: RequestCost,
        send: Callable[[], Awaitable[GeneratedPage]],
        *,
        waiting_since: float | None = None,
    ) -> GeneratedPage:
        """Send with `send()` within the budget; refusals are waited out, not counted.

        Raises:
            what `send` raises, except a refusal for rate; a 429 "Request too large" becomes a
            `JobFatalError`; and what `acquire` raises.
        """
        since = self.clock() if waiting_since is None else waiting_since
        while True:
            permit = await self.acquire(cost, waiting_since=since)
            try:
                page = await send()
            except BaseException as exc:
                if isinstance(exc, Exception) and is_rate_refusal(exc):
                    await permit.refused(exc)
                    continue
                await permit.failed()
                if isinstance(exc, Exception) and is_request_too_large(exc):
                    reason = getattr(exc, "reason", str(exc))
                    raise JobFatalError(reason, status=429, code="request_too_large") from exc
                raise
            await permit.settle_page(page)
            return page

    # -- refusals without a permit ---------------------------------------------------------

    async def refused(
        self,
        model: str,
        *,
        retry_after_s: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> float:
        """A request outside a permit (a probe) was refused: start the shared cool-down."""
        if not self.enabled:
            return 0.0
        budget = self.budget(model)
        budget.concurrency.refused()
        return await self._cool_down(budget, retry_after_s, headers, scout_token="")

    async def _cool_down(
        self,
        budget: _Budget,
        retry_after_s: float | None,
        headers: Mapping[str, str] | None,
        *,
        scout_token: str,
    ) -> float:
        wait_s = DEFAULT_COOLDOWN_S if retry_after_s is None else retry_after_s
        wait_s = min(max(0.0, wait_s), self.max_wait_s)
        cooldown = await self._quietly(
            "refusal",
            budget.shared.refuse(wait_s, RateHeaders.parse(headers), scout_token=scout_token),
        )
        if cooldown is None:
            return 0.0
        logger.debug(
            "{} {} refused; every process waits {:.2f}s",
            _LOG,
            budget.shared.model,
            cooldown.left_s,
        )
        return cooldown.left_s

    # -- state -----------------------------------------------------------------------------

    def budget(self, model: str) -> _Budget:
        """This process's view of the budget of `model` (created on first use)."""
        budget = self._budgets.get(model)
        if budget is None:
            shared = SharedBudget(
                self._redis, self._keys, self._scripts, self.api, model, self._config
            )
            budget = self._budgets[model] = _Budget(shared, self.ceiling, self.clock)
        return budget

    def concurrency(self, model: str) -> AdaptiveConcurrency:
        """The adaptive concurrency of `model`'s budget in this process (`.limit`)."""
        return self.budget(model).concurrency

    def snapshot(self) -> GovernorSnapshot:
        """This process's side: concurrency limits, requests in flight and waiting, latency."""
        budgets = [
            LocalBudgetSnapshot(
                budget=b.shared.id,
                model=b.shared.model,
                rpm=b.rpm,
                tpm=b.tpm,
                concurrency=b.concurrency.limit,
                ceiling=b.concurrency.ceiling,
                in_flight=b.concurrency.in_flight,
                waiting=b.concurrency.waiting,
                latency_s=round(b.concurrency.latency_s, 3),
                refusals=b.concurrency.refusals,
            )
            for b in self._budgets.values()
        ]
        return GovernorSnapshot(
            enabled=self.enabled,
            base_url=self.api.base_url,
            key=self.api.key_fingerprint,
            budgets=budgets,
        )

    async def shared_snapshot(self) -> list[BudgetSnapshot]:
        """Every budget as Redis has it (limits, use over the last minute, cool-downs)."""
        return await read_budgets(self._redis, self._keys)

    # -- helpers ---------------------------------------------------------------------------

    def _too_large(self, cost: RequestCost, tokens: int, tpm: int) -> RequestTooLarge:
        return RequestTooLarge(
            model=cost.model,
            tokens=tokens,
            prompt_tokens=tokens - cost.max_tokens,
            max_tokens=cost.max_tokens,
            tpm=tpm,
        )

    async def _quietly(self, what: str, op: Awaitable[T]) -> T | None:
        try:
            return await op
        except RedisError as exc:
            logger.warning(
                "{} could not record a {} in Redis ({}: {}); the budget keeps its estimate",
                _LOG,
                what,
                type(exc).__name__,
                exc,
            )
            return None
