"""Map a Falcon alert to an Alert.

Two shapes: the Alerts API v2 object (snake_case, ``composite_id``) and a
Streaming API event (``{metadata: {eventType}, event: {...}}``, PascalCase)
for ``DetectionSummaryEvent`` (legacy) and ``EppDetectionSummaryEvent``.
Both carry the same ``pattern_id``, so ``rule_id`` is ``pattern:<id>`` and a
detection seen through either API lands on the same rule.
"""

from __future__ import annotations

import re
from typing import Any

from connectors._common import (
    Entities, as_list, build_alert, fail, first_text, first_time, get, number, require_dict,
    severity_band, severity_word, slug, tactic_name, text, vendor_fields,
)
from soc_agent.types import Alert, EntityKind, Severity

NAME = "crowdstrike"

_STREAM_TYPES = {"detectionsummaryevent", "eppdetectionsummaryevent"}
# Falcon's own bands for its 0-100 severity (severity_name in the console).
_SCORE_BANDS = ((0, Severity.INFORMATIONAL), (20, Severity.LOW), (40, Severity.MEDIUM),
                (60, Severity.HIGH), (80, Severity.CRITICAL))
# The legacy DetectionSummaryEvent uses 1-5.
_LEGACY_LEVELS = {1: Severity.INFORMATIONAL, 2: Severity.LOW, 3: Severity.MEDIUM, 4: Severity.HIGH,
                  5: Severity.CRITICAL}
# Pattern-disposition flags (keys lower-cased, underscores dropped: v2 snake_case and streaming PascalCase
# meet) that mean the sensor itself stopped something: Falcon acting on its own malicious determination.
_ACTION_FLAGS = (("killprocess", "killed"), ("killsubprocess", "killed"), ("killparent", "killed"),
                 ("quarantinefile", "quarantined"), ("quarantinemachine", "isolated"),
                 ("processblocked", "blocked"), ("operationblocked", "blocked"),
                 ("fsoperationblocked", "blocked"), ("registryoperationblocked", "blocked"))
# With prevention off, Falcon still sets the flag of the action it *would* have taken
# ("Detection, process would have been killed..."): nothing was stopped, so no determination is read.
_NO_ACTION_FLAGS = ("policydisabled",)
# The category that heads pattern_disposition_description ("Prevention/Quarantine, ...", "Detection, ...");
# read only when no flag says what was done. The free text after it is not searched: "not killed" exists.
_CATEGORY_WORDS = (("quarantine", "quarantined"), ("prevention", "prevented"))
# An analyst's resolution (status, resolution or tag). "ignored", "closed", "new", "in_progress" say
# nothing about the activity and stay out: absence of a determination is never benign.
_ANALYST_WORDS = {"truepositive": "true_positive", "falsepositive": "false_positive"}
# Falcon maps detections to its own tactics too ("Machine Learning", "Malware", CSTA ids); only ATT&CK's count.
_ATTACK_TACTICS = frozenset({
    "reconnaissance", "resource development", "initial access", "execution", "persistence",
    "privilege escalation", "defense evasion", "stealth", "defense impairment", "credential access",
    "discovery", "lateral movement", "collection", "command and control", "exfiltration", "impact"})
_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")


def _stream_type(record: dict[str, Any]) -> str | None:
    kind = text(get(record, "metadata.eventType"), 64)
    return kind.lower() if kind and kind.lower() in _STREAM_TYPES else None


def detect(record: dict[str, Any]) -> bool:
    """A streaming detection event, or an Alerts v2 object (composite_id plus a Falcon marker)."""
    if _stream_type(record) and isinstance(record.get("event"), dict):
        return True
    return "composite_id" in record and any(k in record for k in ("falcon_host_link", "aggregate_id", "cid"))


def to_alert(record: dict[str, Any]) -> Alert:
    """Map either shape."""
    require_dict(record, NAME)
    stream = _stream_type(record)
    if stream:
        event = record.get("event")
        if not isinstance(event, dict):
            raise fail(NAME, f"{stream} has no event object")
        return _streaming(record, event, legacy=stream == "detectionsummaryevent")
    return _alerts_v2(record)


def _severity(name: Any, score: float | None, legacy: bool = False) -> Severity:
    return _stated_severity(name, score, legacy) or Severity.MEDIUM


def _stated_severity(name: Any, score: float | None, legacy: bool = False) -> Severity | None:
    """The severity Falcon states: its name, else its number on Falcon's own scale; None if neither."""
    by_name = severity_word(name)
    if by_name:
        return by_name
    if legacy and score is not None and int(score) in _LEGACY_LEVELS:
        return _LEGACY_LEVELS[int(score)]
    return severity_band(score, _SCORE_BANDS)


def _rule_id(pattern: Any, name: str | None) -> str | None:
    pattern_id = text(pattern, 64)
    if pattern_id:
        return f"pattern:{pattern_id}"
    return slug(name) if name else None


def _flag_set(flags: Any) -> set[str]:
    """The pattern-disposition flags that are on, as normalised keys."""
    if not isinstance(flags, dict):
        return set()
    return {str(k).lower().replace("_", "") for k, v in flags.items()
            if v is True or (isinstance(v, str) and v.strip().lower() == "true")}


def _sensor_action(description: str | None, flags: Any) -> str | None:
    """What the sensor did to stop it (``killed``, ``quarantined``, ``blocked``...), None if it only detected.

    A prevention is Falcon acting on its own malicious determination; a detection-only disposition,
    or one that says the action *would have been* taken (prevention policy off), is no determination.
    """
    said = re.sub(r"[^a-z]", "", (description or "").lower())
    on = _flag_set(flags)
    if "wouldhavebeen" in said or on & set(_NO_ACTION_FLAGS):
        return None
    for flag, word in _ACTION_FLAGS:
        if flag in on:
            return word
    category = re.sub(r"[^a-z]", "", (description or "").split(",", 1)[0].lower())
    return next((word for needle, word in _CATEGORY_WORDS if needle in category), None)


def _analyst_resolution(record: dict[str, Any]) -> str | None:
    """An analyst's true/false-positive resolution of a v2 alert (resolution, status, or a tag), else None."""
    for key in ("resolution", "status"):
        word = text(record.get(key), 64)
        if word and re.sub(r"[^a-z]", "", word.lower()) in _ANALYST_WORDS:
            return _ANALYST_WORDS[re.sub(r"[^a-z]", "", word.lower())]
    tagged = {_ANALYST_WORDS[w] for w in (re.sub(r"[^a-z]", "", (text(t, 128) or "").lower())
                                          for t in as_list(record.get("tags"))) if w in _ANALYST_WORDS}
    # Both tags at once is a contradiction, not a resolution.
    return tagged.pop() if len(tagged) == 1 else None


def _attack(pairs: list[tuple[Any, Any]], techniques: list[Any]) -> tuple[list[str], list[str]]:
    """ATT&CK tactic names and technique ids from (tactic, tactic id) pairs; Falcon's own taxonomy is dropped."""
    tactics = [name for name, tactic_id in ((tactic_name(n), text(i, 32)) for n, i in pairs)
               if name and (name in _ATTACK_TACTICS or (tactic_id or "").upper().startswith("TA"))]
    ids = [t for t in (text(v, 32) for v in techniques) if t and _TECHNIQUE.match(t.upper())]
    return tactics, [t.upper() for t in ids]


def _vendor(severity: Severity | None, risk: float | None, confidence: Any, resolution: str | None,
            disposition: str | None, flags: Any, tactics: list[str], techniques: list[str],
            source: str | None) -> dict[str, Any]:
    """``Alert.vendor``: an analyst's resolution outranks the sensor's own action, which outranks nothing."""
    # Some exports wrap the phrase in quotes ("\"Detection/Quarantine, ...\"").
    disposition = disposition.strip('"\' ') or None if disposition else None
    action = _sensor_action(disposition, flags)
    conf = number(confidence)
    fields = vendor_fields(
        severity=severity, risk_score=risk,
        # Falcon's confidence is 0-100 always; vendor_fields would read 1 as 100%.
        confidence=conf / 100 if conf is not None else None,
        verdict=resolution or action, tactics=tactics, techniques=techniques, detection_source=source,
    )
    # The determination as Falcon said it: the analyst's word, else the pattern disposition's own phrase.
    fields["verdict_text"] = resolution or text(disposition, 256) or fields["verdict_text"]
    return fields


def _alerts_v2(record: dict[str, Any]) -> Alert:
    alert_id = first_text(record, "composite_id", "id", limit=256)
    if not alert_id:
        raise fail(NAME, "Alerts v2 object has no composite_id or id")
    name = first_text(record, "display_name", "name", limit=1024)
    rule_id = _rule_id(record.get("pattern_id"), name)
    if not rule_id:
        raise fail(NAME, "Alerts v2 object has no pattern_id or name")
    timestamp = first_time(record, "timestamp", "created_timestamp", "context_timestamp")
    if timestamp is None:
        raise fail(NAME, "Alerts v2 object has no parseable timestamp")
    score = number(record.get("severity"))
    found = Entities()
    found.add(EntityKind.HOST, get(record, "device.hostname"), "dst")
    found.add(EntityKind.IP, get(record, "device.local_ip"), "dst")
    found.add(EntityKind.IP, get(record, "device.external_ip"), "dst")
    found.add_user(record.get("user_name"), "actor")
    found.add_hashes([record.get("sha256")], "file")
    # Identity Protection alerts describe an account moving from a source endpoint to a target.
    found.add_user(record.get("source_account_upn") or record.get("source_account_name"), "actor")
    found.add(EntityKind.IP, record.get("source_endpoint_ip_address"), "src")
    found.add(EntityKind.HOST, record.get("source_endpoint_host_name"), "src")
    found.add_user(record.get("target_account_name"), "target")
    found.add(EntityKind.HOST, record.get("target_endpoint_host_name"), "dst")
    found.add(EntityKind.PROCESS, record.get("filepath") or record.get("filename"), "process")
    technique = first_text(record, "technique_id")
    return build_alert(
        NAME, record, id=alert_id, kind="alert", rule_id=rule_id, title=name or rule_id,
        description=first_text(record, "description", limit=16384) or "",
        severity=_severity(record.get("severity_name"), score), timestamp=timestamp,
        entities=found.items, attributes={
            "command_line": first_text(record, "cmdline"),
            "parent_process": first_text(record, "parent_details.cmdline", "parent_details.filename"),
            "file_name": first_text(record, "filename"),
            "file_path": first_text(record, "filepath"),
            "mitre_techniques": [technique] if technique and technique.startswith("T") else [],
            "mitre_tactics": [t for t in [first_text(record, "tactic")] if t],
            "technique": first_text(record, "technique"),
            "vendor_severity": first_text(record, "severity_name"),
            "vendor_severity_score": score,
            "outcome": first_text(record, "pattern_disposition_description"),
            "pattern_id": first_text(record, "pattern_id"),
            "product": first_text(record, "product"),
            "alert_type": first_text(record, "type"),
            "status": first_text(record, "status"),
            "confidence": number(record.get("confidence")),
            "url": first_text(record, "falcon_host_link"),
        },
        tenant=first_text(record, "cid", "device.cid", limit=256), vendor=_vendor_v2(record, score),
    )


def _vendor_v2(record: dict[str, Any], score: float | None) -> dict[str, Any]:
    mitre = [m for m in as_list(record.get("mitre_attack")) if isinstance(m, dict)]
    tactics, techniques = _attack(
        [(record.get("tactic"), record.get("tactic_id"))] + [(m.get("tactic"), m.get("tactic_id")) for m in mitre],
        [record.get("technique_id")] + [m.get("technique_id") for m in mitre])
    source = "/".join(p for p in (first_text(record, "product", limit=60), first_text(record, "type", limit=60)) if p)
    return _vendor(_stated_severity(record.get("severity_name"), score), score, record.get("confidence"),
                   _analyst_resolution(record), first_text(record, "pattern_disposition_description", limit=512),
                   record.get("pattern_disposition_details"), tactics, techniques, source or None)


def _streaming(record: dict[str, Any], event: dict[str, Any], legacy: bool) -> Alert:
    alert_id = first_text(event, "CompositeId", "DetectId", "CompositeID", limit=256)
    if not alert_id:
        raise fail(NAME, "streaming event has no CompositeId or DetectId")
    name = first_text(event, "Name", "DetectName", limit=1024)
    rule_id = _rule_id(event.get("PatternId"), name)
    if not rule_id:
        raise fail(NAME, "streaming event has no PatternId or Name")
    timestamp = first_time(record, "metadata.eventCreationTime") or first_time(event, "ProcessStartTime")
    if timestamp is None:
        raise fail(NAME, "streaming event has no parseable metadata.eventCreationTime")
    found = Entities()
    found.add(EntityKind.HOST, first_text(event, "Hostname", "ComputerName"), "dst")
    found.add(EntityKind.IP, event.get("LocalIP"), "dst")
    found.add(EntityKind.IP, event.get("LocalIPv6"), "dst")
    found.add_user(event.get("UserName"), "actor")
    found.add_hashes([event.get("SHA256String"), event.get("SHA1String"), event.get("MD5String")], "file")
    found.add(EntityKind.PROCESS, first_text(event, "FilePath", "FileName"), "process")
    for access in as_list(event.get("NetworkAccesses")):
        # ConnectionDirection 0 is outbound: the remote end is the destination.
        inbound = get(access, "ConnectionDirection") == 1
        found.add(EntityKind.IP, get(access, "RemoteAddress"), "src" if inbound else "dst")
    techniques = [t for t in (text(get(m, "TechniqueID") or get(m, "technique_id"), 32)
                              for m in as_list(event.get("MitreAttack"))) if t and t.startswith("T")]
    technique = first_text(event, "TechniqueId")
    score = number(event.get("Severity"))
    return build_alert(
        NAME, record, id=alert_id, kind="alert", rule_id=rule_id, title=name or rule_id,
        description=first_text(event, "Description", "DetectDescription", limit=16384) or "",
        severity=_severity(event.get("SeverityName"), score, legacy=legacy), timestamp=timestamp,
        entities=found.items, attributes={
            "command_line": first_text(event, "CommandLine"),
            "parent_process": first_text(event, "ParentCommandLine", "ParentImageFileName"),
            "grandparent_process": first_text(event, "GrandParentCommandLine", "GrandparentCommandLine"),
            "file_name": first_text(event, "FileName"),
            "file_path": first_text(event, "FilePath"),
            "mitre_techniques": techniques + ([technique] if technique and technique.startswith("T") else []),
            "mitre_tactics": [t for t in [first_text(event, "Tactic")] if t],
            "technique": first_text(event, "Technique"),
            "vendor_severity": first_text(event, "SeverityName"),
            "vendor_severity_score": score,
            "outcome": first_text(event, "PatternDispositionDescription"),
            "pattern_id": first_text(event, "PatternId"),
            "alert_type": first_text(event, "Type"),
            "event_type": first_text(record, "metadata.eventType"),
            "url": first_text(event, "FalconHostLink"),
        },
        tenant=first_text(record, "metadata.customerIDString", limit=256),
        vendor=_vendor_streaming(event, score, legacy),
    )


def _vendor_streaming(event: dict[str, Any], score: float | None, legacy: bool) -> dict[str, Any]:
    mitre = [m for m in as_list(event.get("MitreAttack")) if isinstance(m, dict)]
    tactics, techniques = _attack(
        [(event.get("Tactic"), event.get("TacticId"))]
        + [(m.get("Tactic") or m.get("tactic"), m.get("TacticID") or m.get("tactic_id")) for m in mitre],
        [event.get("TechniqueId")] + [m.get("TechniqueID") or m.get("technique_id") for m in mitre])
    return _vendor(_stated_severity(event.get("SeverityName"), score, legacy),
                   # The legacy event's 1-5 is a level, not a risk score.
                   None if legacy else score, event.get("Confidence"), None,
                   first_text(event, "PatternDispositionDescription", limit=512),
                   event.get("PatternDispositionFlags") or event.get("PatternDispositionDetails"),
                   tactics, techniques, first_text(event, "Type", limit=128))
