"""Local knowledge: asset inventory, identity directory, threat intel, allowlists.

Loaded from YAML into pydantic models and indexed for O(1) lookups. Errors
name the file and the entry so a broken data file is easy to fix.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from soc_agent.config_file import read_yaml
from soc_agent.types import Entity, EntityKind, IdentityRole, utcnow


class Asset(BaseModel):
    """An inventoried machine. ``criticality_tier`` 0 is a crown jewel, 3 the least critical."""

    host: str
    ip: str | None = None
    criticality_tier: int = Field(ge=0, le=3)
    owner: str = ""
    environment: str = ""
    tags: list[str] = Field(default_factory=list)


class Identity(BaseModel):
    """A directory user with its role and whether it holds privilege."""

    user: str
    role: IdentityRole
    privileged: bool = False
    department: str = ""


class Indicator(BaseModel):
    """A threat-intel indicator; it stops counting at ``expires``."""

    indicator: str
    kind: EntityKind
    source: str
    confidence: float = Field(ge=0.0, le=1.0)
    expires: datetime | None = None

    def live(self, now: datetime) -> bool:
        """True until the indicator expires."""
        return self.expires is None or self.expires > now


class AllowlistEntry(BaseModel):
    """An entity the organisation vouches for, optionally only for some rules.

    ``value`` may be a CIDR for ``ip`` entries.
    """

    kind: EntityKind
    value: str
    reason: str
    rules: list[str] | None = None

    def covers(self, entity: Entity, rules: set[str]) -> bool:
        """Does this entry vouch for ``entity`` in a case with these rule ids?"""
        if entity.kind != self.kind:
            return False
        if self.rules is not None and not rules.intersection(self.rules):
            return False
        if self.kind is EntityKind.IP and "/" in self.value:
            try:
                return ipaddress.ip_address(entity.value) in ipaddress.ip_network(self.value, strict=False)
            except ValueError:
                return False
        return entity.value == self.value.lower() or entity.value == self.value


def _load_list(path: Path, model: type[BaseModel]) -> list[Any]:
    """Every entry of a local data file (absent: none); problems are a ``ConfigError`` naming ``file:line``."""
    if not path.exists():
        return []
    doc = read_yaml(path)
    if doc.data is None:
        return []
    if not isinstance(doc.data, list):
        raise doc.error.at(doc.file, 1, "expected a list of entries")
    return [doc.validate(model, (index,), entry) for index, entry in enumerate(doc.data)]


class LocalKnowledge:
    """Indexed local data the enrichers, the guard and the planner consult."""

    def __init__(
        self,
        assets: list[Asset] | None = None,
        identities: list[Identity] | None = None,
        indicators: list[Indicator] | None = None,
        allowlist: list[AllowlistEntry] | None = None,
    ) -> None:
        self.assets = assets or []
        self.identities = identities or []
        self.indicators = indicators or []
        self.allowlist = allowlist or []
        self._asset_by_host = {a.host.lower(): a for a in self.assets}
        self._asset_by_ip = {a.ip: a for a in self.assets if a.ip}
        self._identity = {i.user.lower(): i for i in self.identities}
        self._intel = {(i.kind, i.indicator.lower()): i for i in self.indicators}

    @classmethod
    def from_dir(cls, directory: Path) -> "LocalKnowledge":
        """Load ``assets.yml``, ``identities.yml``, ``intel.yml`` and ``allowlists.yml``."""
        return cls(
            _load_list(directory / "assets.yml", Asset),
            _load_list(directory / "identities.yml", Identity),
            _load_list(directory / "intel.yml", Indicator),
            _load_list(directory / "allowlists.yml", AllowlistEntry),
        )

    def asset(self, entity: Entity) -> Asset | None:
        """The inventoried asset a host or ip entity refers to."""
        if entity.kind is EntityKind.HOST:
            return self._asset_by_host.get(entity.value) or self._asset_by_host.get(entity.value.split(".")[0])
        if entity.kind is EntityKind.IP:
            return self._asset_by_ip.get(entity.value)
        return None

    def identity(self, entity: Entity) -> Identity | None:
        """The directory entry for a user entity (``DOMAIN\\user`` and ``user@domain`` too)."""
        if entity.kind is not EntityKind.USER:
            return None
        name = entity.value.split("\\")[-1]
        return self._identity.get(name) or self._identity.get(name.split("@")[0])

    def indicator(self, entity: Entity, now: datetime | None = None) -> Indicator | None:
        """The live intel indicator for an entity, if any (expired ones do not count)."""
        hit = self._intel.get((entity.kind, entity.value.lower()))
        if hit is None and entity.kind is EntityKind.EMAIL and "@" in entity.value:
            hit = self._intel.get((EntityKind.DOMAIN, entity.value.split("@", 1)[1]))
        if hit is not None and hit.live(now or utcnow()):
            return hit
        return None

    def expired_indicator(self, entity: Entity, now: datetime | None = None) -> Indicator | None:
        """An indicator that matched once but has expired (worth a note, not a verdict)."""
        hit = self._intel.get((entity.kind, entity.value.lower()))
        if hit is not None and not hit.live(now or utcnow()):
            return hit
        return None

    def allowlisted(self, entity: Entity, rules: set[str] | None = None) -> AllowlistEntry | None:
        """The allowlist entry vouching for this entity, if any (scoped entries need a matching rule)."""
        for entry in self.allowlist:
            if entry.covers(entity, rules or set()):
                return entry
        return None
