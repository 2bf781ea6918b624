"""ElasticAlertSource against a real local server speaking the ``_search`` API with ``search_after``."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest
import tenacity

from connectors import http
from connectors.elastic.client import ElasticAlertSource
from connectors.errors import AuthError, BadResponse
from poll_kit import (HTML_200, RATE_LIMITED, TRUNCATED, UNAUTHORIZED, VendorServer, audit_kinds, case_count, client,
                      dead_letters, iso, ok, recent, saved_cursor)
from soc_agent.runners.poll import poll_once

SEARCH = "/.alerts-security.alerts-*/_search"


def es_alert(n: int, minutes_ago: float) -> dict:
    """A detection alert document as the alerts index stores it (dotted kibana.* keys, nested ECS)."""
    return {"@timestamp": iso(recent(minutes_ago)), "kibana.alert.uuid": f"uuid-{n:03d}",
            "kibana.alert.rule.rule_id": "malware-detected", "kibana.alert.rule.name": "Malware Detected",
            "kibana.alert.severity": "high", "kibana.alert.risk_score": 73,
            "host": {"name": f"ws-{n:03d}"}, "source": {"ip": f"198.51.100.{n}"}, "user": {"name": f"user{n:03d}"}}


class Elastic:
    """The subset of ``_search`` the source uses: range on @timestamp, sort, size, search_after."""

    def __init__(self) -> None:
        self.docs: list[dict] = []

    def route(self, req) -> tuple:
        if req.method != "POST" or unquote(req.path) != SEARCH:
            return 404, {}, b'{"error": {"type": "index_not_found_exception"}}'
        body = req.json()
        def key(doc):
            return (doc["@timestamp"], doc["kibana.alert.uuid"])
        docs = sorted(self.docs, key=key)
        after = body.get("search_after")
        if after:
            docs = [d for d in docs if key(d) > tuple(after)]
        for clause in body["query"]["bool"]["filter"]:
            gte = clause.get("range", {}).get("@timestamp", {}).get("gte")
            if gte:
                docs = [d for d in docs if d["@timestamp"] >= gte]
        hits = [{"_index": ".internal.alerts-security.alerts-default-000001", "_id": d["kibana.alert.uuid"],
                 "_source": d, "sort": list(key(d))} for d in docs[:body["size"]]]
        return ok({"took": 2, "timed_out": False, "hits": {"total": {"value": len(docs)}, "hits": hits}})


@pytest.fixture(autouse=True)
def waits(monkeypatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(http, "sleep", recorded.append)
    monkeypatch.setattr(http, "backoff", tenacity.wait_none())
    return recorded


@pytest.fixture
def es():
    vendor = Elastic()
    server = VendorServer(vendor.route).start()
    server.vendor = vendor
    yield server
    server.stop()


@pytest.fixture
def open_pipeline(settings):
    """Open a pipeline on the test's workdir; every one is closed after the test (a restart is close + open)."""
    from soc_agent.pipeline import Pipeline

    opened = []

    def make():
        opened.append(Pipeline(settings))
        return opened[-1]

    yield make
    for p in opened:
        try:
            p.close()
        except Exception:  # noqa: BLE001  (already closed by the test's restart)
            pass


def source(es, **options) -> ElasticAlertSource:
    return ElasticAlertSource(client("elastic-prod", es.url), name="elastic-prod", **options)


def test_pages_through_every_alert_with_search_after_and_opens_a_case_each(es, open_pipeline):
    es.vendor.docs = [es_alert(n, 30 - n) for n in range(1, 8)]
    pipeline = open_pipeline()
    [outcome] = poll_once(pipeline, [source(es, page_size=3)])
    assert (outcome.fetched, outcome.processed, outcome.dead_lettered, outcome.error) == (7, 7, 0, None)
    searches = [r for r in es.requests if unquote(r.path) == SEARCH]
    assert len(searches) == 3  # 3 + 3 + 1: the short page ends the poll
    assert "search_after" not in searches[0].json() and searches[1].json()["search_after"][1] == "uuid-003"
    assert case_count(pipeline) == 7
    assert json.loads(saved_cursor(pipeline, "elastic-prod").cursor)[1] == "uuid-007"


def test_a_restart_resumes_after_the_saved_cursor(es, open_pipeline):
    es.vendor.docs = [es_alert(n, 30 - n) for n in range(1, 4)]
    first = open_pipeline()
    poll_once(first, [source(es)])
    first.close()
    es.vendor.docs.append(es_alert(4, 1))
    es.requests.clear()
    second = open_pipeline()
    [outcome] = poll_once(second, [source(es)])
    assert outcome.fetched == 1 and outcome.processed == 1
    assert es.requests[0].json()["search_after"][1] == "uuid-003"
    assert case_count(second) == 4


def test_429_with_retry_after_is_waited_out_then_succeeds(es, open_pipeline, waits):
    es.vendor.docs = [es_alert(1, 5)]
    es.fail(SEARCH, RATE_LIMITED)
    [outcome] = poll_once(open_pipeline(), [source(es)])
    assert outcome.error is None and outcome.processed == 1
    assert waits == [7.0]


def test_401_is_not_retried_and_names_connector_and_permission(es, open_pipeline):
    es.fail(SEARCH, UNAUTHORIZED)
    with pytest.raises(AuthError) as caught:
        source(es).poll(None)
    assert len(es.requests) == 1
    assert "elastic-prod" in str(caught.value) and "read privilege on .alerts-security.alerts-*" in str(caught.value)
    es.fail(SEARCH, UNAUTHORIZED)
    pipeline = open_pipeline()
    [outcome] = poll_once(pipeline, [source(es)])
    assert "HTTP 401" in outcome.error
    row = saved_cursor(pipeline, "elastic-prod")
    assert row.cursor is None and row.failures == 1
    assert "source_poll_failed" in audit_kinds(pipeline)


@pytest.mark.parametrize("fault, says", [(HTML_200, "HTML page"), (TRUNCATED, "truncated or malformed JSON")])
def test_html_page_or_truncated_json_fails_the_poll_and_keeps_the_cursor(es, open_pipeline, fault, says):
    es.vendor.docs = [es_alert(1, 5)]
    pipeline = open_pipeline()
    es.fail(SEARCH, fault)
    with pytest.raises(BadResponse, match=says):
        source(es).poll(None)
    es.fail(SEARCH, fault)
    [failed] = poll_once(pipeline, [source(es)])
    assert says in failed.error and failed.fetched == 0
    [retried] = poll_once(pipeline, [source(es)])  # the next poll re-reads from the same place
    assert retried.processed == 1


def test_the_same_alerts_returned_twice_do_not_open_second_cases(es, open_pipeline):
    es.vendor.docs = [es_alert(n, 10 - n) for n in range(1, 4)]
    pipeline = open_pipeline()
    poll_once(pipeline, [source(es)])
    # A reindex (or a replica that lags) serves the same alerts again: a fresh cursor sees them all.
    [again] = poll_once(pipeline, [_forgetful(es)])
    assert again.fetched == 3 and again.duplicates == 3
    assert case_count(pipeline) == 3
    summary = pipeline.summary
    assert summary.alerts_in == summary.processed + summary.dead_lettered == 6


def _forgetful(es) -> ElasticAlertSource:
    """The same source, but ignoring its cursor: what a vendor re-sending old alerts looks like."""
    inner = source(es)

    class Forgetful:
        name, format = inner.name, inner.format

        def poll(self, cursor):
            return inner.poll(None)

    return Forgetful()


def test_unmappable_hits_are_dead_lettered_and_counted(es, open_pipeline):
    broken = es_alert(2, 4)
    del broken["kibana.alert.rule.rule_id"], broken["kibana.alert.rule.name"]
    es.vendor.docs = [es_alert(1, 5), broken]
    pipeline = open_pipeline()
    [outcome] = poll_once(pipeline, [source(es)])
    assert (outcome.fetched, outcome.processed, outcome.dead_lettered) == (2, 1, 1)
    assert any(reason.startswith("elastic:") for reason in dead_letters(pipeline))


def test_connectors_file_with_poll_true_builds_the_source_and_the_cli_polls_it(es, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from soc_agent.cli import app

    es.vendor.docs = [es_alert(1, 5)]
    config = tmp_path / "connectors.yml"
    config.write_text(f"connectors:\n  elastic-prod:\n    type: elastic\n    base_url: {es.url}\n"
                      f"    auth: {{type: bearer, secret: ES_TOKEN}}\n    poll: true\n"
                      f"    options: {{page_size: 50, lookback_minutes: 120}}\n")
    monkeypatch.setenv("ES_TOKEN", "tok-es")
    result = CliRunner().invoke(app, ["poll", "--once", "--workdir", str(tmp_path / "w"), "--connectors", str(config)])
    assert result.exit_code == 0, result.output
    line = json.loads([l for l in result.stdout.splitlines() if l.startswith("{")][0])
    assert (line["source"], line["fetched"], line["processed"]) == ("elastic-prod", 1, 1)
    assert es.requests[0].headers["Authorization"] == "Bearer tok-es"
