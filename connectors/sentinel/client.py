"""Poll Microsoft Graph security alerts (``GET /security/alerts_v2``).

Graph filters on ``lastUpdateDateTime`` and pages with ``@odata.nextLink``;
it has no ordering guarantee across pages, so the watermark only moves once
the whole result set has been read. An alert that changes (status,
classification) is returned again; the pipeline files it as a duplicate of
the first sighting.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from connectors._common import first_text, parse_time
from connectors._poll import Watermark, check_positive, iso_z
from connectors.http import ConnectorClient, paginate_odata

__all__ = ["GraphAlertSource"]

PERMISSION = "SecurityAlert.Read.All"


class GraphAlertSource:
    """Alerts from every Microsoft security product Graph aggregates (Defender, Sentinel, ...)."""

    format = "sentinel"

    def __init__(self, client: ConnectorClient, *, name: str = "sentinel", page_size: int = 500,
                 lookback_minutes: float = 60, graph_filter: str = "") -> None:
        check_positive(name, page_size=page_size, lookback_minutes=lookback_minutes)
        self.client, self.name = client, name
        self.page_size = int(page_size)
        self.lookback = timedelta(minutes=lookback_minutes)
        self.graph_filter = graph_filter
        """An extra OData clause ANDed with the time filter (e.g. ``serviceSource eq 'microsoftSentinel'``)."""

    def poll(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Alerts updated at or after the watermark, minus those already returned."""
        mark = Watermark.load(cursor, self.lookback)
        clause = f"lastUpdateDateTime ge {iso_z(mark.time)}"
        if self.graph_filter:
            clause = f"{clause} and ({self.graph_filter})"
        fresh: list[dict[str, Any]] = []
        for item in paginate_odata(self.client, "/security/alerts_v2", permission=PERMISSION,
                                   params={"$filter": clause, "$top": self.page_size}):
            if isinstance(item, dict):
                fresh.append(item)
        records: list[dict[str, Any]] = []
        for item in sorted(fresh, key=lambda r: str(r.get("lastUpdateDateTime") or "")):
            when = parse_time(item.get("lastUpdateDateTime"))
            record_id = first_text(item, "id") or ""
            if mark.is_new(when, record_id):
                records.append(item)
        for item in records:  # after the whole set: a failed page must not move the watermark
            mark.advance(parse_time(item.get("lastUpdateDateTime")), first_text(item, "id") or "")
        return records, mark.dump()
