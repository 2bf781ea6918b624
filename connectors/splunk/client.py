"""Poll Splunk Enterprise Security notable events through the REST search export.

``POST /services/search/v2/jobs/export`` streams a search's results as
newline-delimited JSON (``{"preview": false, "result": {...}}`` per line)
without creating a job to poll or clean up. The search sorts by ``_time``
ascending and stops after ``max_results``, so a busy index is read in
bounded chunks, one per poll; the cursor is a ``Watermark`` on ``_time``
sent as ``earliest_time``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from connectors._common import digest, first_text, parse_time
from connectors._poll import Watermark, check_positive
from connectors.errors import BadResponse
from connectors.http import ConnectorClient

__all__ = ["SplunkNotableSource"]

PERMISSION = "search capability on the notable index"
EXPORT = "/services/search/v2/jobs/export"


class SplunkNotableSource:
    """ES notables from ``index=notable`` newer than the cursor, oldest first."""

    format = "splunk"

    def __init__(self, client: ConnectorClient, *, name: str = "splunk", index: str = "notable",
                 search_filter: str = "", max_results: int = 1000, lookback_minutes: float = 60,
                 export_path: str = EXPORT) -> None:
        check_positive(name, max_results=max_results, lookback_minutes=lookback_minutes)
        self.client, self.name, self.index = client, name, index
        self.search_filter = search_filter
        """Extra SPL terms after ``index=...`` (e.g. ``status!=5`` to skip closed notables)."""
        self.max_results = int(max_results)
        self.lookback = timedelta(minutes=lookback_minutes)
        self.export_path = export_path
        """``/services/search/jobs/export`` for Splunk versions before 9."""

    def _search(self) -> str:
        terms = f"search index={self.index} {self.search_filter}".strip()
        return f"{terms} | sort 0 _time | head {self.max_results}"

    def poll(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Notables at or after the watermark, minus those already returned."""
        mark = Watermark.load(cursor, self.lookback)
        response = self.client.call_raw("POST", self.export_path, permission=PERMISSION, data={
            "search": self._search(), "earliest_time": f"{mark.time.timestamp():.6f}", "latest_time": "now",
            "output_mode": "json",
        })
        records: list[dict[str, Any]] = []
        for result in self._results(response.content):
            when = parse_time(result.get("_time"))
            record_id = first_text(result, "event_id", "_cd") or digest(result)
            if mark.is_new(when, record_id):
                records.append(result)
                mark.advance(when, record_id)
        return records, mark.dump()

    def _results(self, body: bytes) -> list[dict[str, Any]]:
        where = f"POST {self.export_path}"
        if body.lstrip()[:1] == b"<":
            raise BadResponse(self.name, f"{where} returned an HTML or XML page, not JSON results")
        results = []
        for line in body.splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                # A cut-off stream: fail the poll so the cursor stays and the next poll re-reads it.
                raise BadResponse(self.name, f"{where} returned truncated or malformed JSON") from None
            if not isinstance(item, dict):
                raise BadResponse(self.name, f"{where} returned a {type(item).__name__}, not a JSON object")
            messages = item.get("messages")
            if isinstance(messages, list) and any(isinstance(m, dict) and m.get("type") in ("ERROR", "FATAL")
                                                  for m in messages):
                # The message text is vendor output: not copied into an error that gets logged.
                raise BadResponse(self.name, f"{where}: the search failed (Splunk sent an ERROR message)")
            result = item.get("result")
            if isinstance(result, dict) and not item.get("preview", False):
                results.append(result)
        return results
