"""The held-out experiment: learn from the first part of a labelled stream, measure on the rest.

The deterministic rule weights were tuned on the bundled demo stream, so
measuring there would flatter them. :func:`shifted_stream` makes a
*different* labelled stream: ``evals.generate`` with another seed and
scale, plus what a new SOC plausibly has that the shipped rulebook does
not know about:

* a mis-tuned EDR heuristic (``edr_heuristic_generic``, high or critical
  severity, unknown to ``detectors.yml``) that analysts close as a false
  positive every time: learnable from the rule's history;
* a second, not-yet-allowlisted internal vulnerability scanner
  (``scanner02``, 10.0.5.21) whose scans analysts call benign: learnable
  from the entity's history (host and address), not from the rule, whose
  history stays mixed with real scans;
* label noise: a fraction of labels flipped at random. That part is *not*
  learnable and sets a floor under what any learner reaches.

:func:`learn_split` runs the experiment (all runs in shadow mode):

1. *before*: the test part through the plain agent, scored;
2. the train part through the agent *online*: each alert is triaged with
   the priors learned from the alerts before it, then its label is learned.
   The calibrator is fitted on those confidences, which are out of sample
   (fitting on alerts the priors had already seen would make it overconfident);
3. *after*: the test part with priors and calibrator, scored.

Train and test are the first and last parts of the time-ordered stream;
each is replayed on its own, so an incident that straddles the boundary
is split the same way before and after.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from evals.generate import BENIGN_USERS, BENIGN_WORKSTATIONS, generate
from soc_agent.config import Settings
from connectors import MappingError, parse_record
from soc_agent.learning.labels import LABEL_VALUES, LabelIndex
from soc_agent.learning.priors import PriorEvidence, Priors
from soc_agent.runners.shadow import GateConfig, replay, results_dict
from soc_agent.types import RunMode, utcnow

SHIFTED_SEED = 23
NOISY_RULE = "edr_heuristic_generic"
NEW_SCANNER = ("scanner02.corp.example", "10.0.5.21")


def shifted_stream(scale: int = 2, seed: int = SHIFTED_SEED,
                   label_noise: float = 0.05) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A labelled stream unlike the demo one (see the module docstring); deterministic per arguments."""
    alerts, labels = generate(scale, seed=seed)
    rng = random.Random(seed * 1000 + scale)
    start = min(datetime.fromisoformat(a["timestamp"].replace("Z", "+00:00")) for a in alerts)
    span = 8 * 3600
    extra: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def add(n: int, rule_id: str, title: str, severity: str, entities: list[dict[str, Any]],
            attributes: dict[str, Any], label: str, incident_class: str, at: datetime) -> None:
        alert_id = f"shift-{rule_id}-{n:05d}"
        alert = {"id": alert_id, "kind": "alert", "rule_id": rule_id, "title": title, "description": title,
                 "severity": severity, "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "entities": entities,
                 "attributes": attributes}
        extra.append((alert, {"alert_id": alert_id, "label": label, "incident_class": incident_class,
                              "expected_action": "close_case", "incident_id": f"shift-{incident_class}-{n}"}))

    for n in range(30 * scale):
        host = rng.choice(BENIGN_WORKSTATIONS) + ".corp.example"
        user = rng.choice(BENIGN_USERS)
        add(n, NOISY_RULE, f"Generic heuristic detection on {host}", rng.choice(("high", "critical")),
            [{"kind": "host", "value": host, "role": "dst"}, {"kind": "user", "value": user, "role": "actor"}],
            {"engine": "heuristic", "score": rng.randint(60, 99)}, "false_positive", "noisy_edr",
            start + timedelta(seconds=rng.randint(0, span)))
    targets = ("app01", "build01", "web01", "crm01", "wks-eng-02")
    for n in range(12 * scale):
        rule_id = rng.choice(("port_scan", "vuln_scan_detected"))
        target = rng.choice(targets) + ".corp.example"
        add(n, rule_id, f"{rule_id.replace('_', ' ')} from {NEW_SCANNER[1]}", rng.choice(("medium", "high")),
            [{"kind": "ip", "value": NEW_SCANNER[1], "role": "src"},
             {"kind": "host", "value": NEW_SCANNER[0], "role": "src"},
             {"kind": "host", "value": target, "role": "dst"}],
            {"ports_scanned": rng.randint(200, 65535)}, "benign_positive", "vuln_scanner",
            start + timedelta(seconds=rng.randint(0, span)))
    alerts = alerts + [a for a, _ in extra]
    by_id = {lab["alert_id"]: lab for lab in labels}
    by_id.update({lab["alert_id"]: lab for _, lab in extra})
    alerts.sort(key=lambda a: a["timestamp"])
    flip = ("true_positive", "benign_positive", "false_positive")
    out_labels, seen = [], set()
    for alert in alerts:
        if alert["id"] in seen:
            continue
        seen.add(alert["id"])
        label = dict(by_id[alert["id"]])
        if rng.random() < label_noise:
            label["label"] = rng.choice([x for x in flip if x != label["label"]])
            label["noisy"] = True
        out_labels.append(label)
    return alerts, out_labels


def write_shifted_stream(directory: Path, scale: int = 2, seed: int = SHIFTED_SEED,
                         label_noise: float = 0.05) -> tuple[Path, Path]:
    """Write ``shifted_alerts.jsonl`` and ``shifted_labels.jsonl``; returns their paths."""
    alerts, labels = shifted_stream(scale, seed, label_noise)
    directory.mkdir(parents=True, exist_ok=True)
    a, lab = directory / "shifted_alerts.jsonl", directory / "shifted_labels.jsonl"
    a.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in alerts))
    lab.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in labels))
    return a, lab


@dataclass
class SplitResult:
    """Before/after scores on the held-out part."""

    before: dict[str, Any]
    after: dict[str, Any]
    priors_only: dict[str, Any]
    """The held-out part with priors but no calibrator: separates the two effects."""
    train_lines: int
    test_lines: int
    learned: int
    rules_with_prior: int
    entities_with_prior: int

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {"before": self.before, "after": self.after, "priors_only": self.priors_only,
                "train_lines": self.train_lines,
                "test_lines": self.test_lines, "learned_dispositions": self.learned,
                "rules_with_prior": self.rules_with_prior, "entities_with_prior": self.entities_with_prior}


def _rebase(lines: list[bytes]) -> list[bytes]:
    records = [json.loads(x) for x in lines]
    stamps = [datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")) for r in records if "timestamp" in r]
    if not stamps:
        return lines
    shift = datetime.now(timezone.utc) - timedelta(minutes=1) - max(stamps)
    for r in records:
        if "timestamp" in r:
            r["timestamp"] = (datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")) + shift).isoformat()
    return [json.dumps(r).encode() for r in records]


def _field(line: bytes, key: str) -> Any:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record.get(key) if isinstance(record, dict) else None


def _brief(results: dict[str, Any]) -> dict[str, Any]:
    keys = ("macro_f1", "verdict_agreement", "risky_recommendations", "missed_true_positives", "scored_alerts",
            "confusion_matrix")
    calibration = results["calibration"]
    scored = results["scored_alerts"]
    return {k: results[k] for k in keys} | {
        "ece": calibration["ece"], "curve": calibration["curve"],
        "decided_share": round(calibration["predictions"] / scored, 4) if scored else 0.0}


def learn_split(alerts: Path, labels: Path, base: Settings, fraction: float = 0.5, work: Path | None = None,
                log: Callable[[str], None] | None = None) -> SplitResult:
    """Learn priors and calibration from the first ``fraction`` of the stream; score the rest before and after."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("the split fraction must be between 0 and 1 (exclusive)")
    say = log or (lambda _msg: None)
    work = work or Path(tempfile.mkdtemp(prefix="soc-agent-split-"))
    lines = _rebase([x for x in alerts.read_bytes().splitlines() if x.strip()])
    cut = int(len(lines) * fraction)
    train, test = lines[:cut], lines[cut:]
    label_lines = labels.read_bytes().splitlines()
    settings = base.model_copy(update={"mode": RunMode.SHADOW, "database_url": None})

    def index(name: str) -> LabelIndex:
        idx = LabelIndex(work / f"{name}.labels.sqlite")
        idx.load(label_lines, labels.name)
        return idx

    def scored(rep, idx) -> dict[str, Any]:
        idx.record_unmatched()
        return results_dict(rep, idx, idx.skipped, GateConfig(), {})

    say(f"before: replaying the held-out {len(test)} line(s) with the plain agent")
    idx = index("before")
    before = scored(replay(settings.model_copy(update={"workdir": work / "before"}), test, idx, "test"), idx)
    idx.close()

    say(f"learning from the first {len(train)} line(s), online: each alert is triaged with the priors "
        "of the alerts before it, then its label is learned (so the calibration data is out of sample)")
    priors = Priors()
    source = PriorEvidence(priors)
    train_labels = {_field(x, "alert_id"): _field(x, "label") for x in label_lines
                    if _field(x, "label") in LABEL_VALUES}
    learned: set[str] = set()

    def online(lines_: list[bytes]):
        for line in lines_:
            yield line
            try:
                alert = parse_record(line, "auto", settings.max_alert_bytes)
            except MappingError:
                continue
            label = train_labels.get(alert.id)
            if label is not None and alert.id not in learned:
                learned.add(alert.id)
                priors.observe(alert, label)

    # Calibrate on the later part of the train replay only: early on the priors are still empty,
    # and confidences from then say little about the agent that will run with the full history.
    warm = {_field(x, "id") for x in train[len(train) // 3:]}
    idx = LabelIndex(work / "fit.labels.sqlite")
    idx.load([x for x in label_lines if _field(x, "alert_id") in warm], labels.name)
    fit = replay(settings.model_copy(update={"workdir": work / "fit"}), online(train), idx, "train",
                 ([source], None))
    idx.close()
    calibrator = fit.scores.fitter.fit()
    source = PriorEvidence(priors, now=utcnow())

    say("ablation: replaying the held-out part with priors only (no calibration)")
    idx = index("priors_only")
    priors_only = scored(replay(settings.model_copy(update={"workdir": work / "priors_only"}), test, idx, "test",
                               ([source], None)), idx)
    idx.close()

    say("after: replaying the held-out part with priors and calibration")
    idx = index("after")
    after = scored(replay(settings.model_copy(update={"workdir": work / "after"}), test, idx, "test",
                          ([source], calibrator)), idx)
    idx.close()
    n_rules = sum(1 for c in priors.rules.values() if priors.weight(c))
    n_entities = sum(1 for c in priors.entities.values() if priors.weight(c, entity=True))
    return SplitResult(_brief(before), _brief(after), _brief(priors_only), len(train), len(test), len(learned),
                       n_rules, n_entities)


def main(argv: list[str] | None = None) -> int:
    """``python -m evals.split DIR [SCALE]``: write the shifted labelled stream into DIR."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m evals.split DIR [SCALE]", file=sys.stderr)
        return 2
    a, lab = write_shifted_stream(Path(args[0]), int(args[1]) if len(args) > 1 else 2)
    print(f"wrote {a} and {lab}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
