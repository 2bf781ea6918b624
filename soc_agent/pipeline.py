"""The triage pipeline: lines in, one result per alert out, nothing lost.

Intake is the cheap per-alert part: decode and map, validate the clock,
dedupe by fingerprint, count raw events into threshold detectors, and
correlate into a case. Only when something material changed (a new case, a
new detection, a new indicator, higher severity) does the case get a fresh
run of the graph; duplicates and follow-ups update the case in one lookup.
Every input ends either processed or in the dead-letter table, with the
reason: ``alerts_in == processed + dead_lettered``.

Runs are queued and go through the batch graph together (``soc_agent.graph``):
one LangGraph invocation costs more than a run's own work. ``process_line``
and ``process_alert`` run what they queued before they return; a stream
(``run_lines``) flushes its queue when it holds ``run_batch_size`` runs,
when its oldest has waited ``run_batch_delay_ms``, and at once for a run a
threshold opened (a brute force in progress is the alert that must not
wait). A duplicate or an event about a case whose run is queued reports
the decision that run makes (neither changes what a run reads); any other
alert joining such a case first runs the queue up to that case. So a
stream decides exactly what it would one alert at a time.
"""

from __future__ import annotations

import json
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from langgraph.types import Command
from sqlalchemy import func, update
from sqlmodel import select

from connectors import MappingError, parse_record
from soc_agent.checkpoint import make_checkpointer
from soc_agent.config import Settings
from soc_agent.correlate import Correlator
from soc_agent.dead_letters import reason_kind
from soc_agent.actions import TTL_ACTIONS
from soc_agent.dedupe import Deduper, fingerprint
from soc_agent.detect import ThresholdDetector
from soc_agent.graph import AWAITING_APPROVAL, batch_input, build_batch_graph, build_graph, hand_over
from soc_agent.lines import OversizeLine, bounded_lines
from soc_agent.composition import build_services
from soc_agent.reasoner import DeterministicReasoner, Reasoner
from soc_agent.store import AlertRow, ApprovalRow, CaseEntityRow, CaseRow, DeadLetterRow, DecisionRow, Store
from soc_agent.types import Alert, Severity, to_db_time, utcnow

_COMMIT_EVERY = 500
EARLIEST_TIMESTAMP = datetime(1990, 1, 1, tzinfo=timezone.utc)
"""Alerts stamped before this are dead-lettered: no detection of ours is that old."""
_MAX_DEAD_LETTER_TEXT = 64 * 1024
_MAX_REASON_KINDS = 1000


@dataclass
class TriageResult:
    """What happened to one input alert."""

    alert_id: str
    case_id: str | None
    verdict: str | None
    confidence: float | None
    action: str | None
    decision: str | None
    reasons: list[str]
    status: str
    """decided | pending_approval | duplicate | follow_up | event"""
    latency_ms: float = 0.0
    """From the alert's arrival at intake to its decision."""
    incident_class: str | None = None
    case_verdict: str | None = None
    """The case's verdict (its worst alert's); ``verdict`` is this alert's own."""

    def to_json(self) -> str:
        """One JSON line for ``triage`` output."""
        return json.dumps(asdict(self), default=str)


class _Later:
    """A result that exists once the queued runs have been flushed."""

    def __init__(self, make: Callable[[], TriageResult | None]) -> None:
        self._make = make
        self._value: TriageResult | None = None
        self._followers: list[_Later] = []

    @property
    def done(self) -> bool:
        """Whether the result has been made."""
        return self._value is not None

    def get(self) -> TriageResult:
        """The result (made on first call, so call it right after the flush it waits for)."""
        if self._value is None:
            self._value = self._make()
            if self._value is not None:
                for follower in self._followers:
                    follower.get()
        return self._value

    def resolve(self, value: TriageResult) -> None:
        """Set the result from outside (a queued run's, once the batch has decided it)."""
        self._make = lambda: value
        self.get()

    def then(self, make: Callable[[TriageResult], TriageResult]) -> "_Later":
        """A result made from this one, as soon as this one exists."""
        follower = _Later(lambda: make(self._value) if self._value is not None else None)
        if self.done:
            follower.get()
        else:
            self._followers.append(follower)
        return follower


def _now(item: "_Produced") -> TriageResult:
    return item.get() if isinstance(item, _Later) else item


@dataclass
class _QueuedRun:
    """A case run waiting in the queue for the batch graph."""

    alert: Alert
    case_id: str
    run: int
    material: list[str]
    started: float
    later: _Later = field(default_factory=lambda: _Later(lambda: None))
    """Its result, once the batch that runs it has decided."""


_Produced = TriageResult | _Later
"""What intake gives for one alert: its result now, or once the queued runs are flushed."""


@dataclass
class RunSummary:
    """Counts for one stream; ``alerts_in == processed + dead_lettered``."""

    alerts_in: int = 0
    processed: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    graph_runs: int = 0
    decisions: Counter = field(default_factory=Counter)
    dead_letter_reasons: Counter = field(default_factory=Counter)
    """Dead letters by the kind of their reason (``soc_agent.dead_letters.reason_kind``: values elided)."""
    dead_letter_examples: dict[str, str] = field(default_factory=dict)
    """Each kind's first reason, whole."""

    def count_dead_letter(self, reason: str) -> None:
        """Count a dead letter under its reason's kind; a stream of many kinds keeps the first 1,000 apart."""
        kind = reason_kind(reason)
        if kind not in self.dead_letter_reasons and len(self.dead_letter_reasons) >= _MAX_REASON_KINDS:
            kind = "other reasons"
        self.dead_letter_reasons[kind] += 1
        self.dead_letter_examples.setdefault(kind, reason)

    def as_dict(self, store: Store) -> dict[str, Any]:
        """The summary with case counts from the store."""
        with store.reader() as session:
            cases = session.exec(select(CaseRow)).all()
        verdicts = Counter(c.verdict or "none" for c in cases)
        return {
            "alerts_in": self.alerts_in, "processed": self.processed, "dead_lettered": self.dead_lettered,
            "duplicates": self.duplicates, "graph_runs": self.graph_runs, "cases": len(cases),
            "cases_by_verdict": dict(verdicts), "decisions": dict(self.decisions),
            "dead_letter_reasons": dict(self.dead_letter_reasons.most_common(10)),
            "dead_letter_examples": {kind: self.dead_letter_examples[kind]
                                     for kind, _ in self.dead_letter_reasons.most_common(10)},
        }


class Pipeline:
    """One embedded triage process: intake, the graph, and the store behind them."""

    def __init__(self, settings: Settings, reasoner: Reasoner | None = None, durability: str = "exit",
                 expire_on_start: bool = True) -> None:
        """Build services, checkpointer and graph, and restore the open cases.

        ``expire_on_start=False`` is for fleet workers: there TTL expiry is the
        scheduler leader's job alone (``soc_agent.fleet.scheduler``).
        """
        self.settings = settings
        self.services = build_services(settings, reasoner)
        self.store = self.services.store
        self.checkpointer = make_checkpointer(settings)
        self.graph = build_graph(self.checkpointer)
        self.batch_graph = build_batch_graph()
        self.durability = durability
        # A model's answer takes seconds: its runs go one at a time so each result leaves as soon as it exists.
        deterministic = isinstance(self.services.reasoner, DeterministicReasoner)
        self.batch_size = settings.run_batch_size if deterministic else 1
        self.batch_delay_s = settings.run_batch_delay_ms / 1000
        self._queue: list[_QueuedRun] = []
        self._queued_cases: dict[str, _QueuedRun] = {}
        # Results waiting on a queued case's run, by case: made right after that run.
        self._waiting: dict[str, list[_Later]] = {}
        self.deduper = Deduper()
        self.detector = ThresholdDetector.from_file(settings.playbooks_dir / "detectors.yml")
        self.correlator = Correlator(timedelta(seconds=settings.correlation_window_s))
        self.summary = RunSummary()
        # source key -> case, for duplicates; bounded like the deduper (oldest forgotten first).
        self._case_of_key: OrderedDict[str, str | None] = OrderedDict()
        # Strong references keep open cases in the session's (weak) identity map:
        # without them every follow-up re-reads its case from the database.
        self._case_rows: dict[str, CaseRow] = {}
        # Each alert's own verdict from its case's latest run, by alert id and by (case, rule) for follow-ups
        # that join without a run; bounded like the deduper.
        self._judged: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._pending = 0
        # Keys an earlier run stored, met again in this one (bounded like the deduper).
        self._from_store: OrderedDict[str, None] = OrderedDict()
        # A key the store already holds is a re-send (a re-run, a restart): checked there whenever this process
        # cannot know every key itself (the store held alerts when it started, or the deduper forgot some).
        with self.store.reader() as session:
            self._store_had_alerts = session.exec(select(AlertRow.id).limit(1)).first() is not None
        self._restore()
        if expire_on_start:
            self.services.executor.expire()

    # ---- intake -------------------------------------------------------

    def process_line(self, line: bytes, source: str = "stdin", line_no: int | None = None,
                     fmt: str = "auto") -> list[TriageResult]:
        """One input line: its results, or a dead letter (and an empty list)."""
        return self._settle(self.take_line(line, source, line_no, fmt))

    def process_alert(self, alert: Alert, counted: bool = False) -> list[TriageResult]:
        """Triage one normalised alert (raw events may complete a threshold)."""
        return self._settle(self.take_alert(alert, counted))

    def _settle(self, produced: list[_Produced]) -> list[TriageResult]:
        self.flush_runs()
        return [_now(item) for item in produced]

    def take_line(self, line: bytes, source: str = "stdin", line_no: int | None = None,
                  fmt: str = "auto") -> list[_Produced]:
        """``take_alert`` for one input line, or its dead letter."""
        self.summary.alerts_in += 1
        try:
            alert = self.parse_line(line, fmt)
        except MappingError as exc:
            self.dead_letter(line, source, line_no, str(exc))
            return []
        return self.take_alert(alert, counted=True)

    def parse_line(self, line: bytes, fmt: str = "auto") -> Alert:
        """One input line as an alert intake accepts (mapped, with a possible time), or ``MappingError``."""
        alert = parse_record(line.rstrip(b"\r\n"), fmt, self.settings.max_alert_bytes)
        self._check_clock(alert)
        return alert

    def take_alert(self, alert: Alert, counted: bool = False) -> list[_Produced]:
        """Intake now; a run the alert needs joins the queue (decided by ``flush_runs``, or sooner)."""
        if not counted:
            self.summary.alerts_in += 1
        started = time.perf_counter()
        produced = self._intake(alert, started)
        self.summary.processed += 1
        self._pending += 1
        if self._queue and (len(self._queue) >= self.batch_size
                            or time.perf_counter() - self._queue[0].started >= self.batch_delay_s):
            self.flush_runs()
        if self._pending >= _COMMIT_EVERY:
            # Queued runs first: a committed alert's run is never lost to a crash after the commit.
            self.flush_runs()
            self.store.commit()
            self._pending = 0
            # A long-running process keeps in memory only the cases alerts still join.
            for case_id in self.correlator.forget_idle():
                self._case_rows.pop(case_id, None)
        return produced

    def dead_letter(self, line: bytes, source: str, line_no: int | None, reason: str,
                    raw_size: int | None = None) -> None:
        """Keep what could not be processed, with why; nothing is silently dropped.

        ``raw_size``: the input's full size when ``line`` is only its head (an oversize line).
        """
        self.summary.dead_lettered += 1
        self.summary.count_dead_letter(reason)
        self.store.session.add(DeadLetterRow(
            received_at=to_db_time(utcnow()), source=source, line_no=line_no, reason=reason[:1000],
            raw=line[:_MAX_DEAD_LETTER_TEXT].decode("utf-8", errors="replace"),
            raw_size=len(line) if raw_size is None else raw_size,
        ))

    def _check_clock(self, alert: Alert) -> None:
        """Dead-letter only impossible times; an old alert is triaged record-only (``is_stale``)."""
        now = utcnow()
        if alert.timestamp > now + timedelta(seconds=self.settings.max_clock_skew_s):
            raise MappingError(f"timestamp {alert.timestamp.isoformat()} is in the future")
        if alert.timestamp < EARLIEST_TIMESTAMP:
            raise MappingError(f"timestamp {alert.timestamp.isoformat()} is before {EARLIEST_TIMESTAMP:%Y}: "
                               f"not a real alert time")

    def _intake(self, alert: Alert, started: float) -> list[TriageResult]:
        key = f"{alert.source}:{alert.id}"
        fp = fingerprint(alert)
        original = self.deduper.check(key, fp, alert.timestamp)
        if original is None and (self._store_had_alerts or self.deduper.evicted):
            stored = self._stored_key(key)
            if stored is not None:
                # Received before (an earlier run, a restart): counted, answered with its case, done nothing.
                self._case_of_key[key] = stored[0]
                self._from_store[key] = None
                if len(self._from_store) > self.deduper.max_entries:
                    self._from_store.popitem(last=False)
                original = key
        if original in self._from_store:
            # A re-send of what an earlier run stored (or of its duplicates): the store has it all already.
            self.summary.duplicates += 1
            return [self._result_once_decided(alert, self._case_of_key.get(original), "duplicate",
                                              [f"already received: {original} (in the store)"], started)]
        if original is not None:
            self.summary.duplicates += 1
            case_id = self._case_of_key.get(original)
            self._record_alert(alert, key, fp, case_id, duplicate_of=original)
            if case_id is not None:
                self._case_row(case_id).duplicate_count += 1
            return [self._result_once_decided(alert, case_id, "duplicate", [f"duplicate of {original}"], started)]

        if alert.kind == "event":
            crossed = self.detector.observe(alert)
            attachment = self.correlator.attach(alert)
            self._record_alert(alert, key, fp, attachment.case_id)
            if attachment.case_id is not None:
                self._touch_case(attachment.case_id, alert, event=True)
            results: list[_Produced] = []
            for synthetic in crossed:
                results.extend(self._intake(synthetic, started))
            if results:
                # The event that crossed a threshold reports the decision it caused.
                return [self._reported_as(results[-1], alert.id)]
            status = "follow_up" if attachment.case_id else "event"
            return [self._result_once_decided(alert, attachment.case_id, status, attachment.why, started)]

        attachment = self.correlator.attach(alert)
        case_id = attachment.case_id
        if case_id in self._queued_cases:
            # A queued run decides on what its case held when its alert arrived, as if it had run at once:
            # the queue runs up to it before another alert joins the case. In arrival order, because the
            # guard's block-rate limit counts in order; ahead of a threshold's run only the case's own goes.
            queued = self._queued_cases[case_id]
            self._run_batch([queued] if alert.source == "detector" else
                            self._queue[:self._queue.index(queued) + 1])
        if attachment.new_case:
            now = to_db_time(utcnow())
            row = CaseRow(id=case_id, title=alert.title[:500], opened_at=now, updated_at=now,
                          severity=str(alert.severity))
            self.store.session.add(row)
            self._case_rows[case_id] = row
        self._record_alert(alert, key, fp, case_id)
        case = self._touch_case(case_id, alert)
        if alert.source == "detector":
            self._attach_events(alert, case_id)
        if not attachment.material or case.status == "pending_approval":
            return [self._result_once_decided(alert, case_id, "follow_up", attachment.why, started)]
        return [self._queue_run(alert, case, attachment.why, started)]

    def _stored_key(self, key: str) -> tuple[str | None] | None:
        """``(case_id,)`` of the first stored alert with ``key`` (committed by any run), or None.

        On the writer session's own connection, as a Core statement: no connection checked out per alert,
        and no flush of the buffered rows (an ORM query would write them out one alert at a time).
        """
        row = self.store.session.connection().execute(
            select(AlertRow.case_id).where(AlertRow.key == key).order_by(AlertRow.id).limit(1)).first()
        return (row[0],) if row is not None else None

    def _record_alert(self, alert: Alert, key: str, fp: str, case_id: str | None,
                      duplicate_of: str | None = None) -> None:
        if duplicate_of is None:
            self._case_of_key[key] = case_id
            if len(self._case_of_key) > self.deduper.max_entries:
                self._case_of_key.popitem(last=False)
        self.store.buffer(AlertRow, dict(
            key=key, alert_id=alert.id, source=alert.source, kind=alert.kind, rule_id=alert.rule_id,
            case_id=case_id, fingerprint=fp, duplicate_of=duplicate_of, ts=to_db_time(alert.timestamp),
            received_at=to_db_time(utcnow()), payload=alert.model_dump_json(), label=None,
        ))

    def _attach_events(self, alert: Alert, case_id: str) -> None:
        """The events that crossed a threshold belong to the case it opened."""
        event_ids = alert.attributes.get("event_ids") or []
        self.store.flush_buffers()
        # One UPDATE: alert rows are written through the store's buffers, never held as ORM objects here.
        self.store.session.connection().execute(
            update(AlertRow).where(AlertRow.alert_id.in_(event_ids), AlertRow.kind == "event",
                                   AlertRow.case_id == None).values(case_id=case_id))  # noqa: E711

    def _case_row(self, case_id: str) -> CaseRow:
        row = self._case_rows.get(case_id)
        if row is None:
            row = self.store.session.get(CaseRow, case_id)
            # Only cases the correlator holds are kept: a forgotten one (a duplicate of an old alert) is
            # read when needed, or the cache would grow with every old case a re-send touches.
            if case_id in self.correlator.cases:
                self._case_rows[case_id] = row
        return row

    def _touch_case(self, case_id: str, alert: Alert, event: bool = False) -> CaseRow:
        case = self._case_row(case_id)
        index = self.correlator.cases[case_id]
        known = index.stored_keys
        for entity in alert.entities:
            if entity.key not in known:
                known.add(entity.key)
                self.store.buffer(CaseEntityRow, dict(case_id=case_id, key=entity.key, kind=str(entity.kind),
                                                      value=entity.value, role=entity.role,
                                                      last_seen=to_db_time(alert.timestamp)))
        if event:
            case.event_count += 1
        else:
            case.alert_count += 1
            if alert.severity.rank > Severity(case.severity).rank:
                case.severity = str(alert.severity)
        case.updated_at = to_db_time(utcnow())
        return case

    # ---- the graph ----------------------------------------------------

    def _queue_run(self, alert: Alert, case: CaseRow, material: list[str], started: float) -> _Later:
        index = self.correlator.cases[case.id]
        index.runs = max(index.runs, case.runs) + 1
        queued = _QueuedRun(alert=alert.model_copy(update={"raw": {}}), case_id=case.id, run=index.runs,
                            material=material, started=started)
        self._queue.append(queued)
        self._queued_cases[case.id] = queued
        if alert.source == "detector":
            # A threshold just crossed (a brute force in progress): its run goes now, ahead of the queue.
            self._run_batch([queued])
        return queued.later

    def flush_runs(self) -> None:
        """Run every queued case run through the batch graph; then every result waiting on them exists."""
        if self._queue:
            self._run_batch(list(self._queue))

    def discard_queue(self) -> None:
        """Forget queued runs and the results waiting on them (their transaction is being rolled back)."""
        self._queue.clear()
        self._queued_cases.clear()
        self._waiting.clear()

    def _run_batch(self, batch: list[_QueuedRun]) -> None:
        """One batch graph invocation over ``batch``; runs that need approval continue in their own thread."""
        for queued in batch:
            self._queue.remove(queued)
            del self._queued_cases[queued.case_id]
        self.store.session.flush()
        runs = [{"case_id": q.case_id, "run": q.run, "alert": q.alert, "material": q.material, "trace": []}
                for q in batch]
        out = self.batch_graph.invoke(batch_input(runs), context=self.services)
        self.summary.graph_runs += len(batch)
        paused = False
        for queued, state, at in zip(batch, out["runs"], out["at"]):
            if at == AWAITING_APPROVAL:
                state = hand_over(self.graph, state, self.services, self.durability)
                paused = True
            queued.later.resolve(self._result_from_state(queued.alert, state, queued.started))
            for later in self._waiting.pop(queued.case_id, []):
                later.get()
        if paused:
            # The checkpoint of a paused run is durable; its queue item must be too. The runs still queued go
            # first: a commit never holds an alert whose run has not happened (a crash would lose that run, and
            # a re-run would take the stored alert for a duplicate).
            self.flush_runs()
            self.store.commit()

    def resume(self, thread_id: str, approved: bool, by: str, comment: str = "",
               params: dict[str, Any] | None = None, approvers: tuple[str, ...] = ()) -> dict[str, Any]:
        """Resume a paused run with a person's answer; the act node re-checks the guard.

        ``approvers`` are every distinct person who approved (the two-person rule needs two for crown jewels
        and destructive actions); ``by`` alone counts as one.
        """
        answer = {"approved": approved, "by": by, "comment": comment, "params": params or {},
                  "approvers": list(approvers)}
        return self.resume_answer(thread_id, answer)

    def resume_answer(self, thread_id: str, answer: dict[str, Any]) -> dict[str, Any]:
        """Resume a paused run with ``answer`` as its ``interrupt()`` value, then commit.

        ``answer``: ``approved``, ``by``, ``comment``, ``params``, and optionally ``approvers`` and an edited
        ``action`` (what the approval queue decided; a fleet worker receives it in a resume message).
        """
        state = self.graph.invoke(Command(resume=answer), {"configurable": {"thread_id": thread_id}},
                                  context=self.services, durability=self.durability)
        self.store.commit()
        return state

    def is_paused(self, thread_id: str) -> bool:
        """Is the run of ``thread_id`` waiting for an answer (its checkpoint has a next step)?"""
        snapshot = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        return bool(snapshot and snapshot.next)

    def run_state(self, thread_id: str) -> dict[str, Any]:
        """The checkpointed state of ``thread_id``'s run (empty when there is none)."""
        snapshot = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        return dict(snapshot.values) if snapshot and snapshot.values else {}

    def pending_approvals(self) -> list[ApprovalRow]:
        """Queue items still waiting for a person."""
        self.store.session.flush()
        return list(self.store.session.exec(select(ApprovalRow).where(ApprovalRow.status == "pending")))

    # ---- results ------------------------------------------------------

    def _result_once_decided(self, alert: Alert, case_id: str | None, status: str, why: list[str],
                             started: float) -> _Produced:
        """The result now, or, when the case's run is queued, once that run has decided."""
        if case_id not in self._queued_cases:
            return self._result(alert, case_id, status, why, started)
        later = _Later(lambda: self._result(alert, case_id, status, why, started))
        self._waiting.setdefault(case_id, []).append(later)
        return later

    @staticmethod
    def _reported_as(item: _Produced, alert_id: str) -> _Produced:
        """``item``'s result reported for ``alert_id`` (the event that crossed a threshold)."""
        def renamed(result: TriageResult) -> TriageResult:
            return TriageResult(**{**asdict(result), "alert_id": alert_id})

        return item.then(renamed) if isinstance(item, _Later) else renamed(item)

    def _result(self, alert: Alert, case_id: str | None, status: str, why: list[str],
                started: float) -> TriageResult:
        case = self._case_row(case_id) if case_id else None
        reasons = list(why)
        if case is not None and status == "follow_up" and case.status == "pending_approval":
            reasons.append("case is waiting for approval; attached for the approver")
        if case is not None:
            reasons += json.loads(case.reasons)
        # A duplicate is what its original was; a follow-up (same rule, nothing new) what its rule's alert was.
        own = None
        if status == "duplicate" and why:
            own = self._judged.get("alert|" + why[0].removeprefix("duplicate of ").split(":", 1)[-1])
        own = own or self._judged.get(f"{case_id}|{alert.rule_id}")
        verdict, confidence = own or ((case.verdict, case.confidence) if case else (None, None))
        return TriageResult(
            alert_id=alert.id, case_id=case_id, verdict=verdict,
            confidence=confidence, action=case.action if case else None,
            decision=case.decision if case else None, reasons=reasons, status=status,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            incident_class=case.incident_class if case else None,
            case_verdict=case.verdict if case else None,
        )

    def _remember_judged(self, case_id: str, assessment) -> None:
        for alert_id, judged in assessment.alert_verdicts.items():
            value = (judged["verdict"], judged["confidence"])
            for key in (f"alert|{alert_id}", f"{case_id}|{judged['rule_id']}"):
                self._judged[key] = value
                self._judged.move_to_end(key)
        while len(self._judged) > self.deduper.max_entries:
            self._judged.popitem(last=False)

    def _result_from_state(self, alert: Alert, state: dict[str, Any], started: float) -> TriageResult:
        decision = state.get("decision")
        assessment = state.get("assessment")
        interrupted = bool(state.get("__interrupt__"))
        if decision is not None:
            self.summary.decisions[str(decision.outcome)] += 1
        own = None
        if assessment is not None:
            self._remember_judged(state["case_id"], assessment)
            own = assessment.alert_verdicts.get(alert.id)
        return TriageResult(
            alert_id=alert.id, case_id=state["case_id"],
            verdict=own["verdict"] if own else (str(assessment.verdict) if assessment else None),
            confidence=own["confidence"] if own else (assessment.confidence if assessment else None),
            case_verdict=str(assessment.verdict) if assessment else None,
            action=decision.action.name if decision and decision.action else None,
            decision=str(decision.outcome) if decision else None,
            reasons=decision.reason_lines if decision else [],
            status="pending_approval" if interrupted else "decided",
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            incident_class=state.get("incident_class"),
        )

    # ---- lifecycle ----------------------------------------------------

    def _restore(self) -> None:
        """Rebuild the correlator's index of open cases, and the guard's recent blocks, after a restart."""
        horizon = to_db_time(utcnow() - self.correlator.window)
        self._restore_cases(list(self.store.session.exec(select(CaseRow).where(CaseRow.updated_at >= horizon))))
        # The block-rate limit counts blocks decided within its window, whichever process decided them: a
        # restart must not hand out a fresh allowance.
        since = to_db_time(utcnow() - timedelta(seconds=self.services.policy.block.rate_window_s))
        self.services.block_times.extend(to_db_time(t) for t in self.store.session.exec(
            select(DecisionRow.created_at).where(DecisionRow.outcome == "allow", DecisionRow.mode == "enforce",
                                                 DecisionRow.action.in_(sorted(TTL_ACTIONS)),
                                                 DecisionRow.created_at >= since)
            .order_by(DecisionRow.created_at)))

    def _restore_cases(self, cases: list[CaseRow], chunk: int = 500) -> None:
        """Re-index open cases, a few queries per ``chunk`` of cases (a takeover restores thousands)."""
        session = self.store.session
        for start in range(0, len(cases), chunk):
            batch = {case.id: case for case in cases[start:start + chunk]}
            ids = list(batch)
            keys: dict[str, set[str]] = {case_id: set() for case_id in ids}
            for case_id, key in session.exec(select(CaseEntityRow.case_id, CaseEntityRow.key)
                                             .where(CaseEntityRow.case_id.in_(ids))):
                keys[case_id].add(key)
            rules: dict[str, set[str]] = {case_id: set() for case_id in ids}
            pairs: dict[str, set[tuple[str, str]]] = {case_id: set() for case_id in ids}
            tenants: dict[str, str | None] = {}
            for case_id, rule_id, payload in session.exec(
                    select(AlertRow.case_id, AlertRow.rule_id, AlertRow.payload)
                    .where(AlertRow.case_id.in_(ids), AlertRow.kind == "alert", AlertRow.duplicate_of == None)):  # noqa: E711
                rules[case_id].add(rule_id)
                body = json.loads(payload)
                tenants.setdefault(case_id, body.get("tenant"))
                # Which rule came with which entity: a weak entity joins only its own rule's alerts.
                for entity in body.get("entities", []):
                    pairs[case_id].add((rule_id, f"{entity['kind']}:{entity['value']}"))
            last = dict(session.exec(select(AlertRow.case_id, func.max(AlertRow.ts))
                                     .where(AlertRow.case_id.in_(ids)).group_by(AlertRow.case_id)).all())
            for case_id, case in batch.items():
                last_seen = (last.get(case_id) or case.updated_at).replace(tzinfo=timezone.utc)
                self.correlator.restore(case_id, rules[case_id], keys[case_id], Severity(case.severity), last_seen,
                                        case.runs, pairs[case_id], tenants.get(case_id))
                self.correlator.cases[case_id].stored_keys = set(keys[case_id])
            for case_id, payload in session.exec(select(AlertRow.case_id, AlertRow.payload)
                                                 .where(AlertRow.case_id.in_(ids), AlertRow.source == "detector")):
                group_key = json.loads(payload).get("attributes", {}).get("group_key")
                if group_key:
                    self.correlator.remember_group(group_key, case_id)

    def rebuild_intake(self, case_ids: Iterable[str], seen: Iterable[tuple[str, str, Any, str | None]] = ()) -> None:
        """Fresh intake state that knows only ``case_ids`` and the ``seen`` alerts.

        For fleet workers, which keep one intake state per partition: the
        correlator must hold only the cases of the partition being processed
        (another worker may own the rest), so it is rebuilt from the store
        when a worker takes a partition over. ``seen`` is ``(key, fingerprint,
        ts, case_id)`` of the partition's recent first-seen alerts, so
        re-sends stay duplicates across a handover. Threshold windows start
        empty: a burst split by a handover needs its threshold's count again.
        """
        self.deduper = Deduper()
        self.detector = ThresholdDetector.from_file(self.settings.playbooks_dir / "detectors.yml")
        self.correlator = Correlator(timedelta(seconds=self.settings.correlation_window_s))
        self._case_of_key = OrderedDict()
        self._case_rows = {}
        for key, fp, ts, case_id in seen:
            self.deduper.check(key, fp, ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts)
            self._case_of_key[key] = case_id
        wanted = set(case_ids)
        if not wanted:
            return
        horizon = to_db_time(utcnow() - self.correlator.window)
        wanted_ids = list(wanted)
        for start in range(0, len(wanted_ids), 500):
            self._restore_cases(list(self.store.session.exec(select(CaseRow).where(
                CaseRow.id.in_(wanted_ids[start:start + 500]), CaseRow.updated_at >= horizon))))

    def run_lines(self, lines: Iterable[bytes], source: str, fmt: str = "auto",
                  batched: bool = True) -> Iterator[TriageResult]:
        """Process a stream of lines, yielding results in input order as they are decided.

        ``batched=False`` decides every line before reading the next: for a
        live stream (a pipe, a terminal), where the next line may be minutes
        away and a queued run must not wait for it.
        """
        out: deque[_Produced] = deque()
        if hasattr(lines, "readline"):  # a file: never a whole line in memory, however long (soc_agent.lines)
            lines = bounded_lines(lines, self.settings.max_alert_bytes)
        for line_no, line in enumerate(lines, start=1):
            if isinstance(line, OversizeLine):
                self.summary.alerts_in += 1
                self.dead_letter(line.head, source, line_no, line.reason, raw_size=line.size)
            elif line.strip():
                out.extend(self.take_line(line, source, line_no, fmt))
                if not batched:
                    self.flush_runs()
            while out and (not isinstance(out[0], _Later) or out[0].done):
                yield _now(out.popleft())
        self.flush_runs()
        for item in out:
            yield _now(item)

    def close(self) -> None:
        """Run what is queued, commit everything and release the store and checkpointer."""
        self.flush_runs()
        self.store.close()
        self.checkpointer.conn.close()
