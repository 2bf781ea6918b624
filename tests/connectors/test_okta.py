"""Okta enricher and responder against a MockTransport replaying Okta API shapes."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from connectors.errors import AuthError
from connectors.http import AuthConfig, HttpConfig, make_client
from connectors.okta import OktaEnricher, OktaResponder
from connectors.secrets import Secret
from soc_agent.enrich.local import Identity
from soc_agent.types import Entity, EntityKind, ProposedAction, Tier

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 21, tzinfo=timezone.utc)
USER_ID = "00u1ab2cd3EfGhIjK4x7"


def _load(name: str):
    return json.loads((FIXTURES / name).read_text())


class FakeOkta:
    """Enough of the Okta Users API to enrich, suspend, unsuspend and clear sessions."""

    def __init__(self) -> None:
        self.user = _load("okta_user.json")
        self.calls: list[tuple[str, str]] = []
        self.forbid_writes = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        self.calls.append((method, path))
        assert request.headers["Authorization"] == "SSWS okta-token"
        if method == "GET" and path in ("/api/v1/users/dana.reyes@example.com", f"/api/v1/users/{USER_ID}"):
            return httpx.Response(200, json=self.user)
        if method == "GET" and path.startswith("/api/v1/users/"):
            if path.endswith("/groups") and "after" not in request.url.params:
                link = f'<https://acme.okta.com/api/v1/users/{USER_ID}/groups?after=00g2&limit=200>; rel="next"'
                return httpx.Response(200, json=_load("okta_groups_page1.json"), headers={"Link": link})
            if path.endswith("/groups"):
                return httpx.Response(200, json=_load("okta_groups_page2.json"))
            if path.endswith("/roles"):
                return httpx.Response(200, json=_load("okta_roles.json"))
            return httpx.Response(404, json={"errorCode": "E0000007", "errorSummary": "Not found: Resource not found"})
        if self.forbid_writes:
            return httpx.Response(403, json={"errorCode": "E0000006", "errorSummary": "You do not have permission"})
        if path.endswith("/lifecycle/suspend"):
            self.user["status"] = "SUSPENDED"
            return httpx.Response(200, json={})
        if path.endswith("/lifecycle/unsuspend"):
            self.user["status"] = "ACTIVE"
            return httpx.Response(200, json={})
        if method == "DELETE" and path.endswith("/sessions"):
            assert request.url.params["oauthTokens"] == "true"
            return httpx.Response(204)
        return httpx.Response(400, json={})


@pytest.fixture
def okta() -> FakeOkta:
    return FakeOkta()


def _client(fake: FakeOkta):
    config = HttpConfig(connector="okta", base_url="https://acme.okta.com",
                        auth=AuthConfig(type="header", prefix="SSWS", secret=Secret("okta-token")))
    return make_client(config, httpx.MockTransport(fake))


def _action(name: str, capability: str, user: str = "Dana.Reyes@example.com") -> ProposedAction:
    return ProposedAction(name=name, tier=Tier.CONTAIN_HARD, capability=capability,
                          target=Entity(kind=EntityKind.USER, value=user))


def test_enricher_reports_role_privilege_and_groups_across_pages(okta):
    evidence = OktaEnricher(_client(okta)).lookup(Entity(kind=EntityKind.USER, value="dana.reyes@example.com"),
                                                  frozenset())
    assert len(evidence) == 1
    item = evidence[0]
    assert item.kind == "identity" and item.id == "identity:user:dana.reyes@example.com"
    assert item.data["role"] == "executive" and item.data["privileged"] is True
    assert item.data["groups"] == ["Everyone", "Finance", "Domain Admins"]
    assert item.data["admin_roles"] == ["READ_ONLY_ADMIN"]
    # The guard reads the local directory's shape; remote evidence must validate into it.
    assert Identity.model_validate(item.data).role == "executive"


def test_enricher_without_admin_roles_uses_privileged_groups_and_group_roles(okta):
    okta.user["profile"]["userType"] = None

    def no_roles(request):
        if request.url.path.endswith("/roles"):
            return httpx.Response(200, json=[])
        return okta(request)
    enricher = OktaEnricher(_client(no_roles), group_roles={"Finance": "employee"})
    data = enricher.lookup(Entity(kind=EntityKind.USER, value="dana.reyes@example.com"), frozenset())[0].data
    assert data["role"] == "employee" and data["privileged"] is False
    enricher = OktaEnricher(_client(no_roles), privileged_groups=["domain admins"])
    assert enricher.lookup(Entity(kind=EntityKind.USER, value="dana.reyes@example.com"),
                           frozenset())[0].data["privileged"] is True


def test_unknown_user_is_no_evidence(okta):
    assert OktaEnricher(_client(okta)).lookup(Entity(kind=EntityKind.USER, value="ghost@example.com"),
                                              frozenset()) == []


def test_suspend_verify_and_rollback_unsuspends(okta):
    responder = OktaResponder(_client(okta))
    action = _action("disable_account", "idp.disable_user")
    result = responder.execute(action, "c1", 1, NOW)
    assert result["status"] == "SUSPENDED" and okta.user["status"] == "SUSPENDED"
    assert responder.verify(action)
    again = responder.execute(action, "c1", 1, NOW)
    assert again["already_active"] is True
    assert sum(1 for m, p in okta.calls if p.endswith("/suspend")) == 1
    assert responder.rollback(action, "c1", NOW)["lifted"] is True
    assert okta.user["status"] == "ACTIVE" and not responder.verify(action)
    assert responder.rollback(action, "c1", NOW)["already_lifted"] is True


def test_clear_sessions_calls_the_sessions_endpoint(okta):
    responder = OktaResponder(_client(okta))
    result = responder.execute(_action("revoke_sessions", "idp.revoke_sessions"), "c1", 2, NOW)
    assert result["sessions_cleared"] is True
    assert ("DELETE", f"/api/v1/users/{USER_ID}/sessions") in okta.calls


def test_missing_write_permission_is_an_auth_error_naming_it(okta):
    okta.forbid_writes = True
    with pytest.raises(AuthError) as err:
        OktaResponder(_client(okta)).execute(_action("disable_account", "idp.disable_user"), "c1", 1, NOW)
    assert "okta:" in str(err.value) and "okta.users.manage" in str(err.value)


def test_shared_okta_samples_map_to_users_this_enricher_can_look_up():
    shared = Path(__file__).resolve().parents[3] / "shared" / "payloads" / "identity"
    if not shared.is_dir():
        pytest.skip(f"shared payloads not present at {shared}")
    for path in sorted(shared.glob("okta_*.json")):
        event = json.loads(path.read_text())
        login = (event.get("actor") or {}).get("alternateId")
        if login and "@" in login:
            # Every actor login in Okta's System Log is a valid Users API id segment.
            assert Entity(kind=EntityKind.USER, value=login).value == login.lower()
