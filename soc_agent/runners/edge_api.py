"""Server side of the edge: signed report ingestion, cross-site correlation, the federated watchlist.

Sensor endpoints (HMAC-signed, see ``soc_agent.edge.signing``; the sensor's
tenant comes from the server's configuration, never from the request):

==================================  ============================================================
``POST /edge/v1/events``            a batch of judged events, idempotent by event id
``GET  /edge/v1/watchlist?since=N`` watchlist changes after version N (no tenant identities)
``GET  /edge/v1/events``            this tenant's own events
``GET  /edge/v1/sensors``           this tenant's own sensors
==================================  ============================================================

Analyst endpoints (``Authorization: Bearer``, the tokens file of ``soc-agent serve``):
``GET /api/edge/indicators`` (viewer: full provenance), ``POST
/api/edge/indicators/{value}/publish | retract | allowlist`` (lead), where
``value`` is an address or a CIDR, slash and all (``/api/edge/indicators/192.0.2.0/24/retract``;
``%2F`` works too), body ``{"reason": ..., "tenant": ...}`` (both optional).

Who may change the shared lists: a ``lead`` whose token names a ``tenant``
writes entries only that tenant's sensors see (naming another tenant: 403); a
lead without a tenant writes none (403); a ``platform`` token writes entries
every sensor sees, or one tenant's when the body names it; viewers and
analysts: 403. Blocks and allows broader than ``max_prefix_v4`` (default /16)
or ``max_prefix_v6`` (/32) are refused with 422; a retraction is not, so an
over-broad entry stored earlier can still be withdrawn.

Rejected with 401: unsigned, unknown sensor, bad signature, a timestamp more
than ``max_skew_s`` away, a nonce already used. With 403: a body naming
another sensor or tenant.

Correlation: every threshold crossing is a sighting of its source address by
(tenant, sensor). An indicator's confidence grows with independent tenants
and, less, with further sites of one tenant, and halves every ``half_life_s``
after the last sighting; it expires ``indicator_ttl_s`` after it. Sensors see
it only once ``quorum`` distinct tenants sighted it or an analyst published
it; a retraction or an allowlist entry is a change like any other, so it
reaches every sensor on its next pull.

Configuration: ``SOC_AGENT_EDGE_FILE`` (YAML)::

    master_key_file: /etc/soc-agent/edge.key   # hex; sensor keys derive from it
    quorum: 2
    sensors:
      - {id: edge-a1, tenant: acme}
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from soc_agent.config_file import read_yaml
from soc_agent.edge import signing
from soc_agent.edge.tables import (
    EdgeEventRow,
    EdgeNonceRow,
    EdgeSensorRow,
    IndicatorRow,
    IndicatorSightingRow,
    TenantEntryRow,
)
from soc_agent.runners.api import caller, health_router
from soc_agent.runners.auth import Identity, Role, TokenStore
from soc_agent.runners.errors import Rejected, install
from soc_agent.runners.limits import read_json_object, read_limited
from soc_agent.store.engine import make_engine

EDGE_FILE_ENV = "SOC_AGENT_EDGE_FILE"
_TUNABLES = ("quorum", "max_skew_s", "half_life_s", "indicator_ttl_s", "block_ttl_s", "max_prefix_v4",
             "max_prefix_v6")
"""The numeric settings of the edge file (everything but the key and the sensors)."""
_MAX_BODY = 1 << 20
_PAGE = 500
_MAX_INT = 2**63 - 1
"""Integers stored from a sensor's event must fit the store's 64-bit columns."""


@dataclass
class EdgeConfig:
    """Who the sensors are and how the watchlist behaves."""

    master_key: bytes = b""
    sensors: dict[str, str] = field(default_factory=dict)
    """sensor id -> tenant."""
    quorum: int = 2
    """Distinct tenants whose sightings publish an indicator without an analyst."""
    max_skew_s: int = 300
    half_life_s: float = 6 * 3600
    indicator_ttl_s: int = 24 * 3600
    block_ttl_s: int = 3600
    """TTL sensors are asked to block a published indicator for (their guard caps it)."""
    max_prefix_v4: int = 16
    """The broadest IPv4 network a block or an allow may name (a shorter prefix is refused)."""
    max_prefix_v6: int = 32
    """The broadest IPv6 network a block or an allow may name."""

    @classmethod
    def from_file(cls, path: str | Path | None) -> EdgeConfig:
        """Load ``SOC_AGENT_EDGE_FILE``; no file means no sensor can authenticate."""
        if not path:
            return cls()
        doc = read_yaml(path)
        data = doc.mapping()
        if data.get("master_key"):
            key_hex, key_at = str(data["master_key"]), ("master_key",)
        elif data.get("master_key_file"):
            key_at = ("master_key_file",)
            try:
                key_hex = Path(str(data["master_key_file"])).read_text().strip()
            except OSError as exc:
                raise doc.fail(key_at, f"cannot read the key file: {exc.strerror or type(exc).__name__}") from None
        else:
            raise doc.fail((), "set master_key_file (or master_key): the key sensor keys are derived from")
        try:
            master_key = bytes.fromhex(key_hex)
        except ValueError:
            raise doc.fail(key_at, "the master key must be hex") from None  # never quote the key
        sensors = data.get("sensors") or []
        if not isinstance(sensors, list):
            raise doc.fail(("sensors",), "expected a list of {id, tenant} entries")
        for index, sensor in enumerate(sensors):
            if not (isinstance(sensor, dict) and sensor.get("id") and sensor.get("tenant")):
                raise doc.fail(("sensors", index), "a sensor needs an id and a tenant")
        tunables = {}
        for key in _TUNABLES:
            if key in data:
                if isinstance(data[key], bool) or not isinstance(data[key], (int, float)):
                    raise doc.fail((key,), "expected a number")
                tunables[key] = data[key]
        return cls(master_key=master_key, sensors={str(s["id"]): str(s["tenant"]) for s in sensors}, **tunables)

    def sensor_key(self, sensor_id: str) -> bytes:
        """The key a sensor signs with (give it to the sensor as hex)."""
        return signing.derive_key(self.master_key, sensor_id)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()

def _sensor_action(status: str, expires: float, now: float) -> str:
    """What a sensor does with an entry: allow it, block it (while it lasts), or remove it."""
    if status == "allowlisted":
        return "allow"
    if status == "published" and expires > now:
        return "block"
    return "remove"


def _int_field(data: dict[str, Any], name: str) -> int:
    """A non-negative integer field of a sensor's payload (absent or null: 0), else ``Rejected`` 422."""
    value = data.get(name)
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
        raise Rejected(422, f"{name} must be an integer from 0 to {_MAX_INT}")
    return value


def _log_time(value: Any) -> datetime | None:
    """An event's log time (Unix seconds) as a datetime; absent: None; out of range: ``Rejected`` 422."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Rejected(422, "log_time must be a number of Unix seconds")
    try:
        return _utc(value)
    except (OverflowError, ValueError, OSError):
        raise Rejected(422, "log_time is out of range") from None


def _canon_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _canon_value(value: str) -> str | None:
    """An address or a network in one spelling (a /32 or /128 is its address); None when neither."""
    if "/" not in value:
        return _canon_ip(value)
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


class EdgeService:
    """The edge's server-side state on a store engine; every method is its own transaction."""

    def __init__(self, engine, config: EdgeConfig, clock=time.time) -> None:
        self.engine, self.config, self.clock = engine, config, clock
        self._lock = threading.Lock()  # watchlist versions are allocated one at a time

    # ---- authentication -----------------------------------------------------------------------

    def verify(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[str, str]:
        """(sensor id, tenant) of a correctly signed, fresh, first-use request; else ``Rejected``."""
        sensor = headers.get(signing.SENSOR)
        ts, nonce, sig = headers.get(signing.TIMESTAMP), headers.get(signing.NONCE), headers.get(signing.SIGNATURE)
        if not (sensor and ts and nonce and sig) or not self.config.master_key:
            raise Rejected(401, "unsigned request")
        # Header values are latin-1 text: anything but ASCII is no signature, timestamp or nonce of ours.
        if not (sig.isascii() and ts.isascii() and nonce.isascii()):
            raise Rejected(401, "malformed signature headers")
        tenant = self.config.sensors.get(sensor)
        if tenant is None:
            raise Rejected(401, "unknown sensor")
        expected = signing.signature(self.config.sensor_key(sensor), method, path, ts, nonce, body)
        if not hmac.compare_digest(expected, sig):
            raise Rejected(401, "bad signature")
        now = self.clock()
        if not ts.isdigit() or len(ts) > 12 or abs(now - int(ts)) > self.config.max_skew_s:
            raise Rejected(401, "stale timestamp")
        if not (8 <= len(nonce) <= 64):
            raise Rejected(401, "bad nonce")
        with Session(self.engine) as s:
            if int(now) % 64 == 0:
                s.exec(delete(EdgeNonceRow).where(EdgeNonceRow.seen_at < _utc(now - 2 * self.config.max_skew_s)))
            s.add(EdgeNonceRow(sensor_id=sensor, nonce=nonce, seen_at=_utc(now)))
            try:
                s.commit()
            except IntegrityError:
                raise Rejected(401, "replayed request (nonce already used)") from None
        return sensor, tenant

    # ---- ingestion and correlation ------------------------------------------------------------

    def ingest(self, sensor: str, tenant: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Store a batch of events in order; threshold crossings become sightings."""
        if payload.get("sensor", sensor) != sensor or payload.get("tenant", tenant) != tenant:
            raise Rejected(403, "a sensor reports for itself and its own tenant only")
        events = payload.get("events")
        if not isinstance(events, list):
            raise Rejected(422, "events must be a list")
        now = self.clock()
        accepted = duplicates = 0
        with self._lock, Session(self.engine) as s:
            ids = [str(e.get("id", "")) for e in events if isinstance(e, dict)]
            if not all(i.startswith(f"{sensor}:") for i in ids) or len(ids) != len(events):
                raise Rejected(403, "event ids must belong to the sending sensor")
            known = set(s.exec(select(EdgeEventRow.event_id).where(EdgeEventRow.event_id.in_(ids))).all())
            for event in events:
                if event.get("tenant", tenant) != tenant:
                    raise Rejected(403, "an event names another tenant")
                if event["id"] in known:
                    duplicates += 1
                    continue
                known.add(event["id"])
                ip = _canon_ip(str(event.get("ip", ""))) or str(event.get("ip", ""))[:64]
                s.add(EdgeEventRow(
                    event_id=event["id"], tenant=tenant, sensor_id=sensor, seq=_int_field(event, "seq"),
                    kind=str(event.get("kind", ""))[:32], ip=ip, outcome=str(event.get("outcome", ""))[:200],
                    ttl_s=_int_field(event, "ttl_s"), received_at=_utc(now),
                    log_time=_log_time(event.get("log_time")), body=json.dumps(event)[:8192]))
                accepted += 1
                if event.get("kind") == "threshold" and _canon_ip(ip):
                    self._sighting(s, ip, tenant, sensor, now)
            row = s.get(EdgeSensorRow, sensor)
            if row is None:
                row = EdgeSensorRow(sensor_id=sensor, tenant=tenant, first_seen=_utc(now), last_seen=_utc(now))
            row.last_seen, row.events = _utc(now), row.events + accepted
            row.shed_total = max(row.shed_total, _int_field(payload, "shed_total"))
            s.add(row)
            s.commit()
        return {"accepted": accepted, "duplicates": duplicates}

    def _sighting(self, s: Session, ip: str, tenant: str, sensor: str, now: float) -> None:
        sight = s.exec(select(IndicatorSightingRow).where(IndicatorSightingRow.value == ip,
                                                          IndicatorSightingRow.sensor_id == sensor)).first()
        if sight is None:
            sight = IndicatorSightingRow(value=ip, tenant=tenant, sensor_id=sensor, first_seen=_utc(now),
                                         last_seen=_utc(now))
        sight.count += 1
        sight.last_seen = _utc(now)
        s.add(sight)
        s.flush()
        rows = s.exec(select(IndicatorSightingRow).where(IndicatorSightingRow.value == ip)).all()
        ind = s.get(IndicatorRow, ip)
        if ind is None:
            ind = IndicatorRow(value=ip, first_seen=_utc(now), last_seen=_utc(now), expires_at=_utc(now))
        ind.tenants = len({r.tenant for r in rows})
        ind.sensors = len(rows)
        ind.sightings = sum(r.count for r in rows)
        ind.last_seen = _utc(now)
        ind.expires_at = _utc(now + self.config.indicator_ttl_s)
        ind.base_confidence = confidence(ind.tenants, ind.sensors)
        if ind.status == "candidate" and ind.tenants >= self.config.quorum:
            ind.status, ind.published_by = "published", "quorum"
            ind.reason = f"sighted by {ind.tenants} independent tenants"
            ind.version = self._next_version(s)
        s.add(ind)

    def _next_version(self, s: Session) -> int:
        return self._max_version(s) + 1

    @staticmethod
    def _max_version(s: Session) -> int:
        """The last watchlist version, shared and tenant entries alike (one sequence, one sensor cursor)."""
        return max(int(s.exec(select(func.max(IndicatorRow.version))).one() or 0),
                   int(s.exec(select(func.max(TenantEntryRow.version))).one() or 0))

    # ---- analyst decisions --------------------------------------------------------------------

    def check_value(self, raw: str, status: str) -> str:
        """``raw`` in canonical spelling, else ``Rejected`` 422 (not an address, or a block or allow too broad)."""
        value = _canon_value(raw)
        if value is None:
            raise Rejected(422, f"{raw!r} is not an IP address or network")
        if status != "retracted" and "/" in value:
            net = ipaddress.ip_network(value)
            limit = self.config.max_prefix_v4 if net.version == 4 else self.config.max_prefix_v6
            if net.prefixlen < limit:
                what = "block" if status == "published" else "allowlist entry"
                raise Rejected(422, f"{value} is broader than /{limit}, the widest IPv{net.version} {what} "
                                        f"this server accepts (max_prefix_v{net.version})")
        return value

    def decide(self, ip: str, status: str, who: str, reason: str, tenant: str | None = None) -> dict[str, Any]:
        """Publish, retract or allowlist an indicator (creating it if never sighted).

        ``tenant``: the entry is that tenant's alone (only its sensors see it);
        None: a shared entry every sensor sees. Authorization is the caller's.
        """
        value = self.check_value(ip, status)
        if tenant is not None:
            return self._decide_for_tenant(value, status, who, reason, tenant)
        now = self.clock()
        with self._lock, Session(self.engine) as s:
            ind = s.get(IndicatorRow, value)
            if ind is None:
                ind = IndicatorRow(value=value, first_seen=_utc(now), last_seen=_utc(now),
                                   expires_at=_utc(now + self.config.indicator_ttl_s), base_confidence=0.9)
            if status == "published":
                ind.expires_at = _utc(max(_epoch(ind.expires_at), now + self.config.indicator_ttl_s))
                ind.base_confidence = max(ind.base_confidence, 0.9)
            ind.status, ind.published_by, ind.reason = status, f"analyst:{who}", reason[:500]
            ind.version = self._next_version(s)
            s.add(ind)
            s.commit()
            return self._public(ind, now) | {"status": ind.status, "published_by": ind.published_by,
                                             "tenant": None}

    def _decide_for_tenant(self, value: str, status: str, who: str, reason: str, tenant: str) -> dict[str, Any]:
        now = self.clock()
        with self._lock, Session(self.engine) as s:
            row = s.exec(select(TenantEntryRow).where(TenantEntryRow.tenant == tenant,
                                                      TenantEntryRow.value == value)).first()
            if row is None:
                if status == "retracted":
                    raise Rejected(404, f"tenant {tenant} has no watchlist entry for {value}")
                row = TenantEntryRow(tenant=tenant, value=value, created_at=_utc(now), updated_at=_utc(now),
                                     expires_at=_utc(now))
            if status == "published":
                row.expires_at = _utc(now + self.config.indicator_ttl_s)
            row.status, row.decided_by, row.reason = status, f"analyst:{who}", reason[:500]
            row.updated_at = _utc(now)
            row.version = self._next_version(s)
            s.add(row)
            s.commit()
            return self._public_tenant(row, now) | {"status": row.status, "published_by": row.decided_by,
                                                    "tenant": tenant}

    # ---- views --------------------------------------------------------------------------------

    def watchlist(self, since: int, limit: int = _PAGE, tenant: str | None = None) -> dict[str, Any]:
        """Changes after version ``since`` that ``tenant``'s sensors act on: the shared entries and the
        tenant's own; no tenant or sensor identities."""
        now = self.clock()
        with Session(self.engine) as s:
            rows: list[Any] = list(s.exec(select(IndicatorRow).where(IndicatorRow.version > since,
                                                                     IndicatorRow.status != "candidate")
                                          .order_by(IndicatorRow.version).limit(limit + 1)).all())
            if tenant is not None:
                rows += s.exec(select(TenantEntryRow).where(TenantEntryRow.tenant == tenant,
                                                            TenantEntryRow.version > since)
                               .order_by(TenantEntryRow.version).limit(limit + 1)).all()
            cursor = self._max_version(s)
        rows = sorted(rows, key=lambda r: r.version)[:limit + 1]
        more = len(rows) > limit
        rows = rows[:limit]
        if more:
            cursor = rows[-1].version
        return {"cursor": cursor, "more": more,
                "entries": [self._public_tenant(r, now) if isinstance(r, TenantEntryRow) else self._public(r, now)
                            for r in rows]}

    def _public_tenant(self, row: TenantEntryRow, now: float) -> dict[str, Any]:
        expires = _epoch(row.expires_at)
        action = _sensor_action(row.status, expires, now)
        return {"value": row.value, "kind": row.kind, "action": action, "version": row.version,
                "confidence": 0.9 if action == "block" else 0.0,
                "ttl_s": max(0, min(self.config.block_ttl_s, int(expires - now))) if action == "block" else 0,
                "expires_at": row.expires_at.isoformat(), "tenants": 1, "sightings": 0, "sites": 0,
                "reason": "analyst decision"}

    def _public(self, row: IndicatorRow, now: float) -> dict[str, Any]:
        expires = _epoch(row.expires_at)
        action = _sensor_action(row.status, expires, now)
        return {"value": row.value, "kind": row.kind, "action": action, "version": row.version,
                "confidence": round(decayed(row.base_confidence, row.last_seen, now, self.config.half_life_s), 3),
                "ttl_s": max(0, min(self.config.block_ttl_s, int(expires - now))) if action == "block" else 0,
                "expires_at": row.expires_at.isoformat(), "tenants": row.tenants, "sightings": row.sightings,
                "sites": row.sensors, "reason": row.reason if row.published_by == "quorum" else "analyst decision"}

    def tenant_events(self, tenant: str, limit: int = 500) -> list[dict[str, Any]]:
        """A tenant's own events, newest first."""
        with Session(self.engine) as s:
            rows = s.exec(select(EdgeEventRow).where(EdgeEventRow.tenant == tenant)
                          .order_by(EdgeEventRow.id.desc()).limit(limit)).all()
        return [{"event_id": r.event_id, "sensor_id": r.sensor_id, "kind": r.kind, "ip": r.ip, "outcome": r.outcome,
                 "ttl_s": r.ttl_s, "received_at": r.received_at.isoformat()} for r in rows]

    def tenant_sensors(self, tenant: str) -> list[dict[str, Any]]:
        """A tenant's own sensors."""
        with Session(self.engine) as s:
            rows = s.exec(select(EdgeSensorRow).where(EdgeSensorRow.tenant == tenant)).all()
        return [{"sensor_id": r.sensor_id, "last_seen": r.last_seen.isoformat(), "events": r.events,
                 "shed_total": r.shed_total} for r in rows]

    def indicators(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Every indicator with full provenance (tenants by name): for the provider's analysts.

        Then the tenants' own entries (``tenant`` set on each): ``tenant``'s only, or every tenant's when None.
        """
        now = self.clock()
        with Session(self.engine) as s:
            rows = s.exec(select(IndicatorRow).order_by(IndicatorRow.last_seen.desc())).all()
            sights = s.exec(select(IndicatorSightingRow)).all()
            query = select(TenantEntryRow).order_by(TenantEntryRow.version.desc())
            own = s.exec(query if tenant is None else query.where(TenantEntryRow.tenant == tenant)).all()
        by_value: dict[str, list] = {}
        for x in sights:
            by_value.setdefault(x.value, []).append({"tenant": x.tenant, "sensor_id": x.sensor_id, "count": x.count})
        return [self._public(r, now) | {"status": r.status, "published_by": r.published_by, "tenant": None,
                                        "provenance": by_value.get(r.value, [])} for r in rows] + \
               [self._public_tenant(r, now) | {"status": r.status, "published_by": r.decided_by, "tenant": r.tenant,
                                               "provenance": []} for r in own]


def confidence(tenants: int, sensors: int) -> float:
    """Independent tenants weigh most (each halves the doubt); more sites of one tenant add a little."""
    return round(min(0.99, 1 - 0.5 ** max(tenants, 0) * 0.8 ** max(sensors - tenants, 0)), 4)


def decayed(base: float, last_seen: datetime, now: float, half_life_s: float) -> float:
    """``base`` halved for every ``half_life_s`` since the last sighting."""
    age = max(0.0, now - _epoch(last_seen))
    return base * 0.5 ** (age / half_life_s)


def edge_router(engine, tokens: TokenStore, config: EdgeConfig | None = None, clock=time.time) -> APIRouter:
    """The edge endpoints on ``engine``; ``config`` defaults to ``$SOC_AGENT_EDGE_FILE``.

    Refusals are ``Rejected`` (an ``HTTPException``): they answer
    ``{"detail": ...}`` with their status in any app, with or without the server's handler.
    """
    service = EdgeService(engine, config or EdgeConfig.from_file(os.environ.get(EDGE_FILE_ENV)), clock)
    router = APIRouter()
    router.edge_service = service  # type: ignore[attr-defined]  (tests and the CLI reach it here)

    async def signed(request: Request) -> tuple[str, str, bytes]:
        """(sensor, tenant, body) of a correctly signed request; the body is read first (it is signed)."""
        body = await read_limited(request, _MAX_BODY)
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        sensor, tenant = service.verify(request.method, path, {k.lower(): v for k, v in request.headers.items()},
                                        body)
        return sensor, tenant, body

    @router.post("/edge/v1/events")
    async def post_events(request: Request) -> dict[str, Any]:
        """A sensor's batch of judged events, idempotent by event id."""
        sensor, tenant, body = await signed(request)
        try:
            payload = json.loads(body)
        except ValueError:
            raise HTTPException(400, "body is not JSON") from None
        if not isinstance(payload, dict):
            raise HTTPException(400, "body is not a JSON object")
        return await run_in_threadpool(service.ingest, sensor, tenant, payload)

    @router.get("/edge/v1/watchlist")
    async def get_watchlist(request: Request, since: int = 0) -> dict[str, Any]:
        """The watchlist changes after version ``since`` the signing sensor acts on."""
        _, tenant, _ = await signed(request)
        return service.watchlist(since, tenant=tenant)

    @router.get("/edge/v1/events")
    async def get_events(request: Request, tenant: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        """The signing sensor's tenant's own events, newest first."""
        _, own, _ = await signed(request)
        if tenant is not None and tenant != own:
            raise HTTPException(403, "a tenant sees its own events only")
        return service.tenant_events(own, max(1, min(limit, 5000)))

    @router.get("/edge/v1/sensors")
    async def get_sensors(request: Request, tenant: str | None = None) -> list[dict[str, Any]]:
        """The signing sensor's tenant's own sensors."""
        _, own, _ = await signed(request)
        if tenant is not None and tenant != own:
            raise HTTPException(403, "a tenant sees its own sensors only")
        return service.tenant_sensors(own)

    @router.get("/api/edge/indicators")
    def list_indicators(who: Identity = Depends(caller(Role.VIEWER, tokens))) -> list[dict[str, Any]]:
        """Indicators with full provenance: every tenant's for a platform token, else the caller's tenant's."""
        return service.indicators(None if who.role == Role.PLATFORM else who.tenant or "")

    @router.post("/api/edge/indicators/{value:path}/{verb}")
    async def decide_indicator(value: str, verb: str, request: Request,
                               who: Identity = Depends(caller(Role.LEAD, tokens))) -> dict[str, Any]:
        """Publish, retract or allowlist ``value`` for the caller's tenant (a platform token: any or all)."""
        status = {"publish": "published", "retract": "retracted", "allowlist": "allowlisted"}.get(verb)
        if status is None:
            raise HTTPException(404, "publish, retract or allowlist")
        body = await read_json_object(request, _MAX_BODY)
        reason, named = str(body.get("reason", "")), body.get("tenant")
        if named is not None and (not isinstance(named, str) or named not in set(service.config.sensors.values())):
            raise HTTPException(422, f"tenant {named!r} has no sensors here")
        if who.role == Role.PLATFORM:
            scope = named  # None: every tenant's sensors
        elif who.tenant is None:
            raise HTTPException(403, f"{who.name} has no tenant: a lead changes its own tenant's watchlist only "
                                     "(tenant: in the tokens file); entries for every tenant need a platform token")
        elif named is not None and named != who.tenant:
            raise HTTPException(403, f"{who.name} acts for tenant {who.tenant}, not {named}")
        else:
            scope = who.tenant
        return service.decide(value, status, who.name, reason, scope)

    return router


def serve_standalone(db_url: str, port: int, config: EdgeConfig, tokens: TokenStore,
                     host: str = "127.0.0.1") -> None:
    """Only the edge endpoints on a store, with uvicorn (tests, and small deployments)."""
    import uvicorn  # deferred: only for the standalone server; the router alone (the tests) does not need it

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    install(app)
    app.include_router(edge_router(make_engine(db_url), tokens, config))
    app.include_router(health_router)

    uvicorn.run(app, host=host, port=port, log_level="warning")


if __name__ == "__main__":  # python -m soc_agent.runners.edge_api DB_URL PORT  (config from the environment)
    import sys

    serve_standalone(sys.argv[1], int(sys.argv[2]), EdgeConfig.from_file(os.environ.get(EDGE_FILE_ENV)),
                     TokenStore.from_file(os.environ.get("SOC_AGENT_TOKENS_FILE")))

