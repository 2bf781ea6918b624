"""The bundled labelled demo stream, re-based so it always looks recent.

The committed stream has fixed timestamps (so it never drifts); the demo
and the eval shift them, keeping their spacing, so that the newest alert is
a minute old. Without that, intake would rightly dead-letter a stream that
has aged past the configured horizon.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

EVALS_DIR = Path(__file__).resolve().parent
ALERTS = EVALS_DIR / "demo_alerts.jsonl"
LABELS = EVALS_DIR / "demo_labels.jsonl"


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def rebase(records: list[dict], now: datetime | None = None) -> list[dict]:
    """Shift every timestamp by the same amount so the newest is a minute before ``now``."""
    if not records:
        return records
    newest = max(_parse(r["timestamp"]) for r in records)
    shift = (now or datetime.now(timezone.utc)) - timedelta(minutes=1) - newest
    return [{**r, "timestamp": (_parse(r["timestamp"]) + shift).isoformat()} for r in records]


def load_demo_stream(path: Path = ALERTS) -> list[bytes]:
    """The demo alerts as input lines, re-based to now."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [json.dumps(r).encode() for r in rebase(records)]


def load_labels(path: Path = LABELS) -> dict[str, dict]:
    """alert_id -> label record."""
    return {r["alert_id"]: r for r in map(json.loads, path.read_text().splitlines()) if r}
