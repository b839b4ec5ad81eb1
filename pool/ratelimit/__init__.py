"""Rate limits: one budget per API and model, shared by every process on the Redis.

See docs/ratelimit.md. The pieces, one concept a module:

- `governor`: `Governor` and `Permit`, what the runtime calls around every API request.
- `bucket`: `SharedBudget`, the budget in Redis (Lua scripts in `lua/`, GCRA on Redis time).
- `concurrency`: `AdaptiveConcurrency`, requests in flight per process (Little's law, AIMD).
- `cost`, `tokens`, `sizing`: what a request costs (prompt tokens + max_tokens), and how many
  completion tokens a page asks for.
- `refusals`: `is_rate_refusal`, a 429/503 that is not a failed attempt.
- `identity`: `ApiIdentity`, which budget a request draws from (never the key itself).
- `snapshot`: `read_budgets`, the numbers for `ebook-pool stats` and pool events.
"""

from pool.ratelimit.bucket import BudgetConfig, Cooldown, Reservation, SharedBudget
from pool.ratelimit.concurrency import AdaptiveConcurrency
from pool.ratelimit.cost import CostedGenerator, RequestCost, estimate_cost, job_cost
from pool.ratelimit.errors import BudgetWaitTooLong, RequestTooLarge
from pool.ratelimit.governor import DEFAULT_COOLDOWN_S, Governor, GovernorSnapshot, Permit
from pool.ratelimit.headers import RateHeaders
from pool.ratelimit.identity import ApiIdentity, key_fingerprint
from pool.ratelimit.refusals import (
    is_rate_refusal,
    is_request_too_large,
    refusal_headers,
    refusal_wait_s,
)
from pool.ratelimit.sizing import grown_max_tokens, page_max_tokens
from pool.ratelimit.snapshot import (
    BudgetSnapshot,
    LocalBudgetSnapshot,
    budget_use,
    describe_budget,
    read_budgets,
)
from pool.ratelimit.tokens import count_prompt_tokens, count_text_tokens, encoding_name

__all__ = [
    "DEFAULT_COOLDOWN_S",
    "AdaptiveConcurrency",
    "ApiIdentity",
    "BudgetConfig",
    "BudgetSnapshot",
    "BudgetWaitTooLong",
    "Cooldown",
    "CostedGenerator",
    "Governor",
    "GovernorSnapshot",
    "LocalBudgetSnapshot",
    "Permit",
    "RateHeaders",
    "RequestCost",
    "RequestTooLarge",
    "Reservation",
    "SharedBudget",
    "budget_use",
    "count_prompt_tokens",
    "count_text_tokens",
    "describe_budget",
    "encoding_name",
    "estimate_cost",
    "grown_max_tokens",
    "is_rate_refusal",
    "is_request_too_large",
    "job_cost",
    "key_fingerprint",
    "page_max_tokens",
    "read_budgets",
    "refusal_headers",
    "refusal_wait_s",
]
