"""The deterministic risk assessment: evidence in, a signed score out.

Per-rule weights and CEL *signals* live in ``playbooks/detectors.yml`` under
``rules:``, so a SOC tunes what a detection is worth without touching code.
A signal is a condition over the same context the playbooks read (``attrs``,
``entities``, ``rules``...) with a signed weight and a one-line summary; a
signal with ``benign: true`` marks sanctioned activity (benign positive)
rather than a misfire (false positive).
"""

from __future__ import annotations

from pathlib import Path

import cel
from pydantic import BaseModel, ConfigDict, Field, field_validator

from soc_agent.config_file import read_yaml
from soc_agent.context import cel_context
from soc_agent.types import Alert, Case, Evidence, Severity, Verdict
from soc_agent.vendor_evidence import EvidenceBook

_SEVERITY_WEIGHT = {
    Severity.INFORMATIONAL: -1.0, Severity.LOW: -0.5, Severity.MEDIUM: 0.0,
    Severity.HIGH: 0.5, Severity.CRITICAL: 1.0,
}
# Kinds of evidence that count as independent corroboration of a malicious verdict. Learned history and the
# learned model never do: they restate what analysts decided before, not a new fact about this case.
_INDEPENDENT_KINDS = frozenset({"rule", "intel", "threshold", "signal", "correlation", "vendor_verdict"})


class Signal(BaseModel):
    """A condition that moves the score when it holds."""

    model_config = ConfigDict(extra="forbid")

    name: str
    when: str
    weight: float
    summary: str
    benign: bool = Field(default=False, description="marks sanctioned activity, not a misfire")

    @field_validator("when")
    @classmethod
    def _compiles(cls, value: str) -> str:
        # Checked here so a bad condition is reported at its line in detectors.yml, not at first use.
        try:
            cel.compile(value)
        except Exception as exc:  # the binding reports syntax errors as ValueError, others vary
            raise ValueError(f"CEL does not compile: {exc}") from None
        return value


class RuleWeight(BaseModel):
    """What one detection rule is worth on its own, and the signals that refine it."""

    model_config = ConfigDict(extra="forbid")

    weight: float = 1.0
    non_malicious: Verdict | None = Field(
        default=None, description="what a non-malicious outcome of this rule is called (benign or false positive)"
    )
    signals: list[Signal] = Field(default_factory=list)


class _UnknownWeight(BaseModel):
    # Validated on its own so a bad value is reported at its line, like the rules.
    unknown_rule_weight: float = 0.0


class RuleBook:
    """Rule weights and compiled signals."""

    def __init__(self, rules: dict[str, RuleWeight], unknown_weight: float = 0.0) -> None:
        self.rules = rules
        self.unknown_weight = unknown_weight
        self._programs = {
            (rule_id, s.name): cel.compile(s.when) for rule_id, rule in rules.items() for s in rule.signals
        }

    @classmethod
    def from_file(cls, path: Path) -> "RuleBook":
        """Load the ``rules`` mapping of ``detectors.yml``; problems are a ``ConfigError`` naming ``file:line``."""
        doc = read_yaml(path)
        data = doc.mapping()
        rules = data.get("rules") or {}
        if not isinstance(rules, dict):
            raise doc.fail(("rules",), "expected a mapping of rule id to weight and signals")
        weights = {name: doc.validate(RuleWeight, ("rules", name), body or {}) for name, body in rules.items()}
        default = doc.validate(_UnknownWeight, data={"unknown_rule_weight": data.get("unknown_rule_weight", 0.0)})
        return cls(weights, default.unknown_rule_weight)

    def evidence(self, case: Case, ctx: dict | cel.Context, vendor: EvidenceBook | None = None) -> list[Evidence]:
        """Rule, signal, vendor and correlation evidence for a case, each item about the alert or rule it is
        about (enrichment comes separately).

        A rule the site configured is worth its configured weight and signals, plus the old per-alert
        severity weights; any other rule is judged on its vendor's evidence (``vendor``), never on zero.
        """
        items: list[Evidence] = []
        seen_rules: list[str] = []
        if any(self.rules.get(a.rule_id) and self.rules[a.rule_id].signals for a in case.alerts):
            ctx = cel_context(ctx)  # converted once for all the signals
        for alert in case.alerts:
            configured = alert.rule_id in self.rules
            if alert.rule_id not in seen_rules:
                seen_rules.append(alert.rule_id)
                items.extend(self._rule_evidence(alert, ctx))
            if configured:
                items.append(Evidence(
                    id=f"severity:{alert.id}", kind="severity", source=alert.source,
                    summary=f"source severity is {alert.severity}", weight=_SEVERITY_WEIGHT[alert.severity],
                    alert_id=alert.id,
                ))
            if vendor is not None:
                items.extend(vendor.evidence(alert, configured_rule=configured))
        if len(seen_rules) > 1:
            items.append(Evidence(
                id="correlation", kind="correlation", source="correlator",
                summary=f"{len(seen_rules)} distinct detections share entities: {', '.join(seen_rules)}",
                weight=min(1.5, 0.5 * (len(seen_rules) - 1)),
            ))
        return items

    def _rule_evidence(self, alert: Alert, ctx: dict | cel.Context) -> list[Evidence]:
        rule = self.rules.get(alert.rule_id)
        kind = "threshold" if alert.source == "detector" else "rule"
        if rule is None:
            return [Evidence(id=f"rule:{alert.rule_id}", kind=kind, source=alert.source,
                             summary=f"detection {alert.rule_id} (not configured here: judged on its vendor's "
                                     f"evidence)", weight=self.unknown_weight, rule_id=alert.rule_id)]
        items = [Evidence(id=f"rule:{alert.rule_id}", kind=kind, source=alert.source,
                          summary=f"detection {alert.rule_id}: {alert.title[:200]}", weight=rule.weight,
                          data={"alert_id": alert.id, "non_malicious": rule.non_malicious, "configured": True},
                          rule_id=alert.rule_id)]
        for signal in rule.signals:
            try:
                hit = self._programs[(alert.rule_id, signal.name)].execute(ctx) is True
            except Exception:  # a signal that cannot be evaluated on this case simply does not fire
                hit = False
            if hit:
                items.append(Evidence(
                    id=f"signal:{signal.name}", kind="benign_context" if signal.benign else "signal",
                    source=f"rule:{alert.rule_id}", summary=signal.summary, weight=signal.weight,
                    rule_id=alert.rule_id,
                ))
        return items


def independent_sources(evidence: list[Evidence]) -> int:
    """How many distinct kinds of evidence push towards malicious."""
    return len({e.kind for e in evidence if e.weight > 0 and e.kind in _INDEPENDENT_KINDS})


def total_score(evidence: list[Evidence]) -> float:
    """The signed sum of evidence weights."""
    return round(sum(e.weight for e in evidence), 3)
