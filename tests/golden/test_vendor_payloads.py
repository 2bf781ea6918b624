"""Golden cases from real vendor payloads (``../shared/payloads``, read in place, never copied here).

Every detection sample goes through a fresh pipeline under the shipped policy (no autonomy file: a
supervised install). These are real detections from rules the product has never seen: each is judged
true positive or undetermined on its vendor's evidence, never closed as a false positive for lack of it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "connectors"))
from connector_samples import PAYLOADS, file_lines, sample_files  # noqa: E402

FOLDERS = ("elastic", "splunk", "sentinel", "defender", "crowdstrike", "wazuh", "ocsf")
# Samples that must come out malicious on the vendor's own evidence alone.
TRUE_POSITIVES = {
    "alert_5712_sshd_bruteforce_docs.json": "wazuh's sshd brute force (rule 5712, level 10, credential access)",
    "alert_5712_sshd_bruteforce_nonexistent_user_qa.json": "the same rule against invalid users",
    "alert_endpoint_security_query_rule_malware.json": "Elastic Defend scored the file malicious",
    "alerts_v2_ods_closed_true_positive.json": "a Falcon detection an analyst closed as a true positive",
    "log_analytics_SecurityAlert_row.json": "a high-severity Sentinel SecurityAlert",
}


def _samples() -> list[Path]:
    return [path for folder in FOLDERS for path in sample_files(folder)]


@pytest.fixture(scope="module")
def triaged(tmp_path_factory):
    """Every sample line triaged once in one supervised install: (sample name, line, result or None)."""
    from soc_agent.config import Settings
    from soc_agent.pipeline import Pipeline
    from soc_agent.store import ActionRow, DeadLetterRow

    if not PAYLOADS.is_dir():
        pytest.skip(f"shared vendor samples not found at {PAYLOADS} (set SOC_AGENT_PAYLOADS)")
    workdir = tmp_path_factory.mktemp("payloads")
    pipeline = Pipeline(Settings(workdir=workdir, autonomy_file=workdir / "none.yml"))
    rows, lines_in = [], 0
    try:
        for path in _samples():
            for line in file_lines(path):
                lines_in += 1
                rows += [(path.name, line, r) for r in pipeline.run_lines([line], path.name)]
        pipeline.store.commit()
        dead = [(d.source, d.reason) for d in pipeline.store.session.exec(select(DeadLetterRow))]
        actions = [(a.name, a.status, a.approved_by) for a in pipeline.store.session.exec(select(ActionRow))]
        summary = pipeline.summary
        assert summary.alerts_in == lines_in == summary.processed + summary.dead_lettered
    finally:
        pipeline.close()
    return rows, dead, actions


def test_no_real_detection_is_called_benign_or_false_positive(triaged):
    rows, _, _ = triaged
    assert rows
    called = [(name, r.verdict) for name, _, r in rows if r.verdict in ("false_positive", "benign_positive")]
    assert called == []


def test_detections_with_strong_vendor_evidence_are_true_positives(triaged):
    rows, _, _ = triaged
    verdicts = {name: r.verdict for name, _, r in rows if r.status == "decided"}
    for name, why in TRUE_POSITIVES.items():
        assert verdicts.get(name) == "true_positive", f"{name}: {why}"


def test_nothing_is_closed_without_a_person_and_nothing_above_observe_runs(triaged):
    _, _, actions = triaged
    assert [a for a in actions if a[0] == "close_case" and a[1] == "done"] == []
    assert all(status != "done" or name in ("open_ticket", "annotate_case", "notify_analyst")
               for name, status, _ in actions), actions


def test_only_what_is_not_an_alert_is_dead_lettered_and_never_for_its_age(triaged):
    """Old samples are triaged record-only; incident objects and API list wrappers are not alerts."""
    _, dead, _ = triaged
    assert all("older than" not in reason for _, reason in dead), dead
    assert all("incident" in source and "unknown format" in reason for source, reason in dead), dead
