"""Dead letters: the input intake could not take in, listed, shown and retried.

Intake keeps every line it cannot map or date in the ``dead_letters`` table
with its reason (``Pipeline.dead_letter``). Here a person gets them back:

- :func:`reason_kind` groups reasons without cutting them (the values in a
  reason, such as a timestamp or a byte offset, are elided, nothing else);
- :func:`record` and :func:`raw_preview` show a row whole and inert: the raw
  line may be hostile or not text at all;
- :func:`retry` re-runs a stored line through the current mappings and
  settings, once: a line whose retry was processed is marked
  (``retried_at``) in the same transaction as the alert it became, and a
  second retry is refused; a retry that fails again records the new reason
  and leaves the row retryable. The alert itself is also a re-send to the
  store's key dedupe, so even a retry the marking missed is not run twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import update
from sqlmodel import Session, select

from connectors import MappingError
from soc_agent.store import DeadLetterRow
from soc_agent.types import to_db_time, utcnow

if TYPE_CHECKING:
    from soc_agent.pipeline import Pipeline

__all__ = ["RetryOutcome", "is_retryable", "list_rows", "raw_preview", "reason_kind", "record", "retry"]

# Values inside a reason: quoted text, bracketed lists, and words that start with a digit (times, sizes,
# offsets; punctuation after them stays); "UTF-8" is a word.
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_BRACKETED = re.compile(r"\[[^\]]*\]")
_VALUE = re.compile(r"(?<!\S)[-+]?\d\S*?(?=[:;,.]?(?:\s|$))")
_PREVIEW_BYTES = 512


def reason_kind(reason: str) -> str:
    """The reason with its values elided: ``timestamp … is in the future``.

    For counting reasons together; every word that is not a value is kept, so
    the kind reads as a whole sentence (no cut at a colon or a length).
    """
    kind = _QUOTED.sub("'…'", reason)
    kind = _BRACKETED.sub("[…]", kind)
    return " ".join(_VALUE.sub("…", kind).split())


def _raw_bytes(row: DeadLetterRow) -> bytes:
    """The stored line as bytes (as decoded when it was stored)."""
    return row.raw.encode("utf-8")


def is_retryable(row: DeadLetterRow) -> str | None:
    """None when the row's line can be re-run; otherwise why not."""
    if row.retried_at is not None:
        return (f"dead letter {row.id} was already retried at {row.retried_at.isoformat()}"
                f" ({row.retry_result or 'processed'}); a line is processed at most once")
    stored = len(_raw_bytes(row))
    if stored != row.raw_size:
        # The stored text is a head (an oversize line) or had invalid UTF-8 replaced: not the line received.
        return (f"dead letter {row.id} keeps {stored} of the line's {row.raw_size} bytes (truncated, or "
                f"not valid UTF-8 when received): it cannot be re-run as it came in")
    return None


def raw_preview(row: DeadLetterRow) -> dict[str, Any]:
    """What ``dead-letters show`` prints of the raw line: its text (escape it before printing), and for
    a line that was not valid UTF-8 (replaced with U+FFFD when stored) or holds control characters, a hex
    dump of its first bytes."""
    data = _raw_bytes(row)
    binary = "\ufffd" in row.raw or any(ord(c) < 0x20 and c not in "\t\r\n" for c in row.raw)
    preview: dict[str, Any] = {"text": row.raw, "stored_bytes": len(data), "size": row.raw_size,
                               "complete": len(data) == row.raw_size}
    if binary:
        head = data[:_PREVIEW_BYTES]
        preview["hex"] = [f"{i:08x}  {head[i:i + 16].hex(' ')}" for i in range(0, len(head), 16)]
        preview["hex_truncated"] = len(data) > _PREVIEW_BYTES
        preview["replaced"] = "\ufffd" in row.raw
    return preview


def record(row: DeadLetterRow, with_raw: bool = True) -> dict[str, Any]:
    """The row as a JSON-ready dict (times ISO 8601; ``raw`` only ``with_raw``)."""
    data = row.model_dump()
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
    data["kind"] = reason_kind(row.reason)
    data["retryable"] = is_retryable(row) is None
    if not with_raw:
        data.pop("raw")
    return data


def list_rows(session: Session, since: datetime | None = None, source: str | None = None,
              pending_only: bool = False) -> list[DeadLetterRow]:
    """Dead letters by id; ``since`` on ``received_at``, ``source`` exact, ``pending_only``: never retried."""
    query = select(DeadLetterRow).order_by(DeadLetterRow.id)
    if since is not None:
        query = query.where(DeadLetterRow.received_at >= to_db_time(since))
    if source is not None:
        query = query.where(DeadLetterRow.source == source)
    if pending_only:
        query = query.where(DeadLetterRow.retried_at.is_(None))
    return list(session.exec(query))


@dataclass
class RetryOutcome:
    """What one retry did."""

    id: int
    status: str
    """``processed`` (intake took the alert), ``failed`` (dead again: ``reason``), ``refused`` (``reason``), or
    ``skipped`` (``retry --all`` passed over a row that cannot be re-run: ``reason``)."""
    reason: str = ""
    alert_id: str | None = None
    case_id: str | None = None
    result: str | None = None
    """The pipeline's status for the alert (decided, pending_approval, duplicate, follow_up, ...)."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def retry(pipeline: Pipeline, row_id: int, fmt: str = "auto", by: str = "cli") -> RetryOutcome:
    """Re-run dead letter ``row_id`` through ``pipeline`` (its current mappings and settings), once.

    The row is claimed with a conditional update (``retried_at`` from NULL) in the pipeline's writer
    transaction, which then takes the alert in and commits both together: two retries of one row never
    both run it. A line that fails again puts the claim back, keeps the new reason and says what it was
    before in ``retry_result``. Audited with ``by`` either way.
    """
    session = pipeline.store.session
    row = session.get(DeadLetterRow, row_id)
    if row is None:
        return RetryOutcome(row_id, "refused", f"no dead letter {row_id}")
    session.refresh(row)
    why_not = is_retryable(row)
    if why_not is not None:
        return RetryOutcome(row_id, "refused", why_not)
    now = to_db_time(utcnow())
    claimed = session.connection().execute(
        update(DeadLetterRow).where(DeadLetterRow.id == row_id, DeadLetterRow.retried_at.is_(None))
        .values(retried_at=now)).rowcount
    if claimed != 1:
        pipeline.store.rollback()
        session.refresh(row)
        return RetryOutcome(row_id, "refused", is_retryable(row) or f"dead letter {row_id} is being retried")
    audit = pipeline.services.audit
    try:
        alert = pipeline.parse_line(_raw_bytes(row), fmt)
    except MappingError as exc:
        new_reason = str(exc)[:1000]
        session.connection().execute(update(DeadLetterRow).where(DeadLetterRow.id == row_id).values(
            retried_at=None, reason=new_reason,
            retry_result=f"failed again at {now.isoformat()} (--format {fmt}); before: {row.reason}"[:1000]))
        audit.append("dead_letter.retry", {"id": row_id, "by": by, "format": fmt, "result": "failed",
                                           "reason": new_reason}, session=session)
        pipeline.store.commit()
        return RetryOutcome(row_id, "failed", new_reason)
    results = pipeline.process_alert(alert)
    last = results[-1] if results else None
    outcome = RetryOutcome(row_id, "processed", alert_id=alert.id, case_id=last.case_id if last else None,
                           result=last.status if last else None)
    summary = f"{outcome.result or 'taken in'}: alert {alert.source}:{alert.id}"
    if outcome.case_id:
        summary += f" in case {outcome.case_id}"
    session.connection().execute(update(DeadLetterRow).where(DeadLetterRow.id == row_id)
                                 .values(retry_result=f"{summary} (--format {fmt}, by {by})"[:1000]))
    audit.append("dead_letter.retry", {"id": row_id, "by": by, "format": fmt, "result": outcome.result,
                                       "alert": f"{alert.source}:{alert.id}", "case_id": outcome.case_id},
                 case_id=outcome.case_id, session=session)
    pipeline.store.commit()
    return outcome
