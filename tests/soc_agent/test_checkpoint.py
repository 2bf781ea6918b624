"""Checkpoints revive only this project's own types."""

from __future__ import annotations

import dataclasses

from soc_agent.checkpoint import serializer
from soc_agent.types import (Alert, Decision, Entity, EntityKind, Outcome, Reason, VendorEvidence, VendorVerdict,
                             utcnow)


@dataclasses.dataclass
class Smuggled:
    """A type a tampered checkpoint might try to construct."""

    command: str = "rm -rf /"


def test_project_types_round_trip():
    serde = serializer()
    state = {"alert": Alert(id="a", source="native", rule_id="r", title="t", timestamp=utcnow(),
                            entities=[Entity(kind=EntityKind.IP, value="203.0.113.9")]),
             "decision": Decision(outcome=Outcome.DENY, reasons=["deny: test"])}
    assert serde.loads_typed(serde.dumps_typed(state)) == state


def test_a_decision_resumes_with_its_reasons_as_data():
    serde = serializer()
    decision = Decision(outcome=Outcome.NEEDS_APPROVAL, reasons=[Reason(Outcome.ALLOW, "approved by ana"),
                                                                 Reason(Outcome.NEEDS_APPROVAL, "two-person rule")])
    revived = serde.loads_typed(serde.dumps_typed({"decision": decision}))["decision"]
    assert revived == decision
    assert revived.reasons_for(Outcome.NEEDS_APPROVAL) == [Reason(Outcome.NEEDS_APPROVAL, "two-person rule")]


def test_an_alert_keeps_its_vendor_evidence_across_a_checkpoint():
    """A paused case resumes with the vendor's verdict intact, not a blocked or inert copy of it."""
    serde = serializer()
    alert = Alert(id="a", source="ocsf", rule_id="r", title="t", timestamp=utcnow(),
                  vendor=VendorEvidence(verdict=VendorVerdict.MALICIOUS, tactics=["Execution"]))
    revived = serde.loads_typed(serde.dumps_typed({"alert": alert}))["alert"]
    assert revived == alert
    assert revived.vendor.verdict is VendorVerdict.MALICIOUS


def test_a_foreign_type_is_not_revived():
    serde = serializer()
    revived = serde.loads_typed(serde.dumps_typed({"x": Smuggled()}))
    assert not isinstance(revived["x"], Smuggled)
    assert revived["x"] == {"command": "rm -rf /"}, "the data survives as inert values"
