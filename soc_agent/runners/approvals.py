"""The analyst approval queue: one implementation behind the API, the CLI and the web page.

A queue item is an ``ApprovalRow`` (written by the guard node when it said
``needs_approval`` in enforce mode) plus its paused graph (the checkpoint)
plus an ``ApprovalMetaRow`` (who raised it, who may decide, when it expires).

Rules, in the order they are checked:

* only ``analyst`` or ``lead`` decide; crown-jewel assets, destructive actions
  and escalated items need a ``lead``;
* nobody approves (or edits) a request they raised;
* the two-person rule: destructive actions and containment of a crown jewel
  need two distinct leads. The first approval is recorded (``approval_votes``)
  and the item stays pending; the second, different lead's approval resumes
  the run with both names (the act node's guard re-check counts them); the
  same person approving twice is a conflict; a rejection by either ends it;
* an item whose exact effect is already active (another action put it in
  place) says so, and so does its decision: approving adds no second effect,
  rejecting does not lift the one in place;
* an item that is not pending, or has expired, is a conflict (409);
* an edit may only pick an action from the playbook's menu for the case, and
  never one the guard denies; the act node re-checks the guard anyway;
* the claim is one conditional ``UPDATE approvals ... WHERE status='pending'``:
  of two people deciding the same item at once exactly one wins.

Who resumes the paused run: in one process, the queue itself, right after
the decision. In a fleet (``soc-agent serve`` with a broker, a ``resumer``
given), the worker that owns the case's partition: the decision is recorded
here exactly as above, then queued to that partition
(``soc_agent.fleet.resume``), and the answer says so (``resume: queued to
partition N``); the item and its case show the result once the worker ran it.

Every decision names its approver in the audit; refused attempts are audited
too and change nothing else.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from langgraph.types import Command
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from soc_agent.actions import CATALOG, TTL_ACTIONS
from soc_agent.case_notes import refresh_case_work
from soc_agent.guard import decide as guard_decide
from soc_agent.guard import two_person_reason
from soc_agent.guard_context import guard_context
from soc_agent.notes import CaseNotes, render_markdown
from soc_agent.responders.local import EFFECTS as LOCAL_EFFECTS
from soc_agent.runners.auth import Identity, Role
from soc_agent.runners.tables import ApprovalMetaRow, CaseCommentRow
from soc_agent.store import ActionRow, ApprovalRow, CaseRow, ContainmentRow, NoteRow
from soc_agent.store.tables import ApprovalVoteRow
from soc_agent.types import Outcome, ProposedAction, Reason, Tier, to_db_time, utcnow
from soc_agent.wording import a_or_an

AGENT = "soc-agent"
"""The requester of items the agent raised on its own."""
EXPIRY_ACTOR = "soc-agent:expiry"


class ApprovalError(Exception):
    """A refused queue operation; ``status_code`` is the HTTP status the API answers with."""

    status_code = 400


class NotFound(ApprovalError):
    status_code = 404


class Forbidden(ApprovalError):
    status_code = 403


class Conflict(ApprovalError):
    status_code = 409


class Invalid(ApprovalError):
    status_code = 422


class Unavailable(ApprovalError):
    """The decision could not be handed to the fleet; it was put back and may be decided again."""

    status_code = 503


@dataclass
class QueuePolicy:
    """How long items wait and what happens when nobody decides."""

    ttl_s: int = 4 * 3600
    """Time an item waits before it expires."""
    on_expiry: str = "reject"
    """``reject`` the action, or ``escalate`` once to the lead tier with a fresh ``escalated_ttl_s``."""
    escalated_ttl_s: int = 3600

    @classmethod
    def from_env(cls) -> "QueuePolicy":
        """``SOC_AGENT_APPROVAL_TTL_S``, ``SOC_AGENT_APPROVAL_ON_EXPIRY``, ``SOC_AGENT_APPROVAL_ESCALATED_TTL_S``."""
        env = os.environ
        policy = cls(
            ttl_s=int(env.get("SOC_AGENT_APPROVAL_TTL_S", cls.ttl_s)),
            on_expiry=env.get("SOC_AGENT_APPROVAL_ON_EXPIRY", cls.on_expiry),
            escalated_ttl_s=int(env.get("SOC_AGENT_APPROVAL_ESCALATED_TTL_S", cls.escalated_ttl_s)),
        )
        if policy.on_expiry not in ("reject", "escalate"):
            raise ValueError(f"SOC_AGENT_APPROVAL_ON_EXPIRY must be reject or escalate, not {policy.on_expiry!r}")
        return policy


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands datetimes back naive; the store only ever writes UTC.
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _iso(value: datetime | None) -> str | None:
    value = _aware(value)
    return value.isoformat() if value else None


Listener = Callable[[str, dict[str, Any]], None]
"""Called with (case_id, event) after an item is decided or expires (the ticket sink listens)."""


class ApprovalQueue:
    """List, show, approve, edit, reject and expire queue items through one pipeline.

    The pipeline is single-writer: every operation holds ``lock``.
    """

    def __init__(self, pipeline, policy: QueuePolicy | None = None, lock: threading.RLock | None = None,
                 resumer=None) -> None:
        self.pipeline = pipeline
        self.policy = policy or QueuePolicy()
        self.lock = lock or threading.RLock()
        self.listeners: list[Listener] = []
        self.resumer = resumer
        """Fleet mode: a ``soc_agent.fleet.resume.FleetResumer`` that queues each decided run to the worker
        owning its case; None: the run resumes here."""

    @property
    def _session(self):
        return self.pipeline.store.session

    @property
    def _svc(self):
        return self.pipeline.services

    # ---- reading ------------------------------------------------------

    def list(self, status: str | None = "pending") -> list[dict[str, Any]]:
        """Queue items (pending by default), oldest first, in summary form."""
        with self.lock:
            self.expire()
            query = select(ApprovalRow).order_by(ApprovalRow.id)
            if status:
                query = query.where(ApprovalRow.status == status)
            rows = self._session.exec(query.execution_options(populate_existing=True)).all()
            items = [self._summary(row, self._meta(row),
                                   self._paused_state(row) if row.status == "pending" else None) for row in rows]
            self.pipeline.store.commit()
            return items

    def show(self, approval_id: int) -> dict[str, Any]:
        """One item with everything an approver needs: case, action, blast radius, reasons, evidence, notes."""
        with self.lock:
            self.expire()
            row = self._row(approval_id)
            meta = self._meta(row)
            values = self._paused_state(row)
            item = self._summary(row, meta, values)
            action = self._action(values)
            item["params"] = action.params if action else {}
            item["target"] = action.target.key if action and action.target else None
            item["blast_radius"] = self._blast_radius(values, action)
            item["menu"] = [{"name": n, "tier": str(CATALOG[n].tier)} for n in (values or {}).get("menu", [])
                            if n in CATALOG]
            item["case"] = self.case(row.case_id)
            self.pipeline.store.commit()
            return item

    def case(self, case_id: str) -> dict[str, Any]:
        """A case with its notes, evidence and comments (the web page's case view)."""
        with self.lock:
            case = self._session.exec(select(CaseRow).where(CaseRow.id == case_id)
                                      .execution_options(populate_existing=True)).first()
            if case is None:
                raise NotFound(f"no case {case_id!r}")
            note = self._session.get(NoteRow, case_id, populate_existing=True)
            notes = json.loads(note.notes_json) if note and note.notes_json else {}
            comments = self._session.exec(select(CaseCommentRow).where(CaseCommentRow.case_id == case_id)
                                          .order_by(CaseCommentRow.id)).all()
            return {
                "id": case.id, "title": case.title, "status": case.status, "severity": case.severity,
                "verdict": case.verdict, "confidence": case.confidence, "label": case.label,
                "incident_class": case.incident_class, "action": case.action, "decision": case.decision,
                "summary": notes.get("summary"), "evidence": notes.get("evidence", []),
                "actions": notes.get("actions", []), "open_questions": notes.get("open_questions", []),
                "notes_markdown": note.markdown if note else None,
                "comments": [{"source": c.source, "author": c.author, "body": c.body,
                              "created_at": _iso(c.created_at)} for c in comments],
            }

    # ---- deciding -----------------------------------------------------

    def approve(self, approval_id: int, who: Identity, comment: str = "") -> dict[str, Any]:
        """Approve as proposed; the act node re-checks the guard before anything runs."""
        return self._decide(approval_id, who, True, comment, None, None)

    def edit(self, approval_id: int, who: Identity, comment: str = "", action: str | None = None,
             params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Approve with changes: another action from the case's menu, or changed arguments (e.g. a shorter TTL)."""
        if not action and not params:
            raise Invalid("an edit changes the action or its params; use approve to accept as is")
        return self._decide(approval_id, who, True, comment, action, params or {})

    def check_may_reject(self, approval_id: int, who: Identity) -> None:
        """Raise ``Forbidden`` (or ``NotFound``) unless ``who`` may reject item ``approval_id``."""
        row = self._row(approval_id)
        self._authorize(row, self._meta(row), who, False)

    def reject(self, approval_id: int, who: Identity, comment: str = "") -> dict[str, Any]:
        """Reject; the action is recorded as rejected and not run."""
        return self._decide(approval_id, who, False, comment, None, None)

    def _decide(self, approval_id: int, who: Identity, approved: bool, comment: str,
                new_action: str | None, params: dict[str, Any] | None) -> dict[str, Any]:
        verb = "edit" if (new_action or params) else ("approve" if approved else "reject")
        with self.lock:
            self.expire()  # commits what the pipeline had pending, so a refusal below discards nothing of its
            row = self._row(approval_id)
            meta = self._meta(row)
            try:
                if row.status != "pending":
                    raise Conflict(f"approval {approval_id} is {row.status}, not pending")
                self._authorize(row, meta, who, approved)
                values = self._paused_state(row)
                replacement = self._edited_action(values, who, new_action, params) if verb == "edit" else None
                two = self._two_person(values, row) if approved else None
                first = self._first_approval(row, who, verb) if two else None
                if first is not None and (first.action or first.params != "{}"):
                    # The second approver approves what the first one approved, edit included.
                    new_action, params = first.action, json.loads(first.params)
                    replacement = self._edited_action(values, who, new_action, params)
            except ApprovalError as exc:
                self._refused(row, who, verb, exc)
                raise
            in_effect = self._in_effect(self._action(values))
            if two and first is None:
                return self._record_first_approval(row, who, comment, new_action, params, two, in_effect)
            approvers = (first.approver, who.name) if first is not None else ()
            status = "approved" if approved else "rejected"
            by = " and ".join(approvers) if approvers else who.name
            if not self._claim(row.id, status, by, comment):
                exc = Conflict(f"approval {approval_id} was decided by someone else")
                self._refused(row, who, verb, exc)
                raise exc
            if approvers:
                self._add_vote(row, who, comment, None, None)  # the second approval, on the record too
            self._svc.audit.append("approval.decided", {
                "approval_id": row.id, "decision": verb if verb == "edit" else status, "by": who.name,
                "role": str(who.role), "comment": comment, "action": row.action,
                "edited_action": replacement.name if replacement is not None and new_action else None,
                "params": params or {}, "approvers": list(approvers),
                "already_in_effect": in_effect["summary"] if in_effect else None,
            }, row.case_id, session=self._session)
            if comment:
                self._session.add(CaseCommentRow(case_id=row.case_id, source="queue", author=who.name,
                                                 role=str(who.role), body=f"{verb}: {comment}",
                                                 created_at=to_db_time(utcnow())))
            self.pipeline.store.commit()
            state = self._resume(row, approved, by, comment, replacement if new_action else None, params, approvers)
            outcome = self._outcome(row, status, state)
            if approvers:
                outcome["approvers"] = list(approvers)
            if in_effect:
                outcome["already_in_effect"] = in_effect["summary"]
                outcome["note"] = self._note_in_effect(row, approved, in_effect)
            return outcome

    def expire(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Expire overdue items: reject them, or escalate once to a lead when the policy says so."""
        now = now or utcnow()
        handled = []
        with self.lock:
            self._session.flush()
            rows = self._session.exec(select(ApprovalRow).where(ApprovalRow.status == "pending")
                                      .execution_options(populate_existing=True)).all()
            for row in rows:
                meta = self._meta(row)
                if _aware(meta.expires_at) > now:
                    continue
                if self.policy.on_expiry == "escalate" and not meta.escalated:
                    meta.escalated, meta.required_role = True, str(Role.LEAD)
                    meta.expires_at = to_db_time(now + timedelta(seconds=self.policy.escalated_ttl_s))
                    self._svc.audit.append("approval.escalated", {"approval_id": row.id, "to": "lead",
                                                                  "expires_at": meta.expires_at.isoformat()},
                                           row.case_id, session=self._session)
                    self.pipeline.store.commit()
                    handled.append({"id": row.id, "outcome": "escalated"})
                    continue
                comment = "expired without a decision"
                if not self._claim(row.id, "expired", EXPIRY_ACTOR, comment):
                    continue
                self._svc.audit.append("approval.expired", {"approval_id": row.id, "by": EXPIRY_ACTOR},
                                       row.case_id, session=self._session)
                self.pipeline.store.commit()
                state = self._resume(row, False, EXPIRY_ACTOR, comment, None, None)
                handled.append(self._outcome(row, "expired", state))
            self.pipeline.store.commit()
        return handled

    def raised_by(self, case_id: str, requester: str) -> None:
        """Record ``requester`` as the one who raised the case's pending items (alerts submitted by a person)."""
        with self.lock:
            self._session.flush()
            for row in self._session.exec(select(ApprovalRow).where(ApprovalRow.case_id == case_id,
                                                                    ApprovalRow.status == "pending")):
                self._meta(row).requested_by = requester
            self.pipeline.store.commit()

    # ---- internals ----------------------------------------------------

    def _row(self, approval_id: int) -> ApprovalRow:
        if not 0 < approval_id < 2**63:  # an id the store's integer key cannot hold names no approval
            raise NotFound(f"no approval {approval_id}")
        row = self._session.get(ApprovalRow, approval_id, populate_existing=True)
        if row is None:
            raise NotFound(f"no approval {approval_id}")
        return row

    def _meta(self, row: ApprovalRow) -> ApprovalMetaRow:
        meta = self._session.get(ApprovalMetaRow, row.id)
        if meta is None:
            values = self._paused_state(row)
            lead = self._needs_lead(values, row)
            meta = ApprovalMetaRow(
                approval_id=row.id, required_role=str(Role.LEAD if lead else Role.ANALYST),
                expires_at=to_db_time(_aware(row.created_at) + timedelta(seconds=self.policy.ttl_s)),
            )
            self._session.add(meta)
            self._session.flush()
        return meta

    def _paused_state(self, row: ApprovalRow) -> dict[str, Any] | None:
        snapshot = self.pipeline.graph.get_state({"configurable": {"thread_id": row.thread_id}})
        return snapshot.values if snapshot and snapshot.values else None

    @staticmethod
    def _action(values: dict[str, Any] | None) -> ProposedAction | None:
        decision = (values or {}).get("decision")
        return decision.action if decision is not None else None

    @classmethod
    def _target(cls, values: dict[str, Any] | None) -> str | None:
        """The proposed action's target as ``kind:value`` (None: the case itself, or no checkpoint)."""
        action = cls._action(values)
        return action.target.key if action is not None and action.target is not None else None

    def _needs_lead(self, values: dict[str, Any] | None, row: ApprovalRow) -> bool:
        if row.tier == str(Tier.DESTRUCTIVE):
            return True
        action = self._action(values)
        if action is None:
            return True  # no checkpoint to judge the blast radius by: fail towards the stricter role
        ctx = guard_context(self._svc, values, action)
        return ctx.asset_tier <= self._svc.policy.crown_jewel_tier

    def _blast_radius(self, values: dict[str, Any] | None, action: ProposedAction | None) -> dict[str, Any]:
        if action is None:
            return {"summary": "unknown: the paused run's checkpoint is missing"}
        ctx = guard_context(self._svc, values, action)
        crown = ctx.asset_tier <= self._svc.policy.crown_jewel_tier
        parts = [f"{action.name} on {action.target.key if action.target else 'the case'}"]
        parts.append(f"asset tier {ctx.asset_tier}" + (" (crown jewel)" if crown else ""))
        if ctx.identity_roles:
            parts.append("identities: " + ", ".join(sorted(str(r) for r in ctx.identity_roles)))
        if ctx.privileged_identity:
            parts.append("privileged identity")
        return {"target": action.target.key if action.target else None, "asset_tier": ctx.asset_tier,
                "crown_jewel": crown, "identity_roles": sorted(str(r) for r in ctx.identity_roles),
                "privileged_identity": ctx.privileged_identity, "summary": "; ".join(parts)}

    def _authorize(self, row: ApprovalRow, meta: ApprovalMetaRow, who: Identity, approved: bool) -> None:
        if not who.at_least(Role.ANALYST):
            raise Forbidden(f"{who.name} is {a_or_an(str(who.role))}: only an analyst or a lead decides approvals")
        if meta.required_role == Role.LEAD and not who.at_least(Role.LEAD):
            why = "it was escalated" if meta.escalated else "it touches a crown jewel or is destructive"
            raise Forbidden(f"approval {row.id} needs a lead: {why}")
        if approved and who.name == meta.requested_by:
            raise Forbidden(f"{who.name} raised approval {row.id} and cannot approve it")

    def _edited_action(self, values: dict[str, Any] | None, who: Identity, name: str | None,
                       params: dict[str, Any] | None) -> ProposedAction:
        current = self._action(values)
        if current is None:
            raise Conflict("the paused run's checkpoint is missing; it cannot be edited")
        action = current
        if name and name != current.name:
            if name not in (values.get("menu") or []):
                raise Invalid(f"{name!r} is not on this case's menu: {', '.join(values.get('menu') or [])}")
            spec = CATALOG[name]
            target = None
            if spec.target_kind is not None:
                if current.target is not None and current.target.kind == spec.target_kind:
                    target = current.target
                else:
                    target = next((e for e in values["case"].entities if e.kind == spec.target_kind), None)
            action = ProposedAction(name=spec.name, tier=spec.tier, capability=spec.capability, target=target,
                                    params={}, rollback=spec.rollback, playbook=current.playbook)
        if params:
            allowed = set(action.params) | ({"ttl_seconds"} if action.name in TTL_ACTIONS else set())
            unknown = sorted(set(params) - allowed)
            if unknown:
                raise Invalid(f"{action.name} takes no param(s) {', '.join(unknown)}; editable: "
                              f"{', '.join(sorted(allowed)) or 'none'}")
            ttl = params.get("ttl_seconds")
            if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0):
                raise Invalid("ttl_seconds must be a positive integer")
            action = action.model_copy(update={"params": {**action.params, **params}})
        # Refuse up front what the guard would deny; the act node checks again after the resume.
        check = guard_decide(action, guard_context(self._svc, values, action, approved_by=who.name),
                             self._svc.policy)
        if check.outcome is Outcome.DENY:
            raise Invalid(f"the guard denies {action.name}: " +
                          "; ".join(map(str, check.reasons_for(Outcome.DENY))))
        return action

    # ---- the two-person rule and effects already in place ----------------

    def _two_person(self, values: dict[str, Any] | None, row: ApprovalRow) -> str | None:
        """Why this item needs two distinct approvers (the guard's own rule), else None."""
        action = self._action(values)
        tier = Tier(row.tier) if row.tier in {str(t) for t in Tier} else Tier.DESTRUCTIVE
        if action is None:
            return two_person_reason(tier, 0, self._svc.policy)  # no checkpoint: fail towards the stricter rule
        ctx = guard_context(self._svc, values, action)
        return two_person_reason(CATALOG[action.name].tier if action.name in CATALOG else tier, ctx.asset_tier,
                                 self._svc.policy)

    def _votes(self, approval_id: int) -> list[ApprovalVoteRow]:
        return list(self._session.exec(select(ApprovalVoteRow).where(ApprovalVoteRow.approval_id == approval_id)
                                       .order_by(ApprovalVoteRow.id).execution_options(populate_existing=True)))

    def _first_approval(self, row: ApprovalRow, who: Identity, verb: str) -> ApprovalVoteRow | None:
        """Another person's recorded approval this one completes; None when this is the first."""
        votes = self._votes(row.id)
        others = [v for v in votes if v.approver != who.name]
        if not others:
            if votes:
                raise Conflict(f"{who.name} already approved {row.id}; the two-person rule needs a second, "
                               f"different approver")
            return None
        if verb == "edit":
            raise Conflict(f"approval {row.id} was approved by {others[0].approver} as recorded; the second "
                           f"approver approves it as is or rejects it")
        return others[0]

    def _add_vote(self, row: ApprovalRow, who: Identity, comment: str, action: str | None,
                  params: dict[str, Any] | None) -> None:
        if any(v.approver == who.name for v in self._votes(row.id)):
            return
        self._session.add(ApprovalVoteRow(approval_id=row.id, approver=who.name, role=str(who.role),
                                          comment=comment or None, action=action,
                                          params=json.dumps(params or {}, sort_keys=True),
                                          created_at=to_db_time(utcnow())))
        self._session.flush()

    def _record_first_approval(self, row: ApprovalRow, who: Identity, comment: str, action: str | None,
                               params: dict[str, Any] | None, why: str,
                               in_effect: dict[str, Any] | None) -> dict[str, Any]:
        """The first of two approvals: recorded, audited; the item stays pending and nothing runs."""
        try:
            self._add_vote(row, who, comment, action, params)
        except IntegrityError:  # the same person, at the same moment, in another process
            self.pipeline.store.rollback()
            exc = Conflict(f"{who.name} already approved {row.id}; the two-person rule needs a second, "
                           f"different approver")
            self._refused(row, who, "approve", exc)
            raise exc from None
        self._svc.audit.append("approval.first_approval", {
            "approval_id": row.id, "by": who.name, "role": str(who.role), "comment": comment,
            "action": row.action, "edited_action": action, "params": params or {}, "rule": why,
        }, row.case_id, session=self._session)
        if comment:
            self._session.add(CaseCommentRow(case_id=row.case_id, source="queue", author=who.name,
                                             role=str(who.role), body=f"first approval: {comment}",
                                             created_at=to_db_time(utcnow())))
            # Nothing runs until the second approval: the notes show the comment now, as they do case work.
            self._session.flush()
            refresh_case_work(self.pipeline.store, row.case_id, self._svc.note_files)
        self.pipeline.store.commit()
        reason = (f"approved by {who.name}; awaiting a second approver: {why} (two-person rule), "
                  f"a different {self._meta(row).required_role} decides")
        outcome = {"id": row.id, "case_id": row.case_id, "status": "pending",
                   "action_status": "awaiting a second approver", "decision": None, "reasons": [reason],
                   "approvers": [who.name]}
        if in_effect:
            outcome["already_in_effect"] = in_effect["summary"]
        return outcome

    def _in_effect(self, action: ProposedAction | None) -> dict[str, Any] | None:
        """The action's exact effect when it is already active (put in place by another action), else None."""
        effect = LOCAL_EFFECTS.get(action.name) if action is not None else None
        if effect is None or action.target is None:
            return None
        row = self._session.get(ContainmentRow, (effect, action.target.value), populate_existing=True)
        if row is None or not row.active or (row.expires_at is not None and _aware(row.expires_at) <= utcnow()):
            return None
        source = self._session.get(ActionRow, row.action_id) if row.action_id is not None else None
        by = (f"action {row.action_id} of case {source.case_id}" if source is not None
              else f"action {row.action_id}" if row.action_id is not None else "an earlier action")
        ttl = action.params.get("ttl_seconds")
        wanted = utcnow() + timedelta(seconds=ttl) if isinstance(ttl, int) and not isinstance(ttl, bool) else None
        # Exactly in effect: for at least as long as this item asks; else approving it would extend the effect.
        covers = row.expires_at is None or (wanted is not None and _aware(row.expires_at) >= wanted)
        summary = f"{action.name} on {action.target.key} is already in effect (by {by})"
        if not covers:
            summary += f" until {_iso(row.expires_at)}; approving would extend it"
        return {"effect": effect, "target": action.target.value, "action_id": row.action_id,
                "case_id": source.case_id if source is not None else None, "expires_at": _iso(row.expires_at),
                "covers": covers, "summary": summary}

    def _note_in_effect(self, row: ApprovalRow, approved: bool, in_effect: dict[str, Any]) -> str:
        """Say in the case notes what a decision on an effect already in place did and did not do."""
        if approved and in_effect["covers"]:
            text = (f"Approval {row.id} approved, but {in_effect['summary']}: no second effect was created; "
                    f"the effect in place stays as it is.")
        elif approved:
            text = f"Approval {row.id} approved: {in_effect['summary']}; it now lasts as long as approved."
        else:
            text = (f"Approval {row.id} rejected, but {in_effect['summary']}: rejecting it did not lift that "
                    f"effect; roll back action {in_effect['action_id']} to lift it.")
        note = self._session.get(NoteRow, row.case_id, populate_existing=True)
        if note is not None:
            notes = CaseNotes.model_validate_json(note.notes_json)
            notes.open_questions = [*notes.open_questions, text]
            note.notes_json, note.markdown = notes.model_dump_json(), render_markdown(notes)
            self._svc.note_files.stage(row.case_id, note.markdown)
        self._session.add(CaseCommentRow(case_id=row.case_id, source="queue", author=AGENT, body=text,
                                         created_at=to_db_time(utcnow())))
        self._svc.audit.append("approval.already_in_effect", {"approval_id": row.id, "approved": approved,
                                                              "effect": in_effect["effect"],
                                                              "target": in_effect["target"],
                                                              "by_action": in_effect["action_id"]},
                               row.case_id, session=self._session)
        self.pipeline.store.commit()
        return text

    def _claim(self, approval_id: int, status: str, by: str, comment: str) -> bool:
        """The one atomic step: exactly one decider moves a pending item."""
        result = self._session.execute(
            update(ApprovalRow).where(ApprovalRow.id == approval_id, ApprovalRow.status == "pending")
            .values(status=status, decided_by=by, comment=comment or None, decided_at=to_db_time(utcnow()))
        )
        return result.rowcount == 1

    def _refused(self, row: ApprovalRow, who: Identity, verb: str, exc: ApprovalError) -> None:
        self._svc.audit.append("approval.refused", {"approval_id": row.id, "by": who.name, "role": str(who.role),
                                                    "attempt": verb, "status": exc.status_code,
                                                    "reason": str(exc)}, row.case_id, session=self._session)
        self.pipeline.store.commit()

    def _resume(self, row: ApprovalRow, approved: bool, by: str, comment: str,
                replacement: ProposedAction | None, params: dict[str, Any] | None,
                approvers: tuple[str, ...] = ()) -> dict[str, Any]:
        if self.resumer is not None:
            queued = self._queue_resume(row, approved, by, comment, replacement, params, approvers)
            if queued is not None:
                return queued
        try:
            if replacement is None and not approvers:
                state = self.pipeline.resume(row.thread_id, approved, by, comment, params)
            else:
                answer = {"approved": approved, "by": by, "comment": comment, "params": params or {}}
                if replacement is not None:
                    answer["action"] = replacement.model_dump(mode="json")
                if approvers:
                    answer["approvers"] = list(approvers)  # the act node's guard re-check counts them
                state = self.pipeline.graph.invoke(Command(resume=answer),
                                                   {"configurable": {"thread_id": row.thread_id}},
                                                   context=self._svc, durability=self.pipeline.durability)
                self.pipeline.store.commit()
        except Exception as exc:
            # The graph did not finish: put the item back so someone can decide again.
            self._put_back(row, by, exc)
            raise
        for listener in self.listeners:
            listener(row.case_id, {"kind": "decision", "approval_id": row.id, "by": by, "approved": approved,
                                   "action_status": state.get("action_status")})
        return state

    def _put_back(self, row: ApprovalRow, by: str, exc: BaseException) -> None:
        """Undo a decision whose run was not resumed (nor queued): the item is pending again, audited."""
        self._session.rollback()
        if self.resumer is not None:
            self.resumer.forget(self._session, row.id)  # a message already queued is stale from now on
        self._session.execute(update(ApprovalRow).where(ApprovalRow.id == row.id)
                              .values(status="pending", decided_by=None, decided_at=None))
        self._svc.audit.append("approval.resume_failed", {"approval_id": row.id, "by": by,
                                                          "error": f"{type(exc).__name__}: {exc}"[:500]},
                               row.case_id, session=self._session)
        self.pipeline.store.commit()

    def _queue_resume(self, row: ApprovalRow, approved: bool, by: str, comment: str,
                      replacement: ProposedAction | None, params: dict[str, Any] | None,
                      approvers: tuple[str, ...]) -> dict[str, Any] | None:
        """Fleet mode: hand the decided run to the worker owning its case; None when no worker does."""
        answer: dict[str, Any] = {"approved": approved, "by": by, "comment": comment, "params": params or {},
                                  "approvers": list(approvers)}
        if replacement is not None:
            answer["action"] = replacement.model_dump(mode="json")
        decision = "approved" if approved else ("expired" if by == EXPIRY_ACTOR else "rejected")
        try:
            queued = self.resumer.queue(self.pipeline.store, row, decision, by, answer)
        except Exception as exc:  # noqa: BLE001 - Redis or the store: the decision must not stay half-made
            self._put_back(row, by, exc)
            raise Unavailable(f"approval {row.id}: the decision could not be queued for the worker owning case "
                              f"{row.case_id} ({type(exc).__name__}); it is pending again, decide again") from None
        if queued is None:
            return None
        self._svc.audit.append("approval.resume_queued", {"approval_id": row.id, "by": by, "decision": decision,
                                                          "partition": queued["partition"],
                                                          "entry": queued["entry"]},
                               row.case_id, session=self._session)
        self.pipeline.store.commit()
        for listener in self.listeners:
            listener(row.case_id, {"kind": "decision", "approval_id": row.id, "by": by, "approved": approved,
                                   "action_status": queued["action_status"]})
        return queued

    def _outcome(self, row: ApprovalRow, status: str, state: dict[str, Any]) -> dict[str, Any]:
        decision = state.get("decision")
        outcome = {"id": row.id, "case_id": row.case_id, "status": status,
                   "action_status": state.get("action_status"),
                   "decision": str(decision.outcome) if decision else None,
                   "reasons": decision.reason_lines if decision else []}
        if "resume" in state:  # fleet mode: the owning worker runs it
            outcome.update(resume=state["resume"], partition=state["partition"])
        return outcome

    def _summary(self, row: ApprovalRow, meta: ApprovalMetaRow,
                 values: dict[str, Any] | None = None) -> dict[str, Any]:
        created = _aware(row.created_at)
        reasons = json.loads(row.reasons)
        needs_person = [line for line in reasons if Reason.parse(line).outcome is Outcome.NEEDS_APPROVAL]
        spec = CATALOG.get(row.action)
        votes = self._votes(row.id)
        notes = []
        if row.status == "pending":
            if votes:
                notes.append(str(Reason(Outcome.NEEDS_APPROVAL,
                                        f"approved by {', '.join(v.approver for v in votes)} at "
                                        f"{', '.join(_iso(v.created_at) for v in votes)}; awaiting a second "
                                        f"approver (a different {meta.required_role}): two-person rule")))
            in_effect = self._in_effect(self._action(values))
            if in_effect:
                notes.append(in_effect["summary"] + (": approving adds no second effect" if in_effect["covers"]
                                                     else "") + "; rejecting does not lift it")
        else:
            in_effect = None
        return {
            "id": row.id, "case_id": row.case_id, "thread_id": row.thread_id, "status": row.status,
            "action": row.action, "tier": row.tier, "rollback": spec.rollback if spec else None,
            "target": self._target(values),
            "guard_reasons": reasons,
            "approval_reasons": notes + needs_person,
            "approvals": [{"by": v.approver, "role": v.role, "at": _iso(v.created_at), "comment": v.comment,
                           "action": v.action, "params": json.loads(v.params)} for v in votes],
            "awaiting_second_approver": row.status == "pending" and bool(votes),
            "already_in_effect": in_effect["summary"] if in_effect else None,
            "created_at": _iso(created), "age_s": round((utcnow() - created).total_seconds(), 1),
            "expires_at": _iso(meta.expires_at), "requested_by": meta.requested_by,
            "required_role": meta.required_role, "escalated": meta.escalated,
            "decided_by": row.decided_by, "decided_at": _iso(row.decided_at), "comment": row.comment,
        } | ({"resume": self.resumer.status(self._session, row.id)} if self.resumer is not None else {})
