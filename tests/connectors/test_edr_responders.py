"""CrowdStrike and Defender host containment: execute, verify, rollback, refusals."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from connectors.crowdstrike.responder import CrowdStrikeResponder
from connectors.defender import DefenderResponder
from connectors.errors import NotFound
from connectors.http import AuthConfig, HttpConfig, make_client
from connectors.secrets import Secret
from connectors.base import ResponderError
from soc_agent.types import Entity, EntityKind, ProposedAction, Tier

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 21, tzinfo=timezone.utc)
DEVICE = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
MACHINE = "1e5bc9d7e413ddd7902c2932e418702b84d0cc07"


def _load(name: str):
    return json.loads((FIXTURES / name).read_text())


def _isolate(host: str) -> ProposedAction:
    return ProposedAction(name="isolate_host", tier=Tier.CONTAIN_HARD, capability="edr.isolate",
                          target=Entity(kind=EntityKind.HOST, value=host), rollback="release_host")


def _oauth_client(connector: str, base: str, token_path: str, handler):
    auth = AuthConfig(type="oauth2", token_url=f"{base}{token_path}", client_id="id", secret=Secret("s"))
    return make_client(HttpConfig(connector=connector, base_url=base, auth=auth), httpx.MockTransport(handler))


class FakeFalcon:
    def __init__(self) -> None:
        self.status = "normal"
        self.actions: list[str] = []
        self.hosts = {"ws-042": [DEVICE]}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/oauth2/token":
            assert b"client_secret=s" in request.content
            return httpx.Response(201, json={"access_token": "cs-token", "token_type": "bearer", "expires_in": 1799})
        assert request.headers["Authorization"] == "Bearer cs-token"
        if path == "/devices/queries/devices/v1":
            name = request.url.params["filter"].split("'")[1]
            body = _load("crowdstrike_devices_query.json")
            body["resources"] = self.hosts.get(name, [])
            return httpx.Response(200, json=body)
        if path == "/devices/entities/devices/v2":
            body = _load("crowdstrike_device_entity.json")
            body["resources"][0]["status"] = self.status
            return httpx.Response(200, json=body)
        if path == "/devices/entities/devices-actions/v2":
            action = request.url.params["action_name"]
            assert json.loads(request.content) == {"ids": [DEVICE]}
            self.actions.append(action)
            self.status = "containment_pending" if action == "contain" else "lift_containment_pending"
            return httpx.Response(202, json=_load("crowdstrike_devices_action.json"))
        return httpx.Response(404, json={"errors": [{"code": 404, "message": "not found"}]})


def test_crowdstrike_contain_verify_and_lift_containment():
    falcon = FakeFalcon()
    responder = CrowdStrikeResponder(_oauth_client("crowdstrike", "https://api.crowdstrike.com", "/oauth2/token",
                                                   falcon))
    action = _isolate("WS-042")
    assert responder.execute(action, "c1", 1, NOW)["device_id"] == DEVICE
    assert falcon.actions == ["contain"] and responder.verify(action)
    assert responder.execute(action, "c1", 1, NOW)["already_active"] is True
    assert responder.rollback(action, "c1", NOW)["lifted"] is True
    assert falcon.actions == ["contain", "lift_containment"] and not responder.verify(action)
    assert responder.rollback(action, "c1", NOW)["already_lifted"] is True


def test_crowdstrike_refuses_ambiguous_or_unknown_or_quoted_hosts():
    falcon = FakeFalcon()
    falcon.hosts["dup"] = [DEVICE, "ffff"]
    responder = CrowdStrikeResponder(_oauth_client("crowdstrike", "https://api.crowdstrike.com", "/oauth2/token",
                                                   falcon))
    with pytest.raises(ResponderError, match="refusing to guess"):
        responder.execute(_isolate("dup"), "c1", 1, NOW)
    with pytest.raises(NotFound):
        responder.execute(_isolate("nope"), "c1", 1, NOW)
    with pytest.raises(ResponderError, match="quote"):
        responder.execute(_isolate("x' or hostname:'*"), "c1", 1, NOW)
    assert falcon.actions == []


class FakeDefender:
    def __init__(self) -> None:
        self.history: list[dict] = []
        self.posts: list[tuple[str, dict]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/tenant/oauth2/v2.0/token":
            return httpx.Response(200, json={"access_token": "mde-token", "expires_in": 3599})
        if path == "/api/machines":
            assert request.url.params["$filter"] == "computerDnsName eq 'ws-042.corp.example'"
            return httpx.Response(200, json=_load("defender_machines.json"))
        if path == "/api/machineactions":
            return httpx.Response(200, json={"value": list(reversed(self.history))})
        if path in (f"/api/machines/{MACHINE}/isolate", f"/api/machines/{MACHINE}/unisolate"):
            body = json.loads(request.content)
            self.posts.append((path.rsplit("/", 1)[1], body))
            entry = _load("defender_machine_action.json")
            entry["type"] = "Isolate" if path.endswith("/isolate") else "Unisolate"
            entry["creationDateTimeUtc"] = f"2026-11-21T10:0{len(self.history)}:00Z"
            entry["status"] = "Succeeded"
            self.history.append(entry)
            return httpx.Response(201, json=entry)
        return httpx.Response(404, json={"error": {"code": "ResourceNotFound"}})


def test_defender_isolate_verify_and_unisolate():
    mde = FakeDefender()
    responder = DefenderResponder(_oauth_client("defender", "https://api.securitycenter.microsoft.com",
                                                "/tenant/oauth2/v2.0/token", mde), isolation_type="Selective")
    action = _isolate("ws-042.corp.example")
    result = responder.execute(action, "c1", 1, NOW)
    assert result["machine_id"] == MACHINE
    assert mde.posts[0] == ("isolate", {"Comment": "soc-agent case c1", "IsolationType": "Selective"})
    assert responder.verify(action)
    assert responder.execute(action, "c1", 1, NOW)["already_active"] is True
    assert responder.rollback(action, "c1", NOW)["lifted"] is True
    assert mde.posts[-1][0] == "unisolate" and not responder.verify(action)


def test_defender_unknown_machine_is_not_found():
    mde = FakeDefender()

    def handler(request):
        if request.url.path == "/api/machines":
            return httpx.Response(200, json={"value": []})
        return mde(request)
    responder = DefenderResponder(_oauth_client("defender", "https://api.securitycenter.microsoft.com",
                                                "/tenant/oauth2/v2.0/token", handler))
    with pytest.raises(NotFound):
        responder.execute(_isolate("ghost"), "c1", 1, NOW)
    assert not responder.verify(_isolate("ghost"))
