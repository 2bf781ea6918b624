"""ActionExecutor: intent before the call, result after; failures stay failures; once per case run; own rollback."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from soc_agent.audit import AuditLog, records
from connectors.base import ResponderError
from soc_agent.responders import ActionExecutor, LocalResponder
from soc_agent.responders.local import CASE_CAPABILITIES
from soc_agent.store import ActionRow, ContainmentRow, Store
from soc_agent.types import Entity, EntityKind, ProposedAction, Tier, to_db_time, utcnow

X, Y = "203.0.113.77", "203.0.113.78"


def _block(ip: str = X, ttl: int = 3600) -> ProposedAction:
    return ProposedAction(name="block_ip", tier=Tier.CONTAIN_SOFT, capability="firewall.block",
                          target=Entity(kind=EntityKind.IP, value=ip), params={"ttl_seconds": ttl},
                          rollback="unblock_ip")


@pytest.fixture
def store(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.close()


@pytest.fixture
def audit(store):
    return AuditLog(store.engine)


@pytest.fixture
def local(store, audit):
    """The executor over the store-backed responder, as the embedded default runs it."""
    return ActionExecutor(store, audit, [LocalResponder(store)])


def _kinds(store: Store, case_id: str) -> list[str]:
    store.commit()
    return [r.kind for r in records(store.engine, case_id)]


class _ProcessDied(BaseException):
    """The process stops mid-call (killed, power lost): nothing after the call runs."""


class Firewall:
    """A remote firewall's responder: effects outside the store, so the executor commits the intent first."""

    name = "test-firewall"
    capabilities = frozenset({"firewall.block"})

    def __init__(self, store: Store | None = None, fail_with: BaseException | None = None) -> None:
        self.store = store
        self.fail_with = fail_with
        self.blocked: set[str] = set()
        self.calls = 0
        self.intent_durable: bool | None = None

    def execute(self, action, case_id, action_id, now):
        self.calls += 1
        if self.store is not None:  # what another process would see of the intent right now
            with self.store.reader() as session:
                row = session.get(ActionRow, action_id)
                self.intent_durable = row is not None and row.status == "intent"
        if self.fail_with is not None:
            raise self.fail_with
        self.blocked.add(action.target.value)
        return {"rule_id": f"fw-{action_id}"}

    def verify(self, action):
        return action.target.value in self.blocked

    def rollback(self, action, case_id, now):
        self.blocked.discard(action.target.value)
        return {"lifted": True}

    def expire(self, now):
        return []


def test_an_action_runs_through_the_responder_holding_its_capability_and_its_effect_verifies(store, local):
    assert not local.verify(_block())
    row = local.execute(_block(ttl=600), "case-a", run=1, approved_by="lead.ana")
    assert row.status == "done" and row.approved_by == "lead.ana"
    assert row.idempotency_key == f"case-a|1|block_ip|ip:{X}|ttl_seconds=600"
    assert row.expires_at == row.completed_at + timedelta(seconds=600)
    assert json.loads(row.result)["owns"] is True
    assert store.session.get(ContainmentRow, ("blocked_ip", X)).active
    assert local.verify(_block())
    assert _kinds(store, "case-a") == ["action.intent", "action.result"]


def test_the_intent_is_durable_before_an_outside_responder_is_called(store, audit):
    firewall = Firewall(store)
    executor = ActionExecutor(store, audit, [firewall, LocalResponder(store)])
    row = executor.execute(_block(), "case-a", run=1)
    assert firewall.calls == 1 and firewall.intent_durable is True
    assert row.status == "done" and json.loads(row.result) == {"rule_id": f"fw-{row.id}"}
    assert store.session.get(ContainmentRow, ("blocked_ip", X)) is None, "the first responder with it is used"


def test_a_responder_error_is_recorded_as_a_durable_failure_and_nothing_claims_success(store, audit):
    executor = ActionExecutor(store, audit, [Firewall(fail_with=ResponderError("firewall API refused: 403"))])
    row = executor.execute(_block(), "case-a", run=1)
    assert row.status == "failed" and json.loads(row.result) == {"error": "firewall API refused: 403"}
    with store.reader() as session:  # committed: a crash now does not lose the failure
        assert session.get(ActionRow, row.id).status == "failed"
    assert not executor.verify(_block())
    [result] = [json.loads(r.payload) for r in records(store.engine, "case-a") if r.kind == "action.result"]
    assert result["status"] == "failed" and result["error"] == "firewall API refused: 403"


def test_an_action_no_responder_holds_fails_with_that_reason(store, audit):
    executor = ActionExecutor(store, audit, [LocalResponder(store, CASE_CAPABILITIES)])
    row = executor.execute(_block(), "case-a", run=1)
    assert row.status == "failed"
    assert json.loads(row.result)["error"] == "no responder holds capability firewall.block"
    assert store.session.get(ContainmentRow, ("blocked_ip", X)) is None


def test_a_rerun_of_the_same_case_run_and_action_executes_nothing_twice(store, audit):
    firewall = Firewall()
    executor = ActionExecutor(store, audit, [firewall])
    first = executor.execute(_block(), "case-a", run=1)
    again = executor.execute(_block(), "case-a", run=1)
    assert again.id == first.id and firewall.calls == 1
    assert len(store.session.exec(select(ActionRow)).all()) == 1
    assert _kinds(store, "case-a") == ["action.intent", "action.result"]
    other_params = executor.execute(_block(ttl=60), "case-a", run=1)
    assert other_params.id != first.id and firewall.calls == 2, "other params are another intent"


def test_an_intent_left_by_a_crash_after_the_call_is_settled_by_verify_not_called_again(store, audit):
    firewall = Firewall()
    executor = ActionExecutor(store, audit, [firewall])
    row = executor.execute(_block(), "case-a", run=1)
    row.status, row.result, row.completed_at = "intent", "{}", None  # the result never became durable
    store.commit()
    settled = executor.execute(_block(), "case-a", run=1)
    assert settled.id == row.id and settled.status == "done"
    assert firewall.calls == 1, "the effect was in place: the firewall is not called again"
    assert "action.settled" in _kinds(store, "case-a")


def test_an_intent_left_by_a_crash_during_the_call_is_executed_on_retry(store, audit):
    crashing = Firewall(fail_with=_ProcessDied())
    with pytest.raises(_ProcessDied):
        ActionExecutor(store, audit, [crashing]).execute(_block(), "case-a", run=1)
    store.rollback()  # what the dead process had not committed is gone
    [intent] = store.session.exec(select(ActionRow)).all()
    assert intent.status == "intent", "the intent was committed before the call"
    firewall = Firewall()
    row = ActionExecutor(store, audit, [firewall]).execute(_block(), "case-a", run=1)
    assert row.id == intent.id and row.status == "done" and firewall.calls == 1
    assert firewall.verify(_block())


def test_record_keeps_what_did_not_run_and_runs_nothing(store, local):
    row = local.record(_block(), "case-a", 1, "recorded", "shadow mode")
    assert row.status == "recorded" and json.loads(row.result) == {"why": "shadow mode"}
    assert store.session.get(ContainmentRow, ("blocked_ip", X)) is None
    again = local.record(_block(), "case-a", 1, "denied", "kill switch engaged")
    assert again.id == row.id and again.status == "denied", "one row per intent, its latest status"
    assert _kinds(store, "case-a") == ["action.recorded", "action.recorded"]


def test_a_rollback_undoes_this_actions_effect_and_no_other(store, local):
    mine = local.execute(_block(X), "case-a", run=1)
    other = local.execute(_block(Y), "case-b", run=1)
    store.commit()
    rolled = local.rollback(mine.id, by="analyst.bo")
    assert rolled.status == "rolled_back"
    rollback = json.loads(rolled.result)["rollback"]
    assert rollback["by"] == "analyst.bo" and rollback["lifted"] is True
    assert not store.session.get(ContainmentRow, ("blocked_ip", X)).active
    assert store.session.get(ContainmentRow, ("blocked_ip", Y)).active
    assert store.session.get(ActionRow, other.id).status == "done"
    assert "action.rollback" in _kinds(store, "case-a") and "action.rollback" not in _kinds(store, "case-b")


def test_what_cannot_be_rolled_back_is_refused_with_the_reason(store, local):
    with pytest.raises(ResponderError, match="no action 999"):
        local.rollback(999)
    recorded = local.record(_block(), "case-a", 1, "recorded", "shadow mode")
    with pytest.raises(ResponderError, match="is recorded; only executed actions roll back"):
        local.rollback(recorded.id)
    revoke = ProposedAction(name="revoke_sessions", tier=Tier.CONTAIN_SOFT, capability="idp.revoke_sessions",
                            target=Entity(kind=EntityKind.USER, value="dave"))
    done = local.execute(revoke, "case-a", run=1)
    with pytest.raises(ResponderError, match="not reversible"):
        local.rollback(done.id)
    assert store.session.get(ActionRow, done.id).status == "done"


def test_due_effects_expire_once_and_are_marked_expired(store, local):
    start = to_db_time(utcnow())
    row = local.execute(_block(ttl=600), "case-a", run=1, now=start)
    store.commit()
    assert local.expire(start + timedelta(seconds=599)) == 0
    assert local.expire(start + timedelta(seconds=601)) == 1
    assert store.session.get(ActionRow, row.id).status == "expired"
    assert not store.session.get(ContainmentRow, ("blocked_ip", X)).active
    assert local.expire(start + timedelta(seconds=700)) == 0, "an expired effect is not lifted twice"


def test_recording_an_action_that_already_ran_keeps_it_executed_and_reversible(store, local):
    row = local.execute(_block(), "case-a", run=1)
    local.record(_block(), "case-a", 1, "denied", "kill switch engaged")
    assert store.session.get(ContainmentRow, ("blocked_ip", X)).active, "the block is in place"
    assert store.session.get(ActionRow, row.id).status == "done", "so its action says it ran"
    local.rollback(row.id, by="analyst.bo")  # and it can be undone
    assert not store.session.get(ContainmentRow, ("blocked_ip", X)).active
