"""Fingerprint dedupe: the same alert twice costs one lookup, not a run.

An alert's fingerprint ignores its id and timestamp (a re-sent alert with a
fresh id is still the same alert), but a raw event's does not: five failed
logins with identical fields are five attempts, not one.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from datetime import datetime, timedelta

from soc_agent.types import Alert


def fingerprint(alert: Alert) -> str:
    """A stable digest of what makes two alerts the same alert."""
    body = {
        "rule": alert.rule_id,
        "entities": sorted(e.key for e in alert.entities),
        "title": alert.title,
        "attributes": alert.attributes,
        "tenant": alert.tenant,
        # The same alert raised to a higher severity is news, not a repeat: it must reach its case.
        "severity": str(alert.severity),
    }
    if alert.kind == "event":
        body["id"] = alert.id
        body["ts"] = alert.timestamp.isoformat()
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class Deduper:
    """Remembers fingerprints (and source ids) seen within a window, in bounded memory."""

    def __init__(self, window: timedelta = timedelta(hours=24), max_entries: int = 500_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self._seen: OrderedDict[str, tuple[str, datetime]] = OrderedDict()
        self.evicted = 0
        """Entries forgotten to bound memory: past this, only the store remembers every key."""

    def check(self, key: str, fp: str, ts: datetime) -> str | None:
        """The key of the first alert with this fingerprint or source key, or None (and remember it).

        ``key`` is ``source:id``: a source re-sending the same id is a duplicate
        even when its content changed.
        """
        hit = self._seen.get(f"id:{key}")
        if hit is not None:  # the same alert re-sent, whenever: its time may even have been re-stamped
            return hit[0]
        hit = self._seen.get(f"fp:{fp}")
        if hit is not None and abs(ts - hit[1]) <= self.window:
            return hit[0]
        self._remember(f"id:{key}", key, ts)
        self._remember(f"fp:{fp}", key, ts)
        return None

    def _remember(self, probe: str, key: str, ts: datetime) -> None:
        self._seen[probe] = (key, ts)
        self._seen.move_to_end(probe)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)
            self.evicted += 1
