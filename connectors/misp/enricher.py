"""MISP enricher: ``POST /attributes/restSearch`` for the entity's value.

Confidence comes from the event's threat level (1 high .. 4 undefined),
halved for attributes not flagged ``to_ids`` (context, not an indicator).
Attributes of types the entity kind cannot have are ignored, so a user
name never matches a filename attribute. The auth key needs read access
(MISP role "Read Only" or better).
"""

from __future__ import annotations

from typing import Any

from connectors.http import ConnectorClient, paginate_pages
from soc_agent.types import Entity, EntityKind, Evidence

_TYPES = {
    EntityKind.IP: {"ip-src", "ip-dst", "ip-src|port", "ip-dst|port"},
    EntityKind.DOMAIN: {"domain", "hostname", "domain|ip"},
    EntityKind.URL: {"url", "uri", "link"},
    EntityKind.FILE_HASH: {"md5", "sha1", "sha256", "sha512", "filename|md5", "filename|sha1", "filename|sha256"},
    EntityKind.EMAIL: {"email", "email-src", "email-dst"},
}
_THREAT_CONFIDENCE = {"1": 0.9, "2": 0.7, "3": 0.5, "4": 0.3}


def _attributes(body: Any) -> list[dict]:
    response = body.get("response") if isinstance(body, dict) else None
    if isinstance(response, dict):
        found = response.get("Attribute", [])
    elif isinstance(response, list):  # older MISP: a list of {"Attribute": {...}}
        found = [item.get("Attribute") for item in response if isinstance(item, dict)]
    else:
        found = []
    return [a for a in found if isinstance(a, dict)] if isinstance(found, list) else []


class MispEnricher:
    """Intel evidence from a MISP instance."""

    kinds = frozenset(_TYPES)

    def __init__(self, client: ConnectorClient, *, name: str = "misp", page_size: int = 100,
                 max_results: int = 500, published_only: bool = True) -> None:
        self.name = name
        self.client = client
        self.page_size = page_size
        self.max_results = max_results
        self.published_only = published_only

    def lookup(self, entity: Entity, rules: frozenset[str]) -> list[Evidence]:
        """One evidence item for the strongest matching attribute, or nothing."""
        query: dict[str, Any] = {"returnFormat": "json", "value": entity.value, "type": sorted(_TYPES[entity.kind]),
                                 "includeEventTags": True}
        if self.published_only:
            query["published"] = True
        best: tuple[float, dict] | None = None
        count = 0
        for attr in paginate_pages(self.client, "/attributes/restSearch", query, limit=self.page_size,
                                   extract=_attributes, permission="MISP read (auth key)"):
            count += 1
            if attr.get("type") not in _TYPES[entity.kind]:
                continue
            event = attr.get("Event") if isinstance(attr.get("Event"), dict) else {}
            confidence = _THREAT_CONFIDENCE.get(str(event.get("threat_level_id", "4")), 0.3)
            if not attr.get("to_ids", False):
                confidence /= 2
            if best is None or confidence > best[0]:
                best = (confidence, attr)
            if count >= self.max_results:
                break
        if best is None:
            return []
        confidence, attr = best
        event = attr.get("Event") if isinstance(attr.get("Event"), dict) else {}
        return [Evidence(
            id=f"intel:{entity.key}", kind="intel", source=f"{self.name}/event-{attr.get('event_id', '?')}",
            summary=f"{entity.key} is a MISP {attr.get('type')} attribute in event {attr.get('event_id', '?')} "
            f"({str(event.get('info', ''))[:120]}) (confidence {confidence:.2f})",
            weight=3.0 * confidence,
            data={"indicator": entity.value, "confidence": confidence, "misp_type": attr.get("type"),
                  "event_id": attr.get("event_id"), "to_ids": bool(attr.get("to_ids")), "matches": count},
        )]
