"""Decisions you can prove and replay: the decision point's records in the hash-chained audit.

Every decision goes into the product's audit (``soc_agent.audit.AuditLog``,
signed checkpoints beside the workdir) as a ``pdp.decision`` record: the
request with the policy's secrets redacted, the decision, the call's hash and
the facts that came from outside the policy (the injection detector's flags,
the watchlist hit), so replay does not depend on a watchlist that has since
changed. A person's acts are records too: ``pdp.approval`` (approve/reject,
who) and ``pdp.lift`` (who lifted an isolation).

Appends are batched by a writer thread (one INSERT per batch, every
``interval_s`` or ``max_batch`` records), so a decision never waits for the
database. If a batch cannot be written after a retry, ``error`` is set and
the engine denies every later call (nothing runs unrecorded) until restart.

``replay(records, policy)`` re-decides the logged inputs in order with a
fresh engine whose clock is each record's logged time, applying the logged
approvals and lifts as they happened, and reports what would change.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from soc_agent.audit import AuditLog, AuditRecord
from soc_agent.audit import records as chain_records
from soc_agent.audit_checkpoints import AuditCheckpoints
from soc_agent.config import Settings
from soc_agent.pdp.engine import PDP
from soc_agent.pdp.models import DECISIONS, DecideRequest
from soc_agent.pdp.policy import Policy
from soc_agent.pdp.session import Isolation
from soc_agent.store import Store

__all__ = ["DecisionAudit", "Flip", "ReplayReport", "logged_records", "open_workdir", "parse_since", "replay",
           "restore_isolations"]

log = logging.getLogger(__name__)

KINDS = ("pdp.decision", "pdp.approval", "pdp.lift")
"""The audit record kinds the decision point writes."""


class DecisionAudit:
    """A batching writer in front of an ``AuditLog``."""

    def __init__(self, audit_log: AuditLog, interval_s: float = 0.05, max_batch: int = 2000) -> None:
        self.log = audit_log
        self.interval_s = interval_s
        self.max_batch = max_batch
        self.error: Exception | None = None
        """Set when a batch could not be written: the engine then fails closed."""
        self._pending: list[tuple[str, dict[str, Any], str | None]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        # What is still queued at interpreter exit is written then (a decision is never left unrecorded).
        atexit.register(self.close)

    def record(self, kind: str, payload: dict[str, Any]) -> None:
        """Queue one record (written within ``interval_s``)."""
        with self._cond:
            self._pending.append((kind, payload, None))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pdp-audit", daemon=True)
                self._thread.start()
            if len(self._pending) >= self.max_batch:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._closed:
                    self._cond.wait(self.interval_s)
                if self._closed and not self._pending:
                    return
            self.flush()

    def flush(self) -> None:
        """Write everything queued so far (the caller's thread)."""
        with self._cond:
            batch, self._pending = self._pending, []
        if not batch:
            return
        for attempt in (1, 2):
            try:
                self.log.append_many(batch)
                return
            except IntegrityError:
                # Another writer appended (e.g. the CLI approving): the log re-reads its head; retry once.
                if attempt == 2:
                    self._failed(batch)
            except Exception as exc:  # noqa: BLE001 - any failure to record stops the decisions
                self._failed(batch, exc)
                return

    def _failed(self, batch: list[tuple[str, dict[str, Any], str | None]], exc: Exception | None = None) -> None:
        self.error = exc or RuntimeError("audit append kept failing")
        log.error("pdp audit: %d records not written: %s", len(batch), self.error)
        with self._cond:
            self._pending[:0] = batch

    def close(self) -> None:
        """Write what is queued, stop the writer and sign the head (again: a no-op)."""
        with self._cond:
            if self._closed and not self._pending:
                return
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
        self.log.checkpoint()


def open_workdir(workdir: Path) -> tuple[Any, DecisionAudit]:
    """The store and batching audit of a soc-agent workdir (created when missing)."""
    settings = Settings.from_env(workdir=workdir)
    store = Store(settings.db_url)
    key = settings.audit_hmac_key.encode() if settings.audit_hmac_key else None
    audit_log = AuditLog(store.engine, key, checkpoints=AuditCheckpoints.for_settings(settings))
    return store, DecisionAudit(audit_log)


def logged_records(engine: Any) -> Iterator[AuditRecord]:
    """The decision point's audit records, in chain order."""
    for rec in chain_records(engine):
        if rec.kind in KINDS:
            yield rec


@dataclass(frozen=True)
class Flip:
    """One logged call whose decision the candidate policy changes."""

    seq: int
    ts: float
    agent: str
    session: str
    tool: str
    before: str
    after: str
    reasons: list[str]


@dataclass
class ReplayReport:
    """What a candidate policy would have decided on the logged calls."""

    decisions: int = 0
    before: Counter = field(default_factory=Counter)
    after: Counter = field(default_factory=Counter)
    flips: list[Flip] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (counts in the decisions' order of strictness)."""
        return {"decisions": self.decisions,
                "before": {d: self.before.get(d, 0) for d in DECISIONS},
                "after": {d: self.after.get(d, 0) for d in DECISIONS},
                "flips": [f.__dict__ for f in self.flips]}


def replay(records: Iterable[AuditRecord], policy: Policy, since: float | None = None) -> ReplayReport:
    """Re-decide the logged calls under ``policy``; only calls at or after ``since`` (epoch) are counted.

    Every record is replayed, in chain order, so the session memory of calls in
    the window is what it was when they were decided.
    """
    now = [0.0]
    engine = PDP(policy, clock=lambda: now[0], intel=lambda tenant, host: False)
    report = ReplayReport()
    for rec in records:
        body = json.loads(rec.payload)
        now[0] = float(body.get("ts", 0.0))
        if rec.kind == "pdp.approval":
            _replay_approval(engine, body)
            continue
        if rec.kind == "pdp.lift":
            engine.sessions.lift(body["key"])
            continue
        logged = body["decision"]
        req = DecideRequest.model_validate(body["request"])
        with engine._lock:
            decision = engine._decide(req, now[0], decision_id=logged["decision_id"], logged=body)
        if since is not None and now[0] < since:
            continue
        report.decisions += 1
        report.before[logged["decision"]] += 1
        report.after[decision.decision] += 1
        if decision.decision != logged["decision"]:
            tool = f"{req.tool.server}/{req.tool.name}" if req.tool.server else req.tool.name
            report.flips.append(Flip(rec.seq, now[0], req.agent.id, req.session.id, tool, logged["decision"],
                                     decision.decision, decision.reasons))
    return report


def _replay_approval(engine: Any, body: dict[str, Any]) -> None:
    """Apply a logged approve/reject to the replay engine's approval for the same call, if it has one."""
    book = engine.approvals
    approval = book.get(body["approval_id"]) or book.for_call(body["call_hash"])
    if approval is None or approval.status != "pending":
        return
    try:
        book.decide(approval.id, body.get("who") or "replay", body.get("action") == "approve", engine.clock())
    except Exception:  # noqa: BLE001 - expired under the candidate's TTL: the approval simply does not apply
        return


def parse_since(text: str, now: float) -> float:
    """``7d``, ``12h``, ``30m``, ``45s`` before ``now``, or an ISO-8601 time, as epoch seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    text = text.strip()
    if text[:-1].isdigit() and text[-1:] in units:
        return now - int(text[:-1]) * units[text[-1]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: give a duration (7d, 12h, 30m) or an ISO-8601 time") from None
    if moment.tzinfo is None:

        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def restore_isolations(engine: Any) -> int:
    """Rebuild the isolations a workdir's audit holds (isolated, not lifted since); how many are in force.

    Isolation outlives a restart: a person, not a reboot, lifts it.
    """
    if engine.store is None:
        return 0
    sessions = engine.sessions
    for rec in logged_records(engine.store.engine):
        body = json.loads(rec.payload)
        if rec.kind == "pdp.lift":
            sessions.lift(body["key"])
        elif rec.kind == "pdp.decision" and body["decision"]["decision"] == "isolate_agent":
            req = body["request"]
            sid, aid = req["session"]["id"], req["agent"]["id"]
            # A call refused because its agent was already isolated joins that isolation (as it did live).
            existing = sessions.isolation(sid, aid)
            if existing is None:
                reasons = body["decision"]["reasons"]
                existing = Isolation(reasons[-1] if reasons else "isolated", float(body.get("ts", 0.0)),
                                     body["decision"]["decision_id"])
            sessions.isolate(sid, aid, existing)
    return len(sessions.isolated_sessions)
