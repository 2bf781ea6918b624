"""Poll Elastic Security detection alerts from the alerts index with ``_search``.

Paging is ``search_after`` on ``@timestamp`` with ``kibana.alert.uuid`` as
the tiebreaker (``_id`` sorting is disabled by default in Elasticsearch 8),
so the cursor is simply the last hit's ``sort`` values: exact, stable under
concurrent writes, and no point-in-time to keep alive between polls.
Records are hits (``{_id, _index, _source}``), which the elastic mapping
unwraps.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from connectors._poll import check_positive, iso_z, utcnow
from connectors.errors import BadResponse
from connectors.http import ConnectorClient

__all__ = ["ElasticAlertSource"]

PERMISSION = "read privilege on .alerts-security.alerts-*"


class ElasticAlertSource:
    """``POST <index>/_search`` over the detection alerts index, oldest first."""

    format = "elastic"

    def __init__(self, client: ConnectorClient, *, name: str = "elastic",
                 index: str = ".alerts-security.alerts-*", page_size: int = 500, max_pages: int = 20,
                 lookback_minutes: float = 60, query: dict[str, Any] | None = None) -> None:
        check_positive(name, page_size=page_size, max_pages=max_pages, lookback_minutes=lookback_minutes)
        self.client, self.name, self.index = client, name, index
        self.page_size, self.max_pages = int(page_size), int(max_pages)
        self.lookback = timedelta(minutes=lookback_minutes)
        self.query = query
        """An extra ES query clause (e.g. only open alerts), ANDed with the time filter."""

    def _body(self, after: list[Any] | None) -> dict[str, Any]:
        filters: list[dict[str, Any]] = [] if self.query is None else [self.query]
        if after is None:
            filters.append({"range": {"@timestamp": {"gte": iso_z(utcnow() - self.lookback)}}})
        body: dict[str, Any] = {
            "size": self.page_size,
            "sort": [{"@timestamp": {"order": "asc"}}, {"kibana.alert.uuid": {"order": "asc"}}],
            "query": {"bool": {"filter": filters}},
            "track_total_hits": False,
        }
        if after is not None:
            body["search_after"] = after
        return body

    def poll(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Hits after ``cursor`` (up to ``max_pages`` pages) and the last hit's sort values."""
        after = _load(cursor)
        records: list[dict[str, Any]] = []
        for _ in range(self.max_pages):
            body = self.client.call("POST", f"/{self.index}/_search", permission=PERMISSION,
                                    json=self._body(after))
            hits = (body.get("hits") or {}).get("hits") if isinstance(body.get("hits"), dict) else None
            if not isinstance(hits, list):
                raise BadResponse(self.name, f"POST /{self.index}/_search returned no hits.hits list")
            for hit in hits:
                if not isinstance(hit, dict) or not isinstance(hit.get("sort"), list):
                    # Without sort values the cursor cannot move past this hit.
                    raise BadResponse(self.name, f"POST /{self.index}/_search returned a hit without sort values")
                records.append({"_id": hit.get("_id"), "_index": hit.get("_index"), "_source": hit.get("_source")})
                after = hit["sort"]
            if len(hits) < self.page_size:
                break
        return records, (json.dumps(after) if after is not None else cursor)


def _load(cursor: str | None) -> list[Any] | None:
    if not cursor:
        return None
    try:
        after = json.loads(cursor)
    except ValueError:
        return None  # a hand-edited cursor: start from the look-back, dedupe absorbs the overlap
    return after if isinstance(after, list) else None
