"""Intake: each input line ends filed into its case, or in the dead-letter table with why.

Alerts enter in three places, and all three go through :class:`Intake`: the
embedded pipeline (``soc_agent.pipeline``), a fleet worker
(``soc_agent.fleet.worker``) and the server's broker intake, which checks lines
before it queues them for the workers (so their dead letters are its to answer).

Intake is the cheap per-alert part of triage. ``accept_line`` decodes and maps
one line and validates its clock; a line that fails is dead-lettered with the
reason. ``file_alert`` dedupes by fingerprint, counts raw events into
threshold detectors and correlates into a case. Only when something material
changed (a new case, a new detection, a new indicator, higher severity) does
the case get a run, handed to the run queue behind intake (:class:`RunHooks`);
duplicates and follow-ups update the case in one lookup. Every input ends
either processed or dead-lettered: ``alerts_in == processed + dead_lettered``.
"""

from __future__ import annotations

import json
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, TypeVar

from sqlalchemy import func, update
from sqlmodel import select

from connectors import MappingError, parse_record
from soc_agent.config import Settings
from soc_agent.correlate import Correlator
from soc_agent.dead_letters import reason_kind
from soc_agent.dedupe import Deduper, fingerprint
from soc_agent.detect import ThresholdDetector
from soc_agent.store import AlertRow, CaseEntityRow, CaseRow, DeadLetterRow, Store
from soc_agent.types import Alert, Severity, to_db_time, utcnow

__all__ = ["EARLIEST_TIMESTAMP", "Intake", "IntakeState", "RejectedLine", "RunHooks", "RunSummary"]

EARLIEST_TIMESTAMP = datetime(1990, 1, 1, tzinfo=timezone.utc)
"""Alerts stamped before this are dead-lettered: no detection of ours is that old."""
_MAX_DEAD_LETTER_TEXT = 64 * 1024
_MAX_REASON_KINDS = 1000

R = TypeVar("R")
"""What the run queue gives for one alert (the pipeline's result, now or once its case's run has decided)."""


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


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A line intake would not accept, and why (what its dead letter keeps)."""

    line: bytes
    """The line as received."""
    source: str
    """Where it came from (a file, ``hec:<sourcetype>``, a broker stream)."""
    line_no: int | None
    """Its line number in ``source``, when it has one."""
    reason: str
    """Why it was refused (a mapping error, an impossible time)."""


@dataclass(frozen=True, slots=True)
class RunHooks(Generic[R]):
    """How intake hands cases to the run queue behind it (``soc_agent.pipeline``), which makes the results."""

    result: Callable[[Alert, str | None, str, list[str], float], R]
    """``(alert, case_id, status, why, started)``: the result of an alert that needs no run of its own (now, or
    once its case's queued run has decided)."""
    queue_run: Callable[[Alert, str, int, list[str], float], R]
    """``(alert, case_id, run, material, started)``: queue run number ``run`` of the case; its result."""
    before_join: Callable[[str, Alert], None]
    """``(case_id, alert)``: a queued run of the case decides before ``alert`` joins it (it decides on what the
    case held when its own alert arrived)."""
    reported_as: Callable[[R, str], R]
    """``(result, alert_id)``: ``result`` reported for another alert (the event that crossed a threshold)."""


@dataclass
class IntakeState:
    """The part of intake one fleet partition owns (a worker keeps one per partition and switches between them)."""

    deduper: Deduper
    """First-seen keys and fingerprints, for duplicates."""
    detector: ThresholdDetector
    """Raw events counted towards thresholds."""
    correlator: Correlator
    """The open cases alerts can join."""
    case_of_key: OrderedDict[str, str | None]
    """Source key -> case, for duplicates."""
    case_rows: dict[str, CaseRow]
    """The open cases' rows, held in memory."""


class Intake(Generic[R]):
    """Accepts lines and files alerts into cases: dedupe, thresholds, correlation, dead letters.

    Built on a store (it restores the open cases the store holds within the
    correlation window), a :class:`RunSummary` it counts into, and the
    :class:`RunHooks` of the run queue it hands runs to. Not thread-safe: one
    writer session, like the pipeline that holds it.
    """

    def __init__(self, settings: Settings, store: Store, summary: RunSummary, runs: RunHooks[R]) -> None:
        """Fresh intake state, then the open cases restored from ``store``."""
        self.settings = settings
        self.store = store
        self.summary = summary
        self._runs = runs
        self.deduper = Deduper()
        self.detector = ThresholdDetector.from_file(settings.playbooks_dir / "detectors.yml")
        self.correlator = Correlator(timedelta(seconds=settings.correlation_window_s))
        # source key -> case, for duplicates; bounded like the deduper (oldest forgotten first).
        self._case_of_key: OrderedDict[str, str | None] = OrderedDict()
        # Strong references keep open cases in the session's (weak) identity map:
        # without them every follow-up re-reads its case from the database.
        self._case_rows: dict[str, CaseRow] = {}
        # Keys an earlier run stored, met again in this one (bounded like the deduper).
        self._from_store: OrderedDict[str, None] = OrderedDict()
        # A key the store already holds is a re-send (a re-run, a restart): checked there whenever this process
        # cannot know every key itself (the store held alerts when it started, or the deduper forgot some).
        with store.reader() as session:
            self._store_had_alerts = session.exec(select(AlertRow.id).limit(1)).first() is not None
        horizon = to_db_time(utcnow() - self.correlator.window)
        self._restore_cases(list(store.session.exec(select(CaseRow).where(CaseRow.updated_at >= horizon))))

    @property
    def store_had_alerts(self) -> bool:
        """Whether the store held alerts when intake started (then new keys are looked up there too)."""
        return self._store_had_alerts

    @property
    def held_case_ids(self) -> Iterable[str]:
        """The cases whose rows intake holds in memory (the open ones alerts still join)."""
        return self._case_rows.keys()

    # ---- lines ------------------------------------------------------------

    def accept_line(self, line: bytes, source: str = "stdin", line_no: int | None = None, fmt: str = "auto",
                    defer: bool = False) -> Alert | RejectedLine:
        """One input line counted in: its alert, or its :class:`RejectedLine`, dead-lettered with the reason.

        ``defer=True`` only checks: nothing is counted or stored (so it needs no
        lock), and the caller files a rejection with :meth:`file_rejected` once
        it means to (the broker's intake, which dead-letters only when the
        broker took the lines it queues).
        """
        if not defer:
            self.summary.alerts_in += 1
        try:
            return self.parse_line(line, fmt)
        except MappingError as exc:
            rejected = RejectedLine(line, source, line_no, str(exc))
        if not defer:
            self.dead_letter(line, source, line_no, rejected.reason)
        return rejected

    def file_rejected(self, rejected: RejectedLine) -> None:
        """Count in and dead-letter a line ``accept_line(..., defer=True)`` rejected."""
        self.summary.alerts_in += 1
        self.dead_letter(rejected.line, rejected.source, rejected.line_no, rejected.reason)

    def parse_line(self, line: bytes, fmt: str = "auto") -> Alert:
        """One input line as an alert intake accepts (mapped, with a possible time), or ``MappingError``."""
        alert = parse_record(line.rstrip(b"\r\n"), fmt, self.settings.max_alert_bytes)
        self._check_clock(alert)
        return alert

    def _check_clock(self, alert: Alert) -> None:
        """Dead-letter only impossible times; an old alert is triaged record-only (``is_stale``)."""
        now = utcnow()
        if alert.timestamp > now + timedelta(seconds=self.settings.max_clock_skew_s):
            raise MappingError(f"timestamp {alert.timestamp.isoformat()} is in the future")
        if alert.timestamp < EARLIEST_TIMESTAMP:
            raise MappingError(f"timestamp {alert.timestamp.isoformat()} is before {EARLIEST_TIMESTAMP:%Y}: "
                               f"not a real alert time")

    def dead_letter(self, line: bytes, source: str, line_no: int | None, reason: str,
                    raw_size: int | None = None) -> None:
        """Keep what could not be processed, with why, and count it; nothing is silently dropped.

        ``raw_size``: the input's full size when ``line`` is only its head (an oversize line).
        """
        self.summary.dead_lettered += 1
        self.summary.count_dead_letter(reason)
        self.record_dead_letter(line, source, line_no, reason, raw_size)

    def record_dead_letter(self, line: bytes, source: str, line_no: int | None, reason: str,
                           raw_size: int | None = None) -> None:
        """The dead letter's row alone, not counted in the summary (a fleet's poison message: see the worker)."""
        self.store.session.add(DeadLetterRow(
            received_at=to_db_time(utcnow()), source=source, line_no=line_no, reason=reason[:1000],
            raw=line[:_MAX_DEAD_LETTER_TEXT].decode("utf-8", errors="replace"),
            raw_size=len(line) if raw_size is None else raw_size,
        ))

    # ---- alerts into cases ------------------------------------------------

    def file_alert(self, alert: Alert, started: float) -> list[R]:
        """Dedupe, count into thresholds and correlate ``alert``; its results (through the run queue).

        ``started``: the alert's arrival (``time.perf_counter()``), for its result's latency.
        """
        runs = self._runs
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
            return [runs.result(alert, self._case_of_key.get(original), "duplicate",
                                [f"already received: {original} (in the store)"], started)]
        if original is not None:
            self.summary.duplicates += 1
            case_id = self._case_of_key.get(original)
            self._record_alert(alert, key, fp, case_id, duplicate_of=original)
            if case_id is not None:
                self.case_row(case_id).duplicate_count += 1
            return [runs.result(alert, case_id, "duplicate", [f"duplicate of {original}"], started)]

        if alert.kind == "event":
            crossed = self.detector.observe(alert)
            attachment = self.correlator.attach(alert)
            self._record_alert(alert, key, fp, attachment.case_id)
            if attachment.case_id is not None:
                self._touch_case(attachment.case_id, alert, event=True)
            results: list[R] = []
            for synthetic in crossed:
                results.extend(self.file_alert(synthetic, started))
            if results:
                # The event that crossed a threshold reports the decision it caused.
                return [runs.reported_as(results[-1], alert.id)]
            status = "follow_up" if attachment.case_id else "event"
            return [runs.result(alert, attachment.case_id, status, attachment.why, started)]

        attachment = self.correlator.attach(alert)
        case_id = attachment.case_id
        runs.before_join(case_id, alert)
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
            return [runs.result(alert, case_id, "follow_up", attachment.why, started)]
        index = self.correlator.cases[case_id]
        index.runs = max(index.runs, case.runs) + 1
        return [runs.queue_run(alert, case_id, index.runs, attachment.why, started)]

    def case_row(self, case_id: str) -> CaseRow:
        """The case's row: held in memory while the correlator holds the case, read from the store otherwise."""
        row = self._case_rows.get(case_id)
        if row is None:
            row = self.store.session.get(CaseRow, case_id)
            # Only cases the correlator holds are kept: a forgotten one (a duplicate of an old alert) is
            # read when needed, or the cache would grow with every old case a re-send touches.
            if case_id in self.correlator.cases:
                self._case_rows[case_id] = row
        return row

    def forget_idle(self) -> None:
        """Forget the cases no alert joined for a correlation window (a long-running process keeps the rest)."""
        for case_id in self.correlator.forget_idle():
            self._case_rows.pop(case_id, None)

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

    def _touch_case(self, case_id: str, alert: Alert, event: bool = False) -> CaseRow:
        case = self.case_row(case_id)
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

    # ---- state: restore, rebuild, switch ----------------------------------

    def rebuild(self, case_ids: Iterable[str], seen: Iterable[tuple[str, str, Any, str | None]] = ()) -> IntakeState:
        """Fresh intake state that knows only ``case_ids`` and the ``seen`` alerts; in use, and returned.

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
        state = IntakeState(self.deduper, self.detector, self.correlator, self._case_of_key, self._case_rows)
        for key, fp, ts, case_id in seen:
            self.deduper.check(key, fp, ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts)
            self._case_of_key[key] = case_id
        wanted_ids = list(set(case_ids))
        if not wanted_ids:
            return state
        horizon = to_db_time(utcnow() - self.correlator.window)
        for start in range(0, len(wanted_ids), 500):
            self._restore_cases(list(self.store.session.exec(select(CaseRow).where(
                CaseRow.id.in_(wanted_ids[start:start + 500]), CaseRow.updated_at >= horizon))))
        return state

    def switch_to(self, state: IntakeState) -> None:
        """File the next alerts with ``state`` (cheap: five references; ``state`` sees every change made)."""
        self.deduper, self.detector, self.correlator = state.deduper, state.detector, state.correlator
        self._case_of_key, self._case_rows = state.case_of_key, state.case_rows

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
