"""Priors from analysts' dispositions, per detection rule and per entity, as case evidence.

Each disposition adds one to the rule's (and each of its entities') count of
true, benign or false positives, decayed exponentially: an alert one
``half_life`` older than the newest counts half. A prior speaks only once
its decayed count reaches the minimum sample; then its smoothed
true-positive rate becomes a signed evidence weight (kind ``history``):

    p = (tp + a * p0) / (n + a)                     # Beta smoothing towards p0
    lo = logit(p) - logit(p0)                       # log-odds against the base rate
    weight = sign(lo) * min(cap, strength * max(0, |lo| - log(dead_zone_odds)))

so a rule whose alerts analysts always closed as false positives pulls the
score down, one that was nearly always real pushes it up, and a rule whose
history is mixed adds nothing: its configured weight and signals already
price that in, and a mixed base rate would drag down exactly the real
incidents the signals pick out (measured: with no dead zone, the contractor
``admin_tool_execution`` true positives of the held-out split went
undetermined). The reasoner reads these like any evidence
(an LLM reasoner gets them in its evidence list the same way), and the
guard never counts ``history`` as independent corroboration, so priors
alone never make a containment autonomous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlmodel import select

from soc_agent.learning.tables import PriorRow
from soc_agent.types import Alert, Case, Evidence, to_db_time


@dataclass(frozen=True)
class PriorConfig:
    """How priors are counted and turned into evidence."""

    half_life: timedelta = timedelta(days=30)
    rule_min_sample: float = 10.0
    """Decayed alerts of a rule needed before its prior counts."""
    entity_min_sample: float = 5.0
    smoothing: float = 2.0
    """Pseudo-count ``a`` of the Beta prior."""
    base_rate: float = 0.5
    """``p0``: the rate assumed with no history; 0.5 makes an unseen rule neutral."""
    rule_strength: float = 0.8
    rule_cap: float = 2.5
    entity_strength: float = 0.5
    entity_cap: float = 1.5
    dead_zone_odds: float = 3.0
    """History speaks only past these odds either way: a rule right 1 time in 4 is already
    priced into its configured weight and signals; one that is never right is not."""
    max_entities: int = 3
    """At most this many entity priors per case (the strongest), so a case with many entities is not swamped."""


@dataclass
class Counts:
    """Decayed disposition counts as of ``as_of``."""

    tp: float = 0.0
    bp: float = 0.0
    fp: float = 0.0
    n_raw: int = 0
    as_of: datetime | None = None

    @property
    def n(self) -> float:
        """The decayed sample size."""
        return self.tp + self.bp + self.fp

    def add(self, label: str, at: datetime, half_life: timedelta) -> None:
        """Fold in one disposition made at ``at``."""
        at = to_db_time(at)
        if self.as_of is None:
            self.as_of = at
        if at > self.as_of:
            self.decay_to(at, half_life)
            weight = 1.0
        else:
            weight = 0.5 ** ((self.as_of - at) / half_life)
        if label == "true_positive":
            self.tp += weight
        elif label == "benign_positive":
            self.bp += weight
        else:
            self.fp += weight
        self.n_raw += 1

    def decay_to(self, when: datetime, half_life: timedelta) -> None:
        """Age the counts to ``when`` (never younger)."""
        when = to_db_time(when)
        if self.as_of is None or when <= self.as_of:
            return
        factor = 0.5 ** ((when - self.as_of) / half_life)
        self.tp, self.bp, self.fp = self.tp * factor, self.bp * factor, self.fp * factor
        self.as_of = when


@dataclass
class Priors:
    """Rule and entity priors in memory; saved to and loaded from the store."""

    config: PriorConfig = field(default_factory=PriorConfig)
    rules: dict[str, Counts] = field(default_factory=dict)
    entities: dict[str, Counts] = field(default_factory=dict)

    def observe(self, alert: Alert, label: str) -> None:
        """Count one analyst disposition of ``alert``."""
        self.rules.setdefault(alert.rule_id, Counts()).add(label, alert.timestamp, self.config.half_life)
        for key in dict.fromkeys(e.key for e in alert.entities):
            self.entities.setdefault(key, Counts()).add(label, alert.timestamp, self.config.half_life)

    def weight(self, counts: Counts | None, entity: bool = False) -> float:
        """The signed evidence weight of one prior; 0 below the minimum sample."""
        cfg = self.config
        if counts is None or counts.n < (cfg.entity_min_sample if entity else cfg.rule_min_sample):
            return 0.0
        p = (counts.tp + cfg.smoothing * cfg.base_rate) / (counts.n + cfg.smoothing)
        p = min(max(p, 1e-3), 1 - 1e-3)
        strength, cap = (cfg.entity_strength, cfg.entity_cap) if entity else (cfg.rule_strength, cfg.rule_cap)
        log_odds = math.log(p / (1 - p)) - math.log(cfg.base_rate / (1 - cfg.base_rate))
        excess = max(0.0, abs(log_odds) - math.log(cfg.dead_zone_odds))
        return round(math.copysign(min(cap, strength * excess), log_odds), 3) if excess else 0.0

    # ---- persistence --------------------------------------------------

    def save(self, session) -> None:
        """Upsert every prior into the store's session (the caller commits)."""
        for scope, table in (("rule", self.rules), ("entity", self.entities)):
            for key, c in table.items():
                row = session.get(PriorRow, (scope, key))
                if row is None:
                    row = PriorRow(scope=scope, key=key, as_of=c.as_of or datetime.now(timezone.utc))
                    session.add(row)
                row.tp, row.bp, row.fp, row.n_raw = c.tp, c.bp, c.fp, c.n_raw
                row.as_of = c.as_of or row.as_of

    @classmethod
    def load(cls, session, config: PriorConfig | None = None) -> "Priors":
        """Every stored prior."""
        priors = cls(config or PriorConfig())
        for row in session.exec(select(PriorRow)):
            table = priors.rules if row.scope == "rule" else priors.entities
            table[row.key] = Counts(row.tp, row.bp, row.fp, row.n_raw, to_db_time(row.as_of))
        return priors

    def decayed(self, now: datetime) -> "Priors":
        """A copy with every count aged to ``now`` (what the evidence source reads)."""
        out = Priors(self.config)
        for src, dst in ((self.rules, out.rules), (self.entities, out.entities)):
            for key, c in src.items():
                copy = Counts(c.tp, c.bp, c.fp, c.n_raw, c.as_of)
                copy.decay_to(now, self.config.half_life)
                dst[key] = copy
        return out


def _summary(what: str, c: Counts) -> str:
    n = c.n or 1.0
    return (f"analysts' history for {what}: {c.n:.1f} weighted dispositions ({c.n_raw} raw), "
            f"{c.tp / n:.0%} true / {c.bp / n:.0%} benign / {c.fp / n:.0%} false positive")


class PriorEvidence:
    """The ``EvidenceSource`` the assess node calls: history evidence for each rule and the strongest entities."""

    name = "learned_priors"

    def __init__(self, priors: Priors, now: datetime | None = None) -> None:
        self.priors = priors.decayed(now) if now is not None else priors

    def evidence(self, case: Case) -> list[Evidence]:
        """One ``history`` item per rule of the case with enough history, plus up to N entity items."""
        items: list[Evidence] = []
        rules = list(dict.fromkeys(case.detections or [a.rule_id for a in case.alerts]))
        for rule_id in rules:
            counts = self.priors.rules.get(rule_id)
            weight = self.priors.weight(counts)
            if weight:
                items.append(Evidence(
                    id=f"history:rule:{rule_id}", kind="history", source=self.name,
                    summary=_summary(f"detection {rule_id}", counts), weight=weight,
                    data={"scope": "rule", "tp": round(counts.tp, 2), "bp": round(counts.bp, 2),
                          "fp": round(counts.fp, 2)}, rule_id=rule_id,
                ))
        scored = []
        for entity in case.entities:
            counts = self.priors.entities.get(entity.key)
            weight = self.priors.weight(counts, entity=True)
            if weight:
                scored.append((abs(weight), entity.key, counts, weight))
        for _, key, counts, weight in sorted(scored, key=lambda s: (-s[0], s[1]))[:self.priors.config.max_entities]:
            items.append(Evidence(
                id=f"history:entity:{key}", kind="history", source=self.name,
                summary=_summary(key, counts), weight=weight,
                data={"scope": "entity", "tp": round(counts.tp, 2), "bp": round(counts.bp, 2),
                      "fp": round(counts.fp, 2)}, entity=key,
            ))
        return items
