"""Map a Splunk ES notable event to an Alert.

Notables are flat search results using CIM field names (``src``, ``dest``,
``user``...); multi-value fields arrive as lists. A search-export or webhook
envelope (``{"result": {...}}``) is unwrapped first.
"""

from __future__ import annotations

import json
import re
from typing import Any

from connectors._common import (
    Entities, as_list, build_alert, digest, fail, first_text, first_time, get, number, require_dict,
    severity_word, slug, text, vendor_fields,
)
from soc_agent.types import Alert, EntityKind, Severity

NAME = "splunk"

_NAME_KEYS = ("search_name", "rule_name", "rule_title")
_RAW_SEARCH_NAME = re.compile(r"search_name=['\"]([^'\"]{1,512})['\"]")
# ES's built-in dispositions (reviewstatuses.conf), as the words vendor_verdict() reads.
# 0 Unassigned, 5 Other and 6 Undetermined say no analyst has decided: never benign, so unmapped.
_DISPOSITIONS = {
    1: "true_positive",     # True Positive - Suspicious Activity
    2: "benign_positive",   # Benign Positive - Suspicious But Expected
    3: "false_positive",    # False Positive - Incorrect Analytic Logic
    4: "false_positive",    # False Positive - Inaccurate Data
}
_DISPOSITION_CODE = re.compile(r"^\s*disposition:(\d{1,3})\s*$")
# A custom disposition (disposition:7 and up) is read by its label's leading words only.
_LABEL_PREFIXES = (("truepositive", "true_positive"), ("benignpositive", "benign_positive"),
                   ("falsepositive", "false_positive"))
_TECHNIQUE = re.compile(r"^T\d{4}(\.\d{3})?$")


def _body(record: dict[str, Any]) -> dict[str, Any]:
    result = record.get("result")
    return result if isinstance(result, dict) else record


def detect(record: dict[str, Any]) -> bool:
    """A notable names its correlation search and comes from ``index=notable`` or carries ES urgency."""
    body = _body(record)
    named = any(isinstance(body.get(key), str) for key in _NAME_KEYS) or isinstance(record.get("search_name"), str)
    notable = (body.get("index") == "notable" or "urgency" in body
               or str(body.get("_bkt", "")).startswith("notable~") or "event_hash" in body)
    return named and notable


def _search_name(body: dict[str, Any], record: dict[str, Any]) -> str | None:
    name = first_text(body, "search_name", limit=512) or first_text(record, "search_name", limit=512)
    if name:
        return name
    # Older exports drop the field but keep it in _raw; ``source`` is the search name in index=notable.
    match = _RAW_SEARCH_NAME.search(text(body.get("_raw"), 65536) or "")
    if match:
        return match.group(1)
    if body.get("index") == "notable":
        return first_text(body, "source", limit=512)
    return first_text(body, "rule_name", "rule_title", limit=512)


def to_alert(record: dict[str, Any]) -> Alert:
    """Map one notable; the correlation search name becomes the stable rule id."""
    body = require_dict(_body(require_dict(record, NAME)), NAME)
    search = _search_name(body, record)
    if not search:
        raise fail(NAME, "no search_name, rule_name or source: cannot tell which correlation search fired")
    timestamp = first_time(body, "_time", "orig_time", "_indextime", "info_search_time")
    if timestamp is None:
        raise fail(NAME, "no parseable _time")
    alert_id = (first_text(body, "event_id", limit=256)
                or digest(body.get("_bkt"), body.get("_cd"), body.get("_time"), search, body.get("_raw")))
    # ES computes urgency from the search's severity and the asset's priority: the analyst's number.
    severity = (severity_word(body.get("urgency")) or severity_word(body.get("severity"))
                or severity_word(body.get("priority")) or Severity.MEDIUM)
    return build_alert(
        NAME, record,
        id=alert_id, kind="alert", rule_id=slug(search) or digest(search),
        title=first_text(body, "rule_title", "rule_name", limit=1024) or search,
        description=first_text(body, "rule_description", "description", "savedsearch_description", limit=16384) or "",
        severity=severity, timestamp=timestamp,
        entities=_entities(body), attributes=_attributes(body),
        tenant=first_text(body, "tenant", "tenant_id", limit=256), vendor=_vendor(body),
    )


def _vendor(body: dict[str, Any]) -> dict[str, Any]:
    """Urgency is the notable's severity (the search's severity times the asset's priority); the
    search's own ``severity`` is the rule's level; the analyst's disposition is the determination."""
    word, label = _disposition(body)
    tactics, techniques = _mitre(body)
    fields = vendor_fields(
        severity=severity_word(body.get("urgency")) or severity_word(body.get("severity")),
        risk_score=_risk(body),
        verdict=word, tactics=tactics, techniques=techniques, rule_level=body.get("severity"),
        detection_source=first_text(body, "security_domain", limit=128),
    )
    # Say it as the analyst saw it ("False Positive - Inaccurate Data", "Undetermined").
    fields["verdict_text"] = label or fields["verdict_text"]
    return fields


def _risk(body: dict[str, Any]) -> float | None:
    """The notable's risk score when it is on the 0-100 scale of one detection.

    Past 100 it is the risk object's running total (the sample's 15680 equals ``dest_risk_score``):
    the asset's history, not this alert's risk, so it is left out rather than capped at 100.
    """
    score = number(body.get("risk_score"))
    return score if score is not None and 0 <= score <= 100 else None


def _disposition(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(verdict word, label as ES shows it) for the notable's disposition; an undecided one gives no word."""
    raw = first_text(body, "disposition", limit=64)
    label = first_text(body, "disposition_label", limit=256)
    code = _DISPOSITION_CODE.match(raw) if raw else None
    if code and int(code.group(1)) <= 6:
        return _DISPOSITIONS.get(int(code.group(1))), label or raw
    # A custom code, or an export that carries the label in ``disposition`` itself.
    said = label or (raw if not code else None)
    squeezed = re.sub(r"[^a-z]", "", said.lower()) if said else ""
    word = next((w for prefix, w in _LABEL_PREFIXES if squeezed.startswith(prefix)), None)
    return word, said or raw


def _annotations(body: dict[str, Any]) -> Any:
    """``annotations`` as an object: ES stores it as a JSON string in the notable."""
    value = body.get("annotations")
    if isinstance(value, str) and value.lstrip().startswith("{") and len(value) <= 65536:
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # attacker-influenced text: malformed or absurdly nested
            return None
    return value if isinstance(value, dict) else None


def _mitre(body: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """ATT&CK tactics and technique ids: flat ``annotations.mitre_attack*`` fields, or the annotations object."""
    tactics: list[Any] = []
    techniques: list[str] = []
    for source, prefix in ((body, "annotations.mitre_attack"), (_annotations(body) or {}, "mitre_attack")):
        tactics += as_list(get(source, f"{prefix}.mitre_tactic"))
        for path in (prefix, f"{prefix}.mitre_technique_id"):
            techniques += [t for t in (text(v, 32) for v in as_list(get(source, path))) if t and _TECHNIQUE.match(t)]
    return tactics, techniques


def _entities(body: dict[str, Any]) -> list:
    found = Entities()
    for key in ("src_ip", "src"):
        for value in as_list(body.get(key)):
            found.add_host_or_ip(value, "src")
    for key in ("dest_ip", "dest", "dest_nt_host", "dest_dns"):
        for value in as_list(body.get(key)):
            found.add_host_or_ip(value, "dst")
    # CIM: ``user`` is the account acted on, ``src_user`` the one acting.
    for value in as_list(body.get("src_user")):
        found.add_user(value, "actor")
    for key in ("user", "target_user"):
        for value in as_list(body.get(key)):
            found.add_user(value, "target")
    for value in as_list(body.get("dvc")):
        found.add_host_or_ip(value, "observer")
    for key in ("file_hash", "sha256", "sha1", "md5"):
        found.add_hashes(as_list(body.get(key)), "file")
    for value in as_list(body.get("url")):
        found.add(EntityKind.URL, value, "dst")
    for value in as_list(body.get("query")):
        found.add(EntityKind.DOMAIN, value, "dst")
    found.add(EntityKind.PROCESS, first_text(body, "process_name", "process_path"), "process")
    return found.items


def _attributes(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "signature": first_text(body, "signature"),
        "command_line": first_text(body, "process"),
        "parent_process": first_text(body, "parent_process", "parent_process_name"),
        "file_name": first_text(body, "file_name"),
        "user_agent": first_text(body, "http_user_agent"),
        "outcome": first_text(body, "action"),
        "service": first_text(body, "app"),
        "security_domain": first_text(body, "security_domain"),
        "urgency": first_text(body, "urgency"),
        "vendor_severity": first_text(body, "severity"),
        "vendor_severity_score": number(body.get("risk_score")),
        "status": first_text(body, "status_label", "status"),
        "disposition": first_text(body, "disposition_label", "disposition"),
        "owner": first_text(body, "owner"),
        "vendor_product": first_text(body, "vendor_product"),
        "count": number(body.get("count")),
        "mitre_techniques": [t for t in (text(v, 32) for v in as_list(body.get("annotations.mitre_attack"))) if t],
    }
