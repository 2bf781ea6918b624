"""The guard as a service: a decision point for other AI agents' tool calls.

Every security-sensitive tool call (MCP tool, retrieval, shell, database
write, outbound request, delegation) is decided before it runs: ``allow``,
``require_approval``, ``deny``, ``remove_permissions`` or ``isolate_agent``,
with a graded risk score and its reasons. In process::

    from soc_agent.pdp import decide
    decision = decide({"agent": {...}, "tool": {...}, "session": {...}})

or as a server: ``soc-agent pdp serve`` (``POST /v1/decide``). The policy is
data (``playbooks/pdp-policy.yml``); decisions are audited and replayable
(``soc-agent pdp replay``). Modules: ``models`` (wire contract), ``policy``
(loader), ``session`` (memory), ``approvals``, ``engine`` (the PDP),
``audit`` (records, replay), ``http`` (FastAPI app), ``cli``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from soc_agent.lazy import lazy_attributes

if TYPE_CHECKING:
    from soc_agent.pdp.approvals import ApprovalError, call_hash
    from soc_agent.pdp.engine import PDP, RequestError
    from soc_agent.pdp.models import (
        Contribution,
        DecideRequest,
        Decision,
        Obligations,
        Risk,
    )
    from soc_agent.pdp.policy import (
        SHIPPED_POLICY,
        Policy,
        PolicyError,
        load_policy,
        parse_policy,
    )
    from soc_agent.pdp.session import SessionMemory

# Loaded on first use: the store registers ``soc_agent.pdp.tables`` and must not pull the engine
# (and the injection detector's package) into every process that opens a database.
_LAZY = {
    "ApprovalError": "approvals", "call_hash": "approvals", "PDP": "engine", "RequestError": "engine",
    "Contribution": "models", "DecideRequest": "models", "Decision": "models", "Obligations": "models",
    "Risk": "models", "SHIPPED_POLICY": "policy", "Policy": "policy", "PolicyError": "policy",
    "load_policy": "policy", "parse_policy": "policy", "SessionMemory": "session",
}

__getattr__ = lazy_attributes(__name__, _LAZY)


def create_app(pdp: PDP, tokens: Any = None) -> Any:
    """The HTTP decision point (``POST /v1/decide``, approvals, ``GET /healthz``); see ``soc_agent.pdp.http``."""
    from soc_agent.pdp.http import create_app as _create  # deferred: fastapi only to serve (see _LAZY)

    return _create(pdp, tokens)


_default: PDP | None = None
_default_lock = threading.Lock()


def default_engine() -> PDP:
    """The process-wide engine: the shipped policy, memory only (no store, no audit)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                # deferred: the engine and CEL on first use (see _LAZY)
                from soc_agent.pdp.engine import PDP
                from soc_agent.pdp.policy import SHIPPED_POLICY, load_policy

                _default = PDP(load_policy(SHIPPED_POLICY))
    return _default


def decide(request: dict | DecideRequest, *, engine: PDP | None = None) -> Decision:
    """Decide one tool call (``engine`` defaults to ``default_engine()``)."""
    return (engine or default_engine()).decide(request)


__all__ = [
    "PDP",
    "SHIPPED_POLICY",
    "ApprovalError",
    "Contribution",
    "DecideRequest",
    "Decision",
    "Obligations",
    "Policy",
    "PolicyError",
    "RequestError",
    "Risk",
    "SessionMemory",
    "call_hash",
    "create_app",
    "decide",
    "default_engine",
    "load_policy",
    "parse_policy",
]
