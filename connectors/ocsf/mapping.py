"""Map an OCSF event to an Alert.

Findings (class 2004, and 2001 which OCSF 1.1 deprecated in its favour) are
alerts. Authentication (3002) is a raw event, ``auth_failure`` when
``status_id`` is 2 (Failure) and ``auth_success`` otherwise, so the threshold
detector can count OCSF logons exactly like sshd lines.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from connectors._common import (
    Entities, as_list, build_alert, digest, fail, first_text, first_time, get, number, require_dict,
    severity_word, slug, text, vendor_fields,
)
from soc_agent.types import Alert, EntityKind, Severity

NAME = "ocsf"

_FINDINGS = {2001, 2004}
_AUTHENTICATION = 3002
_SUPPORTED = _FINDINGS | {_AUTHENTICATION}
# OCSF severity_id: 0 Unknown, 1..5 Informational..Critical, 6 Fatal, 99 Other.
_SEVERITY_IDS = {1: Severity.INFORMATIONAL, 2: Severity.LOW, 3: Severity.MEDIUM, 4: Severity.HIGH,
                 5: Severity.CRITICAL, 6: Severity.CRITICAL}
_FAILURE = 2
_MAX_EVIDENCES = 50
# OCSF disposition_id: what the product did or concluded (1.x dictionary).
_DISPOSITIONS = {2: "blocked", 3: "quarantined", 4: "isolated", 5: "deleted", 6: "dropped",
                 10: "exonerated", 8: "approved"}
# OCSF confidence_id: 1 Low, 2 Medium, 3 High.
_CONFIDENCE_IDS = {1: 0.33, 2: 0.66, 3: 0.9}


def _class_uid(record: dict[str, Any]) -> int | None:
    value = record.get("class_uid")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def detect(record: dict[str, Any]) -> bool:
    """An OCSF event: an integer class_uid plus OCSF's metadata or type/category ids."""
    return _class_uid(record) is not None and (
        isinstance(record.get("metadata"), dict) or "type_uid" in record or "category_uid" in record)


def to_alert(record: dict[str, Any]) -> Alert:
    """Map a finding or an authentication event; other classes are rejected by name."""
    require_dict(record, NAME)
    class_uid = _class_uid(record)
    if class_uid not in _SUPPORTED:
        name = text(record.get("class_name"), 64) or "?"
        raise fail(NAME, f"class_uid {class_uid} ({name}) is not mapped; supported: 2001, 2004, 3002")
    timestamp = first_time(record, "time_dt", "time", "finding_info.created_time", "finding.created_time",
                           "metadata.original_time")
    if timestamp is None:
        raise fail(NAME, "no parseable time")
    severity_id = record.get("severity_id")
    severity = (_SEVERITY_IDS.get(severity_id) if isinstance(severity_id, int) else None) \
        or severity_word(record.get("severity"))
    if class_uid == _AUTHENTICATION:
        return _authentication(record, timestamp)
    return _finding(record, timestamp, severity or Severity.MEDIUM, severity)


def _finding(record: dict[str, Any], timestamp: datetime, severity: Severity,
             severity_stated: Severity | None) -> Alert:
    info = "finding_info" if isinstance(record.get("finding_info"), dict) else "finding"
    title = first_text(record, f"{info}.title", "message", limit=1024)
    # The analytic (or the product's event code) identifies the detection; a title slug is the fallback.
    rule_id = (first_text(record, f"{info}.analytic.uid", "analytic.uid", "metadata.event_code",
                          f"{info}.product_uid", limit=256)
               or (slug(title) if title else None)
               or first_text(record, f"{info}.analytic.name", "analytic.name", limit=256))
    if not rule_id:
        raise fail(NAME, f"finding has no analytic, event_code or {info}.title")
    alert_id = (first_text(record, f"{info}.uid", "metadata.uid", limit=256)
                or digest(rule_id, timestamp.isoformat(), title))
    found = _endpoints(record)
    verdicts: list[str] = []
    for evidence in as_list(record.get("evidences"))[:_MAX_EVIDENCES]:
        if isinstance(evidence, dict):
            _evidence_entities(evidence, found)
            data = evidence.get("data") if isinstance(evidence.get("data"), dict) else {}
            verdicts += [v for v in (text(data.get("LastVerdict"), 64), text(data.get("SuspicionLevel"), 64)) if v]
    for resource in as_list(record.get("resources")):
        found.add(EntityKind.CLOUD_RESOURCE, get(resource, "uid"), "target")
    return build_alert(
        NAME, record, id=alert_id, kind="alert", rule_id=rule_id, title=title or rule_id,
        description=first_text(record, f"{info}.desc", "message", limit=16384) or "",
        severity=severity, timestamp=timestamp, entities=found.items,
        attributes={**_common_attributes(record),
                    "mitre_techniques": _techniques(record, info),
                    "state": first_text(record, "state", "status"),
                    "disposition": first_text(record, "disposition"),
                    "url": first_text(record, f"{info}.src_url"),
                    "category": text((as_list(get(record, f"{info}.types")) or [None])[0], 128)},
        tenant=first_text(record, "metadata.tenant_uid", limit=256),
        vendor=_vendor(record, info, severity_stated, verdicts),
    )


def _vendor(record: dict[str, Any], info: str, severity: Severity | None, verdicts: list[str]) -> dict[str, Any]:
    tactics = [get(a, "tactic.name") for a in as_list(get(record, f"{info}.attacks")) + as_list(record.get("attacks"))]
    # A finding's types are often its ATT&CK tactic ("CredentialAccess"); the scorer weighs only tactic names.
    tactics += as_list(get(record, f"{info}.types"))[:5]
    # The strongest determination any evidence row states: Malicious over Suspicious over anything else.
    ranked = sorted(verdicts, key=lambda v: {"malicious": 0, "incriminated": 0, "suspicious": 1}.get(v.lower(), 2))
    disposition = _DISPOSITIONS.get(record.get("disposition_id")) if isinstance(record.get("disposition_id"), int) \
        else None
    confidence = record.get("confidence_score")
    if confidence is None and isinstance(record.get("confidence_id"), int):
        confidence = _CONFIDENCE_IDS.get(record["confidence_id"])
    return vendor_fields(
        severity=severity, risk_score=get(record, "risk_score"), confidence=confidence,
        verdict=(ranked[0] if ranked else None) or disposition or first_text(record, "disposition"),
        tactics=tactics, techniques=_techniques(record, info),
        detection_source=first_text(record, "metadata.product.name", limit=128),
    )


def _evidence_entities(evidence: dict[str, Any], found: Entities) -> None:
    """The typed objects of one ``evidences[]`` item (device, user, endpoints, file, process, url, email, resources)."""
    data = evidence.get("data") if isinstance(evidence.get("data"), dict) else {}
    role = (text(data.get("EvidenceRole"), 32) or "").lower() or None
    for entity in _endpoints(evidence).items:
        found.add(entity.kind, entity.value, role or entity.role)
    device = evidence.get("device") if isinstance(evidence.get("device"), dict) else None
    if device:
        found.add(EntityKind.HOST, first_text(device, "hostname", "name", "uid"), role or "dst")
    user = evidence.get("user") if isinstance(evidence.get("user"), dict) else None
    if user:
        # Every identifier of the account: directories key the same person by name, UPN, SID or object id.
        for path in ("email_addr", "name", "account.uid", "uid", "uid_alt"):
            found.add_user(first_text(user, path), role or "actor")
    file = evidence.get("file") if isinstance(evidence.get("file"), dict) else None
    if file:
        found.add_hashes([get(h, "value") for h in as_list(file.get("hashes"))], "file")
    email = evidence.get("email") if isinstance(evidence.get("email"), dict) else None
    if email:
        found.add(EntityKind.EMAIL, first_text(email, "from", "smtp_from"), "sender")
        for to in as_list(email.get("to"))[:10]:
            found.add(EntityKind.EMAIL, to, "recipient")
        found.add(EntityKind.CLOUD_RESOURCE, first_text(email, "uid", "message_uid"), role or "message")
    for resource in as_list(evidence.get("resources"))[:10]:
        found.add(EntityKind.CLOUD_RESOURCE, first_text(resource, "uid", "name"), role or "target")


def _authentication(record: dict[str, Any], timestamp: datetime) -> Alert:
    failed = record.get("status_id") == _FAILURE or str(record.get("status", "")).lower() == "failure"
    rule_id = "auth_failure" if failed else "auth_success"
    alert_id = first_text(record, "metadata.uid", limit=256) or digest(record)
    found = _endpoints(record)
    # The account logged into is the target; actor.user is who asked (often the same, or a service).
    found.add_user(first_text(record, "user.email_addr", "user.name"), "target")
    found.add_user(first_text(record, "actor.user.email_addr", "actor.user.name"), "actor")
    user = first_text(record, "user.name", "actor.user.name") or "?"
    source = first_text(record, "src_endpoint.ip", "src_endpoint.hostname") or "?"
    service = first_text(record, "service.name", "dst_endpoint.svc_name", "metadata.product.name")
    return build_alert(
        NAME, record, id=alert_id, kind="event", rule_id=rule_id,
        title=f"{'failed' if failed else 'successful'} login for {user} from {source}",
        description=first_text(record, "message", "status_detail", limit=16384) or "",
        # Same scale as sshd events, whatever the producer put in severity_id (usually Informational).
        severity=Severity.LOW if failed else Severity.INFORMATIONAL,
        timestamp=timestamp, entities=found.items,
        attributes={**_common_attributes(record),
                    "outcome": "failure" if failed else ("success" if record.get("status_id") == 1 else
                                                          text(record.get("status"), 64) or "unknown"),
                    "service": service,
                    "status_detail": first_text(record, "status_detail"),
                    "auth_protocol": first_text(record, "auth_protocol"),
                    "logon_type": first_text(record, "logon_type"),
                    "is_mfa": record.get("is_mfa") if isinstance(record.get("is_mfa"), bool) else None},
    )


def _endpoints(obj: dict[str, Any]) -> Entities:
    found = Entities()
    found.add(EntityKind.IP, get(obj, "src_endpoint.ip"), "src")
    found.add(EntityKind.HOST, get(obj, "src_endpoint.hostname"), "src")
    found.add(EntityKind.IP, get(obj, "dst_endpoint.ip"), "dst")
    found.add(EntityKind.HOST, get(obj, "dst_endpoint.hostname"), "dst")
    found.add(EntityKind.HOST, get(obj, "device.hostname"), "dst")
    found.add(EntityKind.IP, get(obj, "device.ip"), "dst")
    found.add(EntityKind.PROCESS, get(obj, "process.file.path") or get(obj, "process.name"), "process")
    for item in as_list(get(obj, "file.hashes")):
        found.add_hashes([get(item, "value")], "file")
    found.add(EntityKind.URL, get(obj, "url.url_string"), "dst")
    return found


def _techniques(record: dict[str, Any], info: str) -> list[str]:
    out: list[str] = []
    for attack in as_list(get(record, f"{info}.attacks")) + as_list(record.get("attacks")):
        for path in ("technique.uid", "sub_technique.uid"):
            value = text(get(attack, path), 32)
            if value and value not in out:
                out.append(value)
    return out


def _common_attributes(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "class_uid": _class_uid(record),
        "class_name": first_text(record, "class_name"),
        "product": first_text(record, "metadata.product.name"),
        "event_code": first_text(record, "metadata.event_code"),
        "vendor_severity": first_text(record, "severity"),
        "vendor_severity_score": number(record.get("severity_id")),
        "user_agent": first_text(record, "http_request.user_agent"),
        "command_line": first_text(record, "process.cmd_line", "actor.process.cmd_line"),
        "parent_process": first_text(record, "process.parent_process.cmd_line", "process.parent_process.name"),
        "file_name": first_text(record, "file.name"),
        "message": first_text(record, "message"),
    }
