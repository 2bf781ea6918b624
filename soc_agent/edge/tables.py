"""Server-side tables for edge sensors and the federated watchlist.

Registered on ``SQLModel.metadata`` and listed in ``soc_agent.store.schema``;
created by ``make_engine`` with the core tables.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class EdgeSensorRow(SQLModel, table=True):
    """A sensor the server has heard from, and the tenant it belongs to."""

    __tablename__ = "edge_sensors"

    sensor_id: str = Field(primary_key=True)
    tenant: str = Field(index=True)
    first_seen: datetime
    last_seen: datetime
    events: int = 0
    shed_total: int = Field(default=0, description="events the sensor's queue had to drop while offline")


class EdgeNonceRow(SQLModel, table=True):
    """Nonces accepted within the skew window: a second use is a replay."""

    __tablename__ = "edge_nonces"
    __table_args__ = (UniqueConstraint("sensor_id", "nonce"),)

    id: int | None = Field(default=None, primary_key=True)
    sensor_id: str
    nonce: str
    seen_at: datetime = Field(index=True)


class EdgeEventRow(SQLModel, table=True):
    """One event a sensor judged (a threshold crossing, an intel entry applied)."""

    __tablename__ = "edge_events"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True, description="sensor:epoch:seq, the sensor's idempotency key")
    tenant: str = Field(index=True)
    sensor_id: str = Field(index=True)
    seq: int
    kind: str
    ip: str = Field(index=True)
    outcome: str
    ttl_s: int = 0
    log_time: datetime | None = None
    received_at: datetime
    body: str = Field(description="the event as the sensor sent it (JSON)")


class IndicatorRow(SQLModel, table=True):
    """One entry of the federated watchlist.

    ``status``: ``candidate`` (sighted, below quorum: visible to no sensor),
    ``published`` (quorum of independent tenants, or an analyst), ``retracted``,
    ``allowlisted``. ``version`` is bumped on every change sensors must see;
    they pull changes with a version above their cursor.
    """

    __tablename__ = "edge_indicators"

    value: str = Field(primary_key=True)
    kind: str = "ip"
    status: str = Field(default="candidate", index=True)
    version: int = Field(default=0, index=True)
    first_seen: datetime
    last_seen: datetime
    expires_at: datetime
    sightings: int = 0
    tenants: int = 0
    sensors: int = 0
    base_confidence: float = 0.0
    published_by: str | None = Field(default=None, description="quorum | analyst:<name>")
    reason: str = ""


class IndicatorSightingRow(SQLModel, table=True):
    """Which tenant and sensor saw an indicator, how often: the watchlist's provenance."""

    __tablename__ = "edge_sightings"
    __table_args__ = (UniqueConstraint("value", "sensor_id"),)

    id: int | None = Field(default=None, primary_key=True)
    value: str = Field(index=True)
    tenant: str = Field(index=True)
    sensor_id: str
    count: int = 0
    first_seen: datetime
    last_seen: datetime


class TenantEntryRow(SQLModel, table=True):
    """A tenant lead's own watchlist entry (block or allow): only that tenant's sensors see it.

    Numbered from the same ``version`` sequence as ``IndicatorRow``, so a
    sensor's single cursor covers both. ``status``: ``published``,
    ``allowlisted``, ``retracted``.
    """

    __tablename__ = "edge_tenant_entries"
    __table_args__ = (UniqueConstraint("tenant", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(index=True)
    value: str = Field(index=True)
    kind: str = "ip"
    status: str = "published"
    version: int = Field(default=0, index=True)
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    decided_by: str = ""
    reason: str = ""
