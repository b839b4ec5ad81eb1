"""What one API request costs the budget: one request and its tokens, estimated before sending."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pool.job import PageJob
from pool.ratelimit.sizing import page_max_tokens
from pool.ratelimit.tokens import count_prompt_tokens

__all__ = ["CostedGenerator", "RequestCost", "estimate_cost", "job_cost"]

_DEFAULT_WORDS = 500
_PROMPT_OVERHEAD_CHARS = 1_500  # the prompt templates around a job's own text


@dataclass(frozen=True, slots=True)
class RequestCost:
    """The estimate a request reserves: OpenAI counts prompt tokens plus `max_tokens`.

    Attributes:
        model: the model asked for; each model has its own budget.
        prompt_tokens: estimated prompt tokens (messages and their overhead).
        max_tokens: the completion limit sent with the request.
    """

    model: str
    prompt_tokens: int
    max_tokens: int

    @property
    def tokens(self) -> int:
        """Tokens the API counts against the tokens-per-minute limit when it admits it."""
        return self.prompt_tokens + self.max_tokens


def estimate_cost(model: str, messages: Iterable[tuple[str, str]], max_tokens: int) -> RequestCost:
    """The cost of a chat request of (role, content) `messages` asking for `max_tokens`."""
    return RequestCost(model, count_prompt_tokens(messages, model), max_tokens)


@runtime_checkable
class CostedGenerator(Protocol):
    """A page generator that can say what its next request for a job will cost."""

    def request_cost(self, job: PageJob) -> RequestCost:
        """The model, prompt tokens and max_tokens of the next request for `job`."""
        ...


def job_cost(generator: object, job: PageJob, *, default_model: str) -> RequestCost:
    """The cost of the next request for `job`: the generator's own estimate when it has one.

    Without one (a test double), a rough one: the job's text plus the prompt templates, and the
    job's `max_tokens` or a limit sized from its target length.
    """
    if isinstance(generator, CostedGenerator):
        return generator.request_cost(job)
    model = job.model or default_model
    near = (job.outline or [])[max(0, job.page_index - 3) : job.page_index + 4]
    text = " ".join(t for t in (job.title, job.topic, job.page_title, job.instructions, *near) if t)
    max_tokens = job.max_tokens or page_max_tokens(job.target_words or _DEFAULT_WORDS)
    cost = estimate_cost(model, [("user", text)], max_tokens)
    return RequestCost(model, cost.prompt_tokens + _PROMPT_OVERHEAD_CHARS // 4, max_tokens)
