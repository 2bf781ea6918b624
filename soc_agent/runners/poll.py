"""Poll the configured alert sources and feed what they return to the pipeline.

One cycle, per source: read its saved cursor, ``poll`` it, hand each record
to ``Pipeline.process_line`` forced to the source's format (so an unmappable
record is dead-lettered with its reason, and ``alerts_in == processed +
dead_lettered`` holds), then save the new cursor *in the same commit* as
the alerts. A crash before that commit re-reads the batch; after it, the
batch is never fetched again. A failed poll (``ConnectorError``) leaves the
cursor alone, is counted on the cursor row and written to the audit trail,
and does not stop the other sources.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.base import AlertSource
from connectors.cursors import load_cursor, save_cursor
from connectors.errors import ConnectorError

__all__ = ["PollOutcome", "poll_forever", "poll_once"]


@dataclass
class PollOutcome:
    """What one source's poll did."""

    source: str
    fetched: int = 0
    """Records the vendor returned (each is processed or dead-lettered)."""
    processed: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    cases: list[str] = field(default_factory=list)
    """Cases these records opened or updated, in first-seen order."""
    error: str | None = None
    """The ConnectorError message when the poll failed (the cursor did not move)."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view for the CLI."""
        return {"source": self.source, "fetched": self.fetched, "processed": self.processed,
                "dead_lettered": self.dead_lettered, "duplicates": self.duplicates, "cases": self.cases,
                "error": self.error}


def _poll_source(pipeline, source: AlertSource) -> PollOutcome:
    store, summary = pipeline.store, pipeline.summary
    outcome = PollOutcome(source.name)
    cursor = load_cursor(store.session, source.name)
    try:
        records, next_cursor = source.poll(cursor)
    except ConnectorError as exc:
        outcome.error = str(exc)
        save_cursor(store.session, source.name, cursor, error=str(exc))
        pipeline.services.audit.append("source_poll_failed", {
            "source": source.name, "error": str(exc), "status": exc.status, "permission": exc.permission,
        }, session=store.session)
        store.commit()
        return outcome
    before = (summary.processed, summary.dead_lettered, summary.duplicates)
    for number, record in enumerate(records, start=1):
        outcome.fetched += 1
        line = json.dumps(record, separators=(",", ":"), default=str).encode()
        for result in pipeline.process_line(line, source=f"poll:{source.name}", line_no=number, fmt=source.format):
            if result.case_id and result.case_id not in outcome.cases:
                outcome.cases.append(result.case_id)
    outcome.processed = summary.processed - before[0]
    outcome.dead_lettered = summary.dead_lettered - before[1]
    outcome.duplicates = summary.duplicates - before[2]
    save_cursor(store.session, source.name, next_cursor)
    store.commit()  # the alerts and the cursor that skips them land together
    return outcome


def poll_once(pipeline, sources: Sequence[AlertSource]) -> list[PollOutcome]:
    """Poll every source once; one source's failure does not stop the others."""
    return [_poll_source(pipeline, source) for source in sources]


def poll_forever(pipeline, sources: Sequence[AlertSource], interval_s: float, stop: threading.Event,
                 report: Callable[[list[PollOutcome]], None] = lambda _: None) -> None:
    """Poll every ``interval_s`` seconds until ``stop`` is set; ``report`` sees each cycle."""
    while not stop.is_set():
        report(poll_once(pipeline, sources))
        pipeline.services.executor.expire()  # TTL'd blocks lapse on schedule while we wait for alerts
        stop.wait(interval_s)
