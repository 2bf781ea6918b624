"""The connectors file: validation, building, least privilege, and the local default."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone

import httpx
import pytest

from connectors.errors import ConfigError, ConnectorError
from connectors.loader import (GrantedResponder, build_enrichers, build_responders, configured_connectors,
                               load_connectors_config)
from connectors.secrets import SecretStore
from connectors.base import ResponderError
from soc_agent.types import Entity, EntityKind, ProposedAction, Tier

TOKEN = "00aBcD-okta-api-token-value"
NOW = datetime(2026, 11, 21, tzinfo=timezone.utc)

CONFIG = """\
connectors:
  okta:
    base_url: https://acme.okta.com
    auth: {type: header, prefix: SSWS, secret: OKTA_API_TOKEN}
    enrich: true
    grant: [idp.revoke_sessions]
    options: {privileged_groups: [Domain Admins]}
  intel:
    type: stix
    enrich: true
    options: {bundle_path: /nonexistent/bundle.json}
  tickets:
    type: jira
    base_url: https://acme.atlassian.net
    auth: {type: basic, username: soc@acme.example, secret: JIRA_TOKEN}
    grant: [ticket.create, ticket.close]
    options: {project: SOC}
  hooks:
    type: webhook
    base_url: https://hooks.acme.example
    grant: [notify.send]
    options: {signing_secret: WEBHOOK_KEY, path: /soc}
  falcon:
    type: crowdstrike
    enabled: false
    base_url: https://api.crowdstrike.com
    auth: {type: oauth2, token_url: https://api.crowdstrike.com/oauth2/token, client_id: abc, secret: CS_SECRET}
    grant: [edr.isolate]
"""

SECRETS = SecretStore({"OKTA_API_TOKEN": TOKEN, "JIRA_TOKEN": "jira-token", "WEBHOOK_KEY": "hook-key"})


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "connectors.yml"
    path.write_text(CONFIG)
    return path


def _write(tmp_path, text: str):
    path = tmp_path / "c.yml"
    path.write_text(textwrap.dedent(text))
    return path


def test_enabled_connectors_build_enrichers_and_granted_responders(config_path):
    config = load_connectors_config(config_path)
    enrichers = build_enrichers(config, SECRETS)
    responders = build_responders(config, SECRETS)
    assert [e.name for e in enrichers] == ["okta", "intel"]
    assert {r.name: r.capabilities for r in responders} == {
        "okta": frozenset({"idp.revoke_sessions"}),
        "tickets": frozenset({"ticket.create", "ticket.close"}),
        "hooks": frozenset({"notify.send"}),
    }  # falcon is disabled; jira's case.annotate was not granted


def test_an_ungranted_capability_is_not_exposed_and_is_refused(config_path):
    okta = next(r for r in build_responders(load_connectors_config(config_path), SECRETS) if r.name == "okta")
    assert isinstance(okta, GrantedResponder)
    assert "idp.disable_user" in okta.inner.capabilities and "idp.disable_user" not in okta.capabilities
    action = ProposedAction(name="disable_account", tier=Tier.CONTAIN_HARD, capability="idp.disable_user",
                            target=Entity(kind=EntityKind.USER, value="a@acme.example"), rollback="enable_account")
    with pytest.raises(ResponderError, match="not granted"):
        okta.execute(action, "c1", 1, NOW)
    with pytest.raises(ResponderError, match="not granted"):
        okta.rollback(action, "c1", NOW)
    assert okta.verify(action) is False


def test_the_executor_never_routes_an_ungranted_capability_to_the_remote_responder(config_path):
    from soc_agent.responders.executor import ActionExecutor
    responders = build_responders(load_connectors_config(config_path), SECRETS)
    executor = ActionExecutor(store=None, audit=None, responders=responders)
    assert "idp.disable_user" not in executor.capabilities
    assert "idp.revoke_sessions" in executor.capabilities


def test_granting_what_the_vendor_cannot_do_is_a_config_error(tmp_path):
    path = _write(tmp_path, """\
        connectors:
          okta: {base_url: https://a.okta.com, auth: {type: header, secret: T}, grant: [edr.isolate]}
        """)
    with pytest.raises(ConfigError, match="edr.isolate"):
        build_responders(load_connectors_config(path), SecretStore({"T": "x"}))


@pytest.mark.parametrize("text, match", [
    ("connectors:\n  nope: {base_url: https://x}\n", "unknown type 'nope'"),
    ("connectors:\n  okta: {base_url: https://x, colour: red}\n", "connectors.okta.colour"),
    (f"connectors:\n  okta: {{base_url: https://x, auth: {{type: bearer, secret: '{TOKEN}'}}}}\n",
     "connectors.okta.auth.secret"),
    ("connectors:\n  okta: [\n", r"c.yml:\d+: invalid YAML"),
])
def test_bad_files_fail_with_the_file_and_the_entry(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match) as err:
        load_connectors_config(_write(tmp_path, text))
    assert TOKEN not in str(err.value)


def test_bad_options_name_the_connector(tmp_path):
    path = _write(tmp_path, "connectors:\n  jira: {base_url: https://x, grant: [ticket.create], options: {}}\n")
    with pytest.raises(ConfigError, match="jira"):
        build_responders(load_connectors_config(path), SecretStore({}))


def test_missing_secret_is_a_config_error(config_path):
    with pytest.raises(ConfigError, match="OKTA_API_TOKEN"):
        build_enrichers(load_connectors_config(config_path), SecretStore({}))


def test_tokens_from_config_never_show_in_reprs_or_errors(config_path):
    config = load_connectors_config(config_path)
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(403, json={"errorSummary": request.headers["Authorization"]})
    enrichers = build_enrichers(config, SECRETS, transport=httpx.MockTransport(handler))
    okta = enrichers[0]
    with pytest.raises(ConnectorError) as err:
        okta.lookup(Entity(kind=EntityKind.USER, value="a@acme.example"), frozenset())
    assert seen == [f"SSWS {TOKEN}"]
    for text in (str(err.value), repr(err.value), repr(okta.client), repr(okta.client.config), repr(config),
                 repr(build_responders(config, SECRETS))):
        assert TOKEN not in text


def test_without_the_env_var_nothing_is_configured(monkeypatch):
    monkeypatch.delenv("SOC_AGENT_CONNECTORS", raising=False)
    assert configured_connectors() == ([], [])


def test_build_services_keeps_local_defaults_and_adds_configured_connectors(settings, config_path, monkeypatch):
    from soc_agent.composition import build_services
    monkeypatch.delenv("SOC_AGENT_CONNECTORS", raising=False)
    plain = build_services(settings)
    local_names = [e.name for e in plain.enrichers]
    assert "okta" not in local_names and "local" in {r.name for r in plain.executor._by_capability.values()}
    plain.store.close()

    for name, value in {"SOC_AGENT_CONNECTORS": str(config_path), "OKTA_API_TOKEN": TOKEN,
                        "JIRA_TOKEN": "j", "WEBHOOK_KEY": "w"}.items():
        monkeypatch.setenv(name, value)
    svc = build_services(settings)
    assert [e.name for e in svc.enrichers] == [*local_names, "okta", "intel"]
    by_cap = svc.executor._by_capability
    assert by_cap["idp.revoke_sessions"].name == "okta" and by_cap["ticket.create"].name == "tickets"
    # Not granted to any connector: with a connectors file the store-only responder does not pretend to
    # hold it, so the guard denies the action instead of simulating it.
    assert "idp.disable_user" not in by_cap
    assert by_cap["case.close"].name == "local"
    svc.store.close()
