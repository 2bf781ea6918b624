"""Map a native record (the Alert model's JSON) to an Alert."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from connectors.base import MappingError
from soc_agent.types import Alert

_REQUIRED = ("id", "rule_id", "timestamp")


def detect(record: dict[str, Any]) -> bool:
    """Native records carry rule_id, timestamp and entities at the top level."""
    return "rule_id" in record and "timestamp" in record and "entities" in record


def to_alert(record: dict[str, Any]) -> Alert:
    """Validate a native record; the whole record is kept as the raw payload."""
    missing = [key for key in _REQUIRED if key not in record]
    if missing:
        raise MappingError(f"native: missing field(s) {', '.join(missing)}")
    body = {k: v for k, v in record.items() if k not in ("source", "raw")}
    body.setdefault("title", str(record.get("rule_id", ""))[:1024])
    if isinstance(body.get("severity"), str) and not isinstance(body.get("vendor"), dict):
        # The record's own severity is what its source stated: the vendor evidence a rule nobody configured
        # here is judged on.
        body["vendor"] = {"severity": body["severity"].strip().lower()}
    try:
        return Alert.model_validate({**body, "source": "native", "raw": record})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        raise MappingError(f"native: {where}: {first['msg']} ({len(exc.errors())} error(s))") from None
