"""What the governor raises to the runtime instead of a permit."""

from __future__ import annotations

from pool.generation import JobFatalError

__all__ = ["BudgetWaitTooLong", "RequestTooLarge"]


class RequestTooLarge(JobFatalError):
    """The request needs more tokens than the whole tokens-per-minute limit: it can never pass.

    A `JobFatalError`: the runtime fails the page at once with this reason.
    """

    def __init__(self, *, model: str, tokens: int, prompt_tokens: int, max_tokens: int, tpm: int):
        super().__init__(
            f"request too large for the rate limit: the page needs about {tokens} tokens "
            f"({prompt_tokens} prompt + {max_tokens} max_tokens) and {model} allows {tpm} tokens "
            "per minute; shorten the page (targetWords, maxTokens, instructions) or raise "
            "the limit (OPENAI_TPM_LIMIT)",
            code="request_too_large",
        )
        self.tpm = tpm
        self.tokens = tokens


class BudgetWaitTooLong(Exception):
    """The page waited RATE_LIMIT_MAX_WAIT for budget, or would: give it back to the queue.

    Not a failed attempt and not a failure: the page goes back to the queue untouched.
    """

    def __init__(self, waited_s: float, reason: str) -> None:
        super().__init__(f"waited {waited_s:.1f}s for rate-limit budget: {reason}")
        self.waited_s = waited_s
        self.reason = reason
