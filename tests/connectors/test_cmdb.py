"""CMDB enricher: the simple JSON API and the ServiceNow CMDB table shape."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from connectors.cmdb import CmdbEnricher
from connectors.errors import BadResponse, ConfigError
from connectors.http import AuthConfig, HttpConfig, make_client
from connectors.secrets import Secret
from soc_agent.enrich.local import Asset
from soc_agent.types import Entity, EntityKind

FIXTURES = Path(__file__).parent / "fixtures"


def _client(handler):
    return make_client(HttpConfig(connector="cmdb", base_url="https://cmdb.example",
                                  auth=AuthConfig(type="bearer", secret=Secret("t"))), httpx.MockTransport(handler))


def test_simple_api_asset_becomes_guard_shaped_asset_evidence():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        if request.url.params.get("host") == "dc01.corp.example" or request.url.params.get("ip") == "10.0.0.10":
            return httpx.Response(200, json=json.loads((FIXTURES / "cmdb_simple_assets.json").read_text()))
        return httpx.Response(200, json={"assets": []})
    enricher = CmdbEnricher(_client(handler))
    item = enricher.lookup(Entity(kind=EntityKind.HOST, value="DC01.corp.example"), frozenset())[0]
    assert item.kind == "asset" and item.id == "asset:host:dc01.corp.example"
    assert Asset.model_validate(item.data).criticality_tier == 0
    assert item.data["host"] == "dc01.corp.example" and item.data["owner"] == "infra-team"
    assert enricher.lookup(Entity(kind=EntityKind.IP, value="10.0.0.10"), frozenset())[0].data["ip"] == "10.0.0.10"
    assert enricher.lookup(Entity(kind=EntityKind.HOST, value="unknown"), frozenset()) == []
    assert seen[1] == {"ip": "10.0.0.10"}


@pytest.mark.parametrize("body", [{"assets": {"host": "x"}}, {"assets": [{"host": "x", "criticality_tier": "0"}]},
                                  {"assets": [{"host": "x", "criticality_tier": 9}]}])
def test_simple_api_wrong_shape_is_a_bad_response(body):
    with pytest.raises(BadResponse):
        CmdbEnricher(_client(lambda r: httpx.Response(200, json=body))).lookup(
            Entity(kind=EntityKind.HOST, value="x"), frozenset())


def test_servicenow_cmdb_business_criticality_maps_to_tier():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.path, dict(request.url.params)))
        return httpx.Response(200, json=json.loads((FIXTURES / "servicenow_cmdb_ci_computer.json").read_text()))
    enricher = CmdbEnricher(_client(handler), api="servicenow")
    item = enricher.lookup(Entity(kind=EntityKind.HOST, value="web-07"), frozenset())[0]
    assert item.data["criticality_tier"] == 1 and item.data["environment"] == "Production"
    assert item.data["owner"] == "6816f79cc0a8016401c5a33be04be441"
    assert seen[0][0] == "/api/now/table/cmdb_ci_computer" and seen[0][1]["sysparm_query"] == "name=web-07"


def test_servicenow_query_separator_in_a_value_is_not_sent():
    calls = []
    enricher = CmdbEnricher(_client(lambda r: calls.append(r) or httpx.Response(200, json={"result": []})),
                            api="servicenow")
    assert enricher.lookup(Entity(kind=EntityKind.HOST, value="x^ORname=dc01"), frozenset()) == []
    assert calls == []


def test_unknown_api_is_a_config_error():
    with pytest.raises(ConfigError):
        CmdbEnricher(_client(lambda r: httpx.Response(200)), api="graphql")
