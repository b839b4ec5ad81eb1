"""Page generation with the OpenAI API (or any compatible server), and an OpenAI simulator.

`OpenAIPageGenerator` implements the pool's `PageGenerator` protocol; `classify_error` sorts
the SDK's exceptions into the pool's error classes; `generator.simulator` serves a fake
OpenAI-compatible API for tests, demos and benchmarks.
"""

from generator.config import GeneratorSettings
from generator.errors import classify_error, redact
from generator.openai_generator import OpenAIPageGenerator
from generator.prompts import (
    DEFAULT_PROMPTS,
    PLACEHOLDERS,
    PromptTemplates,
    RenderedPrompt,
    build_prompt,
    load_prompts,
)
from generator.ratelimits import parse_duration_s, rate_limit_headers, retry_after_s

__all__ = [
    "DEFAULT_PROMPTS",
    "PLACEHOLDERS",
    "GeneratorSettings",
    "OpenAIPageGenerator",
    "PromptTemplates",
    "RenderedPrompt",
    "build_prompt",
    "classify_error",
    "load_prompts",
    "parse_duration_s",
    "rate_limit_headers",
    "redact",
    "retry_after_s",
]
