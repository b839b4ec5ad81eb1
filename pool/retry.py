"""The one retry policy for page generation: exponential backoff, full jitter, Retry-After.

The openai client is built with `max_retries=0`, so this is the only layer that retries a page.
"""

from __future__ import annotations

from collections.abc import Callable

from tenacity import RetryCallState, wait_random_exponential

from pool.generation import GenerationError, JobFatalError, PoolFatalError

__all__ = ["is_retryable", "wait_policy"]


def is_retryable(exc: BaseException) -> bool:
    """Retry anything but the errors that say retrying cannot help, and cancellation."""
    if isinstance(exc, JobFatalError | PoolFatalError):
        return False
    return isinstance(exc, Exception)


def wait_policy(base_s: float, max_s: float) -> Callable[[RetryCallState], float]:
    """Full-jitter exponential backoff, but never shorter than the server's Retry-After.

    Args:
        base_s: the first backoff is drawn from [0, base_s], the n-th from [0, base_s * 2**(n-1)].
        max_s: cap of the jittered backoff (a longer Retry-After is still honoured).
    """
    jitter = wait_random_exponential(multiplier=base_s, max=max_s)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = exc.retry_after_s if isinstance(exc, GenerationError) else None
        backoff = jitter(state)
        return max(after, backoff) if after is not None else backoff

    return wait
