"""Intake on its own: lines accepted or dead-lettered once with their reason, alerts filed into cases."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlmodel import select

from soc_agent.intake import Intake, RejectedLine, RunHooks, RunSummary
from soc_agent.store import CaseRow, DeadLetterRow, Store
from soc_agent.types import Alert
from tests.conftest import make_alert

LINE = make_alert("malware_detected", [("host", "wks-eng-01.corp.example", "dst"), ("file_hash", "a" * 64, "file")],
                  alert_id="m-1")


class _Runs:
    """A run queue that records what intake handed it."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def hooks(self) -> RunHooks[tuple]:
        return RunHooks(result=self.result, queue_run=self.queue_run, before_join=self.before_join,
                        reported_as=lambda item, alert_id: ("reported_as", alert_id, item))

    def result(self, alert: Alert, case_id: str | None, status: str, why: list[str], started: float) -> tuple:
        self.calls.append(("result", alert.id, case_id, status, why))
        return self.calls[-1]

    def queue_run(self, alert: Alert, case_id: str, run: int, material: list[str], started: float) -> tuple:
        self.calls.append(("queue_run", alert.id, case_id, run))
        return self.calls[-1]

    def before_join(self, case_id: str, alert: Alert) -> None:
        self.calls.append(("before_join", alert.id, case_id))


@pytest.fixture
def store(settings):
    store = Store(settings.db_url)
    yield store
    store.close()


@pytest.fixture
def runs() -> _Runs:
    return _Runs()


@pytest.fixture
def intake(settings, store, runs) -> Intake[tuple]:
    return Intake(settings, store, RunSummary(), runs.hooks())


def _case(store: Store, case_id: str) -> CaseRow:
    store.session.flush()
    return store.session.get(CaseRow, case_id)


def _dead_letters(store: Store) -> list[DeadLetterRow]:
    store.session.flush()
    return list(store.session.exec(select(DeadLetterRow)))


def test_a_good_line_is_accepted_as_its_alert_and_counted_in(intake, store):
    alert = intake.accept_line(LINE + b"\r\n", "in.jsonl", 1)
    assert isinstance(alert, Alert) and alert.id == "m-1" and alert.rule_id == "malware_detected"
    assert (intake.summary.alerts_in, intake.summary.dead_lettered) == (1, 0)
    assert _dead_letters(store) == []


def test_a_bad_line_is_dead_lettered_once_with_its_reason(intake, store):
    rejected = intake.accept_line(b'{"id": "broken', "in.jsonl", 7)
    assert isinstance(rejected, RejectedLine) and rejected.reason
    assert (rejected.line, rejected.source, rejected.line_no) == (b'{"id": "broken', "in.jsonl", 7)
    assert (intake.summary.alerts_in, intake.summary.dead_lettered) == (1, 1)
    assert sum(intake.summary.dead_letter_reasons.values()) == 1
    [row] = _dead_letters(store)
    assert (row.source, row.line_no, row.reason, row.raw) == ("in.jsonl", 7, rejected.reason, '{"id": "broken')
    assert row.raw_size == len(b'{"id": "broken')


def test_an_alert_from_the_future_or_before_1990_is_dead_lettered_for_its_clock(intake, store):
    ahead = intake.accept_line(make_alert("port_scan", [("ip", "198.51.100.7", "src")], alert_id="ahead",
                                          minutes_ago=-24 * 60), "in.jsonl", 1)
    assert isinstance(ahead, RejectedLine) and ahead.reason.endswith("is in the future")
    ancient = LINE.replace(b'"m-1"', b'"old"')
    stamp = datetime(1985, 1, 1, tzinfo=timezone.utc).isoformat().encode()
    ancient = ancient[:ancient.index(b'"timestamp": "') + 14] + stamp + ancient[ancient.index(b'", "entities"'):]
    old = intake.accept_line(ancient, "in.jsonl", 2)
    assert isinstance(old, RejectedLine) and "before 1990" in old.reason
    assert intake.summary.dead_lettered == 2
    assert [row.reason for row in _dead_letters(store)] == [ahead.reason, old.reason]


def test_a_deferred_rejection_counts_and_stores_nothing_until_it_is_filed(intake, store):
    rejected = intake.accept_line(b"not an alert", "broker", defer=True)
    assert isinstance(rejected, RejectedLine)
    assert intake.accept_line(LINE, "broker", defer=True).id == "m-1"
    assert (intake.summary.alerts_in, intake.summary.dead_lettered) == (0, 0) and _dead_letters(store) == []
    intake.file_rejected(rejected)
    assert (intake.summary.alerts_in, intake.summary.dead_lettered) == (1, 1)
    [row] = _dead_letters(store)
    assert row.reason == rejected.reason and row.line_no is None


def test_a_new_alert_opens_a_case_and_queues_its_first_run(intake, runs, store):
    alert = intake.accept_line(LINE, "in.jsonl")
    [queued] = intake.file_alert(alert, 0.0)
    case_id = queued[2]
    assert queued == ("queue_run", "m-1", case_id, 1)
    assert runs.calls == [("before_join", "m-1", case_id), queued]
    assert _case(store, case_id).alert_count == 1
    assert case_id in intake.held_case_ids


def test_a_duplicate_is_answered_with_its_originals_case_and_no_run(intake, runs, store):
    alert = intake.accept_line(LINE, "in.jsonl")
    [(_, _, case_id, _)] = intake.file_alert(alert, 0.0)
    renamed = intake.accept_line(LINE.replace(b'"m-1"', b'"m-2"'), "in.jsonl")
    [answer] = intake.file_alert(renamed, 0.0)
    assert answer == ("result", "m-2", case_id, "duplicate", [f"duplicate of {alert.source}:m-1"])
    assert [call[0] for call in runs.calls].count("queue_run") == 1
    assert intake.summary.duplicates == 1
    assert _case(store, case_id).duplicate_count == 1


def test_each_partitions_state_keeps_its_own_duplicates(intake):
    alert = intake.accept_line(LINE, "in.jsonl")
    first = intake.rebuild([])
    intake.file_alert(alert, 0.0)
    second = intake.rebuild([])
    assert intake.file_alert(alert, 0.0)[0][0] == "queue_run", "the second partition never saw it"
    intake.switch_to(first)
    assert intake.file_alert(alert, 0.0)[0][3] == "duplicate"
    intake.switch_to(second)
    assert intake.file_alert(alert, 0.0)[0][3] == "duplicate"
