"""Reasoners turn a case and its evidence into a verdict.

The ``Reasoner`` protocol is the seam an LLM reasoner plugs into; this
module ships the deterministic one, which needs no model and no network.
Absence of evidence is never evidence of benign: a non-malicious verdict
rests on positive benign evidence, or the alert is ``undetermined``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from soc_agent.types import Alert, Assessment, Case, Evidence, Verdict

@dataclass(frozen=True)
class ReasoningInput:
    """What a reasoner sees: the case, its evidence, the score, and the action menu."""

    case: Case
    evidence: list[Evidence]
    score: float
    menu: list[str]
    similar: list[str] = field(default_factory=list)
    """This site's most similar past dispositions, one line each (untrusted: titles come from alerts)."""


class Reasoner(Protocol):
    """Decides a verdict with a confidence; never acts."""

    name: str

    def reason(self, data: ReasoningInput) -> Assessment:
        """The verdict, its confidence and the evidence ids it rests on."""
        ...


# Positive evidence of benign: what a non-malicious verdict must rest on. A low severity, a missing field or a
# rule nobody configured is absence of evidence, and never appears here.
_BENIGN_EVIDENCE = frozenset({"allowlist", "benign_context", "vendor_benign", "intel_expired"})
# Learned or site-configured evidence that speaks for benign when its weight is negative: analysts' history, a
# site signal, or a rule the site itself weighed below zero (a hygiene detection, not a security incident).
_BENIGN_WHEN_NEGATIVE = frozenset({"history", "signal", "rule"})
# What the site itself knows about a case, beyond what the vendor said: without any of it, a verdict from
# vendor evidence alone is capped at ``vendor_only_cap``.
_SITE_KNOWLEDGE = frozenset({"intel", "threshold", "signal", "history", "allowlist", "benign_context", "model"})
# Facts a learned model cannot have priced in, which overrule its non-malicious call.
_OVERRULES_MODEL = frozenset({"intel", "threshold", "signal"})
_RANK = {Verdict.TRUE_POSITIVE: 3, Verdict.UNDETERMINED: 2, Verdict.BENIGN_POSITIVE: 1, Verdict.FALSE_POSITIVE: 0}


def is_benign_evidence(item: Evidence) -> bool:
    """Whether ``item`` is positive evidence that an alert is not malicious."""
    if item.kind in _BENIGN_EVIDENCE:
        return item.weight < 0 or item.kind == "benign_context"
    if item.kind in _BENIGN_WHEN_NEGATIVE:
        return item.weight < 0 and (item.kind != "rule" or bool(item.data.get("configured")))
    return item.kind == "model" and item.weight < 0 and bool(item.data.get("speaks_benign"))


class DeterministicReasoner:
    """Evidence-weighted scoring, judged per alert and decided per case.

    Each alert is judged on the evidence about it (its own, its rule's, its
    entities', and the case-wide): a score of ``tp_at`` or more is malicious;
    a non-malicious verdict needs a score of ``benign_at`` or less *and*
    positive evidence of benign; anything else is ``undetermined`` and goes
    to a person. Where the learned model speaks for an alert, its calibrated
    verdict stands unless a fact it cannot have seen (intel, a threshold, a
    site signal) says malicious. The case is as bad as its worst alert.
    """

    name = "deterministic"

    def __init__(self, tp_at: float = 2.0, benign_at: float = 0.5, slope: float = 1.2,
                 vendor_only_cap: float = 0.75) -> None:
        self.tp_at = tp_at
        self.benign_at = benign_at
        self.slope = slope
        self.vendor_only_cap = vendor_only_cap

    def judge(self, alert: Alert, evidence: list[Evidence]) -> dict:
        """One alert's verdict, confidence, score and the evidence ids it rests on."""
        items = [e for e in evidence if e.applies_to(alert)]
        model = next((e for e in items if e.kind == "model" and e.alert_id == alert.id), None)
        scored = [e for e in items if e.kind != "model"]
        score = round(sum(e.weight for e in scored), 3)
        verdict, confidence, cited = self._by_evidence(scored, score)
        by_evidence = verdict
        basis = "evidence"
        if model is not None and not any(e.kind in _OVERRULES_MODEL and e.weight > 0 for e in scored):
            verdict = Verdict(model.data["verdict"])
            confidence = float(model.data["confidence"])
            if verdict is not Verdict.TRUE_POSITIVE and not model.data.get("speaks_benign"):
                # Too little history for this rule or class to call it benign: a person decides.
                verdict, confidence = Verdict.UNDETERMINED, 0.5
            cited = [model.id] + [e.id for e in scored if e.weight != 0][:5]
            basis = "model"
        if any(e.kind == "degraded" for e in items) and verdict is not Verdict.UNDETERMINED:
            confidence *= 0.85  # something was not checked: say so in the number, not only in the notes
        return {"verdict": verdict, "confidence": round(min(confidence, 0.99), 3), "score": score,
                "rule_id": alert.rule_id, "evidence_ids": cited, "basis": basis, "by_evidence": str(by_evidence)}

    def _by_evidence(self, scored: list[Evidence], score: float) -> tuple[Verdict, float, list[str]]:
        """The verdict the rule, vendor and site evidence alone support (the learned model aside)."""
        mid = (self.tp_at + self.benign_at) / 2
        if score >= self.tp_at:
            verdict = Verdict.TRUE_POSITIVE
            cited = [e.id for e in scored if e.weight > 0]
            confidence = 1.0 / (1.0 + math.exp(-abs(score - mid) * self.slope))
            if not any(e.kind in _SITE_KNOWLEDGE or e.data.get("configured") for e in scored):
                # Only the vendor's word for it: a rule this site never weighed cannot be near-certain.
                confidence = min(confidence, self.vendor_only_cap)
        elif score <= self.benign_at and any(is_benign_evidence(e) for e in scored):
            verdict = _non_malicious_verdict(scored)
            cited = [e.id for e in scored if e.weight < 0] or [e.id for e in scored]
            confidence = 1.0 / (1.0 + math.exp(-abs(score - mid) * self.slope))
        else:
            verdict, confidence = Verdict.UNDETERMINED, 0.5
            cited = [e.id for e in scored if e.weight != 0]
        return verdict, confidence, cited

    def reason(self, data: ReasoningInput) -> Assessment:
        judged = {a.id: self.judge(a, data.evidence) for a in data.case.alerts}
        if not judged:  # no alert to judge (should not happen): nothing says benign
            return Assessment(verdict=Verdict.UNDETERMINED, confidence=0.5, score=data.score,
                              rationale="no alert to judge", reasoner=self.name)
        worst_rank = max(_RANK[j["verdict"]] for j in judged.values())
        worst = [j for j in judged.values() if _RANK[j["verdict"]] == worst_rank]
        verdict = worst[0]["verdict"]
        if verdict is Verdict.TRUE_POSITIVE:
            confidence = max(j["confidence"] for j in worst)
        elif verdict is Verdict.UNDETERMINED:
            confidence = 0.5
        else:
            # Every alert is non-malicious: benign (sanctioned) if any is, at the least sure alert's confidence.
            verdict = Verdict.BENIGN_POSITIVE if any(j["verdict"] is Verdict.BENIGN_POSITIVE
                                                     for j in judged.values()) else Verdict.FALSE_POSITIVE
            confidence = min(j["confidence"] for j in judged.values())
        cited = list(dict.fromkeys(i for j in worst for i in j["evidence_ids"]))
        if not cited:
            cited = [e.id for e in data.evidence][:5]
        score = max(j["score"] for j in judged.values())
        top = sorted((e for e in data.evidence if e.id in set(cited)), key=lambda e: -abs(e.weight))[:3]
        rationale = f"score {score:+.2f} ({verdict}); strongest evidence: " + "; ".join(
            f"{e.summary} ({e.weight:+.1f})" for e in top)
        if len(judged) > 1:
            counts = Counter(str(j["verdict"]) for j in judged.values())
            rationale += "; alerts judged one by one: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
        if verdict is Verdict.UNDETERMINED:
            rationale += "; not enough evidence either way: a person decides"
        if any(e.kind == "degraded" for e in data.evidence):
            rationale += "; enrichment was incomplete, confidence reduced"
        return Assessment(verdict=verdict, confidence=round(confidence, 3), score=score,
                          evidence_ids=cited, rationale=rationale, reasoner=self.name,
                          alert_verdicts={k: {"verdict": str(j["verdict"]), "confidence": j["confidence"],
                                              "score": j["score"], "rule_id": j["rule_id"], "basis": j["basis"],
                                              "by_evidence": j["by_evidence"]}
                                          for k, j in judged.items()})


def _non_malicious_verdict(evidence: list[Evidence]) -> Verdict:
    """Benign (sanctioned) or false positive (misfire): signals first, then the vendor and rule, then the rest."""
    if any(e.kind == "benign_context" for e in evidence):
        return Verdict.BENIGN_POSITIVE
    for item in evidence:
        named = item.data.get("non_malicious") if item.kind in ("rule", "threshold", "vendor_benign") else None
        if named:
            return Verdict(named) if named in set(Verdict) else Verdict.FALSE_POSITIVE
    if any(e.kind == "history" and e.weight < 0 for e in evidence):
        return _history_verdict(evidence)
    if any(e.kind in _BENIGN_EVIDENCE for e in evidence):
        return Verdict.BENIGN_POSITIVE
    return Verdict.FALSE_POSITIVE


def _history_verdict(evidence: list[Evidence]) -> Verdict:
    """Which non-malicious outcome analysts' history for these alerts mostly was."""
    bp = sum(e.data.get("bp", 0) for e in evidence if e.kind == "history")
    fp = sum(e.data.get("fp", 0) for e in evidence if e.kind == "history")
    return Verdict.BENIGN_POSITIVE if bp > fp else Verdict.FALSE_POSITIVE
