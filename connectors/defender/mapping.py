"""Map a Microsoft Defender for Endpoint ``/api/alerts`` object to an Alert.

The MDE API (``GET https://api.securitycenter.microsoft.com/api/alerts``,
usually with ``$expand=evidence``) returns camelCase alerts keyed by
``machineId`` and ``alertCreationTime``, a shape unlike Graph's
``alerts_v2`` (``createdDateTime``, ``@odata.type`` evidence). ``evidence``
is a list in the API; forwarders such as Elastic's split it into one record
per evidence item, so a single object is accepted too.
"""

from __future__ import annotations

import re
from typing import Any

from connectors._common import (
    Entities, as_list, build_alert, fail, first_text, first_time, get, require_dict, severity_word, slug,
    tactic_name, text, vendor_fields, vendor_verdict,
)
from soc_agent.types import Alert, EntityKind, Severity, VendorVerdict

NAME = "defender"

# The value Graph's serviceSource gives MDE alerts, so both APIs' alerts score alike.
_SERVICE = "microsoftDefenderForEndpoint"

# Microsoft's determinations (MDE API and Graph alerts_v2 share them) as a verdict. Each one sits under a
# classification (malware under truePositive, securityTesting under informationalExpectedActivity...), so it is
# the more specific word. Left out on purpose: "clean", "insufficientData", "other", "notAvailable", "unknown":
# they say nothing was found or nothing was decided, and absence of evidence is never benign.
_DETERMINATIONS = {
    "malware": VendorVerdict.MALICIOUS, "phishing": VendorVerdict.MALICIOUS, "apt": VendorVerdict.MALICIOUS,
    "multistagedattack": VendorVerdict.MALICIOUS, "malicioususeractivity": VendorVerdict.MALICIOUS,
    "compromisedaccount": VendorVerdict.MALICIOUS, "compromiseduser": VendorVerdict.MALICIOUS,
    # Potentially unwanted software is a true positive in Microsoft's taxonomy.
    "unwantedsoftware": VendorVerdict.MALICIOUS,
    "securitytesting": VendorVerdict.BENIGN, "securitypersonnel": VendorVerdict.BENIGN,
    "securitypersonneltesting": VendorVerdict.BENIGN, "confirmeduseractivity": VendorVerdict.BENIGN,
    "confirmedactivity": VendorVerdict.BENIGN, "lineofbusinessapplication": VendorVerdict.BENIGN,
    "notmalicious": VendorVerdict.FALSE_POSITIVE,
}
# Words Microsoft uses for "not set": kept out of verdict_text, which holds only what someone actually stated.
_UNSET = frozenset({"unknown", "unknownfuturevalue", "notavailable", "notset", "none"})
# Microsoft's alert category is a tactic for some alerts ("CredentialAccess") and a kind of threat for others
# ("Malware", "SuspiciousActivity"), and Sentinel's tactics add non-ATT&CK words ("PreAttack"): only ATT&CK
# tactics (enterprise and ICS) are kept as tactics.
_TACTICS = frozenset({
    "reconnaissance", "resource development", "initial access", "execution", "persistence",
    "privilege escalation", "defense evasion", "credential access", "discovery", "lateral movement",
    "collection", "command and control", "exfiltration", "impact", "stealth", "defense impairment",
    "evasion", "inhibit response function", "impair process control",
})


def _word(value: Any) -> str | None:
    """A classification or determination as stated, or None when it is one of Microsoft's "not set" words."""
    word = text(value, 120)
    return None if word is None or re.sub(r"[^a-z]", "", word.lower()) in _UNSET else word


def microsoft_verdict(classification: Any, determination: Any) -> tuple[VendorVerdict | None, str | None]:
    """The verdict and its wording from Microsoft's ``classification`` and ``determination`` (MDE and Graph).

    The determination refines the classification (``truePositive`` + ``securityTesting`` is sanctioned
    testing, so benign), so it wins when it names a verdict; otherwise the classification decides.
    ``unknown``, ``clean``, ``insufficientData`` decide nothing and give None. The text keeps both words.
    """
    cls, det = _word(classification), _word(determination)
    stated = vendor_verdict(cls)
    verdict = _DETERMINATIONS.get(re.sub(r"[^a-z]", "", det.lower())) if det else None
    if verdict is None or (stated is VendorVerdict.MALICIOUS and verdict is VendorVerdict.FALSE_POSITIVE):
        # No valid pair makes a true positive a false positive: a contradictory record is not read as benign.
        verdict = stated
    wording = f"{cls} ({det})" if cls and det else cls or det
    return verdict, wording[:256] if wording else None


def microsoft_tactics(values: Any) -> list[str]:
    """The ATT&CK tactics among a category or a tactics list (``CredentialAccess`` -> ``credential access``)."""
    return [t for t in (tactic_name(v) for v in as_list(values)) if t in _TACTICS]


def _vendor(record: dict[str, Any]) -> dict[str, Any]:
    """What MDE itself says about the alert; ``investigationState`` stays an attribute, never a verdict."""
    verdict, wording = microsoft_verdict(record.get("classification"), record.get("determination"))
    # An automated investigation's "Benign" is the machine finding nothing to remediate, not an analyst's
    # determination, so it never becomes a verdict.
    fields = vendor_fields(
        severity=severity_word(record.get("severity")), tactics=microsoft_tactics(record.get("category")),
        techniques=as_list(record.get("mitreTechniques")), detection_source=record.get("detectionSource"),
    )
    fields.update(verdict=verdict, verdict_text=wording)
    return fields


def detect(record: dict[str, Any]) -> bool:
    """An MDE alert: its creation time field plus the machine it fired on (Graph alerts have neither)."""
    return "alertCreationTime" in record and ("machineId" in record or "computerDnsName" in record)


def _evidence(item: dict[str, Any], found: Entities, attributes: dict[str, Any]) -> None:
    kind = (text(item.get("entityType"), 64) or "").lower()
    if kind == "file":
        found.add_hashes([item.get("sha256"), item.get("sha1")], "file")
        attributes.setdefault("file_name", text(item.get("fileName")))
        attributes.setdefault("file_path", text(item.get("filePath")))
    elif kind == "process":
        found.add(EntityKind.PROCESS, item.get("fileName"), "process")
        found.add_hashes([item.get("sha256"), item.get("sha1")], "process")
        found.add_user(item.get("userPrincipalName") or item.get("accountName"),
                       "actor")
        attributes.setdefault("command_line", text(item.get("processCommandLine")))
        attributes.setdefault("file_name", text(item.get("fileName")))
    elif kind == "user":
        found.add_user(item.get("userPrincipalName") or item.get("accountName"),
                       "target")
    elif kind == "ip":
        found.add(EntityKind.IP, item.get("ipAddress"), "src")
    elif kind == "url":
        found.add(EntityKind.URL, item.get("url"), "dst")
    else:
        # Unknown evidence types still carry usable indicators in the common fields.
        found.add_hashes([item.get("sha256"), item.get("sha1")], "file")
        found.add(EntityKind.IP, item.get("ipAddress"), "src")
        found.add(EntityKind.URL, item.get("url"), "dst")


def to_alert(record: dict[str, Any]) -> Alert:
    """Map one MDE alert; MappingError names the missing field."""
    require_dict(record, NAME)
    alert_id = first_text(record, "id", "alertId", limit=256)
    if not alert_id:
        raise fail(NAME, "MDE alert has no id")
    title = first_text(record, "title", limit=1024)
    rule_id = first_text(record, "detectorId", limit=256) or (slug(title) if title else None)
    if not rule_id:
        raise fail(NAME, "MDE alert has no detectorId or title")
    timestamp = first_time(record, "alertCreationTime", "firstEventTime", "lastUpdateTime")
    if timestamp is None:
        raise fail(NAME, "MDE alert has no parseable alertCreationTime")
    found = Entities()
    found.add(EntityKind.HOST, record.get("computerDnsName"), "dst")
    related = record.get("relatedUser")
    if isinstance(related, dict):
        # The bare account name (no DOMAIN\\ prefix): what identity enrichers and the Graph mapping key on.
        found.add_user(related.get("userName"), "actor")
    attributes: dict[str, Any] = {}
    for item in as_list(record.get("evidence")):
        if isinstance(item, dict):
            _evidence(item, found, attributes)
    attributes.update({
        "mitre_techniques": [t for t in (text(v, 32) for v in as_list(record.get("mitreTechniques"))) if t],
        "mitre_tactics": [t for t in [first_text(record, "category")] if t],
        "vendor_severity": first_text(record, "severity"),
        "status": first_text(record, "status"),
        "classification": first_text(record, "classification"),
        "determination": first_text(record, "determination"),
        "investigation_state": first_text(record, "investigationState"),
        "detection_source": first_text(record, "detectionSource"),
        "incident_id": first_text(record, "incidentId"),
        "threat": first_text(record, "threatFamilyName", "threatName"),
        "machine_id": first_text(record, "machineId"),
        "tenant_id": first_text(record, "aadTenantId"),
        "service": _SERVICE,
    })
    return build_alert(
        NAME, record, id=alert_id, kind="alert", rule_id=rule_id, title=title or rule_id,
        description=first_text(record, "description", limit=16384) or "",
        severity=severity_word(get(record, "severity")) or Severity.MEDIUM, timestamp=timestamp,
        entities=found.items, attributes=attributes,
        tenant=first_text(record, "aadTenantId", limit=256), vendor=_vendor(record),
    )
