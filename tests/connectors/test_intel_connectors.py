"""MISP and STIX/TAXII enrichers against vendor-shaped JSON."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from connectors.errors import BadResponse, ConfigError
from connectors.http import AuthConfig, HttpConfig, make_client
from connectors.misp import MispEnricher
from connectors.secrets import Secret
from connectors.stix import StixEnricher, parse_pattern
from soc_agent.types import Entity, EntityKind

FIXTURES = Path(__file__).parent / "fixtures"


def _client(handler, connector="misp", **auth):
    auth = auth or {"type": "header", "secret": Secret("misp-key")}
    return make_client(HttpConfig(connector=connector, base_url="https://intel.example", auth=AuthConfig(**auth)),
                       httpx.MockTransport(handler))


def test_misp_hit_becomes_intel_evidence_from_the_strongest_attribute():
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "misp-key"  # MISP takes the raw key
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=json.loads((FIXTURES / "misp_restsearch.json").read_text()))
    evidence = MispEnricher(_client(handler)).lookup(Entity(kind=EntityKind.IP, value="203.0.113.66"), frozenset())
    assert len(evidence) == 1
    item = evidence[0]
    assert item.kind == "intel" and item.id == "intel:ip:203.0.113.66"
    assert item.data["confidence"] == 0.9 and item.data["event_id"] == "57" and item.weight == pytest.approx(2.7)
    assert item.source == "misp/event-57"
    assert bodies[0]["value"] == "203.0.113.66" and "ip-dst" in bodies[0]["type"] and bodies[0]["page"] == 1


def test_misp_no_match_is_no_evidence():
    handler = lambda r: httpx.Response(200, json={"response": {"Attribute": []}})  # noqa: E731
    assert MispEnricher(_client(handler)).lookup(Entity(kind=EntityKind.DOMAIN, value="ok.example"), frozenset()) == []


def test_misp_pages_until_a_short_page():
    pages = []
    attr = json.loads((FIXTURES / "misp_restsearch.json").read_text())["response"]["Attribute"][1]

    def handler(request: httpx.Request) -> httpx.Response:
        page = json.loads(request.content)["page"]
        pages.append(page)
        return httpx.Response(200, json={"response": {"Attribute": [attr] * (2 if page == 1 else 1)}})
    evidence = MispEnricher(_client(handler), page_size=2).lookup(Entity(kind=EntityKind.IP, value="203.0.113.66"),
                                                                  frozenset())
    assert pages == [1, 2] and evidence[0].data["matches"] == 3
    assert evidence[0].data["confidence"] == 0.25  # threat level 3, not to_ids


def test_misp_login_page_is_a_bad_response():
    handler = lambda r: httpx.Response(200, text="<!DOCTYPE html><title>Login</title>",  # noqa: E731
                                       headers={"Content-Type": "text/html"})
    with pytest.raises(BadResponse):
        MispEnricher(_client(handler)).lookup(Entity(kind=EntityKind.IP, value="203.0.113.66"), frozenset())


@pytest.mark.parametrize("pattern, expected", [
    ("[ipv4-addr:value = '1.2.3.4']", [(EntityKind.IP, "1.2.3.4")]),
    ("[url:value = 'http://x.example/a?b=\\'c']", [(EntityKind.URL, "http://x.example/a?b='c")]),
    ("[email-addr:value = 'A@B.example'] OR [domain-name:value = 'B.example']",
     [(EntityKind.EMAIL, "a@b.example"), (EntityKind.DOMAIN, "b.example")]),
    ("[file:hashes.MD5 = 'D41D8CD98F00B204E9800998ECF8427E']",
     [(EntityKind.FILE_HASH, "d41d8cd98f00b204e9800998ecf8427e")]),
    ("[ipv4-addr:value = '1.2.3.4'] AND [domain-name:value = 'x']", []),
    ("[network-traffic:dst_port = '443']", []),
    ("[ipv4-addr:value = '1.2.3.4'] WITHIN 5 SECONDS", []),
])
def test_stix_patterns_index_only_atomic_comparisons(pattern, expected):
    assert parse_pattern(pattern) == expected


def test_stix_bundle_file_matches_live_indicators_only():
    enricher = StixEnricher(bundle_path=str(FIXTURES / "stix_bundle.json"))
    hit = enricher.lookup(Entity(kind=EntityKind.DOMAIN, value="BAD.example.net"), frozenset())
    assert hit[0].kind == "intel" and hit[0].data["confidence"] == 0.85
    assert hit[0].data["stix_id"] == "indicator--a932fcc6-e032-476c-826f-cb970a5a1ade"
    assert enricher.lookup(Entity(kind=EntityKind.IP, value="198.51.100.7"), frozenset())
    sha = "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f"
    assert enricher.lookup(Entity(kind=EntityKind.FILE_HASH, value=sha), frozenset())[0].data["confidence"] == 0.5
    for gone in ("192.0.2.99", "198.51.100.8", "198.51.100.9"):  # expired, not atomic, revoked
        assert enricher.lookup(Entity(kind=EntityKind.IP, value=gone), frozenset()) == []


def test_taxii_collection_is_paged_with_more_and_next():
    bundle = json.loads((FIXTURES / "stix_bundle.json").read_text())
    indicators = [o for o in bundle["objects"] if o["type"] == "indicator"]
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(dict(request.url.params))
        assert request.url.path == "/api1/collections/91a7b528-80eb-42ed-a74d-c6fbd5a26116/objects/"
        assert request.headers["Accept"] == "application/taxii+json;version=2.1"
        headers = {"Content-Type": "application/taxii+json;version=2.1"}
        if request.url.params.get("next") == "2":
            return httpx.Response(200, json={"more": False, "objects": indicators[2:]}, headers=headers)
        return httpx.Response(200, json={"more": True, "next": "2", "objects": indicators[:2]}, headers=headers)
    client = _client(handler, "taxii", type="basic", username="reader", secret=Secret("pw"))
    enricher = StixEnricher(client, collection_url="/api1/collections/91a7b528-80eb-42ed-a74d-c6fbd5a26116")
    assert enricher.lookup(Entity(kind=EntityKind.IP, value="198.51.100.7"), frozenset())
    assert enricher.lookup(Entity(kind=EntityKind.IP, value="198.51.100.9"), frozenset()) == []
    assert len(seen) == 2 and seen[0]["match[type]"] == "indicator"  # indexed once, cached after


def test_stix_needs_exactly_one_source():
    with pytest.raises(ConfigError):
        StixEnricher()


def test_stix_file_that_is_not_a_bundle_is_a_bad_response(tmp_path):
    path = tmp_path / "b.json"
    path.write_text('{"type": "indicator"')
    with pytest.raises(BadResponse):
        StixEnricher(bundle_path=str(path)).lookup(Entity(kind=EntityKind.IP, value="1.2.3.4"), frozenset())
