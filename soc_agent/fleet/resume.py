"""Approvals in a fleet: the server records the decision, the case's owner resumes the run.

A paused run belongs to the worker that owns its case's partition, like
every other step of that case. So ``soc-agent serve`` with a broker never
resumes a paused LangGraph thread itself: the approval queue decides as
always (the ``_claim`` step, votes, audit) and then hands the decision to
:class:`FleetResumer`, which

1. finds the case's partition (the partition its alerts were taken in on:
   ``fleet_inbox`` joined with ``alerts``, as the workers rebuild it),
2. writes and commits an ``approval_resumes`` row (:class:`ResumeRow`) with
   a fresh token, and only then
3. queues a ``kind=resume`` message carrying the answer and the token on
   that partition's stream, after the case's earlier alerts.

The worker that owns the partition reads it in order with the alerts
(``Worker._resume``): it checks the row (the token must match and the approval must be decided, else the
message is stale and skipped), resumes the thread unless it already ran,
and records who ran it in the row, the inbox and the audit in one commit.
Delivery is at least once; effects are exactly once because

* a redelivered message whose inbox row exists is acknowledged, not redone;
* a resume recorded in its row is never run again, whatever message asks;
* a run that finished before its record was committed (a crash in between)
  is no longer paused: it is recorded, not run again;
* an action whose intent was committed before a crash is settled by the
  new owner (``Worker._settle_intents``) and found by the re-run's executor
  under the same idempotency key.

A case that no worker took in (filed by an embedded run before the fleet
existed) has no owner: its resume runs in the server, as in embedded mode.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import delete, text

from soc_agent.fleet.broker import Broker
from soc_agent.fleet.tables import ResumeRow
from soc_agent.types import to_db_time, utcnow

__all__ = ["FleetResumer", "ResumePayload", "case_partition"]

KIND = "resume"
"""The ``kind`` field of a resume message on a partition stream."""


def case_partition(session, case_id: str) -> int | None:
    """The partition whose owner holds ``case_id`` (its newest taken-in alert's), or None if no worker took it in."""
    return session.execute(text(
        "SELECT i.partition FROM fleet_inbox i JOIN alerts a ON a.key = i.alert_key WHERE a.case_id = :case "
        "ORDER BY i.processed_at DESC, i.message_id DESC LIMIT 1"), {"case": case_id}).scalar()


class ResumePayload(dict):
    """What a resume message carries: ``approval_id``, ``case_id``, ``thread_id``, ``decision``, ``token``, ``answer``.

    ``answer`` is what the paused run's ``interrupt()`` receives (see ``Pipeline.resume_answer``).
    """

    @classmethod
    def parse(cls, raw: bytes) -> ResumePayload:
        """Decode a message's ``raw`` field; ``ValueError`` (or ``TypeError``) when it is not a resume payload."""
        try:
            value = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"resume message is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise TypeError("resume message is not a JSON object")
        missing = [k for k in ("approval_id", "case_id", "thread_id", "decision", "token", "answer")
                   if k not in value]
        if missing:
            raise ValueError(f"resume message lacks {', '.join(missing)}")
        if not isinstance(value["approval_id"], int) or not isinstance(value["answer"], dict):
            raise TypeError("resume message: approval_id must be an integer and answer an object")
        return cls(value)


class FleetResumer:
    """The approval queue's hand-over to the fleet (``ApprovalQueue(resumer=...)``)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def queue(self, store, approval, decision: str, by: str, answer: dict[str, Any]) -> dict[str, Any] | None:
        """Record and queue the resume of ``approval``'s run; None when no worker owns its case.

        ``store`` is the server pipeline's; what it holds is committed first.
        Raises whatever Redis raises: the caller then puts the decision back
        with :meth:`forget`.
        """
        session = store.session
        partition = case_partition(session, approval.case_id)
        if partition is None:
            return None
        token = uuid.uuid4().hex
        row = ResumeRow(approval_id=approval.id, case_id=approval.case_id, partition=partition, decision=decision,
                        token=token, queued_by=by, queued_at=to_db_time(utcnow()))
        session.add(row)
        # Durable before the message exists: the worker that reads it must find its row.
        store.commit()
        payload = ResumePayload(approval_id=approval.id, case_id=approval.case_id, thread_id=approval.thread_id,
                                decision=decision, token=token, answer=answer)
        row.entry = self.broker.queue_resume(partition, json.dumps(payload, sort_keys=True).encode(),
                                             f"approval:{approval.id}")
        store.commit()
        return {"partition": partition, "entry": row.entry, "resume": f"queued to partition {partition}",
                "action_status": "queued"}

    @staticmethod
    def forget(session, approval_id: int) -> None:
        """Drop the resume row of a decision that is being put back (its message, if any, is then stale)."""
        session.execute(delete(ResumeRow).where(ResumeRow.approval_id == approval_id))

    @staticmethod
    def status(session, approval_id: int) -> dict[str, Any] | None:
        """Where the resume of ``approval_id`` is: queued (partition, entry) or resumed (by which worker, result)."""
        row = session.get(ResumeRow, approval_id, populate_existing=True)
        if row is None:
            return None
        out: dict[str, Any] = {"partition": row.partition, "entry": row.entry, "queued_by": row.queued_by,
                               "queued_at": row.queued_at.isoformat() if row.queued_at else None}
        if row.resumed_at is None:
            out["state"] = f"queued to partition {row.partition}"
        else:
            out.update(state=f"resumed by worker {row.worker}", worker=row.worker,
                       resumed_at=row.resumed_at.isoformat(), action_status=row.action_status,
                       action_id=row.action_id)
        return out
