"""Cursor helpers the polling alert sources share.

Most vendor APIs can only filter "changed at or after T". Polling with a
strict ``>`` would miss an alert written in the same instant as the last one
seen, so sources ask for ``>= T`` and skip the ids they already returned at
exactly ``T``: the ``Watermark``. Its JSON form is the opaque cursor string
the runner stores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from connectors._common import parse_time
from connectors.errors import ConfigError

# A cursor is data we wrote, but the table can be edited by hand: bound what we trust.
_MAX_SEEN = 10_000


def utcnow() -> datetime:
    """Now, aware; a seam for tests."""
    return datetime.now(timezone.utc)


def iso_z(when: datetime) -> str:
    """``2024-05-01T10:00:00.123456Z``: the form Graph and Falcon filters accept."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_positive(connector: str, **values: float) -> None:
    """Reject non-positive sizes from the config with the option's name."""
    for key, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(connector, f"options.{key} must be a positive number")


@dataclass
class Watermark:
    """The newest change time returned so far and the ids returned at exactly that time."""

    time: datetime
    seen: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, cursor: str | None, lookback: timedelta) -> "Watermark":
        """The cursor's watermark, or ``now - lookback`` for a first poll or an unreadable cursor.

        An unreadable cursor restarts from the look-back instead of failing
        every poll forever; the pipeline's dedupe absorbs the overlap.
        """
        if cursor:
            try:
                data = json.loads(cursor)
                when = parse_time(data["t"])
                seen = data.get("seen") or []
                if when is not None and isinstance(seen, list):
                    return cls(when, {str(s) for s in seen[:_MAX_SEEN]})
            except (ValueError, KeyError, TypeError):
                pass
        return cls(utcnow() - lookback)

    def is_new(self, when: datetime | None, record_id: str) -> bool:
        """False for a record already returned (same instant, same id)."""
        return not (when is not None and when == self.time and record_id in self.seen)

    def advance(self, when: datetime | None, record_id: str) -> None:
        """Move past a returned record (records without a time leave the watermark alone)."""
        if when is None or when < self.time:
            return
        if when > self.time:
            self.time, self.seen = when, set()
        self.seen.add(record_id)

    def dump(self) -> str:
        """The cursor string."""
        return json.dumps({"t": self.time.isoformat(), "seen": sorted(self.seen)[:_MAX_SEEN]})
