"""A responder that keeps its effects in the store: the embedded default."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select

from soc_agent.responders.base import ResponderError
from soc_agent.store import CaseRow, ContainmentRow, NotificationRow, Store, TicketRow
from soc_agent.types import ProposedAction

# action name -> the containment effect it creates (and its rollback lifts)
_EFFECTS = {
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
    capabilities = frozenset({
        "case.annotate", "notify.send", "ticket.create", "ticket.close", "case.close",
        "firewall.block", "dns.block", "idp.revoke_sessions", "idp.force_mfa", "email.quarantine",
        "idp.revoke_grant", "edr.isolate", "idp.disable_user", "edr.kill_process", "edr.reimage",
        "edr.delete_file",
    })

    def __init__(self, store: Store, capabilities: frozenset[str] | None = None) -> None:
        self.store = store
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
        effect = _EFFECTS.get(action.name)
        if effect is None or action.target is None:
            raise ResponderError(f"local responder cannot run {action.name}")
        ttl = action.params.get("ttl_seconds")
        expires = now + timedelta(seconds=int(ttl)) if ttl else None
        row = session.get(ContainmentRow, (effect, action.target.value))
        if row is not None and row.active:
            # Already in place: extend a TTL'd block rather than stack a second one.
            if expires and row.expires_at and expires > row.expires_at:
                row.expires_at = expires
            return {"effect": effect, "target": action.target.value, "already_active": True,
                    "expires_at": row.expires_at.isoformat() if row.expires_at else None}
        if row is None:
            row = ContainmentRow(effect=effect, target=action.target.value, created_at=now)
            session.add(row)
        row.active, row.action_id, row.expires_at, row.created_at = True, action_id, expires, now
        row.detail = json.dumps({"case_id": case_id, "params": action.params})
        # Flushed so lookups by key (verify, a second block of the target) see it before the commit.
        session.flush()
        return {"effect": effect, "target": action.target.value,
                "expires_at": expires.isoformat() if expires else None}

    def verify(self, action: ProposedAction) -> bool:
        session = self.store.session
        if action.name == "open_ticket":
            return True
        if action.name == "close_case":
            return True
        effect = _EFFECTS.get(action.name)
        if effect is None or action.target is None:
            return action.name in ("annotate_case", "notify_analyst")
        row = session.get(ContainmentRow, (effect, action.target.value))
        return row is not None and row.active

    def rollback(self, action: ProposedAction, case_id: str, now: datetime) -> dict[str, Any]:
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
        effect = _EFFECTS.get(action.name)
        if effect is None or action.target is None or action.rollback is None:
            raise ResponderError(f"{action.name} has no rollback")
        row = session.get(ContainmentRow, (effect, action.target.value))
        if row is None or not row.active:
            return {"effect": effect, "target": action.target.value, "already_lifted": True}
        row.active = False
        return {"effect": effect, "target": action.target.value, "lifted": True}

    def expire(self, now: datetime) -> list[tuple[str, str, int | None]]:
        session = self.store.session
        due = session.exec(
            select(ContainmentRow).where(ContainmentRow.active == True, ContainmentRow.expires_at <= now)  # noqa: E712
        ).all()
        for row in due:
            row.active = False
        return [(row.effect, row.target, row.action_id) for row in due]
