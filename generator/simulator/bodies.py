"""JSON bodies shaped like OpenAI's: completions, stream chunks, models and errors."""

from __future__ import annotations

import time
from typing import Any

__all__ = [
    "chunk_body",
    "completion_body",
    "error_body",
    "mask_key",
    "model_body",
    "rate_limit_message",
]

#: Bodies of the faults that have a fixed message, by kind: (status, type, code, param, message).
ERRORS: dict[str, tuple[int, str, str | None, str | None, str]] = {
    "bad_key": (
        401,
        "invalid_request_error",
        "invalid_api_key",
        None,
        "Incorrect API key provided: {key}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    "no_key": (
        401,
        "invalid_request_error",
        None,
        None,
        "You didn't provide an API key. You need to provide your API key in an Authorization "
        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    ),
    "permission_denied": (
        403,
        "invalid_request_error",
        "permission_denied",
        None,
        "Project does not have access to model `{model}`.",
    ),
    "model_not_found": (
        404,
        "invalid_request_error",
        "model_not_found",
        None,
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    "insufficient_quota": (
        429,
        "insufficient_quota",
        "insufficient_quota",
        None,
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, read the docs: "
        "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    ),
    "context_length": (
        400,
        "invalid_request_error",
        "context_length_exceeded",
        "messages",
        "This model's maximum context length is {window} tokens. However, your messages "
        "resulted in {total} tokens ({prompt} in the messages, {completion} in the completion). "
        "Please reduce the length of the messages or completion.",
    ),
    "content_policy": (
        400,
        "invalid_request_error",
        "content_policy_violation",
        None,
        "Your request was rejected as a result of our safety system.",
    ),
    "invalid_prompt": (
        400,
        "invalid_request_error",
        "invalid_prompt",
        None,
        "Invalid prompt: your prompt was flagged as potentially violating our usage policy.",
    ),
    "server_error": (
        500,
        "server_error",
        None,
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    "overloaded": (
        503,
        "server_error",
        None,
        None,
        "The engine is currently overloaded, please try again later.",
    ),
}

#: A 502 from a proxy in front of the API is HTML, not JSON.
BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)

REFUSAL_TEXT = "I'm sorry, but I can't help with that request."


def error_body(
    message: str, *, type_: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    """An OpenAI error body: `{"error": {"message", "type", "param", "code"}}`."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def rate_limit_message(
    *, model: str, kind: str, limit: int, requested: int, wait: str | None, too_large: bool
) -> str:
    """The message of a 429 `rate_limit_exceeded`, like OpenAI's ("... try again in 1.5s.").

    Args:
        wait: the "try again in" duration to print, or None to leave it out.
        too_large: the request is over the limit itself and can never pass.
    """
    unit = "requests per min (RPM)" if kind == "requests" else "tokens per min (TPM)"
    if too_large:
        return (
            f"Request too large for {model} in organization org-simulator on {unit}: "
            f"Limit {limit}, Requested {requested}. The input or output tokens must be reduced "
            "in order to run successfully."
        )
    again = f" Please try again in {wait}." if wait is not None else ""
    return (
        f"Rate limit reached for {model} in organization org-simulator on {unit}: "
        f"Limit {limit}, Requested {requested}.{again} Visit "
        "https://platform.openai.com/account/rate-limits to learn more."
    )


def mask_key(key: str) -> str:
    """A key shown the way OpenAI shows a wrong one: "sk-abc***************wxyz"."""
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


def completion_body(
    *,
    completion_id: str,
    model: str,
    content: str | None,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    refusal: str | None = None,
) -> dict[str, Any]:
    """A `chat.completion` object with one choice."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_simulator",
    }


def chunk_body(
    *,
    completion_id: str,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """A `chat.completion.chunk`: a delta, or (delta None) the closing usage-only chunk."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": (
            []
            if delta is None
            else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
        ),
    }
    if usage is not None:
        body["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        }
    return body


def model_body(model: str) -> dict[str, Any]:
    """A `model` object."""
    return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "simulator"}
