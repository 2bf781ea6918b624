"""Threshold detection over raw events, decided at the event that crosses it.

``5 failed logins from one source in 60 s`` is a sliding window per group
key; ``6 distinct users from one source in 5 minutes`` (a password spray)
counts distinct values instead. When a window crosses its threshold the
detector emits a synthetic alert that carries the events as evidence.
Memory is bounded: each key keeps at most ``count`` timestamps and idle
keys are evicted oldest first.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field

from soc_agent.config_file import read_yaml
from soc_agent.types import Alert, Entity, EntityKind, Severity


class EntitySelector(BaseModel):
    """Picks an entity from an event by kind and (optionally) role."""

    kind: EntityKind
    role: str | None = None

    def pick(self, alert: Alert) -> Entity | None:
        for entity in alert.entities:
            if entity.kind == self.kind and (self.role is None or entity.role == self.role):
                return entity
        return None


class ThresholdRule(BaseModel):
    """One threshold detector, as declared in ``detectors.yml``."""

    name: str = Field(description="the rule id of the alert it emits")
    title: str
    match_rule: str | list[str] = Field(description="rule id (or ids) of the raw events it counts")
    group_by: EntitySelector
    count: int = Field(ge=2)
    window_s: int = Field(ge=1)
    distinct: EntitySelector | None = Field(default=None, description="count distinct values of this entity")
    severity: Severity = Severity.HIGH


    def matches(self, rule_id: str) -> bool:
        """Whether events of ``rule_id`` count toward this threshold."""
        return rule_id == self.match_rule if isinstance(self.match_rule, str) else rule_id in self.match_rule


class _Window:
    __slots__ = ("events", "fired_until", "entities")

    def __init__(self) -> None:
        self.events: deque[tuple[datetime, str, str]] = deque()
        self.fired_until: datetime | None = None
        self.entities: dict[str, Entity] = {}


class ThresholdDetector:
    """Counts matching events per group key and fires once per crossing."""

    def __init__(self, rules: list[ThresholdRule], max_keys: int = 100_000) -> None:
        self.rules = rules
        self.max_keys = max_keys
        self._windows: dict[str, OrderedDict[str, _Window]] = {r.name: OrderedDict() for r in rules}
        # Connections (``attributes.connection``) with a counted attempt, until their closing line;
        # True while an announced attempt (``announces_attempt``) still waits for its own line.
        self._open_connections: OrderedDict[str, bool] = OrderedDict()
        self.epilogues = 0
        """Lines not counted because they belong to an attempt already counted."""

    @classmethod
    def from_file(cls, path: Path) -> "ThresholdDetector":
        """Load the ``thresholds`` list of ``detectors.yml``; problems are a ``ConfigError`` naming ``file:line``."""
        doc = read_yaml(path)
        thresholds = doc.mapping().get("thresholds") or []
        if not isinstance(thresholds, list):
            raise doc.fail(("thresholds",), "expected a list of threshold detectors")
        return cls([doc.validate(ThresholdRule, ("thresholds", i), rule) for i, rule in enumerate(thresholds)])

    def observe(self, event: Alert) -> list[Alert]:
        """Count one event; the synthetic alerts it makes cross, if any."""
        if self._is_epilogue(event):
            return []
        fired = []
        for rule in self.rules:
            if not rule.matches(event.rule_id):
                continue
            group = rule.group_by.pick(event)
            if group is None:
                continue
            alert = self._count(rule, group, event)
            if alert is not None:
                fired.append(alert)
        return fired

    def _is_epilogue(self, event: Alert) -> bool:
        """Whether ``event`` is another line of an attempt that was already counted.

        An attempt counts once, whatever lines it writes. In sshd's words: a
        ``Connection closed by authenticating user ... [preauth]`` after
        ``Failed password`` lines is the same attempt's last line, while on its
        own (a key probe) it is an attempt; an ``Invalid user`` line announces
        an attempt, counted there, so the ``Failed password for invalid user``
        that follows is not counted again (without one, the probe still
        counted once). Connectors that know the connection say so with
        ``attributes.connection``, ``closes_connection`` and ``announces_attempt``.
        """
        connection = event.attributes.get("connection")
        if not isinstance(connection, str) or not connection:
            return False
        open_connections = self._open_connections
        if event.attributes.get("closes_connection") is True:
            counted = connection in open_connections
            open_connections.pop(connection, None)  # the connection is over either way
            self.epilogues += counted
            return counted
        announced = open_connections.get(connection) is True
        open_connections[connection] = event.attributes.get("announces_attempt") is True
        open_connections.move_to_end(connection)
        if len(open_connections) > self.max_keys:
            open_connections.popitem(last=False)
        self.epilogues += announced
        return announced

    def _count(self, rule: ThresholdRule, group: Entity, event: Alert) -> Alert | None:
        windows = self._windows[rule.name]
        window = windows.get(group.key)
        if window is None:
            window = windows[group.key] = _Window()
            if len(windows) > self.max_keys:
                windows.popitem(last=False)
        else:
            windows.move_to_end(group.key)
        ts = event.timestamp
        distinct_value = ""
        if rule.distinct is not None:
            picked = rule.distinct.pick(event)
            if picked is None:
                return None
            distinct_value = picked.key
        window.events.append((ts, event.id, distinct_value))
        horizon = ts - timedelta(seconds=rule.window_s)
        while window.events and window.events[0][0] < horizon:
            window.events.popleft()
        if rule.distinct is None:
            while len(window.events) > rule.count:
                window.events.popleft()
            reached = len(window.events) >= rule.count
        else:
            reached = len({v for _, _, v in window.events}) >= rule.count
        for entity in event.entities:
            if len(window.entities) < 64:
                window.entities.setdefault(entity.key, entity)
        if not reached or (window.fired_until is not None and ts < window.fired_until):
            return None
        # One alert per crossing; a source still hammering after the window
        # is a follow-up of the same case, not a new detection.
        window.fired_until = ts + timedelta(seconds=rule.window_s)
        count = len({v for _, _, v in window.events}) if rule.distinct else len(window.events)
        first = window.events[0][0]
        return Alert(
            id=f"{rule.name}:{group.value}:{int(first.timestamp())}",
            source="detector",
            kind="alert",
            rule_id=rule.name,
            title=rule.title.format(count=count, key=group.value, window=rule.window_s),
            severity=rule.severity,
            timestamp=ts,
            entities=list(window.entities.values()),
            attributes={
                "count": count,
                "window_s": rule.window_s,
                "event_ids": [eid for _, eid, _ in window.events],
                "first_seen": first.isoformat(),
                "group_key": group.key,
                **{k: v for k, v in event.attributes.items() if k in ("service", "outcome")},
            },
        )
