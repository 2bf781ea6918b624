"""Budgets and the circuit breaker: the model is a guest, not a dependency.

A run has a token budget; a sliding minute has token and request budgets;
after N consecutive failures the breaker opens and the deterministic
reasoner decides until the cool-down passes (then one trial call).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from soc_agent.llm.config import LLMSettings


@dataclass
class Budget:
    """Token and request accounting for one process."""

    settings: LLMSettings
    clock: "callable" = time.monotonic
    tokens_used: int = 0
    _window: deque = field(default_factory=deque)

    def refusal(self, estimate: int) -> str | None:
        """Why a call of about ``estimate`` tokens may not be made now, or None."""
        now = self.clock()
        while self._window and now - self._window[0][0] > 60:
            self._window.popleft()
        if self.tokens_used + estimate > self.settings.tokens_per_run:
            return f"run token budget spent ({self.tokens_used}/{self.settings.tokens_per_run})"
        if len(self._window) >= self.settings.requests_per_minute:
            return f"request budget spent ({self.settings.requests_per_minute}/min)"
        if sum(t for _, t in self._window) + estimate > self.settings.tokens_per_minute:
            return f"token budget spent ({self.settings.tokens_per_minute}/min)"
        return None

    def spend(self, tokens: int) -> None:
        """Record a call's tokens."""
        self.tokens_used += tokens
        self._window.append((self.clock(), tokens))


@dataclass
class CircuitBreaker:
    """closed → open after consecutive failures → half-open after cool-down → closed on success."""

    failures_to_open: int
    cooldown_s: float
    clock: "callable" = time.monotonic
    failures: int = 0
    opened_at: float | None = None

    def allows(self) -> bool:
        """May a call be tried now?"""
        if self.opened_at is None:
            return True
        return self.clock() - self.opened_at >= self.cooldown_s  # half-open: one trial

    @property
    def state(self) -> str:
        """closed, open or half_open."""
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.allows() else "open"

    def success(self) -> None:
        self.failures, self.opened_at = 0, None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.failures_to_open:
            self.opened_at = self.clock()
