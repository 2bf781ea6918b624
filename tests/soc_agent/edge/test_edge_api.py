"""Server side of the edge: signatures, replay, tenancy, correlation, quorum, retraction."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from soc_agent.edge.signing import derive_key, sign
from soc_agent.runners.auth import TokenStore, hash_token
from soc_agent.runners.edge_api import EdgeConfig, confidence, edge_router
from soc_agent.store.engine import make_engine

MASTER = bytes(range(32))
SENSORS = {"a1": "acme", "a2": "acme", "b1": "globex", "c1": "initech"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(tmp_path):
    tokens = tmp_path / "tokens.yml"
    tokens.write_text(f"tokens:\n  - {{name: bo.analyst, role: analyst, sha256: {hash_token('tok-an')}}}\n"
                      f"  - {{name: vic.viewer, role: viewer, sha256: {hash_token('tok-view')}}}\n"
                      f"  - {{name: pat.platform, role: platform, sha256: {hash_token('tok-plat')}}}\n"
                      f"  - {{name: ana.lead, role: lead, tenant: acme, sha256: {hash_token('tok-lead-acme')}}}\n"
                      f"  - {{name: gus.lead, role: lead, tenant: globex, sha256: {hash_token('tok-lead-globex')}}}\n"
                      f"  - {{name: nob.lead, role: lead, sha256: {hash_token('tok-lead-none')}}}\n")
    clock = Clock()
    app = FastAPI()
    router = edge_router(make_engine(f"sqlite:///{tmp_path}/edge.db"), TokenStore.from_file(tokens),
                         EdgeConfig(master_key=MASTER, sensors=dict(SENSORS), quorum=2), clock)
    app.include_router(router)
    with TestClient(app) as client:
        yield client, clock


def call(client, clock, sensor, method, path, payload=None, key=None, headers=None):
    body = json.dumps(payload).encode() if payload is not None else b""
    signed = sign(key or derive_key(MASTER, sensor), sensor, method, path, body, now=clock.now)
    signed.update(headers or {})
    return client.request(method, path, content=body or None, headers=signed)


def crossing(sensor, seq, ip="203.0.113.50", **extra):
    return {"id": f"{sensor}:e0:{seq}", "seq": seq, "kind": "threshold", "ip": ip, "outcome": "allow", "ttl_s": 600,
            **extra}


def post(client, clock, sensor, *events, **kw):
    return call(client, clock, sensor, "POST", "/edge/v1/events", {"sensor": sensor, "events": list(events)}, **kw)


def test_signed_report_is_accepted_and_a_resend_is_deduplicated(env):
    client, clock = env
    assert post(client, clock, "a1", crossing("a1", 1)).json() == {"accepted": 1, "duplicates": 0}
    assert post(client, clock, "a1", crossing("a1", 1), crossing("a1", 2)).json() == {"accepted": 1,
                                                                                        "duplicates": 1}


def test_unsigned_forged_stale_and_replayed_requests_are_rejected(env):
    client, clock = env
    body = json.dumps({"sensor": "a1", "events": [crossing("a1", 1)]}).encode()
    assert client.post("/edge/v1/events", content=body).status_code == 401  # unsigned
    forged = post(client, clock, "a1", crossing("a1", 1), key=b"not the key")
    assert forged.status_code == 401 and "signature" in forged.json()["detail"]
    unknown = post(client, clock, "zz", crossing("zz", 1))
    assert unknown.status_code == 401
    headers = sign(derive_key(MASTER, "a1"), "a1", "POST", "/edge/v1/events", body, now=clock.now - 301)
    assert client.post("/edge/v1/events", content=body, headers=headers).json()["detail"] == "stale timestamp"
    headers = sign(derive_key(MASTER, "a1"), "a1", "POST", "/edge/v1/events", body, now=clock.now)
    assert client.post("/edge/v1/events", content=body, headers=headers).status_code == 200
    replay = client.post("/edge/v1/events", content=body, headers=headers)
    assert replay.status_code == 401 and "replayed" in replay.json()["detail"]
    tampered = dict(sign(derive_key(MASTER, "a1"), "a1", "POST", "/edge/v1/events", body, now=clock.now))
    assert client.post("/edge/v1/events", content=body.replace(b"50", b"51"), headers=tampered).status_code == 401
    # a signature for one path does not open another
    headers = sign(derive_key(MASTER, "a1"), "a1", "GET", "/edge/v1/watchlist?since=0", now=clock.now)
    assert client.get("/edge/v1/watchlist?since=5", headers=headers).status_code == 401


def test_cross_tenant_requests_are_rejected(env):
    client, clock = env
    assert post(client, clock, "a1", crossing("b1", 1)).status_code == 403  # another sensor's event id
    r = call(client, clock, "a1", "POST", "/edge/v1/events", {"sensor": "b1", "events": [crossing("a1", 1)]})
    assert r.status_code == 403
    assert post(client, clock, "a1", crossing("a1", 1, tenant="globex")).status_code == 403
    assert call(client, clock, "a1", "GET", "/edge/v1/events?tenant=globex").status_code == 403
    assert call(client, clock, "a1", "GET", "/edge/v1/sensors?tenant=globex").status_code == 403


def test_a_tenant_sees_its_own_events_and_sensors_and_the_watchlist_without_identities(env):
    client, clock = env
    post(client, clock, "a1", crossing("a1", 1))
    post(client, clock, "a2", crossing("a2", 1))
    post(client, clock, "b1", crossing("b1", 1, ip="198.51.100.9"))
    events = call(client, clock, "b1", "GET", "/edge/v1/events").json()
    assert [e["sensor_id"] for e in events] == ["b1"]
    assert {s["sensor_id"] for s in call(client, clock, "a1", "GET", "/edge/v1/sensors").json()} == {"a1", "a2"}
    call(client, clock, "b1", "POST", "/edge/v1/events", {"events": [crossing("b1", 2)]})
    text = call(client, clock, "c1", "GET", "/edge/v1/watchlist?since=0").text
    assert "203.0.113.50" in text
    for identity in ("acme", "globex", "a1", "a2", "b1"):
        assert f'"{identity}"' not in text


def test_one_tenant_alone_cannot_publish_however_many_sites_and_quorum_can(env):
    client, clock = env
    for seq in range(1, 4):
        post(client, clock, "a1", crossing("a1", seq))
        post(client, clock, "a2", crossing("a2", seq))
    assert call(client, clock, "c1", "GET", "/edge/v1/watchlist?since=0").json()["entries"] == []
    post(client, clock, "b1", crossing("b1", 1))
    page = call(client, clock, "c1", "GET", "/edge/v1/watchlist?since=0").json()
    (entry,) = page["entries"]
    assert entry["action"] == "block" and entry["tenants"] == 2 and entry["sites"] == 3 and entry["sightings"] == 7
    assert entry["confidence"] == confidence(2, 3) > confidence(1, 2) > confidence(1, 1)
    # incremental: nothing new since the cursor
    assert call(client, clock, "c1", "GET", f"/edge/v1/watchlist?since={page['cursor']}").json()["entries"] == []


def test_confidence_decays_and_indicators_expire(env):
    client, clock = env
    post(client, clock, "a1", crossing("a1", 1))
    post(client, clock, "b1", crossing("b1", 1))
    first = call(client, clock, "c1", "GET", "/edge/v1/watchlist?since=0").json()["entries"][0]
    clock.now += 6 * 3600
    later = call(client, clock, "c1", "GET", "/edge/v1/watchlist?since=0").json()["entries"][0]
    assert later["confidence"] == pytest.approx(first["confidence"] / 2, abs=0.002)
    clock.now += 19 * 3600
    assert call(client, clock, "c1", "GET", "/edge/v1/watchlist?since=0").json()["entries"][0]["action"] == "remove"


def test_platform_publishes_retracts_and_allowlists_and_sensors_see_each_change(env):
    client, clock = env
    bearer = {"Authorization": "Bearer tok-plat"}
    post(client, clock, "a1", crossing("a1", 1))
    assert client.post("/api/edge/indicators/203.0.113.50/publish",
                       headers={"Authorization": "Bearer tok-view"}).status_code == 403
    r = client.post("/api/edge/indicators/203.0.113.50/publish", headers=bearer, json={"reason": "confirmed"})
    assert r.json()["status"] == "published" and r.json()["published_by"] == "analyst:pat.platform"
    page = call(client, clock, "b1", "GET", "/edge/v1/watchlist?since=0").json()
    assert [e["action"] for e in page["entries"]] == ["block"]
    client.post("/api/edge/indicators/203.0.113.50/retract", headers=bearer, json={"reason": "partner NAT"})
    client.post("/api/edge/indicators/192.0.2.0/24/allowlist", headers=bearer)
    changes = call(client, clock, "b1", "GET", f"/edge/v1/watchlist?since={page['cursor']}").json()["entries"]
    assert [(e["value"], e["action"]) for e in changes] == [("203.0.113.50", "remove"), ("192.0.2.0/24", "allow")]
    # new sightings do not undo an analyst's retraction
    post(client, clock, "b1", crossing("b1", 9))
    assert call(client, clock, "c1", "GET", "/edge/v1/watchlist?since=0").json()["entries"][0]["action"] == "remove"
    full = client.get("/api/edge/indicators", headers={"Authorization": "Bearer tok-view"}).json()
    assert {p["tenant"] for p in full[0]["provenance"]} <= {"acme", "globex"}


def test_the_server_app_serves_the_edge_endpoints(settings, monkeypatch, tmp_path):
    from soc_agent.runners.server import create_app

    cfg = tmp_path / "edge.yml"
    cfg.write_text(f"master_key: {MASTER.hex()}\nsensors:\n  - {{id: a1, tenant: acme}}\n")
    monkeypatch.setenv("SOC_AGENT_EDGE_FILE", str(cfg))
    clock = Clock()
    import time

    clock.now = time.time()
    with TestClient(create_app(settings, sweep_s=3600)) as client:
        assert post(client, clock, "a1", crossing("a1", 1)).json()["accepted"] == 1
        assert client.post("/edge/v1/events", content=b"{}").status_code == 401


def test_a_non_ascii_signature_header_is_401_not_500(env):
    client, clock = env
    body = json.dumps({"sensor": "a1", "events": [crossing("a1", 1)]}).encode()
    headers = sign(derive_key(MASTER, "a1"), "a1", "POST", "/edge/v1/events", body, now=clock.now)
    headers["X-Edge-Signature"] = "sig\u00e9\u00e8".encode("latin-1")
    response = client.post("/edge/v1/events", content=body, headers=headers)
    assert response.status_code == 401
    headers["X-Edge-Signature"] = "\u00e9".encode("utf-8")
    assert client.post("/edge/v1/events", content=body, headers=headers).status_code == 401


@pytest.mark.parametrize("bad", [{"seq": "notint"}, {"seq": 10**30}, {"seq": -1}, {"ttl_s": "600s"},
                                 {"log_time": 1e300}, {"log_time": float("inf")}, {"log_time": "yesterday"}])
def test_a_signed_event_with_bad_fields_is_422_and_stores_nothing(env, bad):
    client, clock = env
    response = post(client, clock, "a1", crossing("a1", 1) | bad)
    assert response.status_code == 422, response.text
    assert call(client, clock, "a1", "GET", "/edge/v1/events").json() == []


def test_a_signed_batch_with_a_bad_shed_total_is_422(env):
    client, clock = env
    payload = {"sensor": "a1", "events": [crossing("a1", 1)], "shed_total": "lots"}
    assert call(client, clock, "a1", "POST", "/edge/v1/events", payload).status_code == 422
