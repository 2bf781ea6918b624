"""The wire contract: what a client sends to the decision point and what it gets back.

These names are the contract every client relies on (``POST /v1/decide`` and
``soc_agent.pdp.decide``); the contract may grow, never shrink::

    request:  {"agent": {"id", "tenant", "role", "permissions": [..]},
               "tool": {"name", "server", "args": {..}},
               "resource": {"classification": "public|internal|confidential|restricted", "path"},
               "destination": {"host", "url"},
               "session": {"id", "injection_flags": [..]}}
    response: {"decision_id", "decision": "allow|require_approval|deny|remove_permissions|isolate_agent",
               "risk": {"score", "level": "low|medium|high|critical", "contributions": [..]},
               "reasons": [..], "obligations": {"remove_permissions": [..], "ttl_s"}}

The risk score is a float in ``0..1`` (the sum of the fired signals' points,
capped at 1; when the cap bites a ``cap`` contribution with negative points
says by how much, so the contributions always sum to the score).

Every field the client sends is untrusted: the request says what the agent
*claims*; the policy decides what the tool *is* (its kind, the permission it
needs) and the engine adds what the session has done so far.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DecisionName = Literal["allow", "require_approval", "deny", "remove_permissions", "isolate_agent"]
RiskLevel = Literal["low", "medium", "high", "critical"]
Classification = Literal["public", "internal", "confidential", "restricted"]

CLASSIFICATIONS: tuple[str, ...] = ("public", "internal", "confidential", "restricted")
"""Data classifications, least to most sensitive (their index is their rank)."""
DECISIONS: tuple[str, ...] = ("allow", "require_approval", "deny", "remove_permissions", "isolate_agent")
"""Decisions, least to most strict: a later check may only move a decision right."""
LEVELS: tuple[str, ...] = ("low", "medium", "high", "critical")

_MAX_STR = 4096
_MAX_LIST = 256


class _Part(BaseModel):
    # Unknown fields are refused: a typo in a client must not silently weaken the decision.
    model_config = ConfigDict(extra="forbid", str_max_length=_MAX_STR)


class Agent(_Part):
    """The agent making the call, as its runtime describes it."""

    id: str = Field(min_length=1)
    tenant: str = ""
    role: str = ""
    permissions: list[str] = Field(default_factory=list, max_length=_MAX_LIST,
                                   description="permissions the agent was granted, e.g. net:outbound, db:write")


class Tool(_Part):
    """The tool call: which tool, on which server (or namespace), with which arguments."""

    name: str = Field(min_length=1)
    server: str = ""
    args: dict[str, Any] = Field(default_factory=dict)
    kind: str | None = Field(default=None, description="the client's hint; the policy's tool table wins")


class Resource(_Part):
    """What the call touches: its data classification and path, URL or table."""

    classification: Classification | None = None
    path: str = ""
    source: str = Field(default="", description="where retrieved content comes from (e.g. web, email, internal)")


class Destination(_Part):
    """Where the call sends data, for outbound calls."""

    host: str = ""
    url: str = ""


class SessionInfo(_Part):
    """The session the call belongs to and what the agent's runtime already flagged."""

    id: str = Field(min_length=1)
    injection_flags: list[str] = Field(default_factory=list, max_length=_MAX_LIST)


class Delegate(_Part):
    """For a delegation: the agent the call hands work to."""

    id: str = ""
    permissions: list[str] = Field(default_factory=list, max_length=_MAX_LIST)


class DecideRequest(_Part):
    """One tool call to decide (the request half of the wire contract)."""

    agent: Agent
    tool: Tool
    resource: Resource = Field(default_factory=Resource)
    destination: Destination = Field(default_factory=Destination)
    session: SessionInfo
    delegate: Delegate | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0,
                                     description="the agent's own confidence in the call, when it gives one")


class Contribution(BaseModel):
    """One risk signal that fired: its configured weight, the points it added (``value``) and why."""

    model_config = ConfigDict(frozen=True)

    signal: str
    weight: float
    value: float
    why: str


class Risk(BaseModel):
    """The graded risk: a score in 0..1, its level and the signals behind it."""

    score: float
    level: RiskLevel
    contributions: list[Contribution] = Field(default_factory=list)


class Obligations(BaseModel):
    """What the enforcement point must do with the decision."""

    remove_permissions: list[str] = Field(default_factory=list,
                                          description="permissions to drop for the rest of the session")
    ttl_s: int | None = Field(default=None, description="how long the decision (or the approval it asks for) holds")
    log: list[str] = Field(default_factory=list, description="what to log: e.g. monitor (allowed but watched)")
    redact: list[str] = Field(default_factory=list, description="argument keys the caller must redact in its logs")


class Decision(BaseModel):
    """The decision point's answer (the response half of the wire contract)."""

    decision_id: str
    decision: DecisionName
    risk: Risk
    reasons: list[str] = Field(default_factory=list)
    obligations: Obligations = Field(default_factory=Obligations)
    approval_id: str | None = Field(default=None, description="set on require_approval: what a person approves")

    @property
    def allowed(self) -> bool:
        """True only for ``allow``: everything else means the call must not run now."""
        return self.decision == "allow"

    def to_dict(self) -> dict[str, Any]:
        """The wire response (JSON-ready)."""
        return self.model_dump(mode="json")
