"""The decision point's policy: ordered rules and weighted risk signals in YAML, CEL conditions.

The policy is data (``playbooks/pdp-policy.yml`` is the shipped example)::

    levels:       risk score thresholds (0..1) where medium, high, critical start
    enforcement:  risk level -> decision (low: allow, medium: require_approval,
                  high: remove_permissions, critical: isolate_agent)
    tools:        what each tool *is* (kind: shell, code_exec, db_write, db_read, http,
                  delegation, retrieval, file_read, file_write, other) and which
                  permissions it needs; the first matching glob wins
    entitlements: classification -> roles entitled to read it
    rules:        ordered hard rules: the first that matches decides (deny, isolate, ...)
    signals:      weighted risk signals: the fired ones are summed (capped at 1) into the score
    redact:       argument keys and text patterns kept out of the audit

Conditions are CEL (the guard's engine, ``import cel``), compiled once at
load; ``kinds`` on a rule or signal is a pre-filter indexed at load, so a call
only evaluates the conditions written for its kind of tool. The variables a
condition may read are listed in ``soc_agent.pdp.engine`` (``_facts``).

Every load error names ``file:line``: YAML syntax errors by their mark, schema
errors and CEL compile errors by the line of the offending key.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import cel
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from soc_agent.config_file import ConfigError, parse_yaml
from soc_agent.pdp.models import (
    CLASSIFICATIONS,
    DECISIONS,
    LEVELS,
    DecisionName,
    RiskLevel,
)

TOOL_KINDS: tuple[str, ...] = ("shell", "code_exec", "db_write", "db_read", "http", "delegation", "retrieval",
                               "file_read", "file_write", "other")
"""What a tool can be; the policy's ``tools`` table maps names to these."""


class PolicyError(ConfigError):
    """A policy that cannot be loaded; the message starts with ``file:line``."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_cel(source: str | None) -> str | None:
    if source is not None:
        try:
            cel.compile(source)
        except Exception as exc:  # noqa: BLE001 - the CEL binding raises its own error types
            raise ValueError(f"CEL does not compile: {exc}") from None
    return source


def _check_kinds(kinds: list[str]) -> list[str]:
    unknown = sorted(set(kinds) - set(TOOL_KINDS))
    if unknown:
        raise ValueError(f"unknown tool kind(s) {unknown}: choose from {', '.join(TOOL_KINDS)}")
    return kinds


class ToolSpec(_Strict):
    """What a tool is: a glob over ``name`` or ``server/name``, its kind and the permissions it needs."""

    match: str = Field(min_length=1)
    kind: str = "other"
    requires: list[str] = Field(default_factory=list, description="permissions the agent must hold for the call")

    _kind = field_validator("kind")(classmethod(lambda cls, v: _check_kinds([v])[0]))


class Rule(_Strict):
    """An ordered hard rule: when its condition holds, it decides (the first match wins)."""

    name: str = Field(min_length=1)
    kinds: list[str] = Field(default_factory=list, description="only calls of these tool kinds (empty: all)")
    when: str | None = Field(default=None, description="CEL condition (absent: always, within ``kinds``)")
    decision: DecisionName
    reason: str = ""
    remove_permissions: list[str] = Field(default_factory=list,
                                          description="for remove_permissions: the permissions to drop")
    line: int = Field(default=0, exclude=True, description="where the rule starts in its file")

    _when = field_validator("when")(classmethod(lambda cls, v: _check_cel(v)))
    _kinds = field_validator("kinds")(classmethod(lambda cls, v: _check_kinds(v)))

    @model_validator(mode="after")
    def _removes_something(self) -> Rule:
        if self.decision == "remove_permissions" and not self.remove_permissions:
            raise ValueError("a remove_permissions rule must name the permissions it removes")
        return self


class Signal(_Strict):
    """A weighted risk signal: when its condition holds it adds ``weight`` points to the score."""

    name: str = Field(min_length=1)
    kinds: list[str] = Field(default_factory=list)
    when: str
    weight: float = Field(gt=0.0, le=1.0)
    why: str = ""
    removes: list[str] = Field(default_factory=list,
                               description="permissions a high-risk outcome drops when this signal fired")
    line: int = Field(default=0, exclude=True)

    _when = field_validator("when")(classmethod(lambda cls, v: _check_cel(v)))
    _kinds = field_validator("kinds")(classmethod(lambda cls, v: _check_kinds(v)))


class Levels(_Strict):
    """Where each risk level starts on the 0..1 score."""

    medium: float = Field(default=0.3, gt=0.0, le=1.0)
    high: float = Field(default=0.6, gt=0.0, le=1.0)
    critical: float = Field(default=0.85, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if not self.medium < self.high < self.critical:
            raise ValueError("levels must rise: medium < high < critical")
        return self

    def of(self, score: float) -> RiskLevel:
        """The level of ``score``."""
        if score >= self.critical:
            return "critical"
        if score >= self.high:
            return "high"
        if score >= self.medium:
            return "medium"
        return "low"


class Enforcement(_Strict):
    """Risk level -> decision; an unset level keeps the DESIGN default."""

    low: DecisionName = "allow"
    medium: DecisionName = "require_approval"
    high: DecisionName = "remove_permissions"
    critical: DecisionName = "isolate_agent"
    high_without_permissions: DecisionName = Field(
        default="deny", description="a remove_permissions level whose fired signals name no permission")


class SessionLimits(_Strict):
    """How much the decision point remembers."""

    max_sessions: int = Field(default=100_000, gt=0)
    ttl_s: int = Field(default=3600, gt=0, description="a session idle this long is forgotten")
    max_calls: int = Field(default=16, gt=0, le=256, description="preceding calls kept per session")
    max_destinations: int = Field(default=64, gt=0, le=4096, description="destinations kept per session")
    max_known_hosts: int = Field(default=100_000, gt=0, description="the organisation's destination history")


class Redaction(_Strict):
    """What never reaches the audit: values under these keys (substring, any case) and text matching these."""

    keys: list[str] = Field(default_factory=lambda: ["password", "passwd", "secret", "token", "authorization",
                                                     "api_key", "apikey", "cookie", "private_key"])
    patterns: list[str] = Field(default_factory=list)

    @field_validator("patterns")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {pattern!r} does not compile: {exc}") from None
        return patterns


class Policy(_Strict):
    """The whole decision-point policy, validated; conditions compiled by ``CompiledPolicy``."""

    version: int = 1
    levels: Levels = Field(default_factory=Levels)
    enforcement: Enforcement = Field(default_factory=Enforcement)
    approval_ttl_s: int = Field(default=900, gt=0, description="how long an approval (pending or granted) lives")
    remove_ttl_s: int | None = Field(default=None, description="ttl_s obligation of a remove_permissions decision")
    session: SessionLimits = Field(default_factory=SessionLimits)
    tools: list[ToolSpec] = Field(default_factory=list)
    entitlements: dict[str, list[str]] = Field(default_factory=dict,
                                               description="classification -> roles entitled to read it")
    known_destinations: list[str] = Field(default_factory=list,
                                          description="hosts the organisation uses (besides those seen allowed)")
    untrusted_sources: list[str] = Field(default_factory=lambda: ["web", "email", "external", "upload"])
    agents: dict[str, list[str]] = Field(default_factory=dict,
                                         description="known agents' permissions (delegation targets)")
    rules: list[Rule] = Field(default_factory=list)
    signals: list[Signal] = Field(default_factory=list)
    redact: Redaction = Field(default_factory=Redaction)
    source: str = Field(default="", exclude=True, description="the file it came from")

    @field_validator("entitlements")
    @classmethod
    def _classes(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(CLASSIFICATIONS))
        if unknown:
            raise ValueError(f"unknown classification(s) {unknown}: choose from {', '.join(CLASSIFICATIONS)}")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        for what, items in (("rule", self.rules), ("signal", self.signals)):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise ValueError(f"duplicate {what} name {item.name!r}")
                seen.add(item.name)
        return self

    def tool(self, name: str, server: str) -> ToolSpec | None:
        """The first tool spec whose glob matches ``server/name`` or ``name``."""
        full = f"{server}/{name}" if server else name
        for spec in self.tools:
            if fnmatch.fnmatchcase(full, spec.match) or fnmatch.fnmatchcase(name, spec.match):
                return spec
        return None


assert DECISIONS[0] == "allow" and LEVELS[0] == "low"  # the orders the engine relies on


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate policy text; errors are ``PolicyError("source:line: what")``."""
    doc = parse_yaml(text, source, PolicyError)
    if doc.data is not None and not isinstance(doc.data, dict):
        raise PolicyError.at(source, 1, "a policy is a mapping (rules:, signals:, ...)")
    policy = doc.validate(Policy, data=doc.data or {})
    for index, rule in enumerate(policy.rules):
        rule.line = doc.line_of(("rules", index))
    for index, signal in enumerate(policy.signals):
        signal.line = doc.line_of(("signals", index))
    policy.source = source
    return policy


def load_policy(path: str | Path) -> Policy:
    """Load and validate a policy file; raises ``PolicyError`` naming ``file:line``."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError.at(path, 0, f"cannot read policy: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_policy(text, str(path))


SHIPPED_POLICY = Path(__file__).resolve().parents[2] / "playbooks" / "pdp-policy.yml"
"""The example policy shipped with the product (the default engine's policy)."""
