"""FalconAlertSource against a real local server: OAuth2, query ids with ``after`` paging, then entities."""

from __future__ import annotations

import pytest

from connectors.crowdstrike.client import ENTITIES, QUERY, FalconAlertSource
from connectors.errors import AuthError
from connectors.http import AuthConfig
from connectors.secrets import Secret
from poll_kit import (HTML_200, VendorServer, case_count, client, iso, ok, open_pipeline, recent, saved_cursor, waits)
from soc_agent.runners.poll import poll_once

__all__ = ["open_pipeline", "waits"]  # fixtures
TOKEN = "/oauth2/token"


def falcon_alert(n: int, minutes_ago: float) -> dict:
    when = iso(recent(minutes_ago))
    return {"composite_id": f"cid1:ind:aid{n}:{n:04d}", "cid": "cid1", "aggregate_id": f"aggind:{n}",
            "pattern_id": 10197, "display_name": "MaliciousDocument", "severity": 70, "severity_name": "High",
            "timestamp": when, "created_timestamp": when, "updated_timestamp": when,
            "device": {"hostname": f"ws-{n:03d}", "local_ip": f"10.1.0.{n}"}, "user_name": f"user{n:03d}"}


class Falcon:
    """Token endpoint, the FQL query (updated_timestamp >=, sort, limit, after) and the entities call."""

    def __init__(self) -> None:
        self.alerts: list[dict] = []
        self.tokens = 0

    def route(self, req) -> tuple:
        if req.path == TOKEN:
            self.tokens += 1
            assert req.form()["grant_type"] == "client_credentials"
            return ok({"access_token": f"falcon-{self.tokens}", "expires_in": 1799, "token_type": "bearer"})
        if not req.headers.get("Authorization", "").startswith("Bearer falcon-"):
            return 401, {}, b'{"errors": [{"code": 401, "message": "access denied, invalid bearer token"}]}'
        if req.path == QUERY:
            since = req.arg("filter").split(">=")[1].strip("'")
            from connectors._common import parse_time
            ids = [a["composite_id"] for a in sorted(self.alerts, key=lambda a: a["updated_timestamp"])
                   if parse_time(a["updated_timestamp"]) >= parse_time(since)]
            start, limit = int(req.arg("after", "0")), int(req.arg("limit"))
            page = ids[start:start + limit]
            after = str(start + limit) if start + limit < len(ids) else ""
            return ok({"meta": {"pagination": {"total": len(ids), "limit": limit, "after": after}},
                       "resources": page, "errors": []})
        if req.path == ENTITIES:
            wanted = set(req.json()["composite_ids"])
            return ok({"resources": [a for a in self.alerts if a["composite_id"] in wanted], "errors": []})
        return 404, {}, b"{}"


@pytest.fixture
def falcon():
    vendor = Falcon()
    server = VendorServer(vendor.route).start()
    server.vendor = vendor
    yield server
    server.stop()


def source(falcon, **options) -> FalconAlertSource:
    auth = AuthConfig(type="oauth2", token_url=f"{falcon.url}{TOKEN}", client_id="falcon-client",
                      secret=Secret("falcon-secret", "FALCON_SECRET"))
    return FalconAlertSource(client("falcon", falcon.url, auth), name="falcon", **options)


def test_pages_ids_with_after_then_fetches_entities_with_one_token(falcon, open_pipeline):
    falcon.vendor.alerts = [falcon_alert(n, 30 - n) for n in range(1, 6)]
    pipeline = open_pipeline()
    [outcome] = poll_once(pipeline, [source(falcon, page_size=2)])
    assert (outcome.fetched, outcome.processed, outcome.error) == (5, 5, None)
    assert [r.arg("after") for r in falcon.hits(QUERY)] == [None, "2", "4"]
    assert len(falcon.hits(ENTITIES)) == 3 and falcon.vendor.tokens == 1
    assert falcon.hits(QUERY)[0].arg("sort") == "updated_timestamp.asc"
    assert case_count(pipeline) == 5


def test_a_restart_resumes_from_the_saved_watermark(falcon, open_pipeline):
    falcon.vendor.alerts = [falcon_alert(n, 30 - n) for n in range(1, 4)]
    first = open_pipeline()
    poll_once(first, [source(falcon)])
    first.close()
    falcon.vendor.alerts.append(falcon_alert(4, 1))
    second = open_pipeline()
    [outcome] = poll_once(second, [source(falcon)])
    assert outcome.fetched == 1 and case_count(second) == 4
    assert saved_cursor(second, "falcon").polls == 2


def test_rate_limit_header_is_honoured_then_succeeds(falcon, open_pipeline, waits):
    falcon.vendor.alerts = [falcon_alert(1, 5)]
    falcon.fail(QUERY, (429, {"Retry-After": "3", "X-RateLimit-Remaining": "0"}, b'{"errors": [{"code": 429}]}'))
    [outcome] = poll_once(open_pipeline(), [source(falcon)])
    assert outcome.processed == 1 and waits == [3.0]


def test_rejected_client_credentials_are_not_retried_and_name_the_scope(falcon, open_pipeline):
    falcon.fail(TOKEN, (401, {}, b'{"errors": [{"code": 401, "message": "access denied"}]}'))
    with pytest.raises(AuthError, match="falcon: the token endpoint rejected the client credentials"):
        source(falcon).poll(None)
    assert len(falcon.requests) == 1
    falcon.fail(QUERY, (403, {}, b'{"errors": [{"code": 403, "message": "access denied, authorization failed"}]}'))
    with pytest.raises(AuthError, match=r"falcon: GET /alerts/queries/alerts/v2 refused access \(HTTP 403\); "
                                        "it needs the Alerts: Read permission"):
        source(falcon).poll(None)
    assert len(falcon.hits(QUERY)) == 1


@pytest.mark.parametrize("fault, says", [(HTML_200, "HTML page"),
                                         ((200, {}, b'{"resources": [{"composite_id": "cid'), "truncated")])
def test_html_page_or_truncated_entities_fail_the_poll_and_keep_the_cursor(falcon, open_pipeline, fault, says):
    falcon.vendor.alerts = [falcon_alert(1, 5)]
    pipeline = open_pipeline()
    falcon.fail(ENTITIES, fault)
    [failed] = poll_once(pipeline, [source(falcon)])
    assert says in failed.error and saved_cursor(pipeline, "falcon").cursor is None
    assert poll_once(pipeline, [source(falcon)])[0].processed == 1


def test_the_same_alert_returned_after_an_update_opens_no_second_case(falcon, open_pipeline):
    alert = falcon_alert(1, 10)
    falcon.vendor.alerts = [alert, falcon_alert(2, 9)]
    pipeline = open_pipeline()
    poll_once(pipeline, [source(falcon)])
    alert["updated_timestamp"], alert["status"] = iso(recent(1)), "in_progress"  # an analyst picked it up
    [again] = poll_once(pipeline, [source(falcon)])
    assert again.fetched == 1 and again.duplicates == 1
    assert case_count(pipeline) == 2
