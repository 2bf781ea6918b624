"""Domain types shared by every part of soc-agent.

Everything vendor-specific is mapped into these shapes at the connector
boundary; the graph, the guard, the store and the runners only ever see them.

Conventions:

* ``Entity`` is keyed by ``(kind, value)``; ``value`` is normalised (lower-case
  for hosts, users, domains, emails and hashes) so one thing has one key.
* Asset criticality follows the tiering convention used by AD/Entra: tier 0 is
  the crown jewel, tier 3 the least critical.
* Confidence is always a float in ``[0, 1]``.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EntityKind(enum.StrEnum):
    """The kinds of thing an alert can be about."""

    USER = "user"
    HOST = "host"
    IP = "ip"
    DOMAIN = "domain"
    URL = "url"
    FILE_HASH = "file_hash"
    PROCESS = "process"
    EMAIL = "email"
    CLOUD_RESOURCE = "cloud_resource"


# Kinds whose values are case-insensitive identifiers.
_CASEFOLDED_KINDS = frozenset(
    {EntityKind.USER, EntityKind.HOST, EntityKind.DOMAIN, EntityKind.EMAIL, EntityKind.FILE_HASH}
)


class Entity(BaseModel):
    """A thing an alert is about, keyed by ``(kind, value)``.

    ``role`` says what part it played in the alert (``src``, ``dst``,
    ``actor``, ``target``, ``sender``...); it is not part of the key.
    """

    model_config = ConfigDict(frozen=True)

    kind: EntityKind
    value: str = Field(min_length=1, max_length=2048)
    role: str | None = None

    @field_validator("value")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    def model_post_init(self, __context: Any) -> None:
        if self.kind in _CASEFOLDED_KINDS and self.value != self.value.lower():
            object.__setattr__(self, "value", self.value.lower())

    @property
    def key(self) -> str:
        """The identity of the entity: ``kind:value``."""
        return f"{self.kind}:{self.value}"


class Severity(enum.StrEnum):
    """Source-assigned severity, normalised to five levels."""

    INFORMATIONAL = "informational"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 (informational) to 4 (critical), for comparisons."""
        return list(Severity).index(self)


class Alert(BaseModel):
    """One normalised alert or raw event, whatever its source.

    ``kind`` separates detections (``alert``) from raw events (``event``,
    e.g. one failed sshd login) that only matter once a threshold detector
    counts them.
    """

    id: str = Field(min_length=1, max_length=256, description="the id the source gave it")
    source: str = Field(description="the format / connector it came from")
    kind: str = Field(default="alert", pattern="^(alert|event)$")
    rule_id: str = Field(min_length=1, max_length=256, description="detection rule or event type")
    title: str = Field(max_length=1024)
    description: str = ""
    severity: Severity = Severity.MEDIUM
    timestamp: datetime
    entities: list[Entity] = Field(default_factory=list)
    attributes: dict[str, Any] = Field(
        default_factory=dict,
        description="extra normalised fields detectors and playbooks may read "
        "(command_line, outcome, geo, bytes_out...); attacker-controlled text",
    )
    raw: dict[str, Any] = Field(default_factory=dict, description="the source payload, kept as evidence")

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    def entities_of(self, kind: EntityKind) -> list[Entity]:
        """The entities of one kind, in the order the source gave them."""
        return [e for e in self.entities if e.kind == kind]


class Verdict(enum.StrEnum):
    """What a case turned out to be."""

    TRUE_POSITIVE = "true_positive"
    BENIGN_POSITIVE = "benign_positive"
    FALSE_POSITIVE = "false_positive"
    UNDETERMINED = "undetermined"


class Tier(enum.StrEnum):
    """How disruptive an action is (DESIGN.md's action tiers)."""

    OBSERVE = "observe"
    CONTAIN_SOFT = "contain_soft"
    CONTAIN_HARD = "contain_hard"
    DESTRUCTIVE = "destructive"

    @property
    def rank(self) -> int:
        """0 (observe) to 3 (destructive), for comparisons."""
        return list(Tier).index(self)


class IdentityRole(enum.StrEnum):
    """The role an identity directory gives a user."""

    CONTRACTOR = "contractor"
    EMPLOYEE = "employee"
    EXECUTIVE = "executive"
    SERVICE = "service"


class Outcome(enum.StrEnum):
    """The guard's answer for one proposed action."""

    ALLOW = "allow"
    NEEDS_APPROVAL = "needs_approval"
    DENY = "deny"


class RunMode(enum.StrEnum):
    """``shadow`` decides and records; only ``enforce`` executes."""

    SHADOW = "shadow"
    ENFORCE = "enforce"


class Evidence(BaseModel):
    """One fact the verdict may rest on, with where it came from.

    ``weight`` is signed: positive pushes towards malicious, negative towards
    benign. ``id`` is stable within a case so a reasoner can cite it.
    """

    id: str
    kind: str = Field(description="rule, intel, asset, identity, threshold, allowlist, history, degraded...")
    source: str = Field(description="which enricher, detector or alert produced it")
    summary: str
    weight: float = 0.0
    data: dict[str, Any] = Field(default_factory=dict)


class Assessment(BaseModel):
    """A verdict with its confidence and the evidence ids it rests on."""

    verdict: Verdict
    confidence: float = Field(ge=0.0, le=1.0)
    score: float = 0.0
    evidence_ids: list[str] = Field(default_factory=list)
    rationale: str = ""
    reasoner: str = "deterministic"
    proposed_action: str | None = Field(default=None, description="the menu action a model chose, if any")
    open_questions: list[str] = Field(default_factory=list)
    flags: list[str] = Field(
        default_factory=list,
        description="facts the guard must weigh: injection_suspected, reasoner_disagreement, llm_fallback",
    )
    llm: dict[str, Any] | None = Field(default=None, description="model, tokens and latency of the call")


class ActionSpec(BaseModel):
    """A response action as declared in the catalog: what it is and what it needs."""

    name: str
    tier: Tier
    capability: str = Field(description="responder capability required, e.g. firewall.block")
    target_kind: EntityKind | None = None
    rollback: str | None = Field(default=None, description="the action that undoes it, if any")
    description: str = ""


class ProposedAction(BaseModel):
    """One concrete action the planner proposes for a case."""

    name: str
    tier: Tier
    capability: str
    target: Entity | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    rollback: str | None = None
    playbook: str = ""

    @property
    def idempotency_key(self) -> str:
        """Same action on the same target with the same params is the same intent."""
        target = self.target.key if self.target else "-"
        params = ",".join(f"{k}={self.params[k]}" for k in sorted(self.params))
        return f"{self.name}|{target}|{params}"


class Decision(BaseModel):
    """The guard's decision for a proposed action, with every reason behind it."""

    outcome: Outcome
    reasons: list[str] = Field(default_factory=list)
    action: ProposedAction | None = None
    mode: RunMode = RunMode.ENFORCE

    @property
    def executes(self) -> bool:
        """True only when the action will really run (allowed, in enforce mode)."""
        return self.outcome is Outcome.ALLOW and self.mode is RunMode.ENFORCE and self.action is not None


def utcnow() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(timezone.utc)


class Case(BaseModel):
    """A case: correlated alerts about the same entities, reasoned about as one.

    This is the view the graph works on; the store keeps the durable record.
    """

    id: str
    title: str = ""
    opened_at: datetime
    updated_at: datetime
    alerts: list[Alert] = Field(default_factory=list, description="distinct (non-duplicate) alerts")
    duplicate_count: int = 0
    entities: list[Entity] = Field(default_factory=list)
    detections: list[str] = Field(default_factory=list, description="rule ids seen, in order")

    @property
    def max_severity(self) -> Severity:
        """The highest severity of any alert in the case."""
        return max((a.severity for a in self.alerts), key=lambda s: s.rank, default=Severity.INFORMATIONAL)


def to_db_time(value: datetime) -> datetime:
    """Aware UTC, the form the store keeps (the store refuses naive times)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
