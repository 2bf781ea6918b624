"""Idempotent execution: intent recorded before the call, result after.

The key of an action is (case, run, action, target, params): a retried or
replayed run finds its own intent and never acts twice. An intent without a
result (a crash between the call and the record) is settled by asking the
responder whether the effect is in place before calling it again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlmodel import select

from soc_agent.actions import CATALOG, ROLLBACKS
from soc_agent.audit import AuditLog
from connectors.base import Responder, ResponderError
from soc_agent.case_notes import note_rollback
from soc_agent.store import ActionRow, CaseRow, Store
from soc_agent.types import Entity, EntityKind, ProposedAction, to_db_time, utcnow


_EXECUTED = frozenset({"done", "expired", "rolled_back"})
"""Statuses of an action whose effect was made (and maybe since lifted): never overwritten by a record."""

class ActionExecutor:
    """Runs actions through the responder that holds their capability."""

    def __init__(self, store: Store, audit: AuditLog, responders: Iterable[Responder]) -> None:
        self.store = store
        self.audit = audit
        self._by_capability: dict[str, Responder] = {}
        self.note_files = None
        """Optional ``NoteFiles``: a rollback's notes line is mirrored to the case's markdown file too."""
        for responder in responders:
            for capability in responder.capabilities:
                self._by_capability.setdefault(capability, responder)

    @property
    def responders(self) -> list[Responder]:
        """The responders that hold some capability, in the order they were configured."""
        return list({id(r): r for r in self._by_capability.values()}.values())

    @property
    def capabilities(self) -> frozenset[str]:
        """Capabilities some configured responder holds."""
        return frozenset(self._by_capability)

    def execute(self, action: ProposedAction, case_id: str, run: int, approved_by: str | None = None,
                now: datetime | None = None) -> ActionRow:
        """Execute an allowed action exactly once for this case run."""
        now = to_db_time(now or utcnow())
        session = self.store.session
        key = f"{case_id}|{run}|{action.idempotency_key}"
        # Every ActionRow is flushed when it is added (below), so the lookup needs no flush of its own.
        row = session.exec(select(ActionRow).where(ActionRow.idempotency_key == key)).first()
        responder = self._by_capability.get(action.capability)
        if row is not None and row.status == "done":
            return row
        if row is not None and row.status == "intent" and responder is not None and responder.verify(action):
            row.status, row.completed_at = "done", now
            self.audit.append("action.settled", {"action_id": row.id, "key": key}, case_id, session=session)
            self.store.commit()
            return row
        if row is None:
            row = _new_row(action, case_id, key, now)
            row.approved_by = approved_by
            session.add(row)
            session.flush()  # its id, and findable by key
            self.audit.append("action.intent", {"action_id": row.id, "key": key, "approved_by": approved_by},
                              case_id, session=session)
            if not getattr(responder, "transactional", False):
                # The intent must be durable before the outside world changes. A transactional
                # responder changes only rows in this same transaction, which commit all or nothing.
                self.store.commit()
        if responder is None:
            return self._fail(row, case_id, f"no responder holds capability {action.capability}", now)
        try:
            result = responder.execute(action, case_id, row.id, now)
        except ResponderError as exc:
            return self._fail(row, case_id, str(exc), now)
        row.status, row.completed_at, row.result = "done", now, json.dumps(result, default=str)
        ttl = action.params.get("ttl_seconds")
        if ttl:
            row.expires_at = now + timedelta(seconds=int(ttl))
        self.audit.append("action.result", {"action_id": row.id, "status": "done", "result": result},
                          case_id, session=session)
        # The result becomes durable with the run's notes; a crash before that leaves the intent,
        # which the next attempt settles through verify() instead of acting twice.
        return row

    def record(self, action: ProposedAction, case_id: str, run: int, status: str, why: str) -> ActionRow:
        """Record an action that was not executed (shadow, denied, rejected, awaiting approval).

        An action of the same case, run and key that already ran keeps its row as it is.
        """
        now = to_db_time(utcnow())
        key = f"{case_id}|{run}|{action.idempotency_key}"
        session = self.store.session
        row = session.exec(select(ActionRow).where(ActionRow.idempotency_key == key)).first()
        if row is None:
            row = _new_row(action, case_id, key, now)
            session.add(row)
        elif row.status in _EXECUTED:
            # The effect is real: its row keeps saying so (and stays reversible); the later verdict is audited.
            self.audit.append("action.record_after_execution", {"action_id": row.id, "kept": row.status,
                                                                "refused": status, "why": why},
                              case_id, session=session)
            return row
        row.status, row.result = status, json.dumps({"why": why})
        session.flush()
        self.audit.append("action.recorded", {"action_id": row.id, "status": status, "why": why},
                          case_id, session=session)
        return row

    def verify(self, action: ProposedAction) -> bool:
        """Is the action's effect in place?"""
        responder = self._by_capability.get(action.capability)
        return responder is not None and responder.verify(action)

    def rollback(self, action_id: int, by: str = "cli") -> ActionRow:
        """Undo an executed action through its responder; raises ResponderError if it cannot be undone.

        Only what the action itself holds is undone: an action that found its effect already in place
        owns nothing, and an effect another action still holds stays. The case of the action, and of
        every other action that relied on an effect this lifted, gets its status re-checked and a line
        in its notes.
        """
        session = self.store.session
        row = session.get(ActionRow, action_id)
        if row is None:
            raise ResponderError(f"no action {action_id}")
        if row.status not in ("done", "expired"):
            raise ResponderError(f"action {action_id} is {row.status}; only executed actions roll back")
        spec = CATALOG.get(row.name)
        if spec is None or spec.rollback is None or spec.rollback not in ROLLBACKS:
            raise ResponderError(f"action {action_id} ({row.name}) is not reversible")
        action = _action_from_row(row)
        responder = self._by_capability.get(row.capability)
        if responder is None:
            raise ResponderError(f"no responder holds capability {row.capability}")
        now = to_db_time(utcnow())
        if getattr(responder, "owns_effects", False):
            result = responder.rollback(action, row.case_id, now, action_id=row.id)
        else:
            result = responder.rollback(action, row.case_id, now)
        was, row.status = row.status, "rolled_back"
        stored = _json(row.result)
        stored["rollback"] = {"by": by, "at": now.isoformat(), **result}
        row.result = json.dumps(stored, default=str)
        self.audit.append("action.rollback", {"action_id": row.id, "by": by, "result": result},
                          row.case_id, session=session)
        self._after_rollback(row, was, result, by, now)
        self.store.commit()
        return row

    def _after_rollback(self, row: ActionRow, was: str, result: dict, by: str, now: datetime) -> None:
        """Re-check the status of every case the rollback touched and add a line to its notes."""
        session = self.store.session
        session.flush()  # the queries below must see the rolled-back status
        what = f"action {row.id} ({row.name} on {row.target_value or '-'})"
        if was == "expired" and not result.get("lifted"):
            effect = "it had already expired; nothing lifted"
        elif result.get("owned") is False:
            held = result.get("still_held_by") or ([_json(row.result).get("held_by")] if _json(row.result).get(
                "held_by") else [])
            effect = "it owned nothing (already in effect" + (
                f": held by action {', '.join(str(h) for h in held)}" if held else "") + "); nothing lifted"
        elif result.get("lifted"):
            effect = "its effect was lifted"
        elif result.get("still_held_by"):
            effect = (f"its hold was released; the effect stays, held by action "
                      f"{', '.join(str(h) for h in result['still_held_by'])}"
                      + (f" until {result['expires_at']}" if result.get("expires_at") else ""))
        else:
            effect = "undone"
        touched = {row.case_id: f"{now:%Y-%m-%d %H:%M:%S} UTC: {what} rolled back by {by}: {effect}."}
        if result.get("lifted") and row.target_value is not None:
            # Actions of other cases that found this effect in place relied on it: it is gone for them too.
            for other in session.exec(select(ActionRow).where(
                    ActionRow.name == row.name, ActionRow.target_value == row.target_value,
                    ActionRow.status == "done", ActionRow.id != row.id)):
                if other.case_id not in touched:
                    touched[other.case_id] = (f"{now:%Y-%m-%d %H:%M:%S} UTC: {what} of case {row.case_id} rolled "
                                              f"back by {by} lifted the effect action {other.id} of this case "
                                              f"relied on.")
        for case_id, line in touched.items():
            case = session.get(CaseRow, case_id)
            if case is not None and case.status == "contained" and not self._still_contained(case_id):
                case.status = "open"
            if case is not None:
                case.updated_at = now
            note_rollback(self.store, case_id, line, rolled_back=row.id if case_id == row.case_id else None,
                          status=case.status if case is not None else None, note_files=self.note_files)

    def _still_contained(self, case_id: str) -> bool:
        """Does an executed containment of the case still have its effect in place?"""
        session = self.store.session
        for other in session.exec(select(ActionRow).where(ActionRow.case_id == case_id, ActionRow.status == "done")):
            if other.tier in ("observe", "dismiss") or not other.target_kind:
                continue
            if self.verify(_action_from_row(other)):
                return True
        return False

    def expire(self, now: datetime | None = None) -> int:
        """Lift every TTL'd effect that is due; each expiry is audited. Returns how many."""
        now = to_db_time(now or utcnow())
        lifted = 0
        session = self.store.session
        for responder in {id(r): r for r in self._by_capability.values()}.values():
            for effect, target, action_id in responder.expire(now):
                lifted += 1
                row = session.get(ActionRow, action_id) if action_id else None
                if row is not None and row.status == "done":
                    row.status = "expired"
                self.audit.append("action.expired", {"effect": effect, "target": target, "action_id": action_id},
                                  row.case_id if row else None, session=session)
        if lifted:
            self.store.commit()
        return lifted

    def _fail(self, row: ActionRow, case_id: str, reason: str, now: datetime) -> ActionRow:
        row.status, row.completed_at, row.result = "failed", now, json.dumps({"error": reason})
        self.audit.append("action.result", {"action_id": row.id, "status": "failed", "error": reason},
                          case_id, session=self.store.session)
        self.store.commit()
        return row


def _new_row(action: ProposedAction, case_id: str, key: str, now: datetime) -> ActionRow:
    return ActionRow(
        idempotency_key=key, case_id=case_id, name=action.name, tier=str(action.tier),
        capability=action.capability, target_kind=str(action.target.kind) if action.target else None,
        target_value=action.target.value if action.target else None,
        params=json.dumps(action.params, sort_keys=True), rollback=action.rollback, created_at=now,
    )


def _action_from_row(row: ActionRow) -> ProposedAction:
    target = Entity(kind=EntityKind(row.target_kind), value=row.target_value) if row.target_kind else None
    return ProposedAction(name=row.name, tier=row.tier, capability=row.capability, target=target,
                          params=json.loads(row.params), rollback=row.rollback)


def _json(text: str | None) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def describe_status(row: ActionRow) -> str:
    """The action's status with what it owns: ``done (already in effect: action 57)`` for an action that
    found its effect in place and so owns nothing."""
    result = _json(row.result)
    if row.status in ("done", "expired", "rolled_back") and result.get("owns") is False:
        held_by = result.get("held_by")
        return f"{row.status} (already in effect{f': action {held_by}' if held_by else ''}; owns nothing)"
    return row.status
