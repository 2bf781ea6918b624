"""The shadow-mode runner: replay labelled history through the same graph, score it against analysts.

``soc-agent shadow ALERTS --labels LABELS`` runs every alert through the
pipeline with ``mode=shadow`` (the guard decides, nothing executes: shadow
is a run flag, not a second code path) in a scratch store, then scores each
labelled alert by the final state of the case it ended up in, like
``soc-agent eval``:

* verdicts: confusion matrix, per-label precision / recall / F1, agreement;
* actions (where the label names one): same, more or less disruptive (by
  ``Tier.rank`` from the action catalog), or a different action of the same tier;
* risky recommendations: cases where the agent recommended a ``contain_*``
  or destructive action although the analyst called the alert benign or a
  false positive;
* missed true positives (analyst: true positive; agent: anything else), and
  the critical ones among them (case or alert severity ``critical``);
* time to decision (per graph run, from the alert's arrival at intake);
* calibration (reliability curve and expected calibration error);
* agreement over time (in stream order, in equal buckets).

Per incident class (the class the agent assigned; ``no_case`` for alerts
that never became a case) a promotion gate decides whether the class is
ready for autonomy, and a class that is already autonomous is demoted when
its agreement drops. The outcome is a policy suggestion, ``autonomy.yml``::

    autonomy:
      brute_force:
        mode: autonomous          # autonomous | approval
        decision: promote         # promote | keep | demote | hold
        reasons: [...]
        evidence: {cases: 212, verdict_agreement: 0.98, risky_recommendations: 0, ...}

Autonomy per class lives in that file: the runner reads the current one
(``--autonomy``, default ``playbooks/autonomy.yml`` when it exists) and
writes its suggestion next to the results; a person reviews it and copies it
to ``playbooks/autonomy.yml``, which the guard reads beside ``policy.yml``
(``soc_agent.policy.load_policy``): once that file exists, a class not
``autonomous`` there → ``needs_approval`` for anything above observe. Nothing
here changes the live policy.

Memory stays bounded whatever the input size: alerts are streamed (a first
pass only finds the newest timestamp for re-basing), labels live in a
scratch SQLite index, scoring streams the store with ``yield_per`` and keeps
only counters, bins and a reservoir sample of latencies.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import text

from soc_agent.actions import CATALOG
from soc_agent.config import Settings
from soc_agent.config_file import read_yaml
from soc_agent.learning import CalibrationFitter, LabelIndex, ReliabilityBins, Skipped
from evals.metrics import compare_actions, macro_f1, per_label_scores
from soc_agent.learning.labels import LABEL_VALUES
from soc_agent.pipeline import Pipeline
from soc_agent.policy import read_autonomy
from soc_agent.runners.report import write_report
from soc_agent.store import Store
from soc_agent.types import RunMode, Tier

PREDICTED = (*LABEL_VALUES, "undetermined")
"""Columns of the confusion matrix: what the agent can say."""
NO_CASE = "no_case"
UNCLASSIFIED = "unclassified"
_DISRUPTIVE = frozenset({Tier.CONTAIN_SOFT, Tier.CONTAIN_HARD, Tier.DESTRUCTIVE})
_LATENCY_SAMPLE = 10_000
_EXAMPLES = 10


# ---- shared scoring helpers (also used by ``soc-agent eval``) -----------------

# ---- configuration ------------------------------------------------------------------------------

@dataclass(frozen=True)
class GateConfig:
    """When a class may act on its own, and when it loses that."""

    min_cases: int = 200
    min_agreement: float = 0.95
    max_risky: int = 0
    max_missed_critical: int = 0
    demote_below: float | None = None
    """Agreement below which an autonomous class is demoted (default: ``min_agreement``)."""
    min_cases_to_demote: int = 20
    """An agreement drop needs this many cases to count; a risky recommendation demotes at once."""

    @classmethod
    def from_file(cls, path: Path) -> "GateConfig":
        """The ``gate:`` mapping of a YAML file; an unknown key or a non-number is a ``ConfigError`` at its line."""
        doc = read_yaml(path)
        data = doc.mapping().get("gate") or {}
        if not isinstance(data, dict):
            raise doc.fail(("gate",), "expected a mapping of gate settings")
        for key, value in data.items():
            if key not in cls.__dataclass_fields__:
                raise doc.fail(("gate", key), f"unknown gate setting; known: {', '.join(cls.__dataclass_fields__)}")
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise doc.fail(("gate", key), "expected a number")
        return cls(**data)


# ---- the scorer ---------------------------------------------------------------------------------

@dataclass
class _ClassStats:
    alerts: int = 0
    agree: int = 0
    cases: set = field(default_factory=set)
    risky_cases: set = field(default_factory=set)
    missed: int = 0
    missed_critical: int = 0


@dataclass
class ShadowScores:
    """Counters, bins and samples from one scored replay (bounded, whatever the stream size)."""

    confusion: dict[str, Counter] = field(default_factory=lambda: {k: Counter() for k in LABEL_VALUES})
    actions: Counter = field(default_factory=Counter)
    risky_cases: dict[str, list[str]] = field(default_factory=dict)
    missed: int = 0
    missed_critical: int = 0
    missed_examples: list[dict[str, Any]] = field(default_factory=list)
    per_class: dict[str, _ClassStats] = field(default_factory=lambda: defaultdict(_ClassStats))
    buckets: list[list[int]] = field(default_factory=list)
    reliability: ReliabilityBins = field(default_factory=ReliabilityBins)
    fitter: CalibrationFitter = field(default_factory=CalibrationFitter)
    latencies: list[float] = field(default_factory=list)
    decided: int = 0
    scored: int = 0
    unlabelled: int = 0

    @property
    def agreement(self) -> float:
        """Share of scored alerts whose case verdict equals the analyst's label."""
        agree = sum(self.confusion[k][k] for k in LABEL_VALUES)
        return round(agree / self.scored, 4) if self.scored else 0.0


def _latency_stats(sample: list[float], n: int) -> dict[str, Any]:
    if not sample:
        return {"n": n, "p50_ms": None, "p95_ms": None, "max_ms": None}
    ordered = sorted(sample)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)  # noqa: E731
    return {"n": n, "p50_ms": pick(0.5), "p95_ms": pick(0.95), "max_ms": round(ordered[-1], 3)}


def _stream_rows(store, batch: int = 5000) -> Iterator[tuple]:
    """Every non-detector alert row in arrival order with its case's final state."""
    query = text(
        "SELECT a.alert_id, a.case_id, c.verdict, c.confidence, c.action, c.incident_class, c.severity, "
        "json_extract(a.payload, '$.severity') FROM alerts a LEFT JOIN cases c ON a.case_id = c.id "
        "WHERE a.source != 'detector' ORDER BY a.id")
    with store.engine.connect() as conn:
        result = conn.execution_options(yield_per=batch).execute(query)
        yield from result


def score_store(store, labels: LabelIndex, n_buckets: int = 20) -> ShadowScores:
    """Score every labelled alert in ``store`` by its case's final state."""
    scores = ShadowScores()
    with store.engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM alerts WHERE source != 'detector'")).scalar() or 0
    scores.buckets = [[0, 0] for _ in range(n_buckets)]
    position = 0
    pending: list[tuple] = []

    def flush() -> None:
        nonlocal position
        found = labels.lookup([r[0] for r in pending])
        for row in pending:
            bucket = min(n_buckets - 1, position * n_buckets // max(total, 1))
            position += 1
            label = found.get(row[0])
            if label is None:
                scores.unlabelled += 1
                continue
            if not labels.claim(row[0]):
                continue  # a re-sent copy (same id) of an alert already scored
            _score_one(scores, row, label, bucket)
        pending.clear()
        labels.db.commit()  # one transaction per batch keeps SQLite's dirty pages bounded

    for row in _stream_rows(store):
        pending.append(tuple(row))
        if len(pending) >= 2000:
            flush()
    if pending:
        flush()
    labels.db.commit()
    return scores


def _score_one(scores: ShadowScores, row: tuple, label, bucket: int) -> None:
    alert_id, case_id, verdict, confidence, action, incident_class, case_severity, alert_severity = row
    has_case = case_id is not None and verdict is not None
    predicted = verdict if has_case and verdict in PREDICTED else ("false_positive" if not has_case
                                                                     else "undetermined")
    if not has_case:
        action = None
    truth = label.label
    correct = predicted == truth
    scores.scored += 1
    scores.confusion[truth][predicted] += 1
    scores.buckets[bucket][0] += 1
    scores.buckets[bucket][1] += int(correct)
    if has_case and predicted in LABEL_VALUES and confidence is not None:
        scores.reliability.add(confidence, correct)
        scores.fitter.add(predicted, confidence, correct)
    cls = scores.per_class[(incident_class or NO_CASE) if has_case else NO_CASE]
    cls.alerts += 1
    cls.agree += int(correct)
    if has_case:
        cls.cases.add(case_id)
    if label.has_action:
        if label.action is not None and label.action not in CATALOG:
            scores.actions["analyst action not in the catalog (not compared)"] += 1
        elif action is not None and action not in CATALOG:
            scores.actions["agent action not in the catalog (not compared)"] += 1
        else:
            scores.actions[compare_actions(action, label.action)] += 1
    if truth != "true_positive" and action in CATALOG and CATALOG[action].tier in _DISRUPTIVE:
        scores.risky_cases.setdefault(case_id, [])
        if len(scores.risky_cases[case_id]) < 5:
            scores.risky_cases[case_id].append(f"{alert_id} ({truth}): {action}")
        cls.risky_cases.add(case_id)
    if truth == "true_positive" and predicted != "true_positive":
        critical = (case_severity if has_case else alert_severity) == "critical"
        scores.missed += 1
        cls.missed += 1
        if critical:
            scores.missed_critical += 1
            cls.missed_critical += 1
        if len(scores.missed_examples) < _EXAMPLES:
            scores.missed_examples.append({"alert_id": alert_id, "case_id": case_id, "predicted": predicted,
                                           "critical": critical})


# ---- gates --------------------------------------------------------------------------------------

def gate_classes(scores: ShadowScores, gate: GateConfig, current: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per class: promote, keep, demote or hold, with the reasons and the evidence."""
    demote_below = gate.min_agreement if gate.demote_below is None else gate.demote_below
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(scores.per_class) | set(current)):
        if name == NO_CASE:
            continue
        stats = scores.per_class.get(name, _ClassStats())
        agreement = round(stats.agree / stats.alerts, 4) if stats.alerts else 0.0
        evidence = {"cases": len(stats.cases), "alerts": stats.alerts, "verdict_agreement": agreement,
                    "risky_recommendations": len(stats.risky_cases), "missed_true_positives": stats.missed,
                    "missed_critical_true_positives": stats.missed_critical}
        now_autonomous = current.get(name) == "autonomous"
        reasons: list[str] = []
        if now_autonomous:
            if len(stats.risky_cases) > gate.max_risky:
                reasons.append(f"{len(stats.risky_cases)} risky recommendation(s) > {gate.max_risky}")
            if stats.missed_critical > gate.max_missed_critical:
                reasons.append(f"{stats.missed_critical} missed critical true positive(s) > "
                               f"{gate.max_missed_critical}")
            if len(stats.cases) >= gate.min_cases_to_demote and agreement < demote_below:
                reasons.append(f"verdict agreement {agreement:.2%} fell below {demote_below:.0%} "
                               f"over {len(stats.cases)} cases")
            decision, mode = ("demote", "approval") if reasons else ("keep", "autonomous")
            if not reasons:
                reasons.append("still meets the bar" if stats.alerts else "no labelled cases in this run")
        elif name == UNCLASSIFIED:
            decision, mode = "hold", "approval"
            reasons.append("no playbook matched these cases: there is nothing to act on autonomously")
        else:
            if len(stats.cases) < gate.min_cases:
                reasons.append(f"{len(stats.cases)} case(s) < {gate.min_cases}")
            if agreement < gate.min_agreement:
                reasons.append(f"verdict agreement {agreement:.2%} < {gate.min_agreement:.0%}")
            if len(stats.risky_cases) > gate.max_risky:
                reasons.append(f"{len(stats.risky_cases)} risky recommendation(s) > {gate.max_risky}")
            if stats.missed_critical > gate.max_missed_critical:
                reasons.append(f"{stats.missed_critical} missed critical true positive(s) > "
                               f"{gate.max_missed_critical}")
            decision, mode = ("hold", "approval") if reasons else ("promote", "autonomous")
            if not reasons:
                reasons.append("meets every promotion threshold")
        out[name] = {"mode": mode, "decision": decision, "was": current.get(name, "approval"),
                     "reasons": reasons, "evidence": evidence}
    return out


def write_autonomy(path: Path, classes: dict[str, dict[str, Any]], gate: GateConfig) -> None:
    """The policy suggestion: autonomy per class, for a person to review."""
    header = (
        "# Autonomy per incident class, suggested by `soc-agent shadow` from labelled evidence.\n"
        "# mode: autonomous = may act within the guard's tier rules without a person;\n"
        "#       approval   = every action above observe needs a person.\n"
        "# Nothing is applied: review, then copy to playbooks/autonomy.yml (read by the next shadow run\n"
        "# as the current state, and by the guard: a class not autonomous there needs approval).\n")
    doc = {"generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "gate": {k: getattr(gate, k) for k in gate.__dataclass_fields__},
           "autonomy": classes}
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False))


# ---- the replay ---------------------------------------------------------------------------------

def _newest_timestamp(path: Path) -> tuple[datetime | None, int]:
    """First pass: the newest ``timestamp`` of native lines, and the number of non-empty lines."""
    newest, lines = None, 0
    with path.open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            lines += 1
            ts = _timestamp_of(line)
            if ts is not None and (newest is None or ts > newest):
                newest = ts
    return newest, lines


def _timestamp_of(line: bytes) -> datetime | None:
    try:
        record = json.loads(line)
        value = record.get("timestamp") if isinstance(record, dict) else None
        if not isinstance(value, str):
            return None
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)
    except (ValueError, AttributeError):
        return None


def rebased_lines(path: Path, shift: timedelta | None) -> Iterator[bytes]:
    """The file's lines, with native ``timestamp`` fields moved by ``shift`` (others untouched)."""
    with path.open("rb") as fh:
        for line in fh:
            if shift is None or not line.strip():
                yield line
                continue
            ts = _timestamp_of(line)
            if ts is None:
                yield line
                continue
            record = json.loads(line)
            record["timestamp"] = (ts + shift).isoformat()
            yield json.dumps(record).encode()


@dataclass
class Replay:
    """What a replay of a stream through the pipeline produced."""

    scores: ShadowScores
    summary: dict[str, Any]
    elapsed_s: float


def replay(settings: Settings, lines: Iterable[bytes], labels: LabelIndex, source: str = "shadow",
           learning: tuple[list, Any] | None = None, progress: Callable[[int], None] | None = None,
           fmt: str = "auto", n_buckets: int = 20) -> Replay:
    """Run ``lines`` through a fresh shadow-mode pipeline in ``settings.workdir``, then score it."""
    shutil.rmtree(settings.workdir, ignore_errors=True)
    pipeline = Pipeline(settings)
    if learning is not None:
        pipeline.services.evidence_sources = list(learning[0])
        pipeline.services.calibrator = learning[1]
    rng = random.Random(0)
    latencies: list[float] = []
    decided = 0
    started = time.perf_counter()
    try:
        last = 0
        for result in pipeline.run_lines(lines, source, fmt):
            if result.status in ("decided", "pending_approval"):
                decided += 1
                # Reservoir sample: a fair sample of latencies in fixed memory.
                if len(latencies) < _LATENCY_SAMPLE:
                    latencies.append(result.latency_ms)
                else:
                    j = rng.randrange(decided)
                    if j < _LATENCY_SAMPLE:
                        latencies[j] = result.latency_ms
            if progress is not None:
                seen = pipeline.summary.alerts_in
                progress(seen - last)
                last = seen
        pipeline.store.commit()
        elapsed = time.perf_counter() - started
        summary = pipeline.summary.as_dict(pipeline.store)
    finally:
        pipeline.close()
    # Score from a fresh engine once the pipeline has let go: reading a large uncheckpointed
    # WAL through the writer's engine costs memory in proportion to the stream.
    store = Store(settings.db_url)
    try:
        scores = score_store(store, labels, n_buckets)
    finally:
        store.engine.dispose()
    scores.latencies, scores.decided = latencies, decided
    return Replay(scores, summary, elapsed)


@dataclass
class ShadowOptions:
    """Knobs of one shadow run."""

    out_dir: Path = Path("./shadow-results")
    gate: GateConfig = field(default_factory=GateConfig)
    autonomy_file: Path | None = None
    rebase: bool = True
    fmt: str = "auto"
    learning: tuple[list, Any] | None = None
    """Learned evidence sources and calibrator to run with (default: none, the plain agent)."""


def results_dict(rep: Replay, labels: LabelIndex, skipped: Skipped, gate: GateConfig,
                 current: dict[str, str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the JSON file, ``--json`` and the HTML report show."""
    scores = rep.scores
    per_label = per_label_scores(scores.confusion)
    compared = sum(scores.actions[k] for k in ("same", "more_disruptive", "less_disruptive",
                                                "different_same_tier"))
    classes = gate_classes(scores, gate, current)
    if scores.unlabelled:
        skipped.counts["alert without a label (run, not scored)"] = scores.unlabelled
    dead = rep.summary.get("dead_lettered", 0)
    if dead:
        skipped.counts["alert line dead-lettered by intake (not run)"] = dead
        whole = rep.summary.get("dead_letter_examples", {})
        skipped.examples["alert line dead-lettered by intake (not run)"] = [
            f"{v} × {k} (first: {whole.get(k, k)})" for k, v in rep.summary.get("dead_letter_reasons", {}).items()][:5]
    results = {
        "scored_alerts": scores.scored,
        "verdict_agreement": scores.agreement,
        "risky_recommendations": len(scores.risky_cases),
        "missed_true_positives": scores.missed,
        "missed_critical_true_positives": scores.missed_critical,
        "macro_f1": macro_f1(per_label),
        "per_label": per_label,
        "confusion_matrix": {"rows": list(LABEL_VALUES), "columns": list(PREDICTED),
                             "counts": [[scores.confusion[t][p] for p in PREDICTED] for t in LABEL_VALUES]},
        "action_agreement": {
            "compared": compared,
            "same": round(scores.actions["same"] / compared, 4) if compared else None,
            "counts": dict(scores.actions),
        },
        "risky_examples": {k: v for k, v in list(scores.risky_cases.items())[:_EXAMPLES]},
        "missed_examples": scores.missed_examples,
        "time_to_decision": _latency_stats(scores.latencies, scores.decided),
        "agreement_over_time": [{"bucket": i, "alerts": n, "agreement": round(a / n, 4) if n else None}
                                for i, (n, a) in enumerate(scores.buckets)],
        "calibration": {"ece": scores.reliability.ece(), "curve": scores.reliability.curve(),
                        "predictions": scores.reliability.total},
        "per_class": classes,
        "gate": {k: getattr(gate, k) for k in gate.__dataclass_fields__},
        "input": {**{k: rep.summary.get(k) for k in ("alerts_in", "processed", "dead_lettered", "duplicates",
                                                     "graph_runs", "cases")},
                  "label_lines": labels.lines, "usable_labels": labels.usable},
        "skipped": skipped.as_dict(),
        "elapsed_s": round(rep.elapsed_s, 3),
    }
    if extra:
        results.update(extra)
    return results


def run_shadow(alerts: Path, labels_path: Path, base: Settings, options: ShadowOptions,
               progress_factory: Callable[[int], Callable[[int], None]] | None = None,
               ) -> tuple[dict[str, Any], CalibrationFitter | None]:
    """The whole ``soc-agent shadow`` run: labels, replay, scores, gates, files.

    Returns the results (also written to ``shadow-results.json``) and the
    calibration data of the run (None when nothing was scored), which
    ``--learn`` fits and saves.
    """
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    labels = LabelIndex(out / ".labels.sqlite")
    fitter = None
    try:
        with labels_path.open("rb") as fh:
            labels.load(fh, labels_path.name)
        current = read_autonomy(options.autonomy_file)
        extra = {"alerts_file": str(alerts), "labels_file": str(labels_path),
                 "learning": bool(options.learning and (options.learning[0] or options.learning[1]))}
        if labels.usable == 0:
            # Nothing to score: say so in the results and the report rather than replaying for nothing.
            extra["error"] = (f"{labels_path}: no usable label in {labels.lines} line(s); nothing was scored")
            empty = Replay(ShadowScores(buckets=[[0, 0]]), {}, 0.0)
            results = results_dict(empty, labels, labels.skipped, options.gate, current, extra)
        else:
            newest, n_lines = _newest_timestamp(alerts)
            shift = None
            if options.rebase and newest is not None:
                shift = datetime.now(timezone.utc) - timedelta(minutes=1) - newest
            settings = base.model_copy(update={"workdir": out / "replay", "mode": RunMode.SHADOW,
                                               "database_url": None})
            progress = progress_factory(n_lines) if progress_factory else None
            rep = replay(settings, rebased_lines(alerts, shift), labels, alerts.name, options.learning, progress,
                         options.fmt)
            labels.record_unmatched()
            extra["rebased_by_s"] = round(shift.total_seconds()) if shift else 0
            results = results_dict(rep, labels, labels.skipped, options.gate, current, extra)
            fitter = rep.scores.fitter
    finally:
        labels.close()
    results["files"] = {"results": str(out / "shadow-results.json"), "report": str(out / "shadow-report.html"),
                        "autonomy": str(out / "autonomy.yml")}
    write_autonomy(out / "autonomy.yml", results["per_class"], options.gate)
    (out / "shadow-results.json").write_text(json.dumps(results, indent=2, default=str))
    write_report(out / "shadow-report.html", results)
    return results, fitter
