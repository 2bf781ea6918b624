"""Large inputs: labels and scoring stream in bounded memory; a long replay reports progress.

Peak RSS (``ru_maxrss``) is a high-water mark, so each test first runs the
same code on a small input (imports, caches, SQLite's page cache reach their
size) and then measures how much a large input raises the peak.
"""

from __future__ import annotations

import json
import resource
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert

from soc_agent.config import Settings
from soc_agent.learning import LabelIndex
from soc_agent.runners.shadow import ShadowOptions, run_shadow, score_store
from soc_agent.store import AlertRow, CaseRow, Store

T0 = datetime.now(timezone.utc) - timedelta(hours=3)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _labels(n: int):
    for i in range(n):
        label = ("true_positive", "benign_positive", "false_positive")[i % 3]
        yield json.dumps({"alert_id": f"e{i}", "label": label}).encode()


def _store_with_alerts(path: Path, n: int) -> Store:
    """A store holding ``n`` alert rows, a third of them in one of 100 cases."""
    store = Store(f"sqlite:///{path}")
    for c in range(100):
        store.session.add(CaseRow(id=f"c{c}", opened_at=T0, updated_at=T0, verdict="true_positive",
                                  confidence=0.9, action="block_ip", incident_class="known_bad_ip",
                                  severity="critical" if c % 2 else "high"))
    store.commit()
    payload = json.dumps({"severity": "low"})
    with store.engine.begin() as conn:
        for start in range(0, n, 10_000):
            conn.execute(insert(AlertRow.__table__), [dict(
                key=f"native:e{i}", alert_id=f"e{i}", source="native", kind="event", rule_id="dns_lookup",
                case_id=f"c{i % 100}" if i % 3 == 0 else None, fingerprint=str(i), ts=T0, received_at=T0,
                payload=payload) for i in range(start, min(n, start + 10_000))])
    return store


def _score(tmp_path: Path, n: int, name: str):
    store = _store_with_alerts(tmp_path / f"{name}.db", n)
    labels = LabelIndex(tmp_path / f"{name}.labels.sqlite")
    labels.load(_labels(n + 10))  # ten labels for alerts that are not there
    scores = score_store(store, labels)
    labels.record_unmatched()
    unmatched = labels.skipped.counts
    labels.close()
    store.close()
    return scores, unmatched


def test_labels_and_scoring_of_200k_alerts_stay_in_bounded_memory(tmp_path):
    _score(tmp_path, 5_000, "warm")
    before = _peak_mb()
    scores, unmatched = _score(tmp_path, 200_000, "big")
    growth = _peak_mb() - before
    assert scores.scored == 200_000
    assert sum(unmatched.values()) == 10
    # Holding 200k labels or rows in Python would cost well over 50 MB; counters and bins do not.
    assert growth < 25, f"peak RSS grew by {growth:.1f} MB"
    # Labels cycle true/benign/false; every third alert (the true positives) sits in a true-positive case,
    # the others in no case, which counts as "no detection" (false positive).
    assert scores.confusion["true_positive"] == {"true_positive": 66_667}
    assert scores.confusion["benign_positive"] == {"false_positive": 66_667}
    assert scores.confusion["false_positive"] == {"false_positive": 66_666}
    assert scores.missed == 0 and not scores.risky_cases


def _events(path: Path, n: int) -> None:
    with path.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({
                "id": f"e{i}", "kind": "event", "rule_id": "dns_lookup", "title": "dns lookup",
                "severity": "informational", "timestamp": (T0 + timedelta(milliseconds=40 * i)).isoformat(),
                "entities": [{"kind": "host", "value": f"h{i % 500}.corp.example"}], "attributes": {}}) + "\n")


def test_a_long_replay_streams_with_progress(tmp_path):
    n = 30_000
    alerts, labels = tmp_path / "alerts.jsonl", tmp_path / "labels.jsonl"
    _events(alerts, n)
    labels.write_bytes(b"\n".join(_labels(n)) + b"\n")
    warm_alerts, warm_labels = tmp_path / "warm.jsonl", tmp_path / "warm-labels.jsonl"
    _events(warm_alerts, 1_000)
    warm_labels.write_bytes(b"\n".join(_labels(1_000)) + b"\n")
    run_shadow(warm_alerts, warm_labels, Settings(), ShadowOptions(out_dir=tmp_path / "warm"))

    totals, advanced = [], []

    def progress(total: int):
        totals.append(total)
        return advanced.append

    before = _peak_mb()
    results, _ = run_shadow(alerts, labels, Settings(), ShadowOptions(out_dir=tmp_path / "out"), progress)
    growth = _peak_mb() - before
    assert totals == [n] and sum(advanced) == n
    assert results["scored_alerts"] == n and results["input"]["alerts_in"] == n
    # Raw events that never crossed a threshold: no case, "no detection" -> every true positive is missed.
    assert results["missed_true_positives"] == n // 3
    # The pipeline keeps per-alert dedupe and case-key maps (~0.6 KB an alert); the runner adds no more.
    assert growth < 0.0015 * n + 20, f"peak RSS grew by {growth:.1f} MB for {n} lines"
