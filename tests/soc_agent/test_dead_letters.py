"""Dead letters: reasons grouped without being cut, rows shown inert, retries only of whole lines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from soc_agent.dead_letters import is_retryable, raw_preview, reason_kind, record
from soc_agent.intake import RunSummary
from soc_agent.store import DeadLetterRow


@pytest.mark.parametrize("reason, kind", [
    ("timestamp 2024-12-03T08:00:00+00:00 is in the future", "timestamp … is in the future"),
    ("invalid UTF-8 at byte 7", "invalid UTF-8 at byte …"),
    ("malformed JSON: Expecting value at line 1 column 2", "malformed JSON: Expecting value at line … column …"),
    ("unknown format: no connector recognises a record with keys [evt, when]",
     "unknown format: no connector recognises a record with keys […]"),
    ("unknown format: not JSON and not a syslog line: 'evil: text'",
     "unknown format: not JSON and not a syslog line: '…'"),
    ("timestamp 1980-01-02T08:30:00+00:00 is before 1990: not a real alert time",
     "timestamp … is before …: not a real alert time"),
    ("oversize: line is 300000 bytes, over the 262144-byte limit (max_alert_bytes)",
     "oversize: line is … bytes, over the … limit (max_alert_bytes)"),
])
def test_a_reason_kind_elides_only_the_values(reason, kind):
    assert reason_kind(reason) == kind


def test_the_run_summary_groups_reasons_by_kind_and_keeps_the_first_whole():
    summary = RunSummary()
    summary.count_dead_letter("timestamp 2024-12-03T08:00:00+00:00 is in the future")
    summary.count_dead_letter("timestamp 2025-01-01T00:00:00+00:00 is in the future")
    summary.count_dead_letter("invalid UTF-8 at byte 0")
    assert dict(summary.dead_letter_reasons) == {"timestamp … is in the future": 2, "invalid UTF-8 at byte …": 1}
    assert summary.dead_letter_examples["timestamp … is in the future"] \
        == "timestamp 2024-12-03T08:00:00+00:00 is in the future"


def _row(raw: str, raw_size: int | None = None, **fields) -> DeadLetterRow:
    return DeadLetterRow(id=7, received_at=datetime(2026, 12, 7, tzinfo=UTC), source="in.jsonl", line_no=3,
                         reason="malformed JSON: Expecting value at line 1 column 1", raw=raw,
                         raw_size=len(raw.encode()) if raw_size is None else raw_size, **fields)


def test_only_a_line_kept_whole_and_never_retried_is_retryable():
    assert is_retryable(_row('{"id": 1}\n')) is None
    head = is_retryable(_row("x" * 100, raw_size=300_000))
    assert head is not None and "keeps 100 of the line's 300000 bytes" in head
    done = is_retryable(_row("{}", retried_at=datetime(2026, 12, 7, 9, tzinfo=UTC), retry_result="decided"))
    assert done is not None and "already retried" in done and "decided" in done


def test_the_preview_of_a_line_with_replaced_bytes_says_so_and_dumps_hex():
    row = _row("\ufffd\ufffd{}\n", raw_size=5)  # b'\xff\xfe{}\n' as stored
    preview = raw_preview(row)
    assert preview["replaced"] and not preview["complete"]
    assert preview["hex"] == ["00000000  ef bf bd ef bf bd 7b 7d 0a"]
    assert "hex" not in raw_preview(_row('{"id": 1}\n')), "plain text needs no hex"


def test_a_record_is_json_ready_with_its_kind():
    data = record(_row('{"id": 1}\n'))
    assert data["received_at"] == "2026-12-07T00:00:00+00:00"
    assert data["kind"] == "malformed JSON: Expecting value at line … column …"
    assert data["retryable"] and data["raw"] == '{"id": 1}\n'
    assert "raw" not in record(_row("{}"), with_raw=False)
