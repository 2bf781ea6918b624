"""Reasoners turn a case and its evidence into a verdict.

The ``Reasoner`` protocol is the seam an LLM reasoner plugs into; this
module ships the deterministic one, which needs no model and no network:
the signed evidence score maps to a verdict, and the confidence grows with
the score's distance from the undecided band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from soc_agent.types import Assessment, Case, Evidence, Verdict

_BENIGN_KINDS = frozenset({"allowlist", "benign_context"})


@dataclass(frozen=True)
class ReasoningInput:
    """What a reasoner sees: the case, its evidence, the score, and the action menu."""

    case: Case
    evidence: list[Evidence]
    score: float
    menu: list[str]


class Reasoner(Protocol):
    """Decides a verdict with a confidence; never acts."""

    name: str

    def reason(self, data: ReasoningInput) -> Assessment:
        """The verdict, its confidence and the evidence ids it rests on."""
        ...


class DeterministicReasoner:
    """Evidence-weighted scoring: ``score >= tp_at`` is malicious, ``score <= benign_at`` is not."""

    name = "deterministic"

    def __init__(self, tp_at: float = 2.5, benign_at: float = 0.5, slope: float = 1.2) -> None:
        self.tp_at = tp_at
        self.benign_at = benign_at
        self.slope = slope

    def reason(self, data: ReasoningInput) -> Assessment:
        score = data.score
        mid = (self.tp_at + self.benign_at) / 2
        degraded = any(e.kind == "degraded" for e in data.evidence)
        if score >= self.tp_at:
            verdict = Verdict.TRUE_POSITIVE
            cited = [e.id for e in data.evidence if e.weight > 0]
        elif score <= self.benign_at:
            verdict = _non_malicious_verdict(data.evidence)
            cited = [e.id for e in data.evidence if e.weight < 0] or [e.id for e in data.evidence]
        else:
            verdict = Verdict.UNDETERMINED
            cited = [e.id for e in data.evidence if e.weight != 0]
        if verdict is Verdict.UNDETERMINED:
            confidence = 0.5
        else:
            confidence = 1.0 / (1.0 + math.exp(-abs(score - mid) * self.slope))
        if degraded:
            # Something was not checked: say so in the number, not only in the notes.
            confidence *= 0.85
        top = sorted(data.evidence, key=lambda e: -abs(e.weight))[:3]
        rationale = f"score {score:+.2f} ({verdict}); strongest evidence: " + "; ".join(
            f"{e.summary} ({e.weight:+.1f})" for e in top
        )
        if degraded:
            rationale += "; enrichment was incomplete, confidence reduced"
        return Assessment(verdict=verdict, confidence=round(min(confidence, 0.99), 3), score=score,
                          evidence_ids=cited, rationale=rationale, reasoner=self.name)


def _non_malicious_verdict(evidence: list[Evidence]) -> Verdict:
    """Benign (sanctioned) or false positive (misfire): signals first, then the rule, then the allowlist."""
    if any(e.kind == "benign_context" for e in evidence):
        return Verdict.BENIGN_POSITIVE
    for item in evidence:
        named = item.data.get("non_malicious") if item.kind in ("rule", "threshold") else None
        if named:
            return Verdict(named)
    if any(e.kind in _BENIGN_KINDS for e in evidence):
        return Verdict.BENIGN_POSITIVE
    return Verdict.FALSE_POSITIVE


def make_reasoner(kind: str) -> Reasoner:
    """The reasoner a setting names: ``deterministic`` or ``llm`` (endpoint from SOC_AGENT_LLM_*)."""
    if kind == "llm":
        from soc_agent.llm import LLMReasoner, LLMSettings  # the model client only when asked for

        return LLMReasoner(LLMSettings.from_env())
    return DeterministicReasoner()
