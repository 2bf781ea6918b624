"""``soc-agent worker``: one member of a fleet consuming the broker's partitions.

One loop, single-threaded (the store session and the graph are not shared
between threads)::

    renew leases -> rebalance (take free partitions, give extras back)
    -> scheduler tick (TTL expiry, leader only) -> read a batch
    -> for each message: inbox check, intake on its partition's state
    -> commit -> acknowledge

Guarantees, and what provides them:

* **One case, one worker.** A partition is processed only by its lease
  holder, with that partition's own intake state (see ``broker``).
* **Exactly-once intake.** Each message's inbox row is added to the
  transaction before it is processed and commits with its first effect; a
  redelivered message whose inbox row exists is acknowledged, not redone.
  Messages are acknowledged only after the commit that made them durable.
* **Exactly-once effects.** The executor's intent is committed before the
  responder is called. When a worker takes a partition over, it settles
  every intent left without a result in that partition's cases: the
  responder's ``verify()`` says whether the effect is in place (then it is
  recorded, not repeated) or not (then it is executed once, now).
* **Approvals resumed by the case's owner.** A decision recorded by the
  server arrives as a ``kind=resume`` message on the case's partition, in
  order with its alerts; the owner resumes the paused run once
  (``_resume``, ``soc_agent.fleet.resume``): the resume row names the
  worker, and a redelivered or stale message changes nothing.
* **Failures.** Any error while processing rolls the transaction back,
  rebuilds the intake state from the store and re-reads this worker's own
  pending entries; each delivery is counted and an entry that fails
  ``max_attempts`` times goes to the dead-letter stream (and the store's
  dead-letter table) with the error as the reason.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel import select

from soc_agent.config import Settings
from soc_agent.fleet.broker import Broker, BrokerConfig, Message, partition_of
from soc_agent.fleet.resume import KIND as RESUME_KIND
from soc_agent.fleet.resume import ResumePayload
from soc_agent.fleet.scheduler import Scheduler
from soc_agent.fleet.tables import InboxRow, ResumeRow
from soc_agent.intake import IntakeState, RejectedLine
from soc_agent.notes import CaseNotes, render_markdown
from soc_agent.responders.executor import _action_from_row
from soc_agent.store import ActionRow, ApprovalRow, NoteRow
from soc_agent.types import to_db_time, utcnow

__all__ = ["Worker", "WorkerStats", "run_worker"]

log = logging.getLogger(__name__)


@dataclass
class WorkerStats:
    """What one worker did (for logs, tests and the benchmark)."""

    processed: int = 0
    dead_lettered: int = 0
    poison: int = 0
    skipped_redeliveries: int = 0
    settled_intents: int = 0
    failures: int = 0
    claimed: int = 0
    expired: int = 0
    takeovers: int = 0
    resumed: int = 0
    """Paused runs this worker resumed with a decision the server recorded."""
    stale_resumes: int = 0
    """Resume messages whose decision was put back or is not the recorded one (skipped, audited)."""


class Worker:
    """Consumes alerts from the broker and triages them with one ``Pipeline``."""

    def __init__(self, settings: Settings, config: BrokerConfig, worker_id: str | None = None,
                 batch: int = 200, block_ms: int = 200, rebalance_s: float = 1.0,
                 expire_interval_s: float = 5.0, pipeline: Any = None, broker: Broker | None = None) -> None:
        """Connect to the store and the broker; partitions are taken on the first ``step``."""
        # deferred: the pipeline adds the graph (langgraph), CEL and the vendor connectors (~1,200 modules): only
        # in a worker; the server and `triage --to-broker` import soc_agent.fleet, and so this module, for the broker
        from soc_agent.pipeline import Pipeline

        self.settings = settings
        self.config = config
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.batch = batch
        self.block_ms = block_ms
        self.rebalance_s = rebalance_s
        # Expiry is the scheduler leader's alone, never every worker's start-up.
        self.pipeline = pipeline or Pipeline(settings, expire_on_start=False)
        self.store = self.pipeline.store
        self.broker = broker or Broker(config)
        self.scheduler = Scheduler(settings.db_url, self._expire, expire_interval_s)
        self.owned: dict[int, IntakeState] = {}
        self.stats = WorkerStats()
        self._next_rebalance = 0.0
        self._reread_pending = True  # a restarted worker first finishes what it had been given
        self._careful = False
        self._current: int | None = None

    # ---- the loop ------------------------------------------------------------

    def run(self, stop: threading.Event | None = None, idle_exit_s: float | None = None) -> WorkerStats:
        """Loop until ``stop`` is set (or, with ``idle_exit_s``, nothing arrived for that long)."""
        stop = stop or threading.Event()
        last_work = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    did = self.step()
                except Exception as exc:  # noqa: BLE001 - the loop outlives Redis/Postgres outages
                    log.warning("worker %s: step failed: %r", self.id, exc)
                    self.stats.failures += 1
                    self._recover()
                    stop.wait(0.5)
                    continue
                now = time.monotonic()
                if did:
                    last_work = now
                elif idle_exit_s is not None and now - last_work > idle_exit_s:
                    break
        finally:
            self.close()
        return self.stats

    def step(self) -> int:
        """One round: leases, scheduler, one batch. Returns how many messages it handled."""
        now = time.monotonic()
        self.broker.heartbeat(self.id)
        self._renew_or_drop()
        if now >= self._next_rebalance:
            self._next_rebalance = now + self.rebalance_s
            self._rebalance()
        expired = self.scheduler.tick()
        if expired:
            self.stats.expired += expired
        if not self.owned:
            time.sleep(self.block_ms / 1000)
            return 0
        # After a failure, re-read our pending entries one at a time: every entry of a failed
        # batch had its attempt counted, and one bad entry must not use up its neighbours' attempts.
        messages: list[Message] = []
        if self._careful:
            for partition in sorted(self.owned):
                messages = self.broker.read([partition], self.id, 1, self.block_ms, pending=True)
                if messages:
                    break
        else:
            messages = self.broker.read(self.owned, self.id, self.batch, self.block_ms, pending=self._reread_pending)
        if self._reread_pending and not messages:
            self._reread_pending = self._careful = False
            messages = self.broker.read(self.owned, self.id, self.batch, self.block_ms)
        if not messages:
            # End the idle transaction (expiry's reads): an open one holds back vacuum.
            self.store.commit()
            return 0
        self._handle(messages)
        return len(messages)

    # ---- partitions ------------------------------------------------------------

    def _rebalance(self) -> None:
        live = max(1, self.broker.heartbeat(self.id))
        target = math.ceil(self.config.partitions / live)
        while len(self.owned) > target:
            # Hand extras back: everything handled so far is committed and acknowledged.
            partition = max(self.owned)
            self._drop(partition)
            self.broker.release(partition, self.id)
        if len(self.owned) < target:
            # Start at a different partition in each worker so they do not all race for 0.
            start = partition_of(self.id, self.config.partitions)
            for i in range(self.config.partitions):
                if len(self.owned) >= target:
                    break
                partition = (start + i) % self.config.partitions
                if partition not in self.owned and self.broker.acquire(partition, self.id):
                    self._take(partition)
                    # A takeover reads the partition's history: renew at once, so the time it took
                    # never costs the leases already held (or this one) to a lease timeout.
                    self._renew_or_drop()
        for partition in list(self.owned):
            # Entries a dead owner had been given; claimable once idle long enough.
            claimed = self.broker.claim(partition, self.id)
            self.stats.claimed += len(claimed)
            for message in claimed:
                # One at a time: a claimed entry may be the one that killed its last owner, and
                # a failure must cost an attempt to that entry alone, not to its whole batch.
                self._handle([message])

    def _renew_or_drop(self) -> None:
        """Renew our leases; forget every partition whose lease someone else holds now."""
        held = self.broker.renew(list(self.owned), self.id)
        for lost in set(self.owned) - held:
            # Someone else owns it now: forget our state, never touch its cases again.
            log.warning("worker %s: lost partition %d", self.id, lost)
            self._drop(lost)

    def _take(self, partition: int) -> None:
        """Own ``partition``: its group, its intake state from the store, its unsettled intents."""
        self.broker.ensure_group(partition)
        self.stats.takeovers += 1
        self.owned[partition] = self._rebuild(partition)
        self._settle_intents(partition)
        self._reread_pending = True

    def _drop(self, partition: int) -> None:
        self.owned.pop(partition, None)
        if self._current == partition:
            self._current = None

    def _rebuild(self, partition: int) -> IntakeState:
        session = self.store.session
        horizon = to_db_time(utcnow() - timedelta(hours=24))
        rows = session.execute(text(
            "SELECT a.key, a.fingerprint, a.ts, a.case_id FROM fleet_inbox i JOIN alerts a ON a.key = i.alert_key "
            "WHERE i.partition = :p AND a.duplicate_of IS NULL AND a.ts >= :horizon ORDER BY a.id"
        ), {"p": partition, "horizon": horizon}).all()
        state = self.pipeline.intake.rebuild({r.case_id for r in rows if r.case_id}, [tuple(r) for r in rows])
        self._current = None
        return state

    def _use(self, partition: int) -> None:
        """File the next messages with the partition's intake state."""
        if self._current == partition:
            return
        self.pipeline.intake.switch_to(self.owned[partition])
        self._current = partition

    def _settle_intents(self, partition: int) -> None:
        """Settle actions whose intent was recorded but whose result never was (a crash in between)."""
        session = self.store.session
        ids = session.execute(text(
            "SELECT DISTINCT act.id FROM actions act WHERE act.status = 'intent' AND act.case_id IN ("
            "SELECT a.case_id FROM fleet_inbox i JOIN alerts a ON a.key = i.alert_key WHERE i.partition = :p)"
        ), {"p": partition}).scalars().all()
        for action_id in ids:
            row = session.get(ActionRow, action_id)
            run = int(row.idempotency_key.split("|")[1])
            # execute() finds the intent: verify() true -> recorded as settled; false -> called once now.
            self.pipeline.services.executor.execute(_action_from_row(row), row.case_id, run,
                                                    approved_by=row.approved_by)
            self.stats.settled_intents += 1
        if ids:
            self.store.commit()

    # ---- messages -------------------------------------------------------------

    def _handle(self, messages: list[Message]) -> None:
        attempts = self.broker.attempt(messages)
        session = self.store.session
        done = set(session.exec(select(InboxRow.message_id).where(
            InboxRow.message_id.in_([m.key for m in messages]))).all())
        handled: list[Message] = []
        renewed = time.monotonic()
        for message, attempt in zip(messages, attempts):
            if time.monotonic() - renewed > self.config.lease_ms / 3000:
                # A slow batch (graph runs, a loaded database) must not outlive our leases.
                self._fence(handled)
                renewed = time.monotonic()
            if message.partition not in self.owned:
                continue  # lost the lease mid-batch: the new owner will get it
            if message.key in done:
                self.stats.skipped_redeliveries += 1
            elif attempt > self.config.max_attempts:
                self._poison(message, attempt)
            elif message.kind == RESUME_KIND:
                self._resume(message, handled)
            else:
                self._process(message)
            handled.append(message)
        # The batch's case runs go through the graph together, before its one commit.
        self.pipeline.flush_runs()
        self._fence(handled)
        self.store.commit()
        # Only what is durable is acknowledged; a crash before this line means redelivery,
        # which the inbox rows turn into no-ops.
        self.broker.ack(handled)

    def _fence(self, handled: list[Message]) -> None:
        """Renew our leases; refuse to go on if one of this batch's partitions was lost."""
        lost = {m.partition for m in handled} - self.broker.renew(list(self.owned), self.id)
        if lost:
            # Our lease ran out mid-batch (a stall longer than lease_ms): another worker may
            # already own these cases, so this batch must not commit. Fencing, not a guarantee:
            # keep lease_ms well above the longest stall between two messages.
            raise RuntimeError(f"lost partitions {sorted(lost)} before commit")

    def _process(self, message: Message) -> None:
        self._use(message.partition)
        pipeline = self.pipeline
        session = self.store.session
        inbox = InboxRow(message_id=message.key, partition=message.partition, outcome="processed",
                         processed_at=to_db_time(utcnow()))
        # Added before processing so that it commits with the message's first durable effect.
        session.add(inbox)
        alert = pipeline.intake.accept_line(message.raw, message.source, message.line_no)
        if isinstance(alert, RejectedLine):
            inbox.outcome = "dead_lettered"
            self.stats.dead_lettered += 1
            return
        inbox.alert_key = f"{alert.source}:{alert.id}"
        pipeline.take_alert(alert, counted=True)
        self.stats.processed += 1

    def _resume(self, message: Message, handled: list[Message]) -> None:
        """Resume a paused run of one of our cases with the decision the server recorded, exactly once."""
        self._use(message.partition)
        pipeline = self.pipeline
        session = self.store.session
        # The partition's earlier alerts go first: the decision follows them, in stream order.
        pipeline.flush_runs()
        # Added only after the run: a crash mid-run must leave the message to be redelivered and re-run
        # (the executor's idempotency keys make the re-run act at most once).
        inbox = InboxRow(message_id=message.key, partition=message.partition, outcome="resumed",
                         processed_at=to_db_time(utcnow()))
        try:
            payload = ResumePayload.parse(message.raw)
        except (TypeError, ValueError) as exc:
            inbox.outcome = "dead_lettered"
            session.add(inbox)
            pipeline.intake.dead_letter(message.raw, message.source, None, str(exc))
            self.stats.dead_lettered += 1
            return
        approval_id = payload["approval_id"]
        row = session.get(ResumeRow, approval_id, populate_existing=True)
        approval = session.get(ApprovalRow, approval_id, populate_existing=True)
        stale = None
        if row is None or not hmac.compare_digest(row.token.encode(), str(payload["token"]).encode()):
            stale = "no resume is recorded with its token (the decision was put back)"
        elif approval is None or approval.status == "pending" or row.decision != payload["decision"] \
                or bool(payload["answer"].get("approved")) != (row.decision == "approved"):
            stale = "it does not carry the recorded decision"
        elif row.resumed_at is not None:
            # Another delivery, or another message for the same decision, ran it already: never twice.
            inbox.outcome = "skipped"
            session.add(inbox)
            self.stats.skipped_redeliveries += 1
            return
        if stale is not None:
            inbox.outcome = "skipped"
            session.add(inbox)
            pipeline.services.audit.append("approval.resume_skipped", {
                "approval_id": approval_id, "worker": self.id, "message": message.key, "reason": stale,
            }, approval.case_id if approval is not None else None, session=session)
            self.stats.stale_resumes += 1
            return
        kept = self._queue_notes(approval.case_id, approval_id)
        # Our lease, once more, right before acting on the case.
        self._fence([*handled, message])
        ran = pipeline.is_paused(approval.thread_id)
        # Not paused any more: it ran to the end before a crash took its record; recorded, not run again.
        state = pipeline.resume_answer(approval.thread_id, payload["answer"]) if ran else \
            pipeline.run_state(approval.thread_id)
        self._keep_queue_notes(approval.case_id, kept)
        row.resumed_at, row.worker, row.message, row.ran = to_db_time(utcnow()), self.id, message.key, ran
        row.action_status, row.action_id = state.get("action_status"), state.get("action_id")
        pipeline.services.audit.append("approval.resumed", {
            "approval_id": approval_id, "worker": self.id, "partition": message.partition, "message": message.key,
            "decision": row.decision, "ran": ran, "action_status": row.action_status, "action_id": row.action_id,
        }, approval.case_id, session=session)
        session.add(inbox)
        self.stats.resumed += 1

    def _queue_notes(self, case_id: str, approval_id: int) -> list[str]:
        """The open questions the approval queue wrote about this approval (the run's new notes replace the rest)."""
        notes_json = self._notes_json(case_id)
        questions = (json.loads(notes_json).get("open_questions") or []) if notes_json else []
        return [q for q in questions if isinstance(q, str) and q.startswith(f"Approval {approval_id} ")]

    def _keep_queue_notes(self, case_id: str, kept: list[str]) -> None:
        """Carry the queue's lines about the approval over into the notes the resumed run wrote."""
        notes_json = self._notes_json(case_id) if kept else None
        if not notes_json:
            return
        notes = CaseNotes.model_validate_json(notes_json)
        missing = [q for q in kept if q not in notes.open_questions]
        if missing:
            notes.open_questions = [*notes.open_questions, *missing]
            markdown = render_markdown(notes)
            # Notes are written by upsert, never held as ORM objects (a later run's upsert must win).
            self.store.upsert(NoteRow, {"case_id": case_id, "notes_json": notes.model_dump_json(),
                                        "markdown": markdown, "updated_at": to_db_time(utcnow())})
            self.pipeline.services.note_files.stage(case_id, markdown)

    def _notes_json(self, case_id: str) -> str | None:
        return self.store.session.execute(select(NoteRow.notes_json).where(NoteRow.case_id == case_id)).scalar()

    def _poison(self, message: Message, attempt: int) -> None:
        reason = f"poison: failed {attempt - 1} delivery attempts"
        self.broker.dead_letter(message, reason)
        session = self.store.session
        session.add(InboxRow(message_id=message.key, partition=message.partition, outcome="poison",
                             processed_at=to_db_time(utcnow())))
        # Recorded, not counted: the summary counted its deliveries as they came in (and failed).
        self.pipeline.intake.record_dead_letter(message.raw, message.source, message.line_no, reason)
        if message.kind == RESUME_KIND:
            self._resume_given_up(message, reason)
        self.stats.poison += 1

    def _resume_given_up(self, message: Message, reason: str) -> None:
        """A resume that failed every attempt: its approval says so (the run stays paused), audited."""
        try:
            payload = ResumePayload.parse(message.raw)
        except (TypeError, ValueError):
            return
        row = self.store.session.get(ResumeRow, payload["approval_id"], populate_existing=True)
        if row is None or row.resumed_at is not None or \
                not hmac.compare_digest(row.token.encode(), str(payload["token"]).encode()):
            return
        row.action_status = f"not resumed: {reason}"
        self.pipeline.services.audit.append("approval.resume_failed", {
            "approval_id": row.approval_id, "worker": self.id, "message": message.key, "error": reason,
        }, row.case_id, session=self.store.session)

    def _recover(self) -> None:
        """After a failed step: drop uncommitted work and rebuild every owned partition from the store."""
        # Rows and runs queued for the failed transaction must not be written by the next one.
        self.pipeline.discard_queue()
        self.store.rollback()
        self._reread_pending = self._careful = True
        self._current = None
        try:
            for partition in list(self.owned):
                self.owned[partition] = self._rebuild(partition)
                self._settle_intents(partition)
        except Exception as exc:  # noqa: BLE001 - still down; the next step retries
            log.warning("worker %s: rebuild failed: %r", self.id, exc)
            self.store.rollback()
            # Without a trustworthy intake state we must not process: give the partitions back.
            for partition in list(self.owned):
                self._drop(partition)
                try:
                    self.broker.release(partition, self.id)
                except Exception:  # noqa: BLE001 - the lease then simply expires
                    pass

    def _expire(self) -> int:
        lifted = self.pipeline.services.executor.expire()
        return lifted

    def close(self) -> None:
        """Commit, give every partition back and leave the fleet."""
        try:
            self.store.commit()
        except Exception:  # noqa: BLE001
            pass
        for partition in list(self.owned):
            try:
                self.broker.release(partition, self.id)
            except Exception:  # noqa: BLE001
                pass
        self.owned.clear()
        try:
            self.broker.leave(self.id)
        except Exception:  # noqa: BLE001
            pass
        self.scheduler.close()
        try:
            self.pipeline.close()
        except Exception:  # noqa: BLE001
            pass


def run_worker(settings: Settings, config: BrokerConfig, idle_exit_s: float | None = None,
               stop: threading.Event | None = None, **options: Any) -> WorkerStats:
    """Build a worker and run it (what ``soc-agent worker`` calls)."""
    worker = Worker(settings, config, **options)
    stats = worker.run(stop, idle_exit_s)
    log.info("worker %s done: %s", worker.id, json.dumps(stats.__dict__))
    return stats
