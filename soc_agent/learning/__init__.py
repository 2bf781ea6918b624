"""The learning loop: analysts' dispositions update what the agent believes.

* :mod:`~soc_agent.learning.priors`: per rule and per entity, decayed counts of
  true / benign / false positives; a minimum sample before they count; served
  to the assess node as ``history`` evidence (:class:`PriorEvidence`).
* :mod:`~soc_agent.learning.calibration`: per-verdict isotonic confidence maps
  fitted on labelled history, reported as expected calibration error; served
  to the reason node as the ``Calibrator``.
* :mod:`~soc_agent.learning.model`: a LightGBM classifier trained on every
  disposition's generic features, calibrated, versioned as a text artefact,
  served to the assess node as ``model`` evidence (:class:`ModelEvidence`).
* :mod:`~soc_agent.learning.tuning`: noisy rules and always-benign entities as
  suggestions a person accepts.
* ``evals.split`` (outside the package: it drives the shadow runner): the held-out experiment showing that
  learning from the first part of a labelled set helps on the rest.

Where dispositions come from: a labels file with its alerts
(:func:`learn_from_file`, ``soc-agent learn``), and the ``label`` columns the
approval queue and the ticketing webhook write on alerts and cases
(:func:`learn_from_store`). Each alert is learned once (``learning_labels``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import select

from soc_agent.learning.calibration import (
    CalibrationFitter,
    ConfidenceCalibrator,
    ReliabilityBins,
    expected_calibration_error,
)
from soc_agent.learning.labels import LABEL_VALUES, LabelIndex, Skipped
from soc_agent.learning.priors import Counts, PriorConfig, PriorEvidence, Priors
from soc_agent.learning.model import ModelConfig, ModelEvidence, TrainReport, TriageModel, alert_features, train
from soc_agent.learning.tables import LearnedLabelRow, ModelRow, TrainingExampleRow
from soc_agent.learning.tuning import TuningConfig, suggest_tuning, write_suggestions
from soc_agent.store import AlertRow, CaseRow
from soc_agent.types import Alert, to_db_time, utcnow

__all__ = [
    "CalibrationFitter",
    "ConfidenceCalibrator",
    "Counts",
    "LABEL_VALUES",
    "LabelIndex",
    "LearnReport",
    "ModelConfig",
    "ModelEvidence",
    "TrainReport",
    "TriageModel",
    "PriorConfig",
    "PriorEvidence",
    "Priors",
    "ReliabilityBins",
    "Skipped",
    "TuningConfig",
    "default_suggestions_path",
    "expected_calibration_error",
    "learn_from_file",
    "learn_from_store",
    "load_learning",
    "retrain_model",
    "suggest_tuning",
    "write_suggestions",
]

_BATCH = 2000


@dataclass
class LearnReport:
    """What one import learned and what it skipped."""

    learned: int = 0
    already_learned: int = 0
    by_label: dict[str, int] = field(default_factory=dict)
    alert_lines: int = 0
    skipped: Skipped = field(default_factory=Skipped)

    def as_dict(self) -> dict[str, Any]:
        """For ``--json`` and the results file."""
        return {"learned": self.learned, "already_learned": self.already_learned, "by_label": self.by_label,
                "alert_lines": self.alert_lines, "skipped": self.skipped.as_dict()}


def load_learning(settings, store) -> tuple[list, ConfidenceCalibrator | None]:
    """The learned evidence sources and calibrator from ``store`` (empty when nothing was learned).

    ``soc_agent.composition.build_services`` sets ``evidence_sources`` and ``calibrator`` from this.
    Priors are aged to now; a rule or entity below its minimum sample adds nothing.
    """
    with store.reader() as session:
        priors = Priors.load(session)
        calibrator = ConfidenceCalibrator.load(session)
        active = session.exec(select(ModelRow).where(ModelRow.active == True)  # noqa: E712
                              .order_by(ModelRow.version.desc())).first()
    sources: list = [PriorEvidence(priors, now=utcnow())] if priors.rules or priors.entities else []
    if active is not None:
        sources.append(ModelEvidence(TriageModel.from_json(active.artefact), active.version))
    return sources, calibrator


def retrain_model(store, config: ModelConfig | None = None) -> tuple[TrainReport, int | None]:
    """Train on every stored disposition; serve the new model unless the active one cross-validated better.

    Returns the report and the version now active (None when there is none yet).
    """
    session = store.session
    examples = [(json.loads(row.features), row.label) for row in
                session.exec(select(TrainingExampleRow).order_by(TrainingExampleRow.ts, TrainingExampleRow.alert_id))]
    active = session.exec(select(ModelRow).where(ModelRow.active == True)).first()  # noqa: E712
    model, report = train(examples, config)
    if model is None:
        return report, active.version if active else None
    row = ModelRow(created_at=to_db_time(utcnow()), examples=report.examples, cv_macro_f1=report.cv_macro_f1,
                   cv_ece=report.cv_ece, artefact=model.to_json())
    # A worse model is kept for the record but not served: the previous one stays active.
    row.active = active is None or report.cv_macro_f1 >= active.cv_macro_f1
    if row.active and active is not None:
        active.active = False
    session.add(row)
    store.commit()
    return report, row.version if row.active else active.version


def _observe(session, priors: Priors, report: LearnReport, alert: Alert, label: str, source: str) -> None:
    if session.get(LearnedLabelRow, alert.id) is not None:
        report.already_learned += 1
        return
    priors.observe(alert, label)
    session.add(LearnedLabelRow(alert_id=alert.id, label=label, rule_id=alert.rule_id, source=source,
                                learned_at=to_db_time(utcnow())))
    session.add(TrainingExampleRow(alert_id=alert.id, label=label, ts=to_db_time(alert.timestamp),
                                   features=json.dumps(alert_features(alert))))
    report.learned += 1
    report.by_label[label] = report.by_label.get(label, 0) + 1


def learn_from_file(store, alert_lines: Iterable[bytes], labels: LabelIndex, source: str = "labels",
                    fmt: str = "auto", progress=None) -> tuple[LearnReport, Priors]:
    """Fold the labelled alerts of a stream into the stored priors (each alert once)."""
    from connectors import MappingError, parse_record  # deferred: the format registry loads every vendor package

    report = LearnReport(skipped=labels.skipped)
    session = store.session
    priors = Priors.load(session)
    batch: list[Alert] = []

    def flush() -> None:
        found = labels.lookup([a.id for a in batch])
        for alert in batch:
            label = found.get(alert.id)
            if label is not None and labels.claim(alert.id):
                _observe(session, priors, report, alert, label.label, source)
        batch.clear()

    for line_no, line in enumerate(alert_lines, start=1):
        if not line.strip():
            continue
        report.alert_lines += 1
        if progress is not None:
            progress(1)
        try:
            batch.append(parse_record(line.rstrip(b"\r\n"), fmt, 256 * 1024))
        except MappingError as exc:
            labels.skipped.add("alert line that could not be parsed", f"{source}:{line_no}: {str(exc)[:120]}")
            continue
        if len(batch) >= _BATCH:
            flush()
    if batch:
        flush()
    labels.record_unmatched()
    priors.save(session)
    store.commit()
    return report, priors


def learn_from_store(store) -> tuple[LearnReport, Priors]:
    """Fold dispositions the queue or webhook recorded (``AlertRow.label``, else its case's label)."""
    report = LearnReport()
    session = store.session
    priors = Priors.load(session)
    case_labels = {c.id: c.label for c in session.exec(select(CaseRow).where(CaseRow.label != None))}  # noqa: E711
    seen: set[str] = set()
    for row in session.exec(select(AlertRow).where(AlertRow.duplicate_of == None)  # noqa: E711
                            .order_by(AlertRow.id)):
        label = row.label or case_labels.get(row.case_id or "")
        if label is None or row.alert_id in seen:
            continue
        seen.add(row.alert_id)
        if label not in LABEL_VALUES:
            report.skipped.add("unknown label value", f"{row.alert_id}: {label}")
            continue
        alert = Alert.model_validate(json.loads(row.payload))
        _observe(session, priors, report, alert, label, "store")
    priors.save(session)
    store.commit()
    return report, priors


def default_suggestions_path(workdir: Path) -> Path:
    """Where ``learn`` writes tuning suggestions."""
    return workdir / "tuning-suggestions.yml"
