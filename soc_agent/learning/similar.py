"""Similar past dispositions: what this site's analysts decided about alerts like the ones in a case.

Every learned disposition (``TrainingExampleRow``) is indexed in memory by
its rule (within its tenant first) and by each entity it named. For a case,
the most similar are those of the same rule in the same tenant, then the
same rule anywhere, then those sharing an entity, newest first. They go to
the case notes ("similar past cases") whichever reasoner decided, and to the
LLM's prompt as labelled examples, fenced as data like the rest of the case.

They restate what analysts decided before: never independent corroboration.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import select

from soc_agent.learning.tables import TrainingExampleRow
from soc_agent.types import Case


@dataclass(frozen=True)
class SimilarCase:
    """One past disposition and why it is similar."""

    alert_id: str
    label: str
    rule_id: str
    title: str
    seen: datetime
    why: str
    """``same rule in this tenant``, ``same rule``, or ``shares <entity>``."""

    def as_line(self) -> str:
        """One line for the notes and the prompt (the caller neutralises it where it goes)."""
        return (f"{self.label} · rule {self.rule_id} · {self.why} · alert {self.alert_id} "
                f"({self.seen:%Y-%m-%d}): {self.title}")


class SimilarDispositions:
    """An in-memory index of the site's dispositions by rule and by entity."""

    def __init__(self, per_key: int = 20) -> None:
        self.per_key = per_key
        self._by_rule: dict[str, list[SimilarCase]] = defaultdict(list)
        self._tenant_of: dict[str, str] = {}
        self._by_entity: dict[str, list[SimilarCase]] = defaultdict(list)
        self.size = 0

    def add(self, alert_id: str, label: str, seen: datetime, features: dict[str, Any]) -> None:
        """Index one disposition (``features`` as ``alert_features`` wrote them)."""
        rule = str(features.get("rule", ""))
        item = SimilarCase(alert_id=alert_id, label=label, rule_id=rule, title=str(features.get("title", ""))[:160],
                           seen=seen, why="same rule")
        self._tenant_of[alert_id] = str(features.get("tenant", ""))
        self._keep(self._by_rule[rule], item)
        for key in features.get("entity_keys", [])[:20]:
            self._keep(self._by_entity[key], item)
        self.size += 1

    def _keep(self, bucket: list[SimilarCase], item: SimilarCase) -> None:
        # The newest per key are the ones worth showing; older ones fall off.
        bucket.append(item)
        if len(bucket) > 2 * self.per_key:
            bucket.sort(key=lambda s: s.seen, reverse=True)
            del bucket[self.per_key:]

    @classmethod
    def load(cls, session, limit: int = 200_000) -> "SimilarDispositions":
        """Every stored disposition, newest ``limit`` at most."""
        index = cls()
        rows: Iterable[TrainingExampleRow] = session.exec(
            select(TrainingExampleRow).order_by(TrainingExampleRow.ts.desc()).limit(limit))
        for row in rows:
            index.add(row.alert_id, row.label, row.ts, json.loads(row.features))
        return index

    def for_case(self, case: Case, limit: int = 5) -> list[SimilarCase]:
        """The most similar past dispositions for ``case``; never one of the case's own alerts."""
        own = {a.id for a in case.alerts}
        chosen: dict[str, SimilarCase] = {}

        def take(items: Iterable[SimilarCase], why: str) -> None:
            for item in sorted(items, key=lambda s: s.seen, reverse=True):
                if len(chosen) >= limit:
                    return
                if item.alert_id not in own and item.alert_id not in chosen:
                    chosen[item.alert_id] = SimilarCase(**{**item.__dict__, "why": why})

        for alert in reversed(case.alerts):
            tenant = alert.tenant or ""
            same_rule = self._by_rule.get(alert.rule_id, [])
            take((s for s in same_rule if self._tenant_of.get(s.alert_id) == tenant), "same rule in this tenant")
            take(same_rule, "same rule")
        for entity in case.entities:
            take(self._by_entity.get(entity.key, []), f"shares {entity.key}")
        return list(chosen.values())
