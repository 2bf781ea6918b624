"""Threat intel for the decision point: the product's own watchlist, read from the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from soc_agent.edge.tables import IndicatorRow, TenantEntryRow
from soc_agent.pdp import PDP, load_policy
from soc_agent.pdp.intel import WatchlistIntel
from soc_agent.pdp.policy import SHIPPED_POLICY
from soc_agent.store import Store
from tests.soc_agent.pdp.test_pdp_engine import post


def _store(tmp_path) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'soc-agent.db'}")
    now = datetime.now(UTC)
    with Session(store.engine) as s:
        s.add(IndicatorRow(value="198.51.100.7", status="published", first_seen=now, last_seen=now,
                           expires_at=now + timedelta(days=1)))
        s.add(IndicatorRow(value="198.51.100.8", status="candidate", first_seen=now, last_seen=now,
                           expires_at=now + timedelta(days=1)))
        s.add(IndicatorRow(value="198.51.100.9", status="published", first_seen=now, last_seen=now,
                           expires_at=now - timedelta(seconds=1)))
        s.add(IndicatorRow(value="203.0.113.0/24", status="published", first_seen=now, last_seen=now,
                           expires_at=now + timedelta(days=1)))
        s.add(TenantEntryRow(tenant="acme", value="192.0.2.10", status="published", created_at=now, updated_at=now,
                             expires_at=now + timedelta(days=1)))
        s.commit()
    return store


def test_published_unexpired_entries_are_hits_for_the_right_tenant(tmp_path):
    import time

    intel = WatchlistIntel(_store(tmp_path).engine, time.time)
    assert intel("acme", "198.51.100.7")
    assert not intel("acme", "198.51.100.8")  # a candidate below quorum is visible to nobody
    assert not intel("acme", "198.51.100.9")  # expired
    assert intel("other", "203.0.113.44")  # inside a published network
    assert intel("acme", "192.0.2.10") and not intel("other", "192.0.2.10")  # a tenant's own block
    assert not intel("acme", "example.org")


def test_a_pdp_with_a_store_denies_a_watchlisted_destination(tmp_path):
    pdp = PDP(load_policy(SHIPPED_POLICY), store=_store(tmp_path))
    d = pdp.decide(post("198.51.100.7"))
    assert "watchlist-hit" in {c.signal for c in d.risk.contributions}
    assert d.decision in ("deny", "isolate_agent") and any("watchlisted-destination" in r for r in d.reasons)
    assert pdp.decide(post("api.github.com", session="s2", agent="a2")).decision == "allow"
