"""Who may change the shared watchlist and allowlist, how broad an entry may be, and that removals reach sensors.

Hardening item 7: one analyst token used to switch off blocking on every
sensor of every tenant (``0.0.0.0/0`` allowlisted), and the entry could not be
retracted nor would a sensor have dropped it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from soc_agent.edge.firewall import NullFirewall
from soc_agent.edge.guardlite import EdgeGuard, compile_policy
from soc_agent.edge.intel import IntelPuller
from soc_agent.edge.sensor import EdgeSensor
from soc_agent.edge.signing import derive_key
from soc_agent.runners.auth import TokenStore, hash_token
from soc_agent.runners.edge_api import (
    EdgeConfig,
    EdgeService,
    edge_router,
)
from soc_agent.runners.errors import Rejected
from soc_agent.store.engine import make_engine
from tests.soc_agent.edge.test_edge_api import MASTER, SENSORS, call, env  # noqa: F401  (env is a fixture)

POLICY = Path(__file__).resolve().parents[3] / "playbooks" / "policy.yml"
ANALYST, VIEWER, PLATFORM = "tok-an", "tok-view", "tok-plat"
LEAD_ACME, LEAD_GLOBEX, LEAD_NO_TENANT = "tok-lead-acme", "tok-lead-globex", "tok-lead-none"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def entries(client, clock, sensor: str) -> list[tuple[str, str]]:
    page = call(client, clock, sensor, "GET", "/edge/v1/watchlist?since=0").json()
    return [(e["value"], e["action"]) for e in page["entries"]]


@pytest.mark.parametrize("verb", ["allowlist", "publish", "retract"])
def test_an_analyst_token_cannot_write_shared_allowlist_or_watchlist_entries(env, verb):  # noqa: F811
    client, clock = env
    r = client.post(f"/api/edge/indicators/0.0.0.0/0/{verb}", headers=bearer(ANALYST))
    assert r.status_code == 403 and "lead" in r.json()["detail"]
    assert client.post(f"/api/edge/indicators/203.0.113.9/{verb}", headers=bearer(ANALYST)).status_code == 403
    assert client.post(f"/api/edge/indicators/203.0.113.9/{verb}", headers=bearer(VIEWER)).status_code == 403
    # a lead whose token names no tenant writes nothing either (least privilege)
    r = client.post(f"/api/edge/indicators/203.0.113.9/{verb}", headers=bearer(LEAD_NO_TENANT))
    assert r.status_code == 403 and "no tenant" in r.json()["detail"]
    for sensor in SENSORS:
        assert entries(client, clock, sensor) == []


def test_a_lead_of_one_tenant_cannot_write_entries_another_tenants_sensors_see(env):  # noqa: F811
    client, clock = env
    r = client.post("/api/edge/indicators/45.33.32.0/24/allowlist", headers=bearer(LEAD_ACME))
    assert r.status_code == 200 and r.json()["tenant"] == "acme"
    assert client.post("/api/edge/indicators/45.33.40.9/publish", headers=bearer(LEAD_ACME)).status_code == 200
    for sensor in ("a1", "a2"):  # acme's sensors
        assert entries(client, clock, sensor) == [("45.33.32.0/24", "allow"), ("45.33.40.9", "block")]
    for sensor in ("b1", "c1"):  # nobody else's
        assert entries(client, clock, sensor) == []
    # naming another tenant in the body is refused; another tenant's lead cannot touch acme's entry
    r = client.post("/api/edge/indicators/45.33.33.0/24/allowlist", headers=bearer(LEAD_ACME),
                    json={"tenant": "globex"})
    assert r.status_code == 403
    assert client.post("/api/edge/indicators/45.33.32.0/24/retract", headers=bearer(LEAD_GLOBEX)).status_code == 404
    assert entries(client, clock, "a1")[0] == ("45.33.32.0/24", "allow")
    assert entries(client, clock, "b1") == []
    # acme's viewer-side listing shows acme's entries; globex's lead sees none of them
    assert {e["tenant"] for e in client.get("/api/edge/indicators", headers=bearer(LEAD_GLOBEX)).json()} <= {None}
    # only a platform token writes for every tenant (or for one it names)
    assert client.post("/api/edge/indicators/45.33.50.0/24/allowlist", headers=bearer(PLATFORM),
                       json={"tenant": "globex"}).json()["tenant"] == "globex"
    assert entries(client, clock, "b1") == [("45.33.50.0/24", "allow")]
    assert entries(client, clock, "c1") == []


@pytest.mark.parametrize("value", ["0.0.0.0/0", "::/0", "10.0.0.0/8", "45.0.0.0/8", "2001:db8::/16"])
@pytest.mark.parametrize("verb", ["allowlist", "publish"])
@pytest.mark.parametrize("token", [LEAD_ACME, PLATFORM])
def test_prefixes_broader_than_the_limit_are_refused_for_allows_and_blocks(env, value, verb, token):  # noqa: F811
    client, clock = env
    r = client.post(f"/api/edge/indicators/{value}/{verb}", headers=bearer(token))
    assert r.status_code == 422, r.text
    assert "broader than /" in r.json()["detail"] and "max_prefix_v" in r.json()["detail"]
    for sensor in SENSORS:
        assert entries(client, clock, sensor) == []


def test_the_prefix_limit_is_a_setting_and_the_limit_itself_is_accepted(tmp_path):
    service = EdgeService(make_engine(f"sqlite:///{tmp_path}/e.db"), EdgeConfig(master_key=MASTER))
    assert service.check_value("45.33.0.0/16", "allowlisted") == "45.33.0.0/16"
    assert service.check_value("2001:db8::/32", "published") == "2001:db8::/32"
    assert service.check_value("45.33.32.7/32", "published") == "45.33.32.7"  # one spelling per address
    assert service.check_value("0.0.0.0/0", "retracted") == "0.0.0.0/0"  # an old entry can still be withdrawn
    strict = EdgeService(service.engine, EdgeConfig(master_key=MASTER, max_prefix_v4=24, max_prefix_v6=48))
    for value in ("45.33.0.0/16", "2001:db8::/32"):
        with pytest.raises(Rejected) as err:
            strict.check_value(value, "allowlisted")
        assert err.value.status == 422
    cfg = tmp_path / "edge.yml"
    cfg.write_text(f"master_key: {MASTER.hex()}\nmax_prefix_v4: 20\nmax_prefix_v6: 40\n")
    loaded = EdgeConfig.from_file(cfg)
    assert (loaded.max_prefix_v4, loaded.max_prefix_v6) == (20, 40)


def test_a_cidr_entry_is_retracted_in_every_accepted_form(env):  # noqa: F811
    client, clock = env
    for form in ("45.33.32.0/24", "45.33.32.0%2F24", "45.33.32.9/24"):
        assert client.post("/api/edge/indicators/45.33.32.0/24/allowlist", headers=bearer(LEAD_ACME)).status_code == 200
        r = client.post(f"/api/edge/indicators/{form}/retract", headers=bearer(LEAD_ACME))
        assert r.status_code == 200, (form, r.text)
        assert r.json()["value"] == "45.33.32.0/24" and r.json()["status"] == "retracted"
        assert entries(client, clock, "a1") == [("45.33.32.0/24", "remove")]
    # a shared (platform) CIDR allow, as stored before this fix, is retractable too
    assert client.post("/api/edge/indicators/2001:db8:5::/48/allowlist", headers=bearer(PLATFORM)).status_code == 200
    r = client.post("/api/edge/indicators/2001:db8:5::/48/retract", headers=bearer(PLATFORM))
    assert r.status_code == 200 and r.json()["status"] == "retracted"


# ---- a real server, a real sensor -----------------------------------------------------------------


@pytest.fixture
def live(tmp_path):
    """The edge endpoints under uvicorn on loopback; yields the base URL."""
    import socket

    import uvicorn

    tokens = tmp_path / "tokens.yml"
    tokens.write_text(f"tokens:\n  - {{name: ana.lead, role: lead, tenant: acme, sha256: {hash_token(LEAD_ACME)}}}\n")
    app = FastAPI()
    app.include_router(edge_router(make_engine(f"sqlite:///{tmp_path}/live.db"), TokenStore.from_file(tokens),
                                   EdgeConfig(master_key=MASTER, sensors=dict(SENSORS))))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


class Reports:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def submit(self, event: dict) -> None:
        self.events.append(event)


def _sensor(tmp_path, url, sensor_id, firewall=None):
    reports = Reports()
    sensor = EdgeSensor(EdgeGuard(compile_policy(POLICY)), firewall or NullFirewall(), reports, sensor_id=sensor_id)
    puller = IntelPuller(url, sensor_id, derive_key(MASTER, sensor_id), tmp_path / f"{sensor_id}.cursor",
                         sensor.apply_intel)
    return sensor, puller, reports


def test_a_24_allow_is_accepted_retracted_and_a_sensor_syncing_afterwards_drops_it(tmp_path, live):
    sensor, puller, reports = _sensor(tmp_path, live, "a1")
    other, other_puller, _ = _sensor(tmp_path, live, "b1")
    lead = bearer(LEAD_ACME)
    assert httpx.post(f"{live}/api/edge/indicators/45.33.32.0/24/allowlist", headers=lead).status_code == 200
    assert puller.pull_once() == 1 and other_puller.pull_once() == 0
    assert sensor.guard.allowlisted("45.33.32.7") and not other.guard.allowlisted("45.33.32.7")
    assert sensor.crossed("45.33.32.7", time.time())["outcome"] == "needs_approval"

    r = httpx.post(f"{live}/api/edge/indicators/45.33.32.0/24/retract", headers=lead, json={"reason": "done"})
    assert r.status_code == 200, r.text
    assert puller.pull_once() == 1
    assert sensor.guard.allowlisted("45.33.32.7") is None
    assert reports.events[-1] | {"decided_at": 0} == {
        "kind": "intel", "ip": "45.33.32.0/24", "action": "remove", "outcome": "unallowed", "executed": True,
        "version": reports.events[-1]["version"], "decided_at": 0}
    event = sensor.crossed("45.33.32.8", time.time())
    assert event["outcome"] == "allow" and event["executed"]
    assert puller.stats()["failed"] == 0


def test_a_local_allowlist_entry_survives_the_retraction_of_the_same_shared_entry(tmp_path):
    guard = EdgeGuard(compile_policy(POLICY))
    guard.allow("45.33.32.0/24", "our partner")
    sensor = EdgeSensor(guard, NullFirewall())
    assert sensor.apply_intel({"value": "45.33.32.0/24", "action": "allow", "version": 1}) == "allowed"
    assert sensor.apply_intel({"value": "45.33.32.0/24", "action": "remove", "version": 2}).startswith("unallowed")
    assert guard.allowlisted("45.33.32.7") == "our partner"


class BrokenFirewall(NullFirewall):
    def block(self, ip: str, ttl: int, extend_only: bool = False) -> None:
        raise OSError("nft: permission denied")


def test_a_sensor_that_fails_to_apply_a_change_says_so(tmp_path, live):
    sensor, puller, reports = _sensor(tmp_path, live, "a1", BrokenFirewall())
    assert httpx.post(f"{live}/api/edge/indicators/45.33.40.9/publish",
                      headers=bearer(LEAD_ACME)).status_code == 200
    # a value no guard can take, as an older or compromised server might send
    assert sensor.apply_intel({"value": "not-a-network/99", "action": "allow", "version": 99}).startswith("error")
    assert puller.pull_once() == 0  # nothing applied successfully
    stats = puller.stats()
    assert stats["failed"] == 1 and "permission denied" in stats["last_failure"]
    assert [(e["outcome"][:6], e["executed"]) for e in reports.events] == [("error:", False), ("error:", False)]
    assert sensor.summary()["intel_errors"] == 2 and sensor.summary()["intel_blocked"] == 0
