"""One chat call to an OpenAI-compatible endpoint, with retries only where a retry can help.

Retried by the connectors' one retry policy (``connectors.http.retrying``:
its predicate, backoff and Retry-After handling, and its module-level
``sleep`` that tests make instant): 429, 5xx, timeouts and connection
errors. Not retried: other 4xx. Errors leave this module as ``LLMError``
with a message that never contains the API key.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import openai

from connectors.http import TransientFailure, retryable_status, retrying
from soc_agent.llm.config import LLMSettings

MAX_RETRY_AFTER_S = 30.0
"""Cap on the endpoint's Retry-After: one triage call waits at most this long per retry."""


class LLMError(RuntimeError):
    """The endpoint could not give an answer."""


@dataclass(frozen=True)
class ChatResult:
    """The model's text and what it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    model: str


class ChatClient:
    """Calls ``/chat/completions`` with ``max_tokens`` and, when asked, a server-side JSON schema."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._client = openai.OpenAI(base_url=settings.base_url, api_key=settings.api_key,
                                     timeout=settings.timeout_s, max_retries=0)

    def chat(self, messages: list[dict[str, str]], schema: dict[str, Any] | None) -> ChatResult:
        """One completion; ``schema`` is enforced by the server when given."""
        kwargs: dict[str, Any] = {
            "model": self.settings.model, "messages": messages, "temperature": self.settings.temperature,
            # max_tokens, not max_completion_tokens: llama.cpp's server ignores the newer name.
            "max_tokens": self.settings.max_tokens,
        }
        if schema is not None and self.settings.schema_style == "llama_cpp":
            kwargs["response_format"] = {"type": "json_object", "schema": schema}
        elif schema is not None:
            kwargs["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "triage_answer", "schema": schema, "strict": True}}
        started = time.perf_counter()
        try:
            for attempt in retrying(self.settings.retries + 1, MAX_RETRY_AFTER_S):
                with attempt:
                    response = self._create(kwargs)
        except TransientFailure as exc:
            raise _llm_error(exc.__cause__) from None
        except openai.APIError as exc:
            raise _llm_error(exc) from None
        if not hasattr(response, "choices"):
            # e.g. a proxy's HTML error page served with status 200
            raise LLMError("endpoint answered something that is not a chat completion")
        choice = response.choices[0] if response.choices else None
        text = (choice.message.content or "") if choice else ""
        usage = response.usage
        return ChatResult(
            text=text, prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            latency_ms=round((time.perf_counter() - started) * 1000, 1), model=response.model or self.settings.model,
        )

    def _create(self, kwargs: dict[str, Any]) -> Any:
        """One attempt; the SDK's failures a fresh attempt may fix become ``TransientFailure`` (chained)."""
        try:
            return self._client.chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            if retryable_status(exc.status_code):
                raise TransientFailure(exc.response) from exc
            raise
        except openai.APIConnectionError as exc:  # APITimeoutError included
            raise TransientFailure() from exc


def _llm_error(exc: BaseException | None) -> LLMError:
    # Status and exception type only: the SDK's messages may echo the request.
    if isinstance(exc, openai.APIStatusError):
        return LLMError(f"endpoint answered HTTP {exc.status_code}")
    return LLMError(f"endpoint unreachable: {type(exc).__name__}")


def parse_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text`` (models sometimes wrap it in prose or fences)."""
    start = text.find("{")
    while start != -1:
        depth = 0
        for index in range(start, len(text)):
            if text[index] == "{":
                depth += 1
            elif text[index] == "}":
                depth -= 1
                if depth == 0:
                    try:
                        value = json.loads(text[start:index + 1])
                    except json.JSONDecodeError:
                        break
                    if isinstance(value, dict):
                        return value
                    break
        start = text.find("{", start + 1)
    raise ValueError("no JSON object in the answer")
