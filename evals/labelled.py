"""Score the agent on any labelled set: ``soc-agent eval --alerts FILE --labels FILE``.

The set's format is the dev sets' (``../shared/devsets``): alerts one per line
in any wire shape a connector reads, plain or ``.gz``; labels one JSON object
per line with ``alert_id`` and ``label`` (``true_positive``,
``benign_positive``, ``false_positive``). Optionally the site's labelled
history is learned first (``--learn-alerts``/``--learn-labels``), as
``soc-agent learn`` would, into the same fresh workdir.

The alerts run through the whole pipeline under the policy as configured:
without an autonomy file that is the shipped, supervised install. Each
alert's own verdict and confidence is its decision (duplicates and
follow-ups carry the verdict of the alert they joined). The metrics are
those of the dev sets' scorer (per-label precision/recall/F1, macro-F1 over
labels with support or predictions, TPR/FPR of the binary collapse with
``undetermined`` as not-positive, ECE over 10 equal-width bins, the
confusion matrix), plus the two counts a SOC lead asks for first: true
positives closed without a person, and true positives called benign or
false positive.
"""

from __future__ import annotations

import gzip
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from sqlmodel import select

import soc_agent.store.schema  # noqa: F401  (every wing's tables, before the store creates them)
from soc_agent.config import Settings
from soc_agent.learning import LabelIndex, learn_from_file, retrain_model
from soc_agent.pipeline import Pipeline
from soc_agent.store import ActionRow, AlertRow, Store

LABELS = ("true_positive", "benign_positive", "false_positive")
VERDICTS = (*LABELS, "undetermined")
_CLOSED = ("done", "expired")
"""Statuses of an action that took effect (a shadow run's ``recorded`` closes nothing)."""


def open_lines(path: Path) -> IO[bytes]:
    """A binary line stream over a plain or gzip-compressed file."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def read_labels(paths: list[Path]) -> dict[str, str]:
    """``alert_id → label`` from one or more label files; lines without a known label are left out."""
    labels: dict[str, str] = {}
    for path in paths:
        with open_lines(path) as fh:
            for raw in fh:
                if not raw.strip():
                    continue
                row = json.loads(raw)
                if row.get("label") in LABELS and row.get("alert_id") is not None:
                    labels[str(row["alert_id"])] = row["label"]
    return labels


def _chained(paths: list[Path], stack: ExitStack) -> Iterator[bytes]:
    for path in paths:
        yield from stack.enter_context(open_lines(path))


def ece(pairs: list[tuple[float, bool]], bins: int = 10) -> float | None:
    """Expected calibration error of ``(confidence, correct)`` pairs over equal-width bins."""
    if not pairs:
        return None
    total, error = len(pairs), 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        chosen = [(c, ok) for c, ok in pairs if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if chosen:
            confidence = sum(c for c, _ in chosen) / len(chosen)
            accuracy = sum(ok for _, ok in chosen) / len(chosen)
            error += len(chosen) / total * abs(accuracy - confidence)
    return round(error, 4)


def score(labels: dict[str, str], decisions: dict[str, tuple[str, float | None]],
          closed: set[str] = frozenset()) -> dict[str, Any]:
    """The dev-set scorer's metrics for ``decisions`` (``alert_id → (verdict, confidence)``).

    A labelled alert without a decision counts as ``undetermined``; ``closed``
    are the alerts whose case was closed without a person.
    """
    confusion = {gold: dict.fromkeys(VERDICTS, 0) for gold in LABELS}
    pairs: list[tuple[float, bool]] = []
    for alert_id, gold in labels.items():
        verdict, confidence = decisions.get(alert_id, ("undetermined", None))
        verdict = verdict if verdict in VERDICTS else "undetermined"
        confusion[gold][verdict] += 1
        if confidence is not None and 0.0 <= confidence <= 1.0:
            pairs.append((confidence, verdict == gold))
    per_label = {}
    for label in LABELS:
        support = sum(confusion[label].values())
        predicted = sum(confusion[g][label] for g in LABELS)
        if not support and not predicted:
            continue
        precision = confusion[label][label] / predicted if predicted else 0.0
        recall = confusion[label][label] / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                            "support": support}
    total = len(labels)
    positives = sum(confusion["true_positive"].values())
    negatives = total - positives
    false_alarms = confusion["benign_positive"]["true_positive"] + confusion["false_positive"]["true_positive"]
    return {
        "alerts": total, "answered": sum(1 for a in labels if a in decisions),
        "accuracy": round(sum(confusion[g][g] for g in LABELS) / total, 4) if total else None,
        "macro_f1": round(sum(v["f1"] for v in per_label.values()) / len(per_label), 4) if per_label else None,
        "per_label": per_label,
        "tpr": round(confusion["true_positive"]["true_positive"] / positives, 4) if positives else None,
        "fpr": round(false_alarms / negatives, 4) if negatives else None,
        "undetermined": round(sum(confusion[g]["undetermined"] for g in LABELS) / total, 4) if total else None,
        "ece": ece(pairs), "confusion": confusion,
        "true_positives_called_non_malicious": (confusion["true_positive"]["benign_positive"]
                                                + confusion["true_positive"]["false_positive"]),
        "true_positives_closed_without_a_person": sum(1 for a, g in labels.items()
                                                      if g == "true_positive" and a in closed),
    }


def _learn(settings: Settings, alerts: list[Path], labels: list[Path]) -> dict[str, Any]:
    """Learn the labelled history into the workdir's store, as ``soc-agent learn`` does."""
    settings.workdir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_url)
    index = LabelIndex(settings.workdir / ".learn-labels.sqlite")
    try:
        for path in labels:
            with open_lines(path) as fh:
                index.load(fh, path.name)
        with ExitStack() as stack:
            report, _ = learn_from_file(store, _chained(alerts, stack), index, labels[0].name)
        model, version = retrain_model(store)
    finally:
        index.close()
        store.close()
    return {"learned": report.learned, "model_trained": model.trained, "model_version": version,
            "model_cv_macro_f1": model.cv_macro_f1, "model_cv_ece": model.cv_ece}


@dataclass
class LabelledRun:
    """One scored run: the metrics, and what they were computed from (to score other label subsets)."""

    results: dict[str, Any]
    decisions: dict[str, tuple[str, float | None]]
    """``alert_id → (verdict, confidence)``."""
    closed: set[str]
    """Alerts whose case a ``close_case`` closed without a person."""


def run_labelled(settings: Settings, alerts: list[Path], labels: list[Path], learn_alerts: list[Path] = (),
                 learn_labels: list[Path] = ()) -> LabelledRun:
    """Triage ``alerts`` in a fresh workdir (after learning the history, when given) and score them."""
    shutil.rmtree(settings.workdir, ignore_errors=True)
    results: dict[str, Any] = {}
    if learn_alerts:
        results["learn"] = _learn(settings, list(learn_alerts), list(learn_labels))
    gold = read_labels(list(labels))
    pipeline = Pipeline(settings)
    decisions: dict[str, tuple[str, float | None]] = {}
    started = time.perf_counter()
    try:
        with ExitStack() as stack:
            for result in pipeline.run_lines(_chained(list(alerts), stack), "eval"):
                if result.verdict is not None:
                    decisions[result.alert_id] = (result.verdict, result.confidence)
        pipeline.store.commit()
        elapsed = time.perf_counter() - started
        session = pipeline.store.session
        case_of = {row.alert_id: row.case_id for row in session.exec(select(AlertRow))}
        # Closed without a person: a close_case that took effect and nobody approved.
        closed = {row.case_id for row in session.exec(select(ActionRow).where(ActionRow.name == "close_case"))
                  if row.status in _CLOSED and not row.approved_by}
        summary = pipeline.summary.as_dict(pipeline.store)
        reasoner = pipeline.services.reasoner
    finally:
        pipeline.close()
    closed_alerts = {alert_id for alert_id, case_id in case_of.items() if case_id in closed}
    results.update(score(gold, decisions, closed_alerts))
    results.update({
        "alerts_in": summary["alerts_in"], "dead_lettered": summary["dead_lettered"],
        "duplicates": summary.get("duplicates"), "cases": summary["cases"], "elapsed_s": round(elapsed, 2),
        "reasoner": reasoner.name, "llm_calls": getattr(reasoner, "calls", 0),
        "tokens": getattr(reasoner, "tokens", 0), "autonomy": settings.autonomy_in_force(),
    })
    return LabelledRun(results, decisions, closed_alerts)
