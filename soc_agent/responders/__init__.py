"""Responders execute actions; the executor makes every call idempotent and reversible.

``connectors.base.Responder`` is the seam vendor connectors implement; ``LocalResponder``
changes state in the store (blocklist with TTLs, disabled accounts, isolated
hosts, revoked sessions, tickets, notifications) so the demo and the tests
can see real effects.
"""

from soc_agent.responders.executor import ActionExecutor
from soc_agent.responders.local import LocalResponder

__all__ = ["ActionExecutor", "LocalResponder"]
