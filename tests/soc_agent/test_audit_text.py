"""The audit trail in words: one sentence per record, for the CLI (`audit show`) and the case page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from soc_agent.audit import AuditRecord, canonical_json
from soc_agent.audit_text import describe

REPO = Path(__file__).resolve().parents[2]
TS = "2026-12-07T12:01:33.123456+00:00"


def _record(kind: str, payload: dict, case_id: str | None = "case-9f2") -> dict:
    return {"ts": TS, "kind": kind, "case_id": case_id, "payload": payload}


@pytest.mark.parametrize("kind, payload, sentence", [
    ("approval.decided", {"approval_id": 3, "decision": "approved", "by": "ana.lead", "role": "lead",
                          "comment": "host confirmed", "action": "isolate_host", "params": {}, "approvers": []},
     "2026-12-07 12:01 UTC ana.lead (lead) approved isolate_host (approval 3, case case-9f2): comment: host confirmed"),
    ("approval.decided", {"approval_id": 4, "decision": "edit", "by": "bo", "role": "analyst", "comment": "",
                          "action": "isolate_host", "edited_action": "notify_analyst", "params": {}},
     ("2026-12-07 12:01 UTC bo (analyst) approved with changes isolate_host as notify_analyst (approval 4, "
     "case case-9f2)")),
    ("decision", {"run": 2, "action": "block_ip", "outcome": "deny", "mode": "enforce",
                  "reasons": ["block_ip is tier contain_soft", "deny: 10.0.0.8 is in a never-block range"]},
     ("2026-12-07 12:01 UTC the guard said deny to block_ip (enforce mode) (run 2, case case-9f2): "
     "block_ip is tier contain_soft; deny: 10.0.0.8 is in a never-block range")),
    ("case.closed", {"by": "eve.hive", "role": "analyst", "source": "thehive", "disposition": "false_positive",
                     "reason": "ticket ~77 resolved as false_positive"},
     ("2026-12-07 12:01 UTC eve.hive (analyst, via thehive) closed the case as false_positive (case case-9f2): "
     "ticket ~77 resolved as false_positive")),
    ("case.reopened", {"by": "ana", "role": "lead", "source": "analyst", "reason": "user denies it",
                       "status": "open", "withdrawn_label": "benign_positive"},
     ("2026-12-07 12:01 UTC ana (lead) reopened the case (now open) (case case-9f2): withdrew: benign_positive; "
     "reason: user denies it")),
    ("case.assigned", {"by": "ana", "role": "lead", "assignee": "bo", "previous_assignee": None},
     "2026-12-07 12:01 UTC ana (lead) assigned the case to bo (case case-9f2)"),
    ("action.rollback", {"action_id": 12, "by": "cli", "result": {"lifted": True}},
     '2026-12-07 12:01 UTC cli rolled back action 12 (case case-9f2): {"lifted": true}'),
    ("approval.expired", {"approval_id": 5, "by": "soc-agent:expiry"},
     ("2026-12-07 12:01 UTC soc-agent:expiry let the request expire (approval 5, case case-9f2): nobody decided in "
     "time; the action was not run")),
])
def test_records_read_as_sentences(kind, payload, sentence):
    assert describe(_record(kind, payload)) == sentence


def test_a_stored_record_and_a_mapping_read_the_same():
    payload = {"approval_id": 3, "decision": "rejected", "by": "bo", "role": "analyst", "comment": "no",
               "action": "disable_account"}
    stored = AuditRecord(seq=1, ts=TS, kind="approval.decided", case_id="case-1", payload=canonical_json(payload),
                         prev_hash="0" * 64, hash="0" * 64)
    assert describe(stored) == describe(_record("approval.decided", payload, "case-1"))
    assert describe(stored).startswith("2026-12-07 12:01 UTC bo (analyst) rejected disable_account")


def test_an_unknown_kind_still_says_every_field():
    line = describe(_record("something.new", {"by": "svc", "count": 3, "where": "x"}, None))
    assert line == "2026-12-07 12:01 UTC svc recorded something.new: count=3, where=x"


def test_people_s_words_are_kept_as_given_for_the_caller_to_escape():
    hostile = "<script>x</script>\x1b[2J"
    line = describe(_record("case.commented", {"by": "eve", "role": "analyst", "comment": hostile}))
    assert line.endswith(": " + hostile)


def test_a_long_value_is_cut_with_a_count():
    line = describe(_record("action.result", {"action_id": 1, "status": "failed", "error": "e" * 1000}))
    assert "e" * 300 + "… (700 more chars)" in line


def test_every_kind_the_agent_records_has_a_wording():
    kinds = set()
    for path in (REPO / "soc_agent").rglob("*.py"):
        kinds |= set(re.findall(r'audit\.append(?:_many)?\(\s*"([a-z_.]+)"', path.read_text()))
    assert len(kinds) > 20
    missing = [k for k in sorted(kinds) if f" recorded {k}" in describe(_record(k, {}))]
    assert missing == []


def test_a_payload_that_is_not_json_is_said_as_text():
    line = describe({"ts": TS, "kind": "odd", "case_id": None, "payload": "not json"})
    assert line == "2026-12-07 12:01 UTC soc-agent recorded odd: payload=not json"
