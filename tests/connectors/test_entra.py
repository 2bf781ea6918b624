"""Entra ID (Graph) enricher and responder against a MockTransport replaying Graph shapes."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from connectors.entra import EntraEnricher, EntraResponder
from connectors.errors import AuthError
from connectors.http import AuthConfig, HttpConfig, make_client
from connectors.secrets import Secret
from soc_agent.enrich.local import Identity
from soc_agent.types import Entity, EntityKind, ProposedAction, Tier

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 21, tzinfo=timezone.utc)
UPN_PATH = "/v1.0/users/adelev@contoso.com"


def _load(name: str):
    return json.loads((FIXTURES / name).read_text())


class FakeGraph:
    """Token endpoint plus the handful of Graph user endpoints the connector uses."""

    def __init__(self) -> None:
        self.user = _load("entra_user.json")
        self.calls: list[tuple[str, str]] = []
        self.tokens = 0
        self.deny_write = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/tenant-id/oauth2/v2.0/token":
            self.tokens += 1
            return httpx.Response(200, json={"token_type": "Bearer", "expires_in": 3599, "access_token": "eyJ0eXAi"})
        assert request.headers["Authorization"] == "Bearer eyJ0eXAi"
        self.calls.append((request.method, path))
        if path.endswith("/microsoft.graph.directoryRole"):
            page = "2" if "skiptoken" in str(request.url) else "1"
            return httpx.Response(200, json=_load(f"entra_directory_roles_page{page}.json"))
        if request.method == "GET" and path == UPN_PATH:
            return httpx.Response(200, json=self.user)
        if request.method == "GET":
            return httpx.Response(404, json={"error": {"code": "Request_ResourceNotFound", "message": "..."}})
        if self.deny_write:
            return httpx.Response(403, json={"error": {"code": "Authorization_RequestDenied",
                                                       "message": "Insufficient privileges"}})
        if request.method == "PATCH" and path == UPN_PATH:
            self.user["accountEnabled"] = json.loads(request.content)["accountEnabled"]
            return httpx.Response(204)
        if request.method == "POST" and path == f"{UPN_PATH}/revokeSignInSessions":
            return httpx.Response(200, json={"@odata.context": "...$metadata#Edm.Boolean", "value": True})
        return httpx.Response(400, json={})


@pytest.fixture
def graph() -> FakeGraph:
    return FakeGraph()


def _client(fake):
    auth = AuthConfig(type="oauth2", token_url="https://login.microsoftonline.com/tenant-id/oauth2/v2.0/token",
                      client_id="app-id", secret=Secret("graph-secret"), scope="https://graph.microsoft.com/.default")
    return make_client(HttpConfig(connector="entra", base_url="https://graph.microsoft.com", auth=auth),
                       httpx.MockTransport(fake))


def _action(name: str, capability: str) -> ProposedAction:
    return ProposedAction(name=name, tier=Tier.CONTAIN_HARD, capability=capability,
                          target=Entity(kind=EntityKind.USER, value="AdeleV@contoso.com"))


def test_enricher_maps_employee_type_and_directory_roles_across_pages(graph):
    evidence = EntraEnricher(_client(graph)).lookup(Entity(kind=EntityKind.USER, value="AdeleV@contoso.com"),
                                                    frozenset())
    data = evidence[0].data
    assert evidence[0].kind == "identity"
    assert data["role"] == "contractor" and data["privileged"] is True
    assert data["directory_roles"] == ["Reports Reader", "Global Administrator"]
    assert Identity.model_validate(data).privileged is True
    assert graph.tokens == 1


def test_privileged_roles_option_narrows_what_counts(graph):
    enricher = EntraEnricher(_client(graph), privileged_roles=["Security Administrator"])
    data = enricher.lookup(Entity(kind=EntityKind.USER, value="adelev@contoso.com"), frozenset())[0].data
    assert data["privileged"] is False


def test_unknown_user_is_no_evidence(graph):
    assert EntraEnricher(_client(graph)).lookup(Entity(kind=EntityKind.USER, value="nobody@contoso.com"),
                                                frozenset()) == []


def test_disable_verify_and_rollback_reenables(graph):
    responder = EntraResponder(_client(graph))
    action = _action("disable_account", "idp.disable_user")
    assert responder.execute(action, "c1", 1, NOW)["account_enabled"] is False
    assert graph.user["accountEnabled"] is False and responder.verify(action)
    assert responder.rollback(action, "c1", NOW)["lifted"] is True
    assert graph.user["accountEnabled"] is True and not responder.verify(action)


def test_revoke_sessions_posts_revoke_sign_in_sessions(graph):
    result = EntraResponder(_client(graph)).execute(_action("revoke_sessions", "idp.revoke_sessions"), "c1", 2, NOW)
    assert result["sessions_revoked"] is True
    assert ("POST", f"{UPN_PATH}/revokeSignInSessions") in graph.calls


def test_revoked_sessions_have_no_rollback(graph):
    from connectors.base import ResponderError
    with pytest.raises(ResponderError):
        EntraResponder(_client(graph)).rollback(_action("revoke_sessions", "idp.revoke_sessions"), "c1", NOW)


def test_insufficient_privileges_names_the_graph_permission(graph):
    graph.deny_write = True
    with pytest.raises(AuthError) as err:
        EntraResponder(_client(graph)).execute(_action("disable_account", "idp.disable_user"), "c1", 1, NOW)
    assert str(err.value).startswith("entra:") and "User.EnableDisableAccount.All" in str(err.value)
