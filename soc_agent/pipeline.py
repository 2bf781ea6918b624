"""The triage pipeline: lines in, one result per alert out, nothing lost.

Intake (``soc_agent.intake``) files each alert into its case and says when the
case needs a fresh run of the graph; the pipeline holds that intake, queues the
runs and makes the results. Every input ends either processed or in the
dead-letter table, with the reason: ``alerts_in == processed + dead_lettered``.

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
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from langgraph.types import Command
from sqlmodel import select

from soc_agent.actions import TTL_ACTIONS
from soc_agent.checkpoint import make_checkpointer
from soc_agent.composition import build_services
from soc_agent.config import Settings
from soc_agent.graph import AWAITING_APPROVAL, batch_input, build_batch_graph, build_graph, hand_over
from soc_agent.intake import Intake, RejectedLine, RunHooks, RunSummary
from soc_agent.lines import OversizeLine, bounded_lines
from soc_agent.reasoner import DeterministicReasoner, Reasoner
from soc_agent.store import ApprovalRow, DecisionRow
from soc_agent.types import Alert, to_db_time, utcnow

_COMMIT_EVERY = 500


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
        self.summary = RunSummary()
        # Each alert's own verdict from its case's latest run, by alert id and by (case, rule) for follow-ups
        # that join without a run; bounded like the deduper.
        self._judged: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._pending = 0
        # Files alerts into cases (it restores the open ones) and hands this pipeline the runs they need.
        self.intake: Intake[_Produced] = Intake(settings, self.store, self.summary, RunHooks(
            result=self._result_once_decided, queue_run=self._queue_run, before_join=self._before_join,
            reported_as=self._reported_as))
        self._restore_block_times()
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
        alert = self.intake.accept_line(line, source, line_no, fmt)
        if isinstance(alert, RejectedLine):
            return []
        return self.take_alert(alert, counted=True)

    def parse_line(self, line: bytes, fmt: str = "auto") -> Alert:
        """One input line as an alert intake accepts (mapped, with a possible time), or ``MappingError``."""
        return self.intake.parse_line(line, fmt)

    def take_alert(self, alert: Alert, counted: bool = False) -> list[_Produced]:
        """Intake now; a run the alert needs joins the queue (decided by ``flush_runs``, or sooner)."""
        if not counted:
            self.summary.alerts_in += 1
        started = time.perf_counter()
        produced = self.intake.file_alert(alert, started)
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
            self.intake.forget_idle()
        return produced

    # ---- the graph ----------------------------------------------------

    def _before_join(self, case_id: str, alert: Alert) -> None:
        queued = self._queued_cases.get(case_id)
        if queued is not None:
            # A queued run decides on what its case held when its alert arrived, as if it had run at once:
            # the queue runs up to it before another alert joins the case. In arrival order, because the
            # guard's block-rate limit counts in order; ahead of a threshold's run only the case's own goes.
            self._run_batch([queued] if alert.source == "detector" else
                            self._queue[:self._queue.index(queued) + 1])

    def _queue_run(self, alert: Alert, case_id: str, run: int, material: list[str], started: float) -> _Later:
        queued = _QueuedRun(alert=alert.model_copy(update={"raw": {}}), case_id=case_id, run=run,
                            material=material, started=started)
        self._queue.append(queued)
        self._queued_cases[case_id] = queued
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
        case = self.intake.case_row(case_id) if case_id else None
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
        while len(self._judged) > self.intake.deduper.max_entries:
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

    def _restore_block_times(self) -> None:
        """The guard's recent blocks, after a restart (intake restores the open cases)."""
        # The block-rate limit counts blocks decided within its window, whichever process decided them: a
        # restart must not hand out a fresh allowance.
        since = to_db_time(utcnow() - timedelta(seconds=self.services.policy.block.rate_window_s))
        self.services.block_times.extend(to_db_time(t) for t in self.store.session.exec(
            select(DecisionRow.created_at).where(DecisionRow.outcome == "allow", DecisionRow.mode == "enforce",
                                                 DecisionRow.action.in_(sorted(TTL_ACTIONS)),
                                                 DecisionRow.created_at >= since)
            .order_by(DecisionRow.created_at)))

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
                self.intake.dead_letter(line.head, source, line_no, line.reason, raw_size=line.size)
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
