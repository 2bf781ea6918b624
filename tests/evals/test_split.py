"""The learning loop on a held-out split, and priors and calibration inside the real graph."""

from __future__ import annotations

import json

from soc_agent.config import Settings
from soc_agent.learning import CalibrationFitter, PriorEvidence, Priors, expected_calibration_error
from evals.split import NOISY_RULE, learn_split, shifted_stream, write_shifted_stream
from soc_agent.store import NoteRow
from soc_agent.types import Alert, Assessment, Entity, EntityKind, Verdict, utcnow
from tests.conftest import make_alert


def test_shifted_stream_differs_from_the_demo_and_is_deterministic():
    alerts, labels = shifted_stream(scale=1)
    assert (alerts, labels) == shifted_stream(scale=1)
    assert sum(a["rule_id"] == NOISY_RULE for a in alerts) == 30
    assert {lab["alert_id"] for lab in labels} == {a["id"] for a in alerts}
    assert 0 < sum(bool(lab.get("noisy")) for lab in labels) < 0.1 * len(labels)


def test_learning_from_the_first_half_improves_macro_f1_and_calibration_on_the_second(tmp_path):
    alerts, labels = write_shifted_stream(tmp_path / "data", scale=2)
    result = learn_split(alerts, labels, Settings(), 0.5, tmp_path / "work")
    before, after = result.before, result.after
    assert after["macro_f1"] >= before["macro_f1"] + 0.05, (before, after)
    assert after["ece"] < before["ece"], (before, after)
    # The priors alone inflate confidence; the calibrator is what brings it back.
    assert after["ece"] < result.priors_only["ece"]
    assert after["risky_recommendations"] <= before["risky_recommendations"]
    # Learning hardly ever talks the agent out of a real attack: history that calls a rule noise may flip a rare
    # real hit of it (measured: one of 191 here), never more than one true positive in a hundred. None of them is
    # closed without a person: a supervised install, and closing needs positive benign evidence anyway.
    tp_row = {name: _true_positive_row(getattr(result, name)) for name in ("before", "after")}
    called_off = {name: row["benign_positive"] + row["false_positive"] for name, row in tp_row.items()}
    assert called_off["after"] - called_off["before"] <= 0.01 * sum(tp_row["after"].values()), tp_row
    assert result.rules_with_prior > 0 and result.learned > 0
    assert json.dumps(result.as_dict())


def _true_positive_row(scores: dict) -> dict[str, int]:
    """What the agent called the analysts' true positives: verdict → count."""
    matrix = scores["confusion_matrix"]
    return dict(zip(matrix["columns"], matrix["counts"][matrix["rows"].index("true_positive")]))


def test_priors_turn_an_unknown_noisy_rule_into_a_false_positive_in_the_graph(pipeline):
    # Medium: a critical alert from a rule nobody configured is a true positive on its vendor's word alone.
    line = make_alert(NOISY_RULE, [("host", "wks-eng-01.corp.example", "dst")], alert_id="z1", severity="medium")
    [plain] = list(pipeline.run_lines([line], "test"))
    assert plain.verdict == "undetermined"
    priors = Priors()
    for i in range(20):
        priors.observe(Alert(id=f"old{i}", source="native", rule_id=NOISY_RULE, title="t",
                             timestamp=utcnow(),
                             entities=[Entity(kind=EntityKind.HOST, value=f"wks-{i}")]), "false_positive")
    pipeline.services.evidence_sources = [PriorEvidence(priors)]
    pipeline.services.calibrator = lambda a: a.model_copy(update={"confidence": 0.61})
    line2 = make_alert(NOISY_RULE, [("host", "wks-eng-02.corp.example", "dst")], alert_id="z2", severity="medium")
    [learned] = list(pipeline.run_lines([line2], "test"))
    assert learned.verdict == "false_positive" and learned.confidence == 0.61
    notes = pipeline.store.session.get(NoteRow, learned.case_id)
    assert f"history:rule:{NOISY_RULE}" in notes.markdown


def test_ece_by_hand_and_the_calibrator_fixes_overconfidence():
    # Two bins: 0.9 stated, right 1 in 2 (gap 0.4); 0.3 stated, right 1 in 2 (gap 0.2) -> (2*.4 + 2*.2) / 4.
    assert expected_calibration_error([(0.9, True), (0.9, False), (0.3, True), (0.3, False)]) == 0.3
    fitter = CalibrationFitter()
    for i in range(400):  # says 0.95, right 70% of the time
        fitter.add("true_positive", 0.95, i % 10 < 7)
    calibrator = fitter.fit()
    out = calibrator(Assessment(verdict=Verdict.TRUE_POSITIVE, confidence=0.95))
    assert abs(out.confidence - 0.7) < 0.02 and out.verdict is Verdict.TRUE_POSITIVE
    assert calibrator(Assessment(verdict=Verdict.UNDETERMINED, confidence=0.5)).confidence == 0.5
    # Monotone: a higher stated confidence never maps lower.
    fitter = CalibrationFitter()
    for i in range(300):
        fitter.add("false_positive", 0.6 + (i % 4) * 0.1, i % 3 != 0)
    fitted = fitter.fit()
    values = [fitted.calibrate("false_positive", x) for x in (0.6, 0.7, 0.8, 0.9)]
    assert values == sorted(values)
