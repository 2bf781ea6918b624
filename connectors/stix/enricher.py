"""STIX 2.1 indicator enricher, fed by a bundle file or a TAXII 2.1 collection.

Only simple comparison patterns are indexed (``[ipv4-addr:value = '...']``,
joined by ``OR``): that is what intel feeds publish for atomic indicators,
and matching richer patterns needs an observation, not an entity. Revoked
indicators and those past ``valid_until`` are skipped. The index is
reloaded after ``refresh_s`` seconds.

TAXII: ``GET {collection_url}/objects/`` with ``Accept:
application/taxii+json;version=2.1``, following ``more``/``next``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from connectors.errors import BadResponse, ConfigError
from connectors.http import ConnectorClient, paginate_taxii
from soc_agent.types import Entity, EntityKind, Evidence

_OBJECT_PATHS = {
    "ipv4-addr:value": EntityKind.IP, "ipv6-addr:value": EntityKind.IP, "domain-name:value": EntityKind.DOMAIN,
    "url:value": EntityKind.URL, "email-addr:value": EntityKind.EMAIL,
}
_COMPARISON = re.compile(r"\[\s*([a-z0-9-]+:[a-z0-9_.'\-]+)\s*=\s*'((?:[^'\\]|\\.)*)'\s*\]", re.IGNORECASE)
_CASEFOLD = {EntityKind.DOMAIN, EntityKind.EMAIL, EntityKind.FILE_HASH}


def parse_pattern(pattern: str) -> list[tuple[EntityKind, str]]:
    """The (kind, value) pairs of a simple STIX pattern; empty for anything richer."""
    found: list[tuple[EntityKind, str]] = []
    stripped = _COMPARISON.sub("", pattern)
    if stripped.replace("OR", "").strip():
        return []  # AND, FOLLOWEDBY, qualifiers: not an atomic indicator
    for path, value in _COMPARISON.findall(pattern):
        path = path.lower()
        value = value.replace("\\'", "'").replace("\\\\", "\\")
        if path.startswith("file:hashes."):
            kind = EntityKind.FILE_HASH
        else:
            kind = _OBJECT_PATHS.get(path)
        if kind is not None:
            found.append((kind, value.lower() if kind in _CASEFOLD else value))
    return found


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class StixEnricher:
    """Intel evidence from STIX 2.1 indicators."""

    kinds = frozenset({EntityKind.IP, EntityKind.DOMAIN, EntityKind.URL, EntityKind.EMAIL, EntityKind.FILE_HASH})

    def __init__(self, client: ConnectorClient | None = None, *, name: str = "stix", bundle_path: str | None = None,
                 collection_url: str | None = None, refresh_s: float = 900.0, default_confidence: int = 50) -> None:
        if bool(bundle_path) == bool(collection_url and client):
            raise ConfigError(name, "set exactly one of options.bundle_path or options.collection_url (with base_url)")
        self.name = name
        self.client = client
        self.bundle_path = Path(bundle_path) if bundle_path else None
        self.collection_url = collection_url
        self.refresh_s = refresh_s
        self.default_confidence = default_confidence
        self._index: dict[tuple[EntityKind, str], dict] = {}
        self._loaded = 0.0
        self._lock = threading.Lock()

    def _objects(self) -> list[Any]:
        if self.bundle_path is not None:
            try:
                bundle = json.loads(self.bundle_path.read_text())
            except (OSError, ValueError):
                raise BadResponse(self.name, f"cannot read STIX bundle {self.bundle_path}") from None
            objects = bundle.get("objects") if isinstance(bundle, dict) else None
            if bundle.get("type") != "bundle" or not isinstance(objects, list):
                raise BadResponse(self.name, f"{self.bundle_path} is not a STIX bundle")
            return objects
        return list(paginate_taxii(self.client, f"{self.collection_url.rstrip('/')}/objects/",
                                   params={"match[type]": "indicator"}, permission="TAXII collection read"))

    def _refresh(self) -> None:
        now = datetime.now(timezone.utc)
        index: dict[tuple[EntityKind, str], dict] = {}
        for obj in self._objects():
            if not isinstance(obj, dict) or obj.get("type") != "indicator" or obj.get("revoked"):
                continue
            if obj.get("pattern_type", "stix") != "stix" or not isinstance(obj.get("pattern"), str):
                continue
            until = _time(obj.get("valid_until"))
            if until is not None and until <= now:
                continue
            for key in parse_pattern(obj["pattern"]):
                previous = index.get(key)
                if previous is None or obj.get("confidence", 0) > previous.get("confidence", 0):
                    index[key] = obj
        self._index, self._loaded = index, time.monotonic()

    def lookup(self, entity: Entity, rules: frozenset[str]) -> list[Evidence]:
        """Intel evidence when a live indicator names the entity."""
        with self._lock:
            if not self._loaded or time.monotonic() - self._loaded > self.refresh_s:
                self._refresh()
            hit = self._index.get((entity.kind, entity.value))
        if hit is None:
            return []
        raw = hit.get("confidence", self.default_confidence)
        confidence = max(0.0, min(float(raw if isinstance(raw, (int, float)) else self.default_confidence) / 100, 1))
        label = hit.get("name") or hit.get("id", "indicator")
        return [Evidence(
            id=f"intel:{entity.key}", kind="intel", source=f"{self.name}/{hit.get('id', '?')}",
            summary=f"{entity.key} matches STIX indicator {str(label)[:120]} (confidence {confidence:.2f})",
            weight=3.0 * confidence,
            data={"indicator": entity.value, "confidence": confidence, "stix_id": hit.get("id"),
                  "valid_until": hit.get("valid_until"), "labels": hit.get("labels", [])},
        )]
