"""Map a Splunk ES notable event to an Alert.

Notables are flat search results using CIM field names (``src``, ``dest``,
``user``...); multi-value fields arrive as lists. A search-export or webhook
envelope (``{"result": {...}}``) is unwrapped first.
"""

from __future__ import annotations

import re
from typing import Any

from connectors._common import (
    Entities, as_list, build_alert, digest, fail, first_text, first_time, number, require_dict,
    severity_word, slug, text,
)
from soc_agent.types import Alert, EntityKind, Severity

NAME = "splunk"

_NAME_KEYS = ("search_name", "rule_name", "rule_title")
_RAW_SEARCH_NAME = re.compile(r"search_name=['\"]([^'\"]{1,512})['\"]")


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
    )


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
