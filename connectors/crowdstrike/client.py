"""Poll CrowdStrike Falcon alerts through the Alerts API v2.

Two calls per page, as Falcon designs it: ``GET /alerts/queries/alerts/v2``
returns composite ids (FQL ``filter`` on ``updated_timestamp``, ``after``
token paging), then ``POST /alerts/entities/alerts/v2`` returns the alert
objects for those ids. Authentication is OAuth2 client credentials
(``auth.type: oauth2``, token URL ``<base>/oauth2/token``) in the shared
HTTP layer, which also honours Falcon's ``X-RateLimit-RetryAfter``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from connectors._common import first_text, parse_time
from connectors._poll import Watermark, check_positive, iso_z
from connectors.errors import BadResponse
from connectors.http import ConnectorClient

__all__ = ["FalconAlertSource"]

PERMISSION = "Alerts: Read"
QUERY = "/alerts/queries/alerts/v2"
ENTITIES = "/alerts/entities/alerts/v2"
_MAX_IDS = 1000  # Falcon's cap on composite_ids per entities request


class FalconAlertSource:
    """Falcon alerts updated at or after the cursor, oldest first."""

    format = "crowdstrike"

    def __init__(self, client: ConnectorClient, *, name: str = "crowdstrike", page_size: int = 500,
                 max_pages: int = 20, lookback_minutes: float = 60, fql: str = "") -> None:
        check_positive(name, page_size=page_size, max_pages=max_pages, lookback_minutes=lookback_minutes)
        self.client, self.name = client, name
        self.page_size, self.max_pages = min(int(page_size), _MAX_IDS), int(max_pages)
        self.lookback = timedelta(minutes=lookback_minutes)
        self.fql = fql
        """Extra FQL ANDed with the time filter (e.g. ``product:'epp'``)."""

    def _ids(self, body: dict[str, Any]) -> list[str]:
        ids = body.get("resources")
        if ids is None:
            return []
        if not isinstance(ids, list):
            raise BadResponse(self.name, f"GET {QUERY} returned resources that are not a list")
        return [i for i in ids if isinstance(i, str) and i]

    def poll(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Alerts after the watermark (up to ``max_pages`` query pages)."""
        mark = Watermark.load(cursor, self.lookback)
        fql = f"updated_timestamp:>='{iso_z(mark.time)}'"
        if self.fql:
            fql = f"{fql}+{self.fql}"
        params: dict[str, Any] = {"filter": fql, "sort": "updated_timestamp.asc", "limit": self.page_size}
        fetched: list[dict[str, Any]] = []
        for _ in range(self.max_pages):
            page = self.client.call("GET", QUERY, permission=PERMISSION, params=params)
            ids = self._ids(page)
            if ids:
                fetched.extend(self._entities(ids))
            after = first_text(page, "meta.pagination.after")
            if not ids or not after:
                break
            params = {**params, "after": after}
        records: list[dict[str, Any]] = []
        for alert in sorted(fetched, key=lambda a: str(a.get("updated_timestamp") or "")):
            when = parse_time(alert.get("updated_timestamp"))
            record_id = first_text(alert, "composite_id", "id") or ""
            if mark.is_new(when, record_id):
                records.append(alert)
                mark.advance(when, record_id)
        return records, mark.dump()

    def _entities(self, ids: list[str]) -> list[dict[str, Any]]:
        body = self.client.call("POST", ENTITIES, permission=PERMISSION, json={"composite_ids": ids})
        alerts = body.get("resources")
        if not isinstance(alerts, list):
            raise BadResponse(self.name, f"POST {ENTITIES} returned no resources list")
        return [a for a in alerts if isinstance(a, dict)]
