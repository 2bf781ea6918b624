"""Threat intel for the decision point: the product's own watchlist (edge indicators and tenant blocks).

A destination is an intel hit when the federated watchlist publishes it (an
indicator at quorum or by an analyst, not expired) or the agent's tenant
blocked it. The published set is read from the store at most every
``refresh_s`` seconds, so a decision costs a set lookup, not a query.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import Session, select

from soc_agent.edge.tables import IndicatorRow, TenantEntryRow


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


class WatchlistIntel:
    """``intel(tenant, host) -> bool`` over the watchlist tables, cached."""

    def __init__(self, engine: Engine, clock: Callable[[], float], refresh_s: float = 30.0) -> None:
        self._engine = engine
        self._clock = clock
        self._refresh_s = refresh_s
        self._loaded_at = float("-inf")
        self._shared: frozenset[str] = frozenset()
        self._tenant: frozenset[tuple[str, str]] = frozenset()
        self._networks: tuple[tuple[str | None, ipaddress.IPv4Network | ipaddress.IPv6Network], ...] = ()

    def _load(self, now: float) -> None:
        with Session(self._engine) as s:
            shared = [r.value for r in s.exec(select(IndicatorRow).where(IndicatorRow.status == "published"))
                      if _epoch(r.expires_at) > now]
            tenant = [(r.tenant, r.value) for r in
                      s.exec(select(TenantEntryRow).where(TenantEntryRow.status == "published"))
                      if _epoch(r.expires_at) > now]
        self._shared = frozenset(shared)
        self._tenant = frozenset(tenant)
        nets: list[tuple[str | None, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
        for owner, value in [(None, v) for v in shared] + list(tenant):
            if "/" in value:
                try:
                    nets.append((owner, ipaddress.ip_network(value, strict=False)))
                except ValueError:
                    continue
        self._networks = tuple(nets)
        self._loaded_at = now

    def __call__(self, tenant: str, host: str) -> bool:
        """Whether ``host`` is on the watchlist for ``tenant``."""
        now = self._clock()
        if now - self._loaded_at > self._refresh_s:
            self._load(now)
        if host in self._shared or (tenant, host) in self._tenant:
            return True
        if self._networks:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                return False
            return any((owner is None or owner == tenant) and address in net for owner, net in self._networks)
        return False
