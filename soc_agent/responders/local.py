"""A responder that keeps its effects in the store: the embedded default."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select

from connectors.base import ResponderError
from soc_agent.store import CaseRow, ContainmentRow, NotificationRow, Store, TicketRow
from soc_agent.store.tables import ContainmentHoldRow
from soc_agent.types import ProposedAction

# action name -> the containment effect it creates (and its rollback lifts); the approval queue reads it too
EFFECTS = {
    "block_ip": "blocked_ip",
    "block_domain": "blocked_domain",
    "revoke_sessions": "revoked_sessions",
    "force_mfa": "forced_mfa",
    "quarantine_email": "quarantined_email",
    "revoke_oauth_grant": "revoked_oauth_grant",
    "isolate_host": "isolated_host",
    "disable_account": "disabled_account",
    "kill_process": "killed_process",
    "reimage_host": "reimaged_host",
    "delete_file": "deleted_file",
}


CASE_CAPABILITIES = frozenset({"case.annotate", "case.close"})
"""What stays local when real connectors are configured: the case itself lives in the store."""


class LocalResponder:
    """Implements every catalog capability against the store's tables."""

    name = "local"
    transactional = True
    """Effects are rows in the store's transaction: they commit with the intent and the result."""
    owns_effects = True
    """Knows which action holds each effect: ``rollback`` takes the action's id and releases only its hold."""
    capabilities = frozenset({
        "case.annotate", "notify.send", "ticket.create", "ticket.close", "case.close",
        "firewall.block", "dns.block", "idp.revoke_sessions", "idp.force_mfa", "email.quarantine",
        "idp.revoke_grant", "edr.isolate", "idp.disable_user", "edr.kill_process", "edr.reimage",
        "edr.delete_file",
    })

    def __init__(self, store: Store, capabilities: frozenset[str] | None = None) -> None:
        self.store = store
        self._backfilled = False
        if capabilities is not None:
            # Beside real connectors the store-only effects would be make-believe: only what is
            # granted here stays local (e.g. case annotations and closure).
            self.capabilities = LocalResponder.capabilities & capabilities

    def execute(self, action: ProposedAction, case_id: str, action_id: int, now: datetime) -> dict[str, Any]:
        session = self.store.session
        if action.name == "annotate_case":
            return {"annotated": True}
        if action.name == "notify_analyst":
            session.add(NotificationRow(case_id=case_id, message=f"case {case_id} needs a look", created_at=now))
            return {"notified": "soc"}
        # Tickets and containments are flushed as they are added (below), so lookups by key find them.
        if action.name == "open_ticket":
            existing = session.exec(
                select(TicketRow).where(TicketRow.case_id == case_id, TicketRow.status == "open")
            ).first()
            if existing is not None:
                return {"ticket_id": existing.id, "already_open": True}
            ticket = TicketRow(case_id=case_id, title=f"soc-agent case {case_id}", created_at=now)
            session.add(ticket)
            session.flush()
            return {"ticket_id": ticket.id}
        if action.name == "close_case":
            case = session.get(CaseRow, case_id)
            if case is not None:
                case.status = "closed"
            return {"closed": case_id}
        effect = EFFECTS.get(action.name)
        if effect is None or action.target is None:
            raise ResponderError(f"local responder cannot run {action.name}")
        ttl = action.params.get("ttl_seconds")
        expires = now + timedelta(seconds=int(ttl)) if ttl else None
        return self._hold(effect, action.target.value, action, case_id, action_id, expires, now)

    def verify(self, action: ProposedAction) -> bool:
        session = self.store.session
        if action.name == "open_ticket":
            return True
        if action.name == "close_case":
            return True
        effect = EFFECTS.get(action.name)
        if effect is None or action.target is None:
            return action.name in ("annotate_case", "notify_analyst")
        row = session.get(ContainmentRow, (effect, action.target.value))
        return row is not None and row.active

    def rollback(self, action: ProposedAction, case_id: str, now: datetime,
                 action_id: int | None = None) -> dict[str, Any]:
        """Undo the action: release what ``action_id`` holds; the effect is lifted with its last hold."""
        session = self.store.session
        if action.name == "open_ticket":
            for ticket in session.exec(select(TicketRow).where(TicketRow.case_id == case_id)):
                ticket.status = "closed"
            return {"tickets_closed": case_id}
        if action.name == "close_case":
            case = session.get(CaseRow, case_id)
            if case is not None:
                case.status = "open"
            return {"reopened": case_id}
        effect = EFFECTS.get(action.name)
        if effect is None or action.target is None or action.rollback is None:
            raise ResponderError(f"{action.name} has no rollback")
        # Without the action's id (an old caller) nothing says what it owns: the effect and every hold go.
        return self._release(effect, action.target.value, action_id, now, "rolled_back")

    def expire(self, now: datetime) -> list[tuple[str, str, int | None]]:
        """Release every hold whose TTL ran out; a containment is lifted with its last hold."""
        session = self.store.session
        self._backfill()
        due = session.exec(
            select(ContainmentHoldRow).where(ContainmentHoldRow.active == True,
                                             ContainmentHoldRow.expires_at <= now)
        ).all()
        expired = []
        for hold in due:
            self._release(hold.effect, hold.target, hold.action_id, now, "expired")
            expired.append((hold.effect, hold.target, hold.action_id))
        # Containments no hold explains (none should remain after the backfill) lapse on their own expiry.
        for row in session.exec(select(ContainmentRow).where(
                ContainmentRow.active == True, ContainmentRow.expires_at <= now)).all():
            if not self._active_holds(row.effect, row.target):
                row.active = False
                expired.append((row.effect, row.target, None))
        session.flush()
        return expired

    # ---- ownership ------------------------------------------------------------------------------

    def holders(self, effect: str, target: str) -> list[ContainmentHoldRow]:
        """The active holds on (effect, target), latest expiry first (no TTL first of all)."""
        self._backfill()
        return self._active_holds(effect, target)

    def _active_holds(self, effect: str, target: str) -> list[ContainmentHoldRow]:
        holds = self.store.session.exec(select(ContainmentHoldRow).where(
            ContainmentHoldRow.effect == effect, ContainmentHoldRow.target == target,
            ContainmentHoldRow.active == True)).all()
        return sorted(holds, key=lambda h: (h.expires_at is not None, -(h.expires_at.timestamp())
                                            if h.expires_at else 0, h.action_id))

    def _backfill(self) -> None:
        """Containments made before holds existed get one hold for the action that made them (once)."""
        if self._backfilled:
            return
        session = self.store.session
        for row in session.exec(select(ContainmentRow).where(ContainmentRow.active == True)).all():
            if row.action_id is None or self._active_holds(row.effect, row.target):
                continue
            if session.exec(select(ContainmentHoldRow).where(ContainmentHoldRow.action_id == row.action_id)).first():
                continue
            case_id = json.loads(row.detail or "{}").get("case_id", "")
            session.add(ContainmentHoldRow(effect=row.effect, target=row.target, action_id=row.action_id,
                                           case_id=case_id, created_at=row.created_at, expires_at=row.expires_at))
        session.flush()
        self._backfilled = True

    def _hold(self, effect: str, target: str, action: ProposedAction, case_id: str, action_id: int,
              expires: datetime | None, now: datetime) -> dict[str, Any]:
        """Apply the effect for ``action_id``: a new hold when it creates or extends it, none when it is
        already in place for at least as long (the action then owns nothing)."""
        session = self.store.session
        self._backfill()
        base = {"effect": effect, "target": target}
        mine = session.exec(select(ContainmentHoldRow).where(ContainmentHoldRow.action_id == action_id)).first()
        row = session.get(ContainmentRow, (effect, target))
        holds = self._active_holds(effect, target) if row is not None and row.active else []
        if mine is not None and mine.active:  # a repeat of the same action
            return {**base, "owns": True, "expires_at": _iso(row.expires_at if row else mine.expires_at)}
        covering = next((h for h in holds if h.expires_at is None or (expires is not None and h.expires_at >= expires)),
                        None)
        if covering is not None:
            # Already in effect for at least as long: this action changes nothing and owns nothing.
            return {**base, "already_active": True, "owns": False, "held_by": covering.action_id,
                    "expires_at": _iso(row.expires_at)}
        if mine is None:
            session.add(ContainmentHoldRow(effect=effect, target=target, action_id=action_id, case_id=case_id,
                                           created_at=now, expires_at=expires))
        else:  # the same action run again after its hold was released
            mine.active, mine.expires_at, mine.released_at, mine.released_why = True, expires, None, None
        already = row is not None and row.active
        if row is None:
            row = ContainmentRow(effect=effect, target=target, created_at=now)
            session.add(row)
        if not already:
            row.created_at = now
            row.detail = json.dumps({"case_id": case_id, "params": action.params})
        # The effect lasts as long as its longest hold; the action that sets that expiry is its owner of record.
        row.active, row.action_id, row.expires_at = True, action_id, expires
        # Flushed so lookups by key (verify, a second block of the target) see it before the commit.
        session.flush()
        result = {**base, "owns": True, "expires_at": _iso(expires)}
        if already:
            result.update(already_active=True, shared_with=[h.action_id for h in holds])
        return result

    def _release(self, effect: str, target: str, action_id: int | None, now: datetime, why: str) -> dict[str, Any]:
        """Release ``action_id``'s hold (every hold when None); lift the effect when none is left."""
        session = self.store.session
        self._backfill()
        base = {"effect": effect, "target": target}
        row = session.get(ContainmentRow, (effect, target))
        holds = self._active_holds(effect, target)
        mine = [h for h in holds if action_id is None or h.action_id == action_id]
        if not mine:
            if row is None or not row.active:
                return {**base, "owned": False, "lifted": False, "already_lifted": True}
            if action_id is None:
                row.active = False
                session.flush()
                return {**base, "owned": False, "lifted": True}
            return {**base, "owned": False, "lifted": False, "still_held_by": [h.action_id for h in holds],
                    "expires_at": _iso(row.expires_at)}
        for hold in mine:
            hold.active, hold.released_at, hold.released_why = False, now, why
        rest = [h for h in holds if h not in mine]
        if row is None:
            session.flush()
            return {**base, "owned": True, "lifted": False}
        if not rest:
            row.active = False
            session.flush()
            return {**base, "owned": True, "lifted": True}
        # Others still hold it: it stays, for as long as the longest of them.
        row.action_id, row.expires_at = rest[0].action_id, rest[0].expires_at
        session.flush()
        return {**base, "owned": True, "lifted": False, "still_held_by": [h.action_id for h in rest],
                "expires_at": _iso(row.expires_at)}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
