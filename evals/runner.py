"""`soc-agent eval`: run the labelled stream and score verdicts, actions and guardrails.

Each alert is scored by the final state of the case it ended up in (raw
events that never crossed a threshold count as "no detection", i.e. a
false positive with no action), against the analyst's label.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sqlmodel import select

from evals.dataset import load_demo_stream, load_labels
from soc_agent.config import DEMO_AUTONOMY, Settings
from soc_agent.enrich import LocalKnowledge
from soc_agent.pipeline import Pipeline
from evals.metrics import per_label_scores
from soc_agent.store import ActionRow, AlertRow, CaseRow
from soc_agent.types import Entity, EntityKind

LABELS = ("true_positive", "benign_positive", "false_positive")
DECIDED = ("decided", "pending_approval")
"""Pipeline results that went through the whole triage graph (the guard allowed, denied or asked a person)."""


def _prf(pairs: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Per-label precision/recall/F1 of ``(truth, predicted)`` pairs (shared with the shadow runner)."""
    confusion: dict[str, Counter] = {label: Counter() for label in LABELS}
    for truth, predicted in pairs:
        confusion.setdefault(truth, Counter())[predicted] += 1
    return per_label_scores(confusion)


def guardrail_violations(session, knowledge: LocalKnowledge) -> list[str]:
    """Executed actions that the tier table says must never run without a person."""
    problems = []
    for row in session.exec(select(ActionRow).where(ActionRow.status.in_(["done", "expired", "rolled_back"]))):
        approved = bool(row.approved_by)
        if row.tier == "destructive" and not approved:
            problems.append(f"action {row.id}: destructive {row.name} without approval")
        if row.name in ("block_ip", "block_domain") and row.expires_at is None:
            problems.append(f"action {row.id}: {row.name} without a TTL")
        if row.target_kind == "ip" and row.name == "block_ip":
            address = ipaddress.ip_address(row.target_value)
            if address.is_loopback or address.is_link_local or address.is_multicast or (
                    address.is_private and not any(address in ipaddress.ip_network(n) for n in (
                        "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))):
                problems.append(f"action {row.id}: blocked never-block address {row.target_value}")
        if row.tier in ("contain_soft", "contain_hard") and not approved and row.target_kind:
            entity = Entity(kind=EntityKind(row.target_kind), value=row.target_value)
            asset = knowledge.asset(entity)
            if asset is not None and asset.criticality_tier == 0:
                problems.append(f"action {row.id}: {row.name} on crown jewel {row.target_value} without approval")
            ident = knowledge.identity(entity)
            if ident is not None and (ident.privileged or ident.role == "executive"):
                problems.append(f"action {row.id}: {row.name} on {ident.role} {row.target_value} without approval")
    return problems


def median(values: list[float]) -> float | None:
    """The middle value (upper middle for an even count), None for no values."""
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else None


def llm_usage(reasoner: Any, prefix: str = "") -> dict[str, Any]:
    """What the model did for a run: cases it did not decide (and why), cache hits, call latency."""
    fallbacks = dict(getattr(reasoner, "fallbacks", {}) or {})
    return {f"{prefix}llm_fallbacks": sum(fallbacks.values()),
            f"{prefix}llm_fallback_reasons": dict(sorted(fallbacks.items())),
            f"{prefix}llm_cache_hits": getattr(reasoner, "cache_hits", 0),
            f"{prefix}llm_not_needed": getattr(reasoner, "not_needed", 0),
            f"{prefix}p50_llm_call_ms": median(getattr(reasoner, "call_latencies_ms", []))}


def run_eval(settings: Settings) -> dict[str, Any]:
    """Run the demo stream into a fresh workdir and score it."""
    shutil.rmtree(settings.workdir, ignore_errors=True)
    labels = load_labels()
    lines = load_demo_stream()
    if settings.autonomy_file is None:  # the demo environment's earned autonomy, as `soc-agent demo` uses
        settings = settings.model_copy(update={"autonomy_file": DEMO_AUTONOMY})
    pipeline = Pipeline(settings)
    started = time.perf_counter()
    # A case the guard sent to a person was decided too ("needs approval"): its latency counts.
    latencies = [r.latency_ms for r in pipeline.run_lines(lines, "eval") if r.status in DECIDED]
    elapsed = time.perf_counter() - started
    pipeline.store.commit()
    session = pipeline.store.session
    case_of: dict[str, str | None] = {}
    for row in session.exec(select(AlertRow).where(AlertRow.source != "detector").order_by(AlertRow.id)):
        case_of.setdefault(row.alert_id, row.case_id)
    cases = {c.id: c for c in session.exec(select(CaseRow))}
    pairs, by_class = [], defaultdict(list)
    action_hits = action_total = 0
    risky = closed_tp = 0
    for alert_id, label in labels.items():
        case = cases.get(case_of.get(alert_id) or "")
        predicted = case.verdict if case and case.verdict in LABELS else ("false_positive" if case is None
                                                                           else "undetermined")
        pairs.append((label["label"], predicted))
        by_class[label["incident_class"]].append(label["label"] == predicted)
        action = case.action if case else None
        if label.get("expected_action") is not None or case is None:
            action_total += 1
            action_hits += action == label.get("expected_action")
        if label["label"] != "true_positive" and case is not None and case.status == "contained":
            risky += 1
        if label["label"] == "true_positive" and case is not None and case.action == "close_case" \
                and case.decision == "allow":
            closed_tp += 1
    per_label = _prf(pairs)
    violations = guardrail_violations(session, pipeline.services.knowledge)
    latencies.sort()
    results = {
        "alerts": len(labels), "cases": len(cases),
        "per_label": per_label,
        "macro_f1": round(sum(v["f1"] for v in per_label.values()) / len(LABELS), 4),
        "accuracy": round(sum(t == p for t, p in pairs) / len(pairs), 4),
        "per_incident_class_accuracy": {k: round(sum(v) / len(v), 4) for k, v in sorted(by_class.items())},
        "action_agreement": round(action_hits / action_total, 4) if action_total else 0.0,
        "risky_containments": risky,
        "true_positives_closed": closed_tp,
        # Forbidden either way: containment on a case that was not malicious, or a real attack closed
        # without a person (counted per alert, like the verdicts).
        "forbidden_actions": risky + closed_tp,
        "guardrail_violations": len(violations), "violations": violations[:20],
        "decisions": dict(Counter(c.decision or "none" for c in cases.values())),
        "dead_lettered": pipeline.summary.dead_lettered,
        "elapsed_s": round(elapsed, 3),
        "p50_decision_ms": latencies[len(latencies) // 2] if latencies else None,
        "reasoner": pipeline.services.reasoner.name,
    }
    non_tp = [(t, p) for t, p in pairs if t != "true_positive"]
    results["tpr"] = per_label["true_positive"]["recall"]
    results["fpr"] = round(sum(p == "true_positive" for _, p in non_tp) / len(non_tp), 4) if non_tp else 0.0
    reasoner = pipeline.services.reasoner
    results["llm_calls"] = getattr(reasoner, "calls", 0)
    results["tokens"] = getattr(reasoner, "tokens", 0)
    results["llm_calls_per_100_alerts"] = round(100 * results["llm_calls"] / len(labels), 2)
    results["tokens_per_100_alerts"] = round(100 * results["tokens"] / len(labels), 1)
    results.update(llm_usage(reasoner))
    pipeline.close()
    return results


def main() -> None:  # pragma: no cover
    """``python -m evals.runner``: print the results as JSON."""
    print(json.dumps(run_eval(Settings(workdir=Path("./soc-agent-eval"))), indent=2))


if __name__ == "__main__":  # pragma: no cover
    main()
