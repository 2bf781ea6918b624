"""Dispatch a Microsoft alert record to the mapping for its shape.

Three shapes reach us: Log Analytics ``SecurityAlert`` rows (PascalCase,
``Entities``/``ExtendedProperties`` as JSON strings), the Sentinel ARM
``SecurityAlert`` entity (``kind`` + ``properties``), and Microsoft Graph
security alerts (``alerts_v2``, or the deprecated v1 ``security/alerts``).

What the vendor itself says (``Alert.vendor``) and the tenant are read here,
for every shape in one place, so the same verdict words score alike whichever
API delivered the alert.
"""

from __future__ import annotations

import re
from typing import Any

from connectors._common import (
    as_list, fail, first_text, get, number, require_dict, severity_word, text, vendor_fields, vendor_verdict,
)
from connectors.defender.mapping import microsoft_tactics, microsoft_verdict
from connectors.sentinel import _graph, _log_analytics
from soc_agent.types import Alert, VendorEvidence

NAME = "sentinel"

# Sentinel's confidenceLevel words when no confidenceScore comes with them (the OCSF mapping's scale).
_CONFIDENCE_LEVELS = {"low": 0.33, "medium": 0.66, "high": 0.9}
# ARM: .../workspaces/<name>/... names the Log Analytics workspace the alert lives in.
_ARM_WORKSPACE = re.compile(r"^/subscriptions/([^/]+)/.*?/workspaces/([^/]+)", re.IGNORECASE)


def detect(record: dict[str, Any]) -> bool:
    """True for any of the three alert shapes; incidents and list responses are not alerts."""
    return _log_analytics.is_row(record) or _log_analytics.is_arm(record) or _graph.version(record) is not None


def to_alert(record: dict[str, Any]) -> Alert:
    """Map one alert of any supported shape, with its vendor evidence and tenant."""
    require_dict(record, NAME)
    if _log_analytics.is_row(record):
        alert, tenant, vendor = _log_analytics.row_to_alert(record), _row_tenant(record), _row_vendor(record)
    elif _log_analytics.is_arm(record):
        props = record["properties"]
        alert, tenant, vendor = _log_analytics.arm_to_alert(record), _arm_tenant(record), _arm_vendor(props)
    elif (version := _graph.version(record)) == 2:
        alert, tenant, vendor = _graph.v2_to_alert(record), first_text(record, "tenantId", limit=256), \
            _v2_vendor(record)
    elif version == 1:
        alert, tenant, vendor = _graph.v1_to_alert(record), first_text(record, "azureTenantId", limit=256), \
            _v1_vendor(record)
    elif isinstance(record.get("value"), list):
        raise fail(NAME, "a list response (value[]): split it into one alert per line")
    else:
        raise fail(NAME, "not a SecurityAlert row, ARM SecurityAlert entity or Graph security alert")
    # vendor_fields has already bounded every value, so this validation cannot fail on a vendor's bad value.
    return alert.model_copy(update={"tenant": tenant, "vendor": VendorEvidence.model_validate(vendor)})


def _with_verdict(fields: dict[str, Any], verdict: tuple[Any, str | None]) -> dict[str, Any]:
    fields.update(verdict=verdict[0], verdict_text=verdict[1])
    return fields


def _v2_vendor(record: dict[str, Any]) -> dict[str, Any]:
    """alerts_v2: classification/determination, mitreTechniques, the category when it is a tactic."""
    return _with_verdict(vendor_fields(
        severity=severity_word(record.get("severity")), tactics=microsoft_tactics(record.get("category")),
        techniques=as_list(record.get("mitreTechniques")),
        # detectionSource names the engine (antivirus, customDetection...); serviceSource only the product.
        detection_source=first_text(record, "detectionSource", "serviceSource", limit=128),
    ), microsoft_verdict(record.get("classification"), record.get("determination")))


def _v1_vendor(record: dict[str, Any]) -> dict[str, Any]:
    """Legacy v1: ``feedback`` is the analyst's call (truePositive, falsePositive, benignPositive, unknown)."""
    confidence = number(record.get("confidence"))
    return _with_verdict(vendor_fields(
        severity=severity_word(record.get("severity")), risk_score=record.get("riskScore"),
        # v1 states confidence as 0-100 always, so 1 means 1 %, not certainty.
        confidence=confidence / 100 if confidence is not None else None,
        # v1's category is free text ("Malware"), kept only when it is a tactic.
        tactics=microsoft_tactics(record.get("category")),
        detection_source=first_text(record, "vendorInformation.subProvider", "vendorInformation.provider",
                                    limit=128),
    ), microsoft_verdict(record.get("feedback"), None))


def _row_vendor(record: dict[str, Any]) -> dict[str, Any]:
    """A SecurityAlert row: Tactics (comma-separated), Techniques (a JSON list string), confidence columns."""
    return vendor_fields(
        severity=severity_word(record.get("AlertSeverity")),
        confidence=_confidence(record.get("ConfidenceScore"), record.get("ConfidenceLevel")),
        tactics=microsoft_tactics(_log_analytics._split(record.get("Tactics"))),
        techniques=_log_analytics._split(_log_analytics._json_column(record, "Techniques")),
        detection_source=first_text(record, "ProductName", "ProviderName", limit=128),
    )


def _arm_vendor(props: dict[str, Any]) -> dict[str, Any]:
    """The ARM SecurityAlert's properties; an incident's classification is read too when a forwarder adds it.

    ARM classifications are TruePositive, BenignPositive, FalsePositive and Undetermined (no verdict);
    ``classificationReason`` (SuspiciousActivity, SuspiciousButExpected, IncorrectAlertLogic...) only
    explains the classification, so it goes into the text and never overrides it.
    """
    classification = text(props.get("classification"), 64)
    reason = text(props.get("classificationReason"), 120)
    wording = f"{classification} ({reason})" if classification and reason else classification
    return _with_verdict(vendor_fields(
        severity=severity_word(props.get("severity")),
        confidence=_confidence(props.get("confidenceScore"), props.get("confidenceLevel")),
        tactics=microsoft_tactics(_log_analytics._split(props.get("tactics"))),
        techniques=_log_analytics._split(props.get("techniques")),
        detection_source=first_text(props, "productName", "providerName", limit=128),
    ), (vendor_verdict(classification), wording[:256] if wording else None))


def _confidence(score: Any, level: Any) -> float | None:
    """Sentinel's confidenceScore (0-1), else its confidenceLevel word; "Unknown" is no confidence."""
    value = number(score)
    if value is not None:
        return value
    word = text(level, 32)
    return _CONFIDENCE_LEVELS.get(word.lower()) if word else None


def _row_tenant(record: dict[str, Any]) -> str | None:
    """Log Analytics' ``TenantId`` column (the workspace id, which scopes alerts like a tenant)."""
    return first_text(record, "TenantId", limit=256)


def _arm_tenant(record: dict[str, Any]) -> str | None:
    """A tenant field if any; else the Log Analytics workspace id (what a row's TenantId holds); else the ARM path.

    The workspace id comes first so one workspace's alerts share a tenant whichever API delivered them.
    """
    props = record["properties"]
    tenant = first_text(props, "tenantId", "azureTenantId", limit=256)
    if tenant:
        return tenant
    for resource in as_list(props.get("resourceIdentifiers")):
        workspace = text(get(resource, "workspaceId"), 256)
        if workspace:
            return workspace
    match = _ARM_WORKSPACE.match(text(record.get("id"), 2048) or "")
    return f"{match.group(1)}/{match.group(2)}"[:256] if match else None
