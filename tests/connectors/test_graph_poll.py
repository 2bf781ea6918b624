"""GraphAlertSource against a real local server speaking Graph ``security/alerts_v2`` with nextLink paging."""

from __future__ import annotations

import re

import pytest

from connectors.errors import AuthError
from connectors.sentinel.client import GraphAlertSource
from poll_kit import (HTML_200, RATE_LIMITED, UNAUTHORIZED, VendorServer, case_count, client, iso, ok, open_pipeline,
                      recent, waits)
from soc_agent.runners.poll import poll_once

__all__ = ["open_pipeline", "waits"]  # fixtures
ALERTS = "/security/alerts_v2"


def graph_alert(n: int, minutes_ago: float) -> dict:
    when = iso(recent(minutes_ago))
    return {"@odata.type": "#microsoft.graph.security.alert", "id": f"da{n:03d}", "providerAlertId": f"p{n}",
            "detectorId": "7a3f-hidden-file", "serviceSource": "microsoftDefenderForEndpoint",
            "title": "Hidden file attribute set", "severity": "medium", "createdDateTime": when,
            "lastUpdateDateTime": when,
            "evidence": [{"@odata.type": "#microsoft.graph.security.deviceEvidence", "deviceDnsName": f"ws-{n:03d}",
                          "roles": []}]}


class Graph:
    """``$filter=lastUpdateDateTime ge X``, ``$top``, and an ``@odata.nextLink`` carrying a skip token."""

    def __init__(self) -> None:
        self.alerts: list[dict] = []
        self.url = ""

    def route(self, req) -> tuple:
        if req.path != ALERTS:
            return 404, {}, b'{"error": {"code": "ResourceNotFound"}}'
        since = re.match(r"lastUpdateDateTime ge (\S+)", req.arg("$filter")).group(1)
        top, skip = int(req.arg("$top")), int(req.arg("$skiptoken", "0"))
        from connectors._common import parse_time
        match = [a for a in self.alerts if parse_time(a["lastUpdateDateTime"]) >= parse_time(since)]
        page = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#security/alerts_v2",
                "value": match[skip:skip + top]}
        if skip + top < len(match):
            page["@odata.nextLink"] = (f"{self.url}{ALERTS}?$filter={req.arg('$filter')}&$top={top}"
                                       f"&$skiptoken={skip + top}")
        return ok(page)


@pytest.fixture
def graph():
    vendor = Graph()
    server = VendorServer(vendor.route).start()
    vendor.url, server.vendor = server.url, vendor
    yield server
    server.stop()


def source(graph, **options) -> GraphAlertSource:
    return GraphAlertSource(client("graph-security", graph.url), name="graph-security", **options)


def test_follows_next_links_and_opens_a_case_per_alert(graph, open_pipeline):
    graph.vendor.alerts = [graph_alert(n, 30 - n) for n in range(1, 6)]
    pipeline = open_pipeline()
    [outcome] = poll_once(pipeline, [source(graph, page_size=2)])
    assert (outcome.fetched, outcome.processed, outcome.error) == (5, 5, None)
    assert len(graph.requests) == 3 and graph.requests[2].arg("$skiptoken") == "4"
    assert case_count(pipeline) == 5


def test_a_restart_resumes_from_the_saved_watermark(graph, open_pipeline):
    graph.vendor.alerts = [graph_alert(n, 30 - n) for n in range(1, 4)]
    first = open_pipeline()
    poll_once(first, [source(graph)])
    first.close()
    graph.vendor.alerts.append(graph_alert(4, 1))
    [outcome] = poll_once(open_pipeline(), [source(graph)])
    assert outcome.fetched == 1
    newest_seen = graph.vendor.alerts[2]["lastUpdateDateTime"]
    assert graph.requests[-1].arg("$filter") == f"lastUpdateDateTime ge {newest_seen[:-1]}.000000Z"


def test_429_with_retry_after_is_waited_out_then_succeeds(graph, open_pipeline, waits):
    graph.vendor.alerts = [graph_alert(1, 5)]
    graph.fail(ALERTS, RATE_LIMITED)
    [outcome] = poll_once(open_pipeline(), [source(graph)])
    assert outcome.processed == 1 and waits == [7.0]


def test_403_is_not_retried_and_names_the_graph_permission(graph):
    graph.fail(ALERTS, (403, {}, b'{"error": {"code": "Forbidden"}}'))
    with pytest.raises(AuthError, match="graph-security: GET /security/alerts_v2 refused access \\(HTTP 403\\); "
                                        "it needs the SecurityAlert.Read.All permission"):
        source(graph).poll(None)
    assert len(graph.requests) == 1
    graph.fail(ALERTS, UNAUTHORIZED)
    with pytest.raises(AuthError, match="HTTP 401"):
        source(graph).poll(None)


@pytest.mark.parametrize("fault, says", [(HTML_200, "HTML page"),
                                         ((200, {}, b'{"value": [{"id": "da0'), "truncated or malformed JSON")])
def test_html_page_or_truncated_json_fails_the_poll(graph, open_pipeline, fault, says):
    graph.vendor.alerts = [graph_alert(1, 5)]
    pipeline = open_pipeline()
    graph.fail(ALERTS, fault)
    [failed] = poll_once(pipeline, [source(graph)])
    assert says in failed.error and failed.fetched == 0
    assert poll_once(pipeline, [source(graph)])[0].processed == 1


def test_an_updated_alert_returned_again_opens_no_second_case(graph, open_pipeline):
    graph.vendor.alerts = [graph_alert(1, 10), graph_alert(2, 9)]
    pipeline = open_pipeline()
    poll_once(pipeline, [source(graph)])
    graph.vendor.alerts[0] = {**graph.vendor.alerts[0], "status": "inProgress", "lastUpdateDateTime": iso(recent(1))}
    [again] = poll_once(pipeline, [source(graph)])
    assert again.fetched == 1 and again.duplicates == 1
    assert case_count(pipeline) == 2
