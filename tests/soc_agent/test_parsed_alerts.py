"""The cache of parsed alerts never answers with another alert than the row holds."""

from __future__ import annotations

import json

from soc_agent.parsed_alerts import ParsedAlerts
from tests.conftest import make_alert


def _payload(alert_id: str) -> str:
    data = json.loads(make_alert("port_scan", [("ip", "10.0.5.20", "src")], alert_id=alert_id))
    data["source"], data["raw"] = "test", {"vendor": "field"}
    return json.dumps(data)


def test_a_reused_row_id_with_another_payload_is_parsed_again():
    cache = ParsedAlerts()
    one, other = _payload("a-1"), _payload("a-2")
    first = cache.get(7, one)
    assert first.id == "a-1" and first.raw == {}, "the raw vendor payload is not carried"
    assert cache.get(7, one) is first
    assert cache.get(7, other).id == "a-2"


def test_the_cache_is_bounded():
    cache = ParsedAlerts(max_entries=3)
    for n in range(10):
        assert cache.get(n, _payload(f"a-{n}")).id == f"a-{n}"
    assert len(cache._by_row) <= 3
