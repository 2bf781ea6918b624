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
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator


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


class VendorVerdict(enum.StrEnum):
    """What the alert's source itself concluded, normalised across vendors."""

    MALICIOUS = "malicious"
    SUSPICIOUS = "suspicious"
    BENIGN = "benign"
    FALSE_POSITIVE = "false_positive"


class VendorEvidence(BaseModel):
    """What the vendor already knows about an alert, in typed, normalised fields.

    Every connector fills what its vendor states; the scorer weighs these
    generically (``playbooks/evidence.yml``), so a rule the product has never
    seen starts from its vendor's evidence, not from zero. ``None`` means the
    vendor did not say: never read as benign.
    """

    severity: Severity | None = Field(default=None, description="the severity the vendor stated; None when unknown")
    risk_score: float | None = Field(default=None, ge=0, le=100, description="the vendor's numeric risk, 0-100")
    confidence: float | None = Field(default=None, ge=0, le=1, description="the vendor's confidence in its finding")
    verdict: VendorVerdict | None = Field(default=None, description="the vendor's own determination, normalised")
    verdict_text: str | None = Field(default=None, max_length=256, description="the determination as the vendor said it")
    tactics: list[str] = Field(default_factory=list, description="MITRE ATT&CK tactics, lower-case names")
    techniques: list[str] = Field(default_factory=list, description="MITRE ATT&CK technique ids (T1059.001)")
    rule_level: Severity | None = Field(default=None, description="the level the rule itself declares")
    false_positive_notes: list[str] = Field(default_factory=list, description="the rule's documented false positives")
    low_fidelity: bool = Field(default=False, description="a hunting or building-block rule, not a detection")
    detection_source: str | None = Field(default=None, max_length=128, description="which engine raised it")


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
    tenant: str | None = Field(default=None, max_length=256,
                               description="the tenant (organisation) it belongs to; dedupe and correlation "
                                           "never cross tenants")
    vendor: VendorEvidence = Field(default_factory=VendorEvidence)

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
    DISMISS = "dismiss"
    """Close as benign or false positive, suppress: a decision that a case needs no person."""
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
    alert_id: str | None = Field(default=None, description="the alert this is about; None with ``entity`` unset "
                                                           "means the whole case")
    entity: str | None = Field(default=None, description="the entity key this is about (enrichment)")
    rule_id: str | None = Field(default=None, description="the detection rule this is about (every alert of it)")

    def applies_to(self, alert: "Alert") -> bool:
        """Whether this item is about ``alert``: its own, its rule's, one of its entities', or the whole case's."""
        if self.alert_id is not None:
            return self.alert_id == alert.id
        if self.rule_id is not None:
            return self.rule_id == alert.rule_id
        if self.entity is not None:
            return any(e.key == self.entity for e in alert.entities)
        return True


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
    alert_verdicts: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="each alert's own verdict, confidence, score and rule (judged per alert, decided per case)",
    )


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


@dataclass(frozen=True)
class Reason:
    """One reason behind a guard decision: the outcome it argues for and why.

    ``str(reason)`` is the line the notes, the audit chain, the store and JSON
    output carry: ``"deny: text"`` or ``"needs_approval: text"``; a reason that
    does not make the decision stricter (``allow``: the action's tier, a
    capped TTL, an approval, shadow mode, a stale alert) is its text alone.
    :meth:`parse` reads such a line back, so ``str(Reason.parse(line)) == line``.
    """

    outcome: Outcome
    """The outcome this reason argues for; ``allow`` for context that tightens nothing."""
    text: str
    """Why, in the guard's words (no outcome prefix)."""

    def __str__(self) -> str:
        return self.text if self.outcome is Outcome.ALLOW else f"{self.outcome}: {self.text}"

    @classmethod
    def parse(cls, line: str) -> "Reason":
        """The reason a stored line stands for (the store and audit keep ``str(reason)``)."""
        for outcome in (Outcome.DENY, Outcome.NEEDS_APPROVAL):
            prefix = f"{outcome}: "
            if line.startswith(prefix):
                return cls(outcome, line[len(prefix):])
        return cls(Outcome.ALLOW, line)


def _as_reason(value: Any) -> Any:
    return Reason.parse(value) if isinstance(value, str) else value


GuardReason = Annotated[Reason, BeforeValidator(_as_reason), PlainSerializer(str, return_type=str)]
"""A ``Reason`` in a pydantic model: read from its line, written as its line (dumps, JSON and checkpoints)."""


class Decision(BaseModel):
    """The guard's decision for a proposed action, with every reason behind it."""

    outcome: Outcome
    reasons: list[GuardReason] = Field(default_factory=list)
    """Every reason that contributed, in the order the guard weighed them."""
    action: ProposedAction | None = None
    mode: RunMode = RunMode.ENFORCE

    @property
    def executes(self) -> bool:
        """True only when the action will really run (allowed, in enforce mode)."""
        return self.outcome is Outcome.ALLOW and self.mode is RunMode.ENFORCE and self.action is not None

    @property
    def reason_lines(self) -> list[str]:
        """The reasons as the notes, the store and the audit chain write them (``str`` of each)."""
        return [str(r) for r in self.reasons]

    def reasons_for(self, outcome: Outcome) -> list[Reason]:
        """The reasons that argue for ``outcome`` (why it is denied, why it needs a person)."""
        return [r for r in self.reasons if r.outcome is outcome]


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
