"""Vendor-native evidence: what an alert's source already knows, weighed generically.

The table of weights is ``playbooks/evidence.yml``; nothing here or there
names a rule, so a detection the product has never seen is judged on its
vendor's severity, risk, verdict, ATT&CK mapping and process facts instead of
weighing zero. Each item is about one alert (``Evidence.alert_id``).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from soc_agent.config_file import read_yaml
from soc_agent.types import Alert, Evidence, Severity, VendorVerdict

BENIGN_VERDICT_KIND = "vendor_benign"
"""The evidence kind of a vendor's own benign or false-positive determination: positive evidence of benign."""


_NON_MALICIOUS = {VendorVerdict.BENIGN: "benign_positive", VendorVerdict.FALSE_POSITIVE: "false_positive"}


class ProcessFact(BaseModel):
    """A regular expression over an alert's process fields and what a match is worth."""

    model_config = ConfigDict(extra="forbid")

    name: str
    fields: list[str]
    pattern: str
    weight: float
    summary: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        # Checked here so a bad pattern is reported at its line in evidence.yml, not as a crash at start-up.
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class RiskBand(BaseModel):
    """Risk scores at or above ``at_least`` weigh ``weight``."""

    model_config = ConfigDict(extra="forbid")

    at_least: float
    weight: float


class EvidenceTable(BaseModel):
    """``playbooks/evidence.yml``, validated."""

    model_config = ConfigDict(extra="forbid")

    severity: dict[Severity, float] = Field(default_factory=dict)
    risk_score_bands: list[RiskBand] = Field(default_factory=list)
    vendor_verdict: dict[VendorVerdict, float] = Field(default_factory=dict)
    vendor_confidence_floor: float = Field(default=0.5, ge=0, le=1)
    technique_mapped: float = 0.0
    tactics: dict[str, float] = Field(default_factory=dict)
    low_fidelity_factor: float = Field(default=0.5, ge=0, le=1)
    process_facts: list[ProcessFact] = Field(default_factory=list)


class EvidenceBook:
    """Turns an alert's vendor fields into signed evidence items."""

    def __init__(self, table: EvidenceTable) -> None:
        self.table = table
        self._facts = [(fact, re.compile(fact.pattern)) for fact in table.process_facts]
        self._bands = sorted(table.risk_score_bands, key=lambda b: -b.at_least)

    @classmethod
    def from_file(cls, path: Path) -> "EvidenceBook":
        """Load the table; a missing file is an empty table (every vendor fact weighs nothing)."""
        if not path.exists():
            return cls(EvidenceTable())
        doc = read_yaml(path)
        return cls(doc.validate(EvidenceTable, data=doc.mapping()))

    def evidence(self, alert: Alert, configured_rule: bool) -> list[Evidence]:
        """The vendor evidence for one alert.

        ``configured_rule``: the site weighed this rule in ``detectors.yml``, so
        severity and ATT&CK are already priced in; the vendor's own verdict and
        the process facts still count.
        """
        items: list[Evidence] = []
        vendor = alert.vendor
        factor = self.table.low_fidelity_factor if vendor.low_fidelity else 1.0
        fidelity = " (hunting/building-block rule: counted at reduced weight)" if vendor.low_fidelity else ""
        if not configured_rule:
            severity_item = self._severity(alert, factor, fidelity)
            if severity_item is not None:
                items.append(severity_item)
            items.extend(self._attack(alert, factor))
        if vendor.verdict is not None:
            weight = self.table.vendor_verdict.get(vendor.verdict, 0.0)
            if vendor.confidence is not None:
                floor = self.table.vendor_confidence_floor
                weight *= floor + (1 - floor) * vendor.confidence
            if weight:
                benign = vendor.verdict in (VendorVerdict.BENIGN, VendorVerdict.FALSE_POSITIVE)
                said = vendor.verdict_text or str(vendor.verdict)
                items.append(Evidence(
                    id=f"vendor-verdict:{alert.id}", kind=BENIGN_VERDICT_KIND if benign else "vendor_verdict",
                    source=alert.source, summary=f"the vendor's own determination is {said}"
                    + (f" (confidence {vendor.confidence:.2f})" if vendor.confidence is not None else ""),
                    weight=round(weight, 3), alert_id=alert.id,
                    data={"verdict": str(vendor.verdict), "non_malicious": _NON_MALICIOUS.get(vendor.verdict)},
                ))
        items.extend(self._process(alert))
        return items

    def _severity(self, alert: Alert, factor: float, fidelity: str) -> Evidence | None:
        vendor = alert.vendor
        severity = vendor.severity or vendor.rule_level
        if severity is not None:
            weight, said = self.table.severity.get(severity, 0.0), f"the vendor rates it {severity}"
        elif vendor.risk_score is not None:
            band = next((b for b in self._bands if vendor.risk_score >= b.at_least), None)
            weight, said = (band.weight if band else 0.0), f"the vendor's risk score is {vendor.risk_score:g}"
        else:
            return None
        weight *= factor
        if not weight:
            return None
        return Evidence(id=f"vendor-severity:{alert.id}", kind="vendor_severity", source=alert.source,
                        summary=said + fidelity, weight=round(weight, 3), alert_id=alert.id,
                        data={"severity": str(severity) if severity else None, "risk_score": vendor.risk_score})

    def _attack(self, alert: Alert, factor: float) -> list[Evidence]:
        vendor = alert.vendor
        if not vendor.techniques and not vendor.tactics:
            return []
        tactic_weights = [(self.table.tactics.get(t.lower().replace("-", " "), 0.0), t) for t in vendor.tactics]
        tactic_weight, tactic = max(tactic_weights, default=(0.0, None))
        weight = (self.table.technique_mapped if vendor.techniques else 0.0) + tactic_weight
        if not weight:
            return []
        mapped = ", ".join(vendor.techniques[:5]) or "no technique"
        return [Evidence(id=f"attack:{alert.id}", kind="attack", source=alert.source,
                         summary=f"ATT&CK {mapped}" + (f"; tactic {tactic}" if tactic else ""),
                         weight=round(weight * factor, 3), alert_id=alert.id,
                         data={"techniques": vendor.techniques[:10], "tactics": vendor.tactics[:10]})]

    def _process(self, alert: Alert) -> list[Evidence]:
        items = []
        attrs = alert.attributes
        for fact, pattern in self._facts:
            if any(isinstance(attrs.get(f), str) and pattern.search(attrs[f]) for f in fact.fields):
                items.append(Evidence(id=f"process:{fact.name}:{alert.id}", kind="process", source=alert.source,
                                      summary=fact.summary, weight=fact.weight, alert_id=alert.id,
                                      data={"fact": fact.name}))
        return items
