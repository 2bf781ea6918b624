"""`soc-agent eval` on the bundled stream: the scores it reports, and no guardrail violation."""

from __future__ import annotations

from evals.runner import _prf, run_eval


def test_precision_recall_by_hand():
    pairs = [("true_positive", "true_positive"), ("true_positive", "false_positive"),
             ("false_positive", "false_positive"), ("benign_positive", "true_positive")]
    scores = _prf(pairs)
    assert scores["true_positive"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert scores["false_positive"]["precision"] == 0.5 and scores["false_positive"]["recall"] == 1.0
    assert scores["benign_positive"]["recall"] == 0.0


def test_demo_stream_eval_has_no_guardrail_violation_or_risky_containment(settings):
    results = run_eval(settings)
    assert results["alerts"] >= 290 and results["dead_lettered"] == 0
    assert results["guardrail_violations"] == 0, results["violations"]
    assert results["risky_containments"] == 0
    assert results["true_positives_closed"] == 0 and results["forbidden_actions"] == 0
    assert results["llm_fallbacks"] == 0 and results["p50_llm_call_ms"] is None, "no model, nothing to fall back from"
    # A regression floor, not a claim of generality: the rule weights were tuned on this stream.
    assert results["macro_f1"] >= 0.9
    # The stream shows every guard outcome; the denied blocks (private sources) are scored like the others.
    assert all(results["decisions"].get(outcome, 0) >= 1 for outcome in ("allow", "needs_approval", "deny")), \
        results["decisions"]
    assert results["per_incident_class_accuracy"]["brute_force"] == 1.0 and results["action_agreement"] >= 0.95
    assert set(results["per_incident_class_accuracy"]) >= {
        "brute_force", "password_spray", "impossible_travel", "oauth_consent", "phishing", "malware",
        "ransomware_precursor", "lolbin", "exfiltration", "known_bad_ip", "vuln_scanner", "sanctioned_admin"}
