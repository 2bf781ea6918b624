"""Map a Wazuh alert to an Alert.

A single sshd login failure or success is a raw event for the threshold
detector (``auth_failure`` / ``auth_invalid_user`` / ``auth_success``, as the
authlog format would map the same line); Wazuh's own frequency rules (5712
brute force, ``previous_output``) stay alerts with their Wazuh rule id.
"""

from __future__ import annotations

import re
from typing import Any

from connectors._common import (
    Entities, as_list, build_alert, digest, fail, first_text, first_time, get, number, require_dict,
    severity_band, text, vendor_fields,
)
from connectors.authlog import classify
from soc_agent.types import Alert, EntityKind, Severity

NAME = "wazuh"

# Wazuh's dashboard bands for rule.level 0-15, with 0-2 (ignored/system) as informational.
_LEVEL_BANDS = ((0, Severity.INFORMATIONAL), (3, Severity.LOW), (7, Severity.MEDIUM), (12, Severity.HIGH),
                (15, Severity.CRITICAL))
_AUTH_GROUPS = {"authentication_failed", "authentication_success", "invalid_login"}
_AUTH_RULE_GROUPS = _AUTH_GROUPS | {"authentication_failures"}
_MAX_LEVEL = 15
# Wazuh has no tenant of its own; MSSPs tag agents with a label (<label key="tenant">) in ossec.conf.
# The manager or cluster name is not one: a manager serves many customers' agents.
_TENANT_LABELS = ("agent.labels.tenant", "agent.labels.tenant_id", "agent.labels.customer",
                  "agent.labels.organization")
_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")


def _body(record: dict[str, Any]) -> dict[str, Any]:
    source = record.get("_source")
    return source if isinstance(source, dict) else record


def detect(record: dict[str, Any]) -> bool:
    """A Wazuh alert has ``rule`` with ``id`` and ``level``, and the ``agent`` (or manager) that saw it."""
    body = _body(record)
    rule = body.get("rule")
    return (isinstance(rule, dict) and "id" in rule and "level" in rule
            and (isinstance(body.get("agent"), dict) or isinstance(body.get("manager"), dict)))


def to_alert(record: dict[str, Any]) -> Alert:
    """Map one alert; single sshd logins become events."""
    body = require_dict(_body(require_dict(record, NAME)), NAME)
    vendor_rule = first_text(body, "rule.id", limit=64)
    if not vendor_rule:
        raise fail(NAME, "no rule.id")
    timestamp = first_time(body, "timestamp", "@timestamp") or first_time(record, "@timestamp")
    if timestamp is None:
        raise fail(NAME, f"no parseable timestamp ({text(body.get('timestamp'), 40)!r})")
    level = number(get(body, "rule.level"))
    groups = {g for g in (text(v, 64) for v in as_list(get(body, "rule.groups"))) if g}
    attempt = _single_sshd_attempt(body, groups)
    alert_id = first_text(body, "id", limit=200) or text(record.get("_id"), 200) or digest(body)
    found = _entities(body, auth=bool(groups & _AUTH_RULE_GROUPS))
    attributes = _attributes(body, level, groups)
    if attempt is not None:
        attributes.update(service="ssh", outcome=attempt.outcome, invalid_user=attempt.invalid_user,
                          auth_method=attempt.method)
        return build_alert(
            NAME, record, id=f"{alert_id}:{vendor_rule}", kind="event", rule_id=attempt.rule_id,
            title=first_text(body, "rule.description", limit=1024) or attempt.rule_id,
            description=first_text(body, "full_log", limit=16384) or "",
            severity=Severity.INFORMATIONAL if attempt.outcome == "success" else Severity.LOW,
            timestamp=timestamp, entities=found, attributes=attributes,
            # No vendor evidence: one sshd line must weigh the same read from Wazuh or from auth.log;
            # the threshold detector's alert is what gets scored.
            tenant=_tenant(body),
        )
    return build_alert(
        NAME, record, id=f"{alert_id}:{vendor_rule}", kind="alert", rule_id=vendor_rule,
        title=first_text(body, "rule.description", limit=1024) or f"Wazuh rule {vendor_rule}",
        description=first_text(body, "full_log", limit=16384) or "",
        severity=severity_band(level, _LEVEL_BANDS) or Severity.MEDIUM,
        timestamp=timestamp, entities=found, attributes=attributes,
        tenant=_tenant(body), vendor=_vendor(body, level),
    )


def _tenant(body: dict[str, Any]) -> str | None:
    """The tenant an agent label names, if the site labels agents with one."""
    return first_text(body, *_TENANT_LABELS, limit=256)


def _vendor(body: dict[str, Any], level: float | None) -> dict[str, Any]:
    """What the rule declares: its level (0-15) is both the rule's severity and, scaled, its risk.

    Wazuh states no verdict of its own; ``rule.groups`` stay in the attributes (they are
    categories such as ``sshd`` or ``syscheck``, not tactics).
    """
    decoder = first_text(body, "decoder.name", limit=100)
    techniques = [t for t in (text(v, 32) for v in as_list(get(body, "rule.mitre.id"))) if t and _TECHNIQUE.match(t)]
    return vendor_fields(
        risk_score=level / _MAX_LEVEL * 100 if level is not None else None,
        rule_level=severity_band(level, _LEVEL_BANDS),
        tactics=as_list(get(body, "rule.mitre.tactic")), techniques=techniques,
        detection_source=f"wazuh/{decoder}" if decoder else "wazuh",
    )


def _single_sshd_attempt(body: dict[str, Any], groups: set[str]):
    """The sshd attempt this alert reports, if it reports exactly one (no frequency, no history)."""
    if "sshd" not in groups or not groups & _AUTH_GROUPS:
        return None
    if get(body, "rule.frequency") is not None or body.get("previous_output"):
        return None
    full_log = text(body.get("full_log"), 16384) or ""
    message = full_log.split("]: ", 1)[1] if "]: " in full_log else full_log
    return classify(message)


def _entities(body: dict[str, Any], auth: bool) -> list:
    found = Entities()
    found.add(EntityKind.IP, get(body, "data.srcip"), "src")
    found.add(EntityKind.IP, get(body, "data.dstip"), "dst")
    # In authentication rules srcuser is the account tried, not someone acting.
    found.add_user(get(body, "data.srcuser"), "target" if auth else "actor")
    dst_user = text(get(body, "data.dstuser"), 256)
    found.add_user(dst_user.split("(", 1)[0] if dst_user else None, "target")
    found.add(EntityKind.HOST, get(body, "agent.name"), "dst")
    found.add(EntityKind.IP, get(body, "agent.ip"), "dst")
    found.add(EntityKind.URL, get(body, "data.url"), "dst")
    found.add_hashes([get(body, "syscheck.sha256_after"), get(body, "syscheck.sha1_after")], "file")
    found.add_user(get(body, "data.win.eventdata.targetUserName"), "target")
    found.add(EntityKind.IP, get(body, "data.win.eventdata.ipAddress"), "src")
    return found.items


def _attributes(body: dict[str, Any], level: float | None, groups: set[str]) -> dict[str, Any]:
    return {
        "vendor_rule_id": first_text(body, "rule.id"),
        "vendor_severity_score": level,
        "rule_groups": sorted(groups),
        "mitre_techniques": [t for t in (text(v, 32) for v in as_list(get(body, "rule.mitre.id"))) if t],
        "mitre_tactics": [t for t in (text(v, 128) for v in as_list(get(body, "rule.mitre.tactic"))) if t],
        "src_port": first_text(body, "data.srcport"),
        "agent_id": first_text(body, "agent.id"),
        "decoder": first_text(body, "decoder.name"),
        "frequency": number(get(body, "rule.frequency")),
        "url": first_text(body, "data.url"),
        "http_method": first_text(body, "data.protocol"),
        "file_path": first_text(body, "syscheck.path", "data.file"),
        "file_event": first_text(body, "syscheck.event"),
        "cve": first_text(body, "data.vulnerability.cve"),
        "command_line": first_text(body, "data.win.eventdata.commandLine", "data.command"),
    }
