"""The CEL context playbooks, signals and policy rules read about a case.

Built in one place so every condition sees the same names (documented in
``playbooks/README.md``). Alert attributes are attacker-controlled: CEL
evaluates them as data, never as code.
"""

from __future__ import annotations

from typing import Any

import cel

from soc_agent.enrich import LocalKnowledge
from soc_agent.types import Assessment, Case, EntityKind, Evidence, Verdict


def case_context(case: Case, evidence: list[Evidence], knowledge: LocalKnowledge,
                 assessment: Assessment | None = None) -> dict[str, Any]:
    """The variables a condition may read about ``case``."""
    entities: dict[str, list[str]] = {str(kind): [] for kind in EntityKind}
    for entity in case.entities:
        values = entities[str(entity.kind)]
        if entity.value not in values:
            values.append(entity.value)
    attrs: dict[str, Any] = {}
    for alert in case.alerts:
        for key, value in alert.attributes.items():
            attrs.setdefault(key, value)
    tiers = [asset.criticality_tier for e in case.entities if (asset := knowledge.asset(e)) is not None]
    identities = [i for e in case.entities if (i := knowledge.identity(e)) is not None]
    kinds = sorted({e.kind for e in evidence})
    return {
        "rules": list(dict.fromkeys(a.rule_id for a in case.alerts)),
        "severity": str(case.max_severity),
        "severity_rank": case.max_severity.rank,
        "entities": entities,
        "attrs": attrs,
        "evidence_kinds": kinds,
        "intel_hit": "intel" in kinds,
        "allowlisted": "allowlist" in kinds,
        "alert_count": len(case.alerts),
        "verdict": str(assessment.verdict if assessment else Verdict.UNDETERMINED),
        "confidence": float(assessment.confidence if assessment else 0.0),
        "asset_min_tier": min(tiers, default=3),
        "identity_roles": sorted({str(i.role) for i in identities}),
        "privileged": any(i.privileged for i in identities),
    }


def cel_context(variables: dict[str, Any] | cel.Context) -> cel.Context:
    """``variables`` converted for CEL once.

    A program executed against a plain dict converts the whole dict on every
    call (tens of microseconds for a case); a case is judged by dozens of
    conditions, so each caller converts once and passes the Context around.
    """
    return variables if isinstance(variables, cel.Context) else cel.Context(variables)
