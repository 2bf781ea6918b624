"""Helpers every vendor mapping shares: field lookup, time, severity, entities.

Vendor records are attacker-influenced and often half-broken, so every helper
here returns ``None`` (or skips) on a value of the wrong type instead of
raising; only ``build_alert`` and ``fail`` raise, and only ``MappingError``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from datetime import datetime, timezone
from typing import Any, Iterable

from pydantic import ValidationError

from connectors.base import MappingError
from soc_agent.types import Alert, Entity, EntityKind, Severity, VendorVerdict

_MISSING = object()


def get(record: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted ``path``, whether the record stores it nested or with dotted keys.

    Elastic alerts mix both (``{"kibana.alert.rule.name": ..., "host": {"name": ...}}``),
    so at each level the longest dotted prefix that exists as a key wins.
    """
    value = _get(record, path.split("."))
    return default if value is _MISSING else value


def _get(obj: Any, parts: list[str]) -> Any:
    if not parts:
        return obj
    if not isinstance(obj, dict):
        return _MISSING
    for cut in range(len(parts), 0, -1):
        key = ".".join(parts[:cut])
        if key in obj:
            found = _get(obj[key], parts[cut:])
            if found is not _MISSING:
                return found
    return _MISSING


def text(value: Any, limit: int = 4096) -> str | None:
    """A scalar as stripped text (None for empty, containers, or non-scalars)."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, float) and value != value:  # NaN is not an identifier
        return None
    out = str(value).strip()
    return out[:limit] if out else None


def first_text(record: Any, *paths: str, limit: int = 4096) -> str | None:
    """The first path holding usable text."""
    for path in paths:
        out = text(get(record, path), limit)
        if out:
            return out
    return None


def as_list(value: Any) -> list[Any]:
    """A list as is, a scalar as a one-item list, None as empty."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def number(value: Any) -> float | None:
    """An int/float or numeric string as float; anything else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str):
        try:
            out = float(value.strip())
        except ValueError:
            return None
        return out if out == out and abs(out) != float("inf") else None
    return None


# ---- time ----------------------------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d{6})\d+")
_OFFSET_NO_COLON = re.compile(r"([+-]\d{2})(\d{2})$")
_EPOCH = re.compile(r"^\s*\d{9,19}(\.\d+)?\s*$")
_EARLIEST = datetime(1990, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 string or epoch number (s, ms, µs or ns) as an aware datetime, else None.

    Vendors disagree on precision (Sentinel sends 7 fractional digits, Falcon 9)
    and offsets (Wazuh writes ``-0300``); naive times are taken as UTC.
    """
    if isinstance(value, bool) or value is None:
        return None
    if not isinstance(value, str) or _EPOCH.match(value):
        seconds = number(value)
        return _from_epoch(seconds) if seconds is not None else None
    if not isinstance(value, str):
        return None
    raw = value.strip()
    if len(raw) < 10 or len(raw) > 64:
        return None
    raw = raw.replace(" ", "T", 1) if raw[10:11] == " " else raw
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    raw = _FRACTION.sub(r"\1", raw)
    raw = _OFFSET_NO_COLON.sub(r"\1:\2", raw)
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed if _EARLIEST <= parsed <= _LATEST else None


def _from_epoch(seconds: float) -> datetime | None:
    # Scale by magnitude: 1e9 s is 2001, so anything far beyond is ms/µs/ns.
    for divisor in (1, 1e3, 1e6, 1e9):
        scaled = seconds / divisor
        if scaled < 1e10:
            try:
                parsed = datetime.fromtimestamp(scaled, tz=timezone.utc)
            except (OverflowError, OSError, ValueError):
                return None
            return parsed if _EARLIEST <= parsed <= _LATEST else None
    return None


def first_time(record: Any, *paths: str) -> datetime | None:
    """The first path holding a parseable time."""
    for path in paths:
        parsed = parse_time(get(record, path))
        if parsed is not None:
            return parsed
    return None


def utcnow() -> datetime:
    """Now, aware; a seam for tests."""
    return datetime.now(timezone.utc)


# ---- severity ------------------------------------------------------------------------------

_SEVERITY_WORDS = {
    "informational": Severity.INFORMATIONAL, "information": Severity.INFORMATIONAL,
    "info": Severity.INFORMATIONAL, "informative": Severity.INFORMATIONAL, "unknown": None,
    "low": Severity.LOW, "minor": Severity.LOW,
    "medium": Severity.MEDIUM, "moderate": Severity.MEDIUM,
    "high": Severity.HIGH, "major": Severity.HIGH,
    "critical": Severity.CRITICAL, "fatal": Severity.CRITICAL,
}


def severity_word(value: Any) -> Severity | None:
    """A vendor severity word (``High``, ``informational ``...) as a Severity, else None."""
    word = text(value, 64)
    return _SEVERITY_WORDS.get(word.lower()) if word else None


def severity_band(score: float | None, bands: Iterable[tuple[float, Severity]]) -> Severity | None:
    """The severity of the highest band whose lower bound ``score`` reaches."""
    if score is None:
        return None
    chosen = None
    for floor, severity in bands:
        if score >= floor:
            chosen = severity
    return chosen


# ---- identifiers ---------------------------------------------------------------------------

_SLUG = re.compile(r"[^a-z0-9]+")


def slug(value: str, limit: int = 200) -> str:
    """``Endpoint - Recurring Malware`` -> ``endpoint_recurring_malware``: a stable rule id from a name."""
    return _SLUG.sub("_", value.lower()).strip("_")[:limit]


def digest(*parts: Any) -> str:
    """A short stable id for records that carry none of their own."""
    body = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def bounded_id(value: str, limit: int = 256) -> str:
    """Ids longer than the Alert allows are replaced by a digest so they stay unique."""
    return value if len(value) <= limit else "sha256:" + hashlib.sha256(value.encode()).hexdigest()


# ---- entities ------------------------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Placeholders vendors emit for "no value"; an entity with them would join unrelated cases.
_PLACEHOLDERS = frozenset({"-", "--", "n/a", "na", "none", "null", "unknown", "(null)", "?", "0.0.0.0", "::"})


class Entities:
    """Collects entities in source order, dropping empty, placeholder, invalid and repeated ones."""

    def __init__(self) -> None:
        self._items: list[Entity] = []
        self._seen: set[tuple[str, str, str | None]] = set()

    def add(self, kind: EntityKind, value: Any, role: str | None = None) -> None:
        """Add one entity; silently skip values that cannot be a valid entity of ``kind``."""
        raw = text(value, 2048)
        if raw is None or raw.lower() in _PLACEHOLDERS:
            return
        if kind is EntityKind.IP:
            raw = raw.strip("[]")
            try:
                raw = str(ipaddress.ip_address(raw))
            except ValueError:
                return
        if kind is EntityKind.EMAIL and not _EMAIL.match(raw):
            return
        try:
            entity = Entity(kind=kind, value=raw, role=role)
        except ValidationError:
            return
        key = (str(entity.kind), entity.value, role)
        if key not in self._seen:
            self._seen.add(key)
            self._items.append(entity)

    def add_user(self, value: Any, role: str | None = None) -> None:
        """A user, or an email entity too when the account name is an address (UPNs)."""
        self.add(EntityKind.USER, value, role)
        raw = text(value, 2048)
        if raw and _EMAIL.match(raw):
            self.add(EntityKind.EMAIL, raw, role)

    def add_host_or_ip(self, value: Any, role: str | None = None) -> None:
        """An address field that may hold an IP or a host name (syslog, ES ``dest``)."""
        raw = text(value, 2048)
        if raw is None:
            return
        try:
            ipaddress.ip_address(raw.strip("[]"))
        except ValueError:
            self.add(EntityKind.HOST, raw, role)
        else:
            self.add(EntityKind.IP, raw, role)

    def add_hashes(self, values: Iterable[Any], role: str | None = "file") -> None:
        """File hashes; all-zero hashes (Falcon's "no SHA1") are skipped."""
        for value in values:
            raw = text(value, 256)
            if raw and raw.strip("0"):
                self.add(EntityKind.FILE_HASH, raw, role)

    @property
    def items(self) -> list[Entity]:
        """The collected entities."""
        return list(self._items)


# ---- building ------------------------------------------------------------------------------


def fail(fmt: str, reason: str) -> MappingError:
    """A MappingError prefixed with the format name (callers ``raise fail(...)``)."""
    return MappingError(f"{fmt}: {reason}")


def require_dict(record: Any, fmt: str) -> dict[str, Any]:
    """The record itself, or MappingError if it is not a JSON object."""
    if not isinstance(record, dict):
        raise fail(fmt, f"expected a JSON object, got {type(record).__name__}")
    return record


def compact(values: dict[str, Any]) -> dict[str, Any]:
    """Attributes without empty values, so fingerprints ignore fields a vendor left blank."""
    return {k: v for k, v in values.items() if v not in (None, "", [], {})}


_VERDICT_WORDS = {
    "malicious": VendorVerdict.MALICIOUS, "truepositive": VendorVerdict.MALICIOUS,
    "incriminated": VendorVerdict.MALICIOUS, "compromised": VendorVerdict.MALICIOUS,
    "confirmed": VendorVerdict.MALICIOUS, "blocked": VendorVerdict.MALICIOUS,
    "quarantined": VendorVerdict.MALICIOUS, "isolated": VendorVerdict.MALICIOUS,
    "deleted": VendorVerdict.MALICIOUS, "prevented": VendorVerdict.MALICIOUS, "killed": VendorVerdict.MALICIOUS,
    "suspicious": VendorVerdict.SUSPICIOUS,
    "benignpositive": VendorVerdict.BENIGN, "benign": VendorVerdict.BENIGN,
    "informationalexpectedactivity": VendorVerdict.BENIGN, "securitytesting": VendorVerdict.BENIGN,
    "exonerated": VendorVerdict.BENIGN, "approved": VendorVerdict.BENIGN,
    "falsepositive": VendorVerdict.FALSE_POSITIVE, "notmalicious": VendorVerdict.FALSE_POSITIVE,
}
# Words that say the vendor looked and found nothing ("NoThreatsFound", "clean") are not in this table: that is
# absence of evidence, kept as text, never read as benign.


def vendor_verdict(value: Any) -> VendorVerdict | None:
    """A vendor's determination word (``TruePositive``, ``Malicious``, ``benign_positive``...), normalised."""
    word = text(value, 128)
    return _VERDICT_WORDS.get(re.sub(r"[^a-z]", "", word.lower())) if word else None


def tactic_name(value: Any) -> str | None:
    """An ATT&CK tactic as its lower-case name: ``CredentialAccess``, ``credential-access`` → ``credential access``."""
    word = text(value, 64)
    if not word:
        return None
    word = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", word).replace("-", " ").replace("_", " ")
    return " ".join(word.lower().split()) or None


def vendor_fields(severity: Severity | None = None, risk_score: Any = None, confidence: Any = None,
                  verdict: Any = None, tactics: Iterable[Any] = (), techniques: Iterable[Any] = (),
                  rule_level: Any = None, false_positives: Any = None, low_fidelity: bool = False,
                  detection_source: Any = None) -> dict[str, Any]:
    """``Alert.vendor`` from what a vendor states, clamped and bounded so a bad value is dropped, not fatal.

    ``confidence`` is 0-1, or 0-100 (read as a percentage); ``verdict`` is the vendor's word for it.
    """
    risk = number(risk_score)
    conf = number(confidence)
    if conf is not None and conf > 1:
        conf = conf / 100
    word = text(verdict, 256)
    level = rule_level if isinstance(rule_level, Severity) else severity_word(rule_level)
    notes = [n for n in (text(v, 512) for v in as_list(false_positives)) if n][:10]
    return {
        "severity": severity, "risk_score": min(max(risk, 0.0), 100.0) if risk is not None else None,
        "confidence": min(max(conf, 0.0), 1.0) if conf is not None else None,
        "verdict": vendor_verdict(word), "verdict_text": word,
        "tactics": list(dict.fromkeys(t for t in (tactic_name(v) for v in tactics) if t))[:20],
        "techniques": list(dict.fromkeys(t for t in (text(v, 32) for v in techniques) if t))[:50],
        "rule_level": level, "false_positive_notes": notes, "low_fidelity": bool(low_fidelity),
        "detection_source": text(detection_source, 128),
    }


def build_alert(fmt: str, record: dict[str, Any], **fields: Any) -> Alert:
    """Validate the mapped fields into an Alert; a validation failure is a MappingError."""
    fields.setdefault("title", fields.get("rule_id") or "")
    fields["title"] = (fields["title"] or "")[:1024]
    fields["description"] = (fields.get("description") or "")[:16384]
    fields["attributes"] = compact(fields.get("attributes") or {})
    try:
        return Alert.model_validate({**fields, "source": fmt, "raw": record})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        raise fail(fmt, f"{where}: {first['msg']}") from None


__all__ = [
    "Entities", "as_list", "bounded_id", "build_alert", "compact", "digest", "fail", "first_text",
    "first_time", "get", "number", "parse_time", "require_dict", "severity_band", "severity_word",
    "slug", "tactic_name", "text", "utcnow", "vendor_fields", "vendor_verdict",
]
