"""Microsoft Graph security alerts: ``alerts_v2`` and the deprecated v1 ``security/alerts``."""

from __future__ import annotations

from typing import Any

from connectors._common import (
    Entities, as_list, build_alert, fail, first_text, first_time, get, slug, text, severity_word,
)
from soc_agent.types import Alert, EntityKind, Severity

NAME = "sentinel"

# Graph evidence roles that say which side of the activity an entity was on.
_TARGET_ROLES = {"destination", "recipient", "victim", "target"}


def version(record: dict[str, Any]) -> int | None:
    """2 for alerts_v2, 1 for legacy v1 alerts, None for anything else (incidents included)."""
    odata_type = str(record.get("@odata.type", ""))
    context = str(record.get("@odata.context", ""))
    if odata_type == "#microsoft.graph.security.alert" or "security/alerts_v2" in context:
        return 2
    if "/security/alerts/" in context.lower().replace("$metadata#", "/"):
        return 1
    if "providerAlertId" in record and "detectorId" in record and "serviceSource" in record:
        return 2
    if isinstance(record.get("vendorInformation"), dict) and "eventDateTime" in record:
        return 1
    return None


def _role(evidence: dict[str, Any], default: str) -> str:
    roles = {str(r).lower() for r in as_list(evidence.get("roles")) if isinstance(r, str)}
    if roles & _TARGET_ROLES:
        return "dst"
    if "attacker" in roles or "source" in roles:
        return "src"
    return default


def v2_to_alert(record: dict[str, Any]) -> Alert:
    """Map one alerts_v2 alert, with entities from its evidence[]."""
    alert_id = first_text(record, "id", "providerAlertId", limit=256)
    if not alert_id:
        raise fail(NAME, "Graph alert has no id")
    title = first_text(record, "title", limit=1024)
    rule_id = first_text(record, "detectorId", limit=256) or (slug(title) if title else None)
    if not rule_id:
        raise fail(NAME, "Graph alert has no detectorId or title")
    timestamp = first_time(record, "createdDateTime", "firstActivityDateTime", "lastUpdateDateTime")
    if timestamp is None:
        raise fail(NAME, "Graph alert has no parseable createdDateTime")
    found = Entities()
    attributes: dict[str, Any] = {}
    for evidence in as_list(record.get("evidence")):
        if isinstance(evidence, dict):
            _evidence(evidence, found, attributes)
    attributes.update({
        "mitre_techniques": [t for t in (text(v, 32) for v in as_list(record.get("mitreTechniques"))) if t],
        "mitre_tactics": [t for t in [first_text(record, "category")] if t],
        "vendor_severity": first_text(record, "severity"),
        "status": first_text(record, "status"),
        "classification": first_text(record, "classification"),
        "determination": first_text(record, "determination"),
        "service": first_text(record, "serviceSource"),
        "detection_source": first_text(record, "detectionSource"),
        "incident_id": first_text(record, "incidentId"),
        "threat": first_text(record, "threatDisplayName"),
        "url": first_text(record, "alertWebUrl"),
    })
    return build_alert(
        NAME, record, id=alert_id, kind="alert", rule_id=rule_id, title=title or rule_id,
        description=first_text(record, "description", limit=16384) or "",
        severity=severity_word(record.get("severity")) or Severity.MEDIUM, timestamp=timestamp,
        entities=found.items, attributes=attributes,
    )


def _evidence(item: dict[str, Any], found: Entities, attributes: dict[str, Any]) -> None:
    kind = str(item.get("@odata.type", "")).rsplit(".", 1)[-1]
    if kind == "deviceEvidence":
        role = _role(item, "dst")
        found.add(EntityKind.HOST, item.get("deviceDnsName") or item.get("hostName"), role)
        for ip in as_list(item.get("ipInterfaces")):
            found.add(EntityKind.IP, ip, role)
    elif kind == "fileEvidence":
        found.add_hashes([get(item, "fileDetails.sha256"), get(item, "fileDetails.sha1")], "file")
        attributes.setdefault("file_name", text(get(item, "fileDetails.fileName")))
    elif kind == "processEvidence":
        found.add(EntityKind.PROCESS, get(item, "imageFile.fileName"), "process")
        found.add_hashes([get(item, "imageFile.sha256")], "process")
        found.add_user(get(item, "userAccount.userPrincipalName") or get(item, "userAccount.accountName"), "actor")
        attributes.setdefault("command_line", text(item.get("processCommandLine")))
        attributes.setdefault("parent_process", text(get(item, "parentProcessImageFile.fileName")))
    elif kind == "userEvidence":
        found.add_user(get(item, "userAccount.userPrincipalName") or get(item, "userAccount.accountName"),
                       _role(item, "target"))
    elif kind == "ipEvidence":
        found.add(EntityKind.IP, item.get("ipAddress"), _role(item, "src"))
    elif kind == "urlEvidence":
        found.add(EntityKind.URL, item.get("url"), _role(item, "dst"))
    elif kind == "mailboxEvidence":
        found.add(EntityKind.EMAIL, item.get("primaryAddress"), _role(item, "target"))
    elif kind == "analyzedMessageEvidence":
        found.add(EntityKind.IP, item.get("senderIp"), "src")
        found.add(EntityKind.EMAIL, get(item, "p1Sender.emailAddress"), "sender")
        found.add(EntityKind.EMAIL, item.get("recipientEmailAddress"), "target")
    elif kind == "azureResourceEvidence":
        found.add(EntityKind.CLOUD_RESOURCE, item.get("resourceId"), "target")


def v1_to_alert(record: dict[str, Any]) -> Alert:
    """Map one legacy v1 alert (hostStates, fileStates, userStates...)."""
    alert_id = first_text(record, "id", limit=256)
    if not alert_id:
        raise fail(NAME, "Graph v1 alert has no id")
    title = first_text(record, "title", limit=1024)
    if not title:
        raise fail(NAME, "Graph v1 alert has no title to derive a rule id from")
    timestamp = first_time(record, "createdDateTime", "eventDateTime", "lastModifiedDateTime")
    if timestamp is None:
        raise fail(NAME, "Graph v1 alert has no parseable createdDateTime")
    found = Entities()
    for host in as_list(record.get("hostStates")):
        found.add(EntityKind.HOST, get(host, "fqdn") or get(host, "netBiosName"), "dst")
        found.add(EntityKind.IP, get(host, "privateIpAddress"), "dst")
        found.add(EntityKind.IP, get(host, "publicIpAddress"), "dst")
    for user in as_list(record.get("userStates")):
        found.add_user(get(user, "userPrincipalName") or get(user, "accountName"), "target")
        found.add(EntityKind.IP, get(user, "logonIp"), "src")
    for state in as_list(record.get("fileStates")):
        found.add_hashes([get(state, "fileHash.hashValue")], "file")
    for conn in as_list(record.get("networkConnections")):
        found.add(EntityKind.IP, get(conn, "sourceAddress"), "src")
        found.add(EntityKind.IP, get(conn, "destinationAddress"), "dst")
        found.add(EntityKind.DOMAIN, get(conn, "destinationDomain"), "dst")
    processes = [p for p in as_list(record.get("processes")) if isinstance(p, dict)]
    files = [f for f in as_list(record.get("fileStates")) if isinstance(f, dict)]
    return build_alert(
        NAME, record, id=alert_id, kind="alert", rule_id=slug(title) or alert_id, title=title,
        description=first_text(record, "description", limit=16384) or "",
        severity=severity_word(record.get("severity")) or Severity.MEDIUM, timestamp=timestamp,
        entities=found.items, attributes={
            "command_line": text(processes[0].get("commandLine")) if processes else None,
            "file_name": text(files[0].get("name")) if files else None,
            "mitre_tactics": [t for t in [first_text(record, "category")] if t],
            "vendor_severity": first_text(record, "severity"),
            "status": first_text(record, "status"),
            "service": first_text(record, "vendorInformation.provider"),
        },
    )
