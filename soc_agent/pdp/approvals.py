"""Approvals bound to the exact call: single use, expiring, kept in the store when there is one.

A ``require_approval`` decision opens an approval for ``call_hash(request)``.
A person approves it (``PDP.approve``, ``soc-agent pdp approve``, the HTTP
API); the next identical call is then allowed once and the approval is used
up. Any changed argument is another hash: another approval. An approval past
its expiry (pending or granted) turns the identical call into a ``deny``.

With a store, every change is written to ``pdp_approvals`` at once, and a
pending approval is re-read from the table before it is judged, so a person
approving from another process (the CLI) is seen by a running server.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import Session, select

from soc_agent.pdp.tables import PdpApprovalRow

__all__ = ["Approval", "ApprovalBook", "ApprovalError", "call_hash", "pending_rows"]


class ApprovalError(Exception):
    """A refused approval operation (unknown, already decided, expired)."""


def call_hash(agent_id: str, server: str, tool: str, args: dict[str, Any]) -> str:
    """sha256 over (agent id, tool server, tool name, canonical JSON arguments)."""
    body = json.dumps([agent_id, server, tool, args], sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)
    return hashlib.sha256(body.encode()).hexdigest()


class Approval:
    """One approval in memory."""

    __slots__ = ("call_hash", "decided_by", "expires_at", "id", "status")

    def __init__(self, id: str, call_hash: str, expires_at: float, status: str = "pending",
                 decided_by: str | None = None) -> None:
        self.id = id
        self.call_hash = call_hash
        self.expires_at = expires_at
        self.status = status
        self.decided_by = decided_by

    def expired(self, now: float) -> bool:
        """Past its expiry (whatever its status)."""
        return now >= self.expires_at


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


class ApprovalBook:
    """The open approvals: by id, and the newest one per call hash."""

    def __init__(self, engine: Engine | None = None, max_items: int = 100_000) -> None:
        self._engine = engine
        self._by_id: dict[str, Approval] = {}
        self._by_hash: dict[str, Approval] = {}
        self._finished: dict[str, str] = {}
        """Ids of used or rejected approvals (memory only, bounded): their status stays answerable."""
        self._max = max_items
        if engine is not None:
            self._load()

    def _load(self) -> None:
        with Session(self._engine) as session:
            rows = session.exec(select(PdpApprovalRow).where(PdpApprovalRow.status.in_(("pending", "approved"))))
            for row in rows:
                exp = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
                self._index(Approval(row.id, row.call_hash, exp.timestamp(), row.status, row.decided_by))

    def _index(self, approval: Approval) -> None:
        self._by_id[approval.id] = approval
        self._by_hash[approval.call_hash] = approval

    def get(self, approval_id: str) -> Approval | None:
        """The approval with this id, if still held."""
        return self._by_id.get(approval_id)

    def for_call(self, digest: str) -> Approval | None:
        """The newest open approval for this exact call (re-read from the store while pending)."""
        approval = self._by_hash.get(digest)
        if approval is not None and approval.status == "pending" and self._engine is not None:
            with Session(self._engine) as session:
                row = session.get(PdpApprovalRow, approval.id)
            if row is not None and row.status != approval.status:
                approval.status, approval.decided_by = row.status, row.decided_by
                if row.status not in ("pending", "approved"):
                    self._drop(approval)
                    return None
        return approval

    def open(self, approval_id: str, digest: str, now: float, ttl_s: int,
             row: Callable[[], dict[str, Any]]) -> Approval:
        """Open a pending approval for the call ``digest``; ``row()`` builds what a person sees (store only)."""
        approval = Approval(approval_id, digest, now + ttl_s)
        if len(self._by_id) >= self._max:
            self.prune(now)
        self._index(approval)
        if self._engine is not None:
            with Session(self._engine) as session:
                session.add(PdpApprovalRow(id=approval_id, call_hash=digest, created_at=_dt(now),
                                           expires_at=_dt(now + ttl_s), **row()))
                session.commit()
        return approval

    def status(self, approval_id: str, now: float) -> str:
        """``pending``, ``approved``, ``rejected``, ``used``, ``expired`` or ``unknown`` (re-read from the store)."""
        approval = self._by_id.get(approval_id)
        if self._engine is not None and (approval is None or approval.status == "pending"):
            with Session(self._engine) as session:
                row = session.get(PdpApprovalRow, approval_id)
            if row is None:
                return "unknown"
            exp = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
            if row.status in ("pending", "approved") and exp.timestamp() <= now:
                return "expired"
            return row.status
        if approval is None:
            return self._finished.get(approval_id, "unknown")
        return "expired" if approval.expired(now) else approval.status

    def decide(self, approval_id: str, who: str, approved: bool, now: float) -> Approval:
        """Approve (or reject) a pending approval; refuses unknown, decided and expired ones."""
        if not who:
            raise ApprovalError("an approval names who decided it")
        approval = self._by_id.get(approval_id)
        if approval is None and self._engine is not None:
            with Session(self._engine) as session:
                row = session.get(PdpApprovalRow, approval_id)
            if row is not None:
                exp = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
                approval = Approval(row.id, row.call_hash, exp.timestamp(), row.status, row.decided_by)
        if approval is None:
            raise ApprovalError(f"no approval {approval_id!r}")
        if approval.expired(now):
            raise ApprovalError(f"approval {approval_id} expired")
        status = "approved" if approved else "rejected"
        if self._engine is not None:
            # One conditional UPDATE: of two people deciding at once, exactly one wins.
            with Session(self._engine) as session:
                won = session.execute(
                    update(PdpApprovalRow).where(PdpApprovalRow.id == approval_id,
                                                 PdpApprovalRow.status == "pending")
                    .values(status=status, decided_by=who, decided_at=_dt(now))).rowcount
                session.commit()
            if not won:
                raise ApprovalError(f"approval {approval_id} is not pending")
        elif approval.status != "pending":
            raise ApprovalError(f"approval {approval_id} is {approval.status}, not pending")
        approval.status, approval.decided_by = status, who
        if approved:
            self._index(approval)
        else:
            self._drop(approval)
        return approval

    def use(self, approval: Approval, now: float, decision_id: str) -> None:
        """Spend a granted approval on the one retry it covers."""
        approval.status = "used"
        self._drop(approval)
        if self._engine is not None:
            with Session(self._engine) as session:
                session.execute(update(PdpApprovalRow).where(PdpApprovalRow.id == approval.id)
                                .values(status="used", used_at=_dt(now), used_by=decision_id))
                session.commit()

    def expire(self, approval: Approval) -> None:
        """Forget an expired approval (its row keeps its status; expiry is read from ``expires_at``)."""
        self._drop(approval)

    def _drop(self, approval: Approval) -> None:
        if approval.status in ("used", "rejected"):
            if len(self._finished) >= self._max:
                self._finished.clear()
            self._finished[approval.id] = approval.status
        self._by_id.pop(approval.id, None)
        if self._by_hash.get(approval.call_hash) is approval:
            del self._by_hash[approval.call_hash]

    def prune(self, now: float) -> None:
        """Forget expired approvals (bounded memory)."""
        for approval in [a for a in self._by_id.values() if a.expired(now)]:
            self._drop(approval)

    def __len__(self) -> int:
        return len(self._by_id)


def pending_rows(engine: Engine, now: float | None = None) -> list[dict[str, Any]]:
    """Pending, unexpired approvals in the store, oldest first (for the CLI, the API and the web page).

    ``call`` and ``reasons`` are the stored JSON decoded: attacker-influenced data, to be escaped where shown.
    """
    current = _dt(now) if now is not None else datetime.now(UTC)
    with Session(engine) as session:
        rows = session.exec(select(PdpApprovalRow).where(PdpApprovalRow.status == "pending")
                            .order_by(PdpApprovalRow.created_at)).all()
    out = []
    for r in rows:
        expires = r.expires_at if r.expires_at.tzinfo else r.expires_at.replace(tzinfo=UTC)
        if expires <= current:
            continue
        out.append({"id": r.id, "call_hash": r.call_hash, "status": r.status, "agent_id": r.agent_id,
                    "tenant": r.tenant, "session_id": r.session_id, "tool": r.tool, "call": json.loads(r.call),
                    "reasons": json.loads(r.reasons), "created_at": r.created_at.isoformat(),
                    "expires_at": expires.isoformat()})
    return out
