"""Guard reasons are data: an outcome and a text, written and read as today's ``outcome: text`` lines."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from soc_agent.types import Decision, Outcome, Reason


def test_a_reason_renders_as_the_line_the_store_keeps():
    assert str(Reason(Outcome.DENY, "kill switch engaged")) == "deny: kill switch engaged"
    assert str(Reason(Outcome.NEEDS_APPROVAL, "verdict undetermined")) == "needs_approval: verdict undetermined"
    assert str(Reason(Outcome.ALLOW, "shadow mode: recorded, not executed")) == "shadow mode: recorded, not executed"


def test_a_stored_line_parses_back_to_its_outcome():
    assert Reason.parse("deny: never block: 10.0.0.1 is a private address") == Reason(
        Outcome.DENY, "never block: 10.0.0.1 is a private address")
    assert Reason.parse("needs_approval: two-person rule: x").outcome is Outcome.NEEDS_APPROVAL
    assert Reason.parse("block_ip is tier contain_soft") == Reason(Outcome.ALLOW, "block_ip is tier contain_soft")
    # Only the exact prefix counts: a word that merely starts like an outcome is context.
    assert Reason.parse("denylist hit").outcome is Outcome.ALLOW


@given(st.text())
def test_every_line_survives_a_parse_unchanged(line):
    assert str(Reason.parse(line)) == line


@given(st.sampled_from([Outcome.DENY, Outcome.NEEDS_APPROVAL]), st.text())
def test_a_stricter_reason_round_trips_through_its_line(outcome, text):
    assert Reason.parse(str(Reason(outcome, text))) == Reason(outcome, text)


def test_a_decision_dumps_its_reasons_as_lines_and_reads_them_back():
    decision = Decision(outcome=Outcome.DENY, reasons=[Reason(Outcome.ALLOW, "block_ip is tier contain_soft"),
                                                       Reason(Outcome.DENY, "kill switch engaged")])
    lines = ["block_ip is tier contain_soft", "deny: kill switch engaged"]
    assert decision.reason_lines == lines
    assert decision.model_dump()["reasons"] == lines
    assert json.loads(decision.model_dump_json())["reasons"] == lines
    assert Decision.model_validate_json(decision.model_dump_json()) == decision
    assert Decision(outcome=Outcome.DENY, reasons=lines) == decision
    assert decision.reasons_for(Outcome.DENY) == [Reason(Outcome.DENY, "kill switch engaged")]
