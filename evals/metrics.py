"""Scores shared by the shadow runner and the evaluations: per-label precision/recall/F1, macro-F1, action risk.

A confusion matrix here maps the analyst's label (truth) to a ``Counter`` of
the agent's verdicts; ``undetermined`` is a verdict but never a label.
"""

from __future__ import annotations

from collections import Counter

from soc_agent.actions import CATALOG
from soc_agent.learning.labels import LABEL_VALUES


def per_label_scores(confusion: dict[str, Counter]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per analyst label from a confusion matrix."""
    out = {}
    for label in LABEL_VALUES:
        tp = confusion.get(label, Counter())[label]
        fp = sum(row[label] for truth, row in confusion.items() if truth != label)
        support = sum(confusion.get(label, Counter()).values())
        fn = support - tp
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                      "support": support}
    return out


def macro_f1(per_label: dict[str, dict[str, float]]) -> float:
    """The unweighted mean F1 over the three labels."""
    return round(sum(v["f1"] for v in per_label.values()) / len(LABEL_VALUES), 4)


def tier_rank(action: str | None) -> int:
    """-1 for no action; otherwise the catalog tier's rank (observe 0 ... destructive 3)."""
    if action is None:
        return -1
    return CATALOG[action].tier.rank


def compare_actions(agent: str | None, analyst: str | None) -> str:
    """``same``, ``more_disruptive``, ``less_disruptive`` or ``different_same_tier``."""
    if agent == analyst:
        return "same"
    a, b = tier_rank(agent), tier_rank(analyst)
    if a > b:
        return "more_disruptive"
    if a < b:
        return "less_disruptive"
    return "different_same_tier"
