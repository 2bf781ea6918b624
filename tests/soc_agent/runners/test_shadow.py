"""The shadow runner: scores computed by hand on a small labelled set, bad labels, gates, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from soc_agent.config import Settings
from soc_agent.runners.shadow import (
    GateConfig,
    ShadowOptions,
    ShadowScores,
    compare_actions,
    gate_classes,
    read_autonomy,
    run_shadow,
    write_autonomy,
)
from tests.conftest import make_alert

REPO = Path(__file__).resolve().parents[3]

C2 = "203.0.113.66"  # on the demo intel watchlist
C2_OTHER = "198.51.100.99"  # also on it
EXPIRED = "192.0.2.66"  # its intel entry has expired

# What the agent decides for each alert (asserted below as a precondition of the hand count):
#   a: beacon to a C2 address            -> true_positive, block_ip      analyst: true_positive, block_ip
#   b: expired-intel match               -> false_positive, close_case   analyst: true_positive, block_ip
#   c: sanctioned scanner's port scan    -> benign_positive, close_case  analyst: false_positive (no action given)
#   d: another C2 beacon                 -> true_positive, block_ip      analyst: false_positive, close_case
#   e: beacon to C2 from a third host    -> true_positive, block_ip      analyst: conflicting labels (left out)
ALERTS = [
    make_alert("connection_to_known_bad_ip", [("host", "wks-fin-01.corp.example", "src"), ("ip", C2, "dst")],
               alert_id="a", severity="high", dst_port=443),
    make_alert("connection_to_known_bad_ip", [("host", "wks-eng-01.corp.example", "src"), ("ip", EXPIRED, "dst")],
               alert_id="b", severity="medium", dst_port=443),
    make_alert("port_scan", [("ip", "10.0.5.20", "src"), ("host", "scanner01.corp.example", "src"),
                             ("host", "app01.corp.example", "dst")], alert_id="c", severity="medium",
               ports_scanned=1000),
    make_alert("connection_to_known_bad_ip", [("host", "wks-hr-01.corp.example", "src"), ("ip", C2_OTHER, "dst")],
               alert_id="d", severity="high", dst_port=443),
    make_alert("connection_to_known_bad_ip", [("host", "wks-sales-01.corp.example", "src"),
                                              ("ip", "198.51.100.140", "dst")], alert_id="e", severity="high"),
]
LABELS = [
    {"alert_id": "a", "label": "true_positive", "action": "block_ip"},
    {"alert_id": "b", "label": "true_positive", "action": "block_ip"},
    {"alert_id": "c", "label": "false_positive"},
    {"alert_id": "d", "label": "false_positive", "action": "close_case"},
    {"alert_id": "d", "label": "false_positive", "action": "close_case"},  # duplicate: counted once
    {"alert_id": "e", "label": "true_positive"},
    {"alert_id": "e", "label": "benign_positive"},  # conflict: e is left out
    {"alert_id": "ghost", "label": "true_positive"},  # no such alert
    {"alert_id": "a", "label": "malicious"},  # unknown value
]


def _write(tmp_path: Path, alerts: list[bytes], labels: list, extra_label_lines: list[str] = ()) -> tuple[Path, Path]:
    a, lab = tmp_path / "alerts.jsonl", tmp_path / "labels.jsonl"
    a.write_bytes(b"\n".join(alerts) + b"\n")
    lab.write_text("".join(json.dumps(x) + "\n" for x in labels) + "".join(line + "\n" for line in extra_label_lines))
    return a, lab


def test_small_labelled_set_scores_match_the_hand_count(tmp_path):
    alerts, labels = _write(tmp_path, ALERTS, LABELS, ["{not json"])
    results, fitter = run_shadow(alerts, labels, Settings(), ShadowOptions(out_dir=tmp_path / "out", rebase=False))

    # Precondition: the agent's answers the hand count rests on.
    cases = {row["alert_id"]: row for row in _case_state(tmp_path / "out" / "replay")}
    assert {k: (v["verdict"], v["action"]) for k, v in cases.items()} == {
        "a": ("true_positive", "block_ip"), "b": ("false_positive", "close_case"),
        "c": ("benign_positive", "close_case"), "d": ("true_positive", "block_ip"),
        "e": ("true_positive", "block_ip")}

    # Scored: a, b, c, d (e conflicts). Agree: a only -> 1/4.
    assert results["scored_alerts"] == 4
    assert results["verdict_agreement"] == 0.25
    # d: block_ip recommended on a case the analyst called a false positive.
    assert results["risky_recommendations"] == 1
    assert list(results["risky_examples"]) == [cases["d"]["case_id"]]
    # b: analyst true positive, agent false positive (medium severity: not critical).
    assert results["missed_true_positives"] == 1
    assert results["missed_critical_true_positives"] == 0
    # Actions where the label names one: a same; b close vs block (less); d block vs close (more); c has none.
    assert results["action_agreement"]["counts"] == {"same": 1, "less_disruptive": 1, "more_disruptive": 1}
    assert results["action_agreement"]["same"] == pytest.approx(1 / 3, abs=1e-4)
    matrix = dict(zip(results["confusion_matrix"]["rows"], results["confusion_matrix"]["counts"]))
    assert matrix["true_positive"] == [1, 0, 1, 0]  # a right, b called false positive
    assert matrix["false_positive"] == [1, 1, 0, 0]  # d called true positive, c benign
    assert results["per_label"]["true_positive"]["precision"] == 0.5
    assert results["per_label"]["true_positive"]["recall"] == 0.5
    assert results["time_to_decision"]["n"] == 5

    skipped = results["skipped"]
    assert skipped["duplicate label (same alert, same label; counted once)"]["count"] == 1
    assert skipped["conflicting labels (same alert, different labels; alert left out)"]["count"] == 1
    assert skipped["label for an alert not in the stream (unknown id, or the alert was dead-lettered)"] == {
        "count": 1, "examples": ["ghost"]}
    assert skipped["malformed JSON"]["count"] == 1
    assert any(k.startswith("unknown label value") for k in skipped)
    assert skipped["alert without a label (run, not scored)"]["count"] == 1  # e
    files = results["files"]
    assert json.loads(Path(files["results"]).read_text())["verdict_agreement"] == 0.25
    assert "shadow run" in Path(files["report"]).read_text()
    assert fitter is not None


def _case_state(workdir: Path) -> list[dict]:
    import sqlite3

    db = sqlite3.connect(workdir / "soc-agent.db")
    rows = db.execute("SELECT a.alert_id, a.case_id, c.verdict, c.action FROM alerts a JOIN cases c "
                      "ON a.case_id = c.id").fetchall()
    db.close()
    return [dict(zip(("alert_id", "case_id", "verdict", "action"), r)) for r in rows]


def test_nothing_executes_in_shadow_mode(tmp_path):
    import sqlite3

    alerts, labels = _write(tmp_path, ALERTS[:1], LABELS[:1])
    run_shadow(alerts, labels, Settings(), ShadowOptions(out_dir=tmp_path / "out", rebase=False))
    db = sqlite3.connect(tmp_path / "out" / "replay" / "soc-agent.db")
    assert db.execute("SELECT count(*) FROM containments").fetchone()[0] == 0
    # "recorded" or "recorded (would need approval)": what would have happened, never an execution.
    statuses = {r[0] for r in db.execute("SELECT DISTINCT status FROM actions")}
    assert statuses and all(status.startswith("recorded") for status in statuses), statuses


def test_empty_label_set_is_reported_not_a_crash(tmp_path):
    alerts, labels = _write(tmp_path, ALERTS[:1], [], ["", '{"alert_id": "a", "label": "maybe"}'])
    results, fitter = run_shadow(alerts, labels, Settings(), ShadowOptions(out_dir=tmp_path / "out"))
    assert "no usable label" in results["error"]
    assert results["scored_alerts"] == 0 and fitter is None
    assert any(k.startswith("unknown label value") for k in results["skipped"])
    assert "no usable label" in json.loads((tmp_path / "out" / "shadow-results.json").read_text())["error"]


def test_action_comparison_uses_catalog_tiers():
    assert compare_actions("block_ip", "block_ip") == "same"
    assert compare_actions("isolate_host", "block_ip") == "more_disruptive"
    assert compare_actions(None, "close_case") == "less_disruptive"
    assert compare_actions("close_case", None) == "more_disruptive"
    assert compare_actions("block_domain", "block_ip") == "different_same_tier"


def _scores(per_class: dict[str, tuple[int, int, int, int, int]]) -> ShadowScores:
    """class -> (cases, alerts, agreeing alerts, risky cases, missed critical)."""
    scores = ShadowScores()
    for name, (cases, alerts, agree, risky, missed_critical) in per_class.items():
        stats = scores.per_class[name]
        stats.cases = {f"{name}-{i}" for i in range(cases)}
        stats.alerts, stats.agree = alerts, agree
        stats.risky_cases = {f"{name}-{i}" for i in range(risky)}
        stats.missed_critical = stats.missed = missed_critical
    return scores


def test_promotion_gate_promotes_only_a_class_that_meets_every_threshold():
    gate = GateConfig(min_cases=200, min_agreement=0.95)
    out = gate_classes(_scores({
        "brute_force": (210, 400, 392, 0, 0),  # 98%: promote
        "phishing": (150, 300, 299, 0, 0),  # too few cases
        "malware": (250, 500, 490, 1, 0),  # one risky recommendation
        "exfiltration": (220, 400, 399, 0, 1),  # one missed critical true positive
        "lolbin": (300, 500, 460, 0, 0),  # 92%
    }), gate, {})
    assert {k: v["decision"] for k, v in out.items()} == {
        "brute_force": "promote", "phishing": "hold", "malware": "hold", "exfiltration": "hold", "lolbin": "hold"}
    assert out["brute_force"]["mode"] == "autonomous"
    assert out["phishing"]["reasons"] == ["150 case(s) < 200"]
    assert out["malware"]["reasons"] == ["1 risky recommendation(s) > 0"]
    assert out["lolbin"]["reasons"] == ["verdict agreement 92.00% < 95%"]


def test_autonomous_class_whose_agreement_drops_is_demoted(tmp_path):
    gate = GateConfig(min_cases=200, min_agreement=0.95, min_cases_to_demote=20)
    current = {"brute_force": "autonomous", "phishing": "autonomous", "malware": "autonomous",
               "oauth_consent": "autonomous"}
    out = gate_classes(_scores({
        "brute_force": (40, 80, 64, 0, 0),  # 80% over 40 cases: demote
        "phishing": (10, 20, 10, 0, 0),  # 50% but only 10 cases: too few to judge, keep
        "malware": (5, 5, 5, 1, 0),  # a risky recommendation demotes at once
    }), gate, current)
    assert out["brute_force"]["decision"] == "demote" and out["brute_force"]["mode"] == "approval"
    assert "fell below 95%" in out["brute_force"]["reasons"][0]
    assert out["phishing"]["decision"] == "keep"
    assert out["malware"]["decision"] == "demote"
    assert out["oauth_consent"] == {**out["oauth_consent"], "decision": "keep", "mode": "autonomous"}
    # The suggestion file round-trips as the next run's current state.
    path = tmp_path / "autonomy.yml"
    write_autonomy(path, out, gate)
    assert read_autonomy(path) == {"brute_force": "approval", "phishing": "autonomous", "malware": "approval",
                                   "oauth_consent": "autonomous"}
    assert yaml.safe_load(path.read_text())["gate"]["min_cases"] == 200


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOC_AGENT_")}
    env.update(COLUMNS="300", NO_COLOR="1", TERM="dumb", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "soc_agent.cli", *args], cwd=cwd, env=env, capture_output=True,
                          timeout=300)


def test_cli_shadow_on_the_demo_stream_promotes_demotes_and_prints_json(tmp_path):
    autonomy = tmp_path / "current.yml"
    autonomy.write_text("autonomy:\n  exfiltration: {mode: autonomous}\n  brute_force: {mode: approval}\n")
    gate = tmp_path / "gate.yml"
    gate.write_text("gate:\n  min_cases: 5\n  min_agreement: 0.95\n  min_cases_to_demote: 5\n")
    demo = REPO / "evals"
    proc = _cli("shadow", str(demo / "demo_alerts.jsonl"), "--labels", str(demo / "demo_labels.jsonl"),
                "--out", str(tmp_path / "out"), "--workdir", str(tmp_path / "work"), "--autonomy", str(autonomy),
                "--gate", str(gate), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    results = json.loads(proc.stdout)
    assert {"verdict_agreement", "risky_recommendations", "missed_true_positives"} <= set(results)
    assert results["verdict_agreement"] > 0.95 and results["risky_recommendations"] == 0
    classes = results["per_class"]
    assert classes["brute_force"]["decision"] == "promote"
    assert classes["exfiltration"]["decision"] == "demote"  # 6 of 7 alerts agree: below 95%
    suggestion = yaml.safe_load((tmp_path / "out" / "autonomy.yml").read_text())
    assert suggestion["autonomy"]["exfiltration"]["mode"] == "approval"
    assert suggestion["autonomy"]["brute_force"]["mode"] == "autonomous"
    report = (tmp_path / "out" / "shadow-report.html").read_text()
    assert report.count("<svg") == 4  # confusion, agreement over time, calibration, the promotion gate
    assert results["gate"]["min_cases"] == 5 and "gate 5<" in report  # the gate this run used, drawn
    assert report.count('class="class-group"') == len(classes)


def test_cli_learn_imports_labels_and_reports_bad_input(tmp_path):
    alerts, labels = _write(tmp_path, ALERTS, LABELS)
    proc = _cli("learn", str(alerts), "--labels", str(labels), "--workdir", str(tmp_path / "work"), "--json",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    data = json.loads(proc.stdout)
    assert data["learned"] == 4 and data["by_label"] == {"true_positive": 2, "false_positive": 2}
    assert data["skipped"]["conflicting labels (same alert, different labels; alert left out)"]["count"] == 1
    assert (tmp_path / "work" / "tuning-suggestions.yml").exists()
    again = json.loads(_cli("learn", str(alerts), "--labels", str(labels), "--workdir", str(tmp_path / "work"),
                            "--json", cwd=tmp_path).stdout)
    assert again["learned"] == 0 and again["already_learned"] == 4
    missing = _cli("shadow", str(tmp_path / "nope.jsonl"), "--labels", str(labels), cwd=tmp_path)
    assert missing.returncode == 2 and b"not a file" in missing.stderr


def test_a_dead_lettered_alert_line_is_reported_with_its_whole_reason(tmp_path):
    ancient = json.dumps(json.loads(ALERTS[0]) | {"id": "old", "timestamp": "1980-01-02T08:30:00+00:00"}).encode()
    alerts, labels = _write(tmp_path, [*ALERTS, ancient], LABELS)
    results, _ = run_shadow(alerts, labels, Settings(), ShadowOptions(out_dir=tmp_path / "out", rebase=False))
    dead = results["skipped"]["alert line dead-lettered by intake (not run)"]
    assert dead["count"] == 1
    assert dead["examples"] == [("1 × timestamp … is before …: not a real alert time (first: timestamp "
                                 "1980-01-02T08:30:00+00:00 is before 1990: not a real alert time)")]
