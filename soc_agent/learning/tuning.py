"""Tuning suggestions for noisy detections, for a person to accept (nothing here changes a rule).

A rule is noisy when, with enough history, analysts nearly never called its
alerts true positives. Threshold detectors get "raise the threshold"; other
rules get "suppress" (when they were never real) or "lower the weight".
Entities that only ever produced benign or false-positive alerts become
allowlist candidates. The output is a YAML document whose every entry has
``status: proposed``; accepting one is an edit of ``playbooks/detectors.yml``
or ``demo/data/allowlists.yml`` by a person, reviewed like any change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from soc_agent.learning.priors import Priors


@dataclass(frozen=True)
class TuningConfig:
    """When a rule or entity counts as noisy."""

    min_sample: float = 20.0
    max_tp_rate: float = 0.05
    """At or below this true-positive rate a rule is noisy."""
    suppress_below: float = 0.02
    """At or below this rate (about none, allowing for mislabels) a rule is suggested for suppression."""
    entity_min_sample: float = 20.0


def threshold_rules(detectors_file: Path) -> dict[str, dict[str, Any]]:
    """The threshold detectors of ``detectors.yml`` by name."""
    try:
        data = yaml.safe_load(detectors_file.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return {t["name"]: t for t in data.get("thresholds") or [] if isinstance(t, dict) and "name" in t}


def suggest_tuning(priors: Priors, detectors_file: Path | None = None,
                   config: TuningConfig = TuningConfig()) -> list[dict[str, Any]]:
    """Noisy rules and always-benign entities, most evidence first."""
    thresholds = threshold_rules(detectors_file) if detectors_file else {}
    out: list[dict[str, Any]] = []
    for rule_id, c in sorted(priors.rules.items(), key=lambda kv: -kv[1].n):
        if c.n < config.min_sample:
            continue
        tp_rate = c.tp / c.n
        if tp_rate > config.max_tp_rate:
            continue
        evidence = {"weighted_alerts": round(c.n, 1), "alerts": c.n_raw, "true_positive_rate": round(tp_rate, 4),
                    "benign_rate": round(c.bp / c.n, 4), "false_positive_rate": round(c.fp / c.n, 4)}
        threshold = thresholds.get(rule_id)
        if threshold is not None:
            change = {"kind": "raise_threshold", "file": "playbooks/detectors.yml",
                      "set": {"count": int(threshold.get("count", 1)) * 2}}
            why = "threshold detector whose crossings analysts nearly never confirmed"
        elif tp_rate <= config.suppress_below:
            change = {"kind": "suppress", "file": "playbooks/detectors.yml",
                      "set": {"weight": -3.0, "non_malicious": "false_positive"}}
            why = "analysts (nearly) never confirmed this rule; suppress it, or fix the rule at its source"
        else:
            change = {"kind": "lower_weight", "file": "playbooks/detectors.yml", "set": {"weight": -1.0}}
            why = "alerts of this rule were rarely confirmed"
        out.append({"rule": rule_id, "status": "proposed", "why": why, "change": change, "evidence": evidence})
    for key, c in sorted(priors.entities.items(), key=lambda kv: -kv[1].n):
        if c.n >= config.entity_min_sample and c.tp == 0:
            out.append({"entity": key, "status": "proposed",
                        "why": "every alert about this entity was benign or a false positive",
                        "change": {"kind": "allowlist_candidate", "file": "demo/data/allowlists.yml"},
                        "evidence": {"weighted_alerts": round(c.n, 1), "alerts": c.n_raw,
                                     "benign_rate": round(c.bp / c.n, 4),
                                     "false_positive_rate": round(c.fp / c.n, 4)}})
    return out


def write_suggestions(path: Path, suggestions: list[dict[str, Any]]) -> None:
    """The suggestions as a YAML file a person reviews."""
    header = ("# Tuning suggestions from analysts' dispositions (soc-agent learn / shadow).\n"
              "# Nothing here is applied: a person accepts an entry by making its change in the named file.\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump({"suggestions": suggestions}, sort_keys=False))
