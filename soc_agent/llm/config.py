"""How to reach the model and how much of it a run may use."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field


class LLMSettings(BaseModel):
    """An OpenAI-compatible endpoint (OpenAI, Azure OpenAI, vLLM, Ollama, llama.cpp server)."""

    base_url: str = Field(default="http://127.0.0.1:8080/v1")
    model: str = Field(default="gemma-3-270m")
    api_key: str = Field(default="not-needed", repr=False, description="from SOC_AGENT_LLM_API_KEY; never logged")
    timeout_s: float = Field(default=60.0, gt=0)
    max_tokens: int = Field(default=320, gt=0, description="sent as max_tokens: some servers ignore the newer name")
    temperature: float = 0.0
    schema_mode: str = Field(default="server", pattern="^(server|prompt)$",
                             description="server: json_schema response format; prompt: parse + one repair retry")
    schema_style: str = Field(default="openai", pattern="^(openai|llama_cpp)$",
                              description="openai: response_format json_schema; llama_cpp: json_object + schema "
                              "(llama-cpp-python's server)")
    fold_system: bool = Field(default=False, description="put the system text in the first user turn "
                              "(chat templates that drop system messages)")
    max_field_chars: int = Field(default=400, description="cap on each untrusted field shown to the model")
    tokens_per_run: int = Field(default=200_000, description="budget for one triage run (process)")
    tokens_per_minute: int = Field(default=60_000)
    requests_per_minute: int = Field(default=120)
    breaker_failures: int = Field(default=3, description="consecutive failures that open the circuit")
    breaker_cooldown_s: float = Field(default=30.0)
    retries: int = Field(default=2, description="retries on 429/5xx/timeouts")
    consult: str = Field(default="needed", pattern="^(needed|always)$",
                         description="needed: ask the model only where the evidence scoring is undetermined or "
                         "disagrees with the learned model; always: every case run (costly, and no better)")

    @classmethod
    def from_env(cls, **overrides: object) -> "LLMSettings":
        """Defaults, then SOC_AGENT_LLM_* variables, then explicit overrides."""
        values: dict[str, object] = {}
        for name in cls.model_fields:
            env = os.environ.get(f"SOC_AGENT_LLM_{name.upper()}")
            if env is not None:
                values[name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
