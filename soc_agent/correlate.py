"""Correlation: which open case does an alert belong to, and does it change anything?

Two alerts belong together when they share an entity within the window and
belong to the same tenant (keys are scoped by ``Alert.tenant``),
but not every entity is equally telling: an external address, a file hash,
a domain or a sender ties alerts from different rules together, while a
user, a host or an internal address (shared by half the company's alerts)
only joins alerts of the same rule. That keeps a malware case on a laptop
apart from a scanner case that touched the same laptop.

Alerts about another machine join only through a strong indicator: a weak
(same-rule) join is refused when the alert and the case both name machines
(hosts or internal addresses) and share none of them, so a second host's
malware alert that shares only a user with the first host's case opens its
own case. Every join says through which entity it was made
("joined through file_hash:..."), and an alert about a machine the case did
not cover yet (or a process it did not name) is material: its run must act on it.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from soc_agent.types import Alert, Entity, EntityKind, Severity

_STRONG_KINDS = frozenset(
    {EntityKind.FILE_HASH, EntityKind.DOMAIN, EntityKind.URL, EntityKind.EMAIL, EntityKind.CLOUD_RESOURCE}
)


# Addresses shared by many unrelated alerts inside an organisation.
_INTERNAL_NETS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "::1/128", "fc00::/7", "fe80::/10",
))


def is_internal_ip(value: str) -> bool:
    """True for RFC 1918, CGNAT, loopback, link-local and unique-local addresses (or a non-address)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return True
    return any(address in net for net in _INTERNAL_NETS if net.version == address.version)


def scoped_key(tenant: str | None, key: str) -> str:
    """An entity key within its tenant: the same address in two tenants is two entities to the correlator."""
    return f"{tenant}\x1f{key}" if tenant else key


def is_machine(entity: Entity) -> bool:
    """Does this entity name a machine (a host, or an internal address standing for one)?"""
    return entity.kind is EntityKind.HOST or (entity.kind is EntityKind.IP and is_internal_ip(entity.value))


def _is_machine_key(key: str) -> bool:
    kind, _, value = key.rpartition("\x1f")[2].partition(":")
    return kind == EntityKind.HOST.value or (kind == EntityKind.IP.value and is_internal_ip(value))


def is_strong(entity: Entity) -> bool:
    """Does this entity tie alerts of different rules together?"""
    if entity.kind in _STRONG_KINDS:
        return True
    if entity.kind is EntityKind.IP:
        return not is_internal_ip(entity.value)
    return False


@dataclass
class CaseIndex:
    """What the correlator remembers about an open case."""

    case_id: str
    rules: set[str] = field(default_factory=set)
    entity_keys: set[str] = field(default_factory=set)
    max_severity: int = 0
    last_seen: datetime | None = None
    runs: int = 0
    stored_keys: set[str] = field(default_factory=set)
    """Entity keys already written to the store for this case."""
    group_keys: set[str] = field(default_factory=set)
    """Detector group keys (e.g. a brute-forcing source) that point at this case."""
    touched: float = 0.0
    """When this process last joined an alert to the case (the correlator's clock, in seconds)."""
    machines: set[str] = field(default_factory=set)
    """The (scoped) keys of the hosts and internal addresses the case's alerts name."""


@dataclass
class Attachment:
    """Where an alert went and whether it warrants a fresh full run."""

    case_id: str | None
    new_case: bool
    material: bool
    why: list[str]


class Correlator:
    """An in-memory index of entity -> case, rebuilt from the store at start-up.

    Memory is bounded by activity, not by history: ``forget_idle`` drops the
    cases no alert has joined for a window, as a restart would (it restores
    only cases updated within the window).
    """

    def __init__(self, window: timedelta, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self.cases: OrderedDict[str, CaseIndex] = OrderedDict()
        """Open cases, least recently joined first."""
        self._by_entity: dict[str, str] = {}
        """strong entity key -> the newest case holding it (joins across rules)"""
        self._by_rule_entity: dict[tuple[str, str], str] = {}
        """(rule id, weak entity key) -> the newest case of that rule holding it. Kept apart from
        ``_by_entity``: a user in a malware case must not hide that user's open travel case."""
        self._by_group: dict[str, str] = {}
        """detector group key (e.g. the source ip) -> the case its threshold opened"""

    def find(self, alert: Alert) -> str | None:
        """The open case this alert joins, or None.

        Threshold alerts and raw events correlate only on the detector's group
        key (the source): two attackers hitting the same host and account are
        two cases, each blocked on its own.
        """
        return self._find(alert)[0]

    def _find(self, alert: Alert) -> tuple[str | None, str | None]:
        """``(case id, the key it was joined through)``, or ``(None, None)``.

        Entities are tried in the alert's own order (its source first), as the
        fleet's broker routes them. A weak entity joins only a case of the same
        rule that is about the same machine (when both name one).
        """
        if alert.kind == "event" or alert.source == "detector":
            keys = [alert.attributes.get("group_key")] if alert.source == "detector" else \
                [e.key for e in alert.entities]
            for key in keys:
                case_id = self._by_group.get(key)
                if case_id is not None and self._recent(self.cases[case_id], alert):
                    return case_id, key
            return None, None
        machines = {scoped_key(alert.tenant, e.key) for e in alert.entities if is_machine(e)}
        for entity in alert.entities:
            key = scoped_key(alert.tenant, entity.key)
            if is_strong(entity):
                case_id = self._by_entity.get(key)
            else:
                case_id = self._by_rule_entity.get((alert.rule_id, key))
            if case_id is None or not self._recent(self.cases[case_id], alert):
                continue
            case = self.cases[case_id]
            if not is_strong(entity) and machines and case.machines and not machines & case.machines:
                continue  # another machine: only a strong indicator joins it
            return case_id, entity.key
        return None, None

    def _recent(self, case: CaseIndex, alert: Alert) -> bool:
        return case.last_seen is None or abs(alert.timestamp - case.last_seen) <= self.window

    def attach(self, alert: Alert) -> Attachment:
        """Join ``alert`` to a case (opening one for a new detection) and say if it is material.

        Raw events never open a case: they join one a detector opened, or stay
        case-less until a threshold is crossed.
        """
        case_id, via = self._find(alert)
        if case_id is None:
            if alert.kind == "event":
                return Attachment(None, False, False, ["raw event below any threshold"])
            case_id = f"case-{uuid.uuid4().hex[:12]}"
            self.cases[case_id] = CaseIndex(case_id)
            self._index(self.cases[case_id], alert)
            return Attachment(case_id, True, True, [f"new case for {alert.rule_id}"])
        case = self.cases[case_id]
        why = []
        if alert.kind == "alert" and alert.rule_id not in case.rules:
            why.append(f"new detection {alert.rule_id}")
        if alert.kind == "alert" and alert.severity.rank > case.max_severity:
            why.append(f"severity rose to {alert.severity}")
        fresh = [e.key for e in alert.entities
                 if is_strong(e) and scoped_key(alert.tenant, e.key) not in case.entity_keys]
        if alert.kind == "alert" and fresh:
            why.append(f"new indicator {fresh[0]}")
        machines = [e.key for e in alert.entities if is_machine(e)]
        if alert.kind == "alert" and machines and case.machines and \
                not {scoped_key(alert.tenant, k) for k in machines} & case.machines:
            why.append(f"new host {machines[0]}")
        processes = [e.key for e in alert.entities if e.kind is EntityKind.PROCESS
                     and scoped_key(alert.tenant, e.key) not in case.entity_keys]
        if alert.kind == "alert" and processes:
            why.append(f"new process {processes[0]}")  # a process still running: its own run acts on it
        material = bool(why)
        why = why or ["follow-up, nothing material changed"]
        why.append(f"joined through {via}")
        self._index(case, alert)
        return Attachment(case_id, False, material, why)

    def remember_group(self, group_key: str, case_id: str) -> None:
        """Re-link a detector's group key to its case (process restart)."""
        self._by_group[group_key] = case_id
        if case_id in self.cases:
            self.cases[case_id].group_keys.add(group_key)

    def forget_idle(self) -> list[str]:
        """Drop the cases no alert has joined for a window (by this process's clock); their ids.

        Their stored rows are untouched: a duplicate of one of their alerts
        still finds the case in the store, and a new alert on their entities
        opens a new case, exactly as after a restart.
        """
        horizon = self._clock() - self.window.total_seconds()
        forgotten = []
        while self.cases:
            case = next(iter(self.cases.values()))
            if case.touched > horizon:
                break
            del self.cases[case.case_id]
            forgotten.append(case.case_id)
            for index, keys in ((self._by_entity, case.entity_keys), (self._by_group, case.group_keys),
                                (self._by_rule_entity, [(r, k) for r in case.rules for k in case.entity_keys])):
                for key in keys:
                    if index.get(key) == case.case_id:  # a newer case may hold the key now
                        del index[key]
        return forgotten

    def restore(self, case_id: str, rules: set[str], entity_keys: set[str], severity: Severity,
                last_seen: datetime, runs: int, rule_entities: set[tuple[str, str]] | None = None,
                tenant: str | None = None) -> None:
        """Re-index an open case loaded from the store (process restart, partition takeover).

        ``rule_entities`` are the (rule, entity key) pairs of the case's own
        alerts; without them every rule of the case is paired with every
        entity, which can steal a same-rule join from another open case.
        Where two restored cases share a key, the one seen last keeps it, as
        it would have in the live index. ``tenant`` scopes the keys as ``attach`` did.
        """
        entity_keys = {scoped_key(tenant, k) for k in entity_keys}
        if rule_entities is not None:
            rule_entities = {(r, scoped_key(tenant, k)) for r, k in rule_entities}
        case = CaseIndex(case_id, set(rules), set(entity_keys), severity.rank, last_seen, runs,
                         touched=self._clock(), machines={k for k in entity_keys if _is_machine_key(k)})
        self.cases[case_id] = case
        self.cases.move_to_end(case_id)
        pairs = rule_entities if rule_entities is not None else {(r, k) for r in rules for k in entity_keys}
        for key in entity_keys:
            self._claim(self._by_entity, key, case)
        for pair in pairs:
            self._claim(self._by_rule_entity, pair, case)

    def _claim(self, index: dict, key, case: CaseIndex) -> None:
        holder = self.cases.get(index.get(key, ""))
        if holder is None or holder is case or holder.last_seen is None or \
                (case.last_seen is not None and case.last_seen >= holder.last_seen):
            index[key] = case.case_id

    def _index(self, case: CaseIndex, alert: Alert) -> None:
        case.touched = self._clock()
        self.cases.move_to_end(case.case_id)
        if alert.source == "detector" and alert.attributes.get("group_key"):
            self._by_group[alert.attributes["group_key"]] = case.case_id
            case.group_keys.add(alert.attributes["group_key"])
        if alert.kind == "alert":
            case.rules.add(alert.rule_id)
            case.max_severity = max(case.max_severity, alert.severity.rank)
        case.last_seen = max(case.last_seen or alert.timestamp, alert.timestamp)
        for entity in alert.entities:
            key = scoped_key(alert.tenant, entity.key)
            case.entity_keys.add(key)
            if is_machine(entity):
                case.machines.add(key)
            self._by_entity[key] = case.case_id
            if alert.kind == "alert":
                self._by_rule_entity[(alert.rule_id, key)] = case.case_id
