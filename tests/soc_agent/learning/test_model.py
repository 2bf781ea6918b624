"""The learned triage model: trained by ``learn`` from a site's dispositions, served to triage.

``site/`` is a small labelled site checked in for these tests: three rules
no playbook configures (a noisy DNS heuristic that is almost always a
misfire, admin-share access that is sanctioned for IT admins, an LSASS
heuristic that is real except on the build farm), 215 labelled past alerts
and 30 new ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evals.labelled import read_labels, run_labelled
from soc_agent.config import Settings
from soc_agent.learning import retrain_model
from soc_agent.learning.model import ModelConfig, TriageModel, alert_features, train
from soc_agent.learning.tables import ModelRow
from soc_agent.store import NoteRow, Store
from soc_agent.types import Alert

SITE = Path(__file__).parent / "site"
REPO = Path(__file__).resolve().parents[3]


def _examples() -> list[tuple[dict, str]]:
    labels = read_labels([SITE / "history_labels.jsonl"])
    rows = [Alert.model_validate({**json.loads(line), "source": "native"}) for line in
            (SITE / "history.jsonl").read_text().splitlines()]
    return [(alert_features(a), labels[a.id]) for a in rows]


def test_learn_then_triage_round_trip_on_a_small_labelled_site(tmp_path):
    workdir = tmp_path / "site"
    learned = subprocess.run(
        [sys.executable, "-m", "soc_agent.cli", "learn", str(SITE / "history.jsonl"), "--labels",
         str(SITE / "history_labels.jsonl"), "--workdir", str(workdir), "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert learned.returncode == 0, learned.stderr
    model = json.loads(learned.stdout)["model"]
    assert model["trained"] and model["active_version"] == 1 and model["examples"] == 215
    assert 0.8 <= model["cv_macro_f1"] <= 1.0 and 0.0 <= model["cv_ece"] <= 0.1

    before = run_labelled(Settings(workdir=tmp_path / "fresh"), [SITE / "new.jsonl"], [SITE / "new_labels.jsonl"])
    # The same workdir as learn: triage now has the site's model, priors and past dispositions.
    from soc_agent.pipeline import Pipeline

    pipeline = Pipeline(Settings(workdir=workdir))
    try:
        results = list(pipeline.run_lines((SITE / "new.jsonl").read_bytes().splitlines(), "new"))
        pipeline.store.commit()
        gold = read_labels([SITE / "new_labels.jsonl"])
        decisions = {r.alert_id: r.verdict for r in results if r.verdict}
        right = sum(decisions.get(a) == label for a, label in gold.items())
        assert right >= 24, decisions  # 30 new alerts; without learning none is decided correctly as BP or FP
        assert before.results["per_label"].get("benign_positive", {}).get("recall", 0) == 0
        # A sanctioned admin's share access is benign on the model's word, and its notes say why, in words.
        admin = next(r for r in results
                     if gold[r.alert_id] == "benign_positive" and r.status in ("decided", "pending_approval"))
        assert admin.verdict == "benign_positive"
        notes = json.loads(pipeline.store.session.get(NoteRow, admin.case_id).notes_json)
        model_items = [e for e in notes["evidence"] if e["kind"] == "model"]
        assert model_items and "learned model (v1) calls it benign_positive" in model_items[0]["summary"]
        assert "because of" in model_items[0]["summary"]
        assert notes["similar_cases"] and all("site_admin_share_access" in s or "shares" in s
                                              for s in notes["similar_cases"])
    finally:
        pipeline.close()


def test_too_little_history_trains_no_model_and_says_why():
    model, report = train(_examples()[:50])
    assert model is None and not report.trained
    assert "needs 200" in report.why_not
    model, report = train([(f, "true_positive") for f, _ in _examples()])
    assert model is None and "each label needs" in report.why_not


def test_the_artefact_is_plain_json_and_predicts_the_same_after_loading():
    model, report = train(_examples(), ModelConfig(folds=3))
    assert model is not None and report.trained
    text = model.to_json()
    data = json.loads(text)  # plain JSON: LightGBM's text model inside, nothing to unpickle
    assert data["format"] == 1 and data["booster"].startswith("tree")
    loaded = TriageModel.from_json(text)
    alert = Alert.model_validate({**json.loads((SITE / "new.jsonl").read_text().splitlines()[0]), "source": "native"})
    assert loaded.predict(alert).probabilities == model.predict(alert).probabilities
    with pytest.raises(ValueError, match="format"):
        TriageModel.from_json(json.dumps({**data, "format": 99}))


def test_a_model_that_cross_validates_worse_is_kept_for_the_record_but_not_served(tmp_path):
    import connectors  # noqa: F401  (the connectors' tables first, as the CLI does)
    from soc_agent.learning import LabelIndex, learn_from_file

    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    index = LabelIndex(tmp_path / "labels.sqlite")
    try:
        index.load((SITE / "history_labels.jsonl").read_bytes().splitlines())
        learn_from_file(store, (SITE / "history.jsonl").read_bytes().splitlines(), index)
        first, version = retrain_model(store)
        assert first.trained and version == 1
        # Pretend the served model had cross-validated better than anything this history can give.
        served = store.session.get(ModelRow, 1)
        served.cv_macro_f1 = 0.999
        store.commit()
        second, version = retrain_model(store)
        assert second.trained and second.cv_macro_f1 < 0.999
        assert version == 1, "the better model stays in service"
        assert store.session.get(ModelRow, 2).active is False
    finally:
        index.close()
        store.close()
