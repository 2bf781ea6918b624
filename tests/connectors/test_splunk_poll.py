"""SplunkNotableSource against a real local server speaking the REST search export (NDJSON)."""

from __future__ import annotations

import json
import re

import pytest

from connectors.errors import AuthError, BadResponse
from connectors.splunk.client import EXPORT, SplunkNotableSource
from poll_kit import (HTML_200, RATE_LIMITED, UNAUTHORIZED, VendorServer, case_count, client, iso, open_pipeline,
                      recent, saved_cursor, waits)
from soc_agent.runners.poll import poll_once

__all__ = ["open_pipeline", "waits"]  # fixtures


def notable(n: int, minutes_ago: float) -> dict:
    """A notable as the export returns it: flat CIM fields, strings throughout."""
    when = recent(minutes_ago)
    return {"_time": iso(when), "event_id": f"EV-{n:03d}", "index": "notable", "urgency": "high",
            "search_name": "Endpoint - Recurring Malware Infection - Rule", "dest": f"ws-{n:03d}",
            "src": f"198.51.100.{n}", "user": f"user{n:03d}", "signature": "Trojan.Gen"}


class Splunk:
    """The export endpoint: earliest_time filter, the search's sort + head, NDJSON rows."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def route(self, req) -> tuple:
        if req.method != "POST" or req.path != EXPORT:
            return 404, {}, b'{"messages": [{"type": "ERROR", "text": "Not Found"}]}'
        form = req.form()
        assert form["output_mode"] == "json"
        earliest = float(form["earliest_time"])
        head = int(re.search(r"\| head (\d+)", form["search"]).group(1))
        from connectors._common import parse_time
        rows = sorted((r for r in self.rows if parse_time(r["_time"]).timestamp() >= earliest),
                      key=lambda r: r["_time"])[:head]
        lines = [json.dumps({"preview": False, "offset": i, "lastrow": i == len(rows) - 1 or None, "result": r})
                 for i, r in enumerate(rows)]
        return 200, {}, ("\n".join(lines) + "\n").encode()


@pytest.fixture
def splunk():
    vendor = Splunk()
    server = VendorServer(vendor.route).start()
    server.vendor = vendor
    yield server
    server.stop()


def source(splunk, **options) -> SplunkNotableSource:
    return SplunkNotableSource(client("splunk-es", splunk.url), name="splunk-es", **options)


def test_reads_in_bounded_chunks_until_caught_up(splunk, open_pipeline):
    splunk.vendor.rows = [notable(n, 30 - n) for n in range(1, 6)]
    pipeline = open_pipeline()
    chunks = [poll_once(pipeline, [source(splunk, max_results=2)])[0].fetched for _ in range(4)]
    # Rows at the watermark's instant come back (earliest_time is inclusive) and are skipped by id.
    assert chunks == [2, 1, 1, 1]
    assert case_count(pipeline) == 5
    assert "| sort 0 _time | head 2" in splunk.requests[0].form()["search"]


def test_a_restart_resumes_from_the_saved_earliest_time(splunk, open_pipeline):
    splunk.vendor.rows = [notable(n, 30 - n) for n in range(1, 4)]
    first = open_pipeline()
    poll_once(first, [source(splunk)])
    first.close()
    splunk.vendor.rows.append(notable(4, 1))
    second = open_pipeline()
    [outcome] = poll_once(second, [source(splunk)])
    assert outcome.fetched == 1 and outcome.processed == 1
    assert json.loads(saved_cursor(second, "splunk-es").cursor)["seen"] == ["EV-004"]


def test_429_with_retry_after_is_waited_out_then_succeeds(splunk, open_pipeline, waits):
    splunk.vendor.rows = [notable(1, 5)]
    splunk.fail(EXPORT, RATE_LIMITED)
    [outcome] = poll_once(open_pipeline(), [source(splunk)])
    assert outcome.error is None and outcome.processed == 1 and waits == [7.0]


def test_401_is_not_retried_and_names_connector_and_permission(splunk):
    splunk.fail(EXPORT, UNAUTHORIZED)
    with pytest.raises(AuthError, match="splunk-es: POST /services/search/v2/jobs/export rejected the credentials "
                                        r"\(HTTP 401\); it needs the search capability on the notable index"):
        source(splunk).poll(None)
    assert len(splunk.requests) == 1


@pytest.mark.parametrize("fault, says", [
    (HTML_200, "HTML or XML page"),
    ((200, {}, b'{"preview":false,"result":{"_time":"2024-01-01T00:00:00Z","event_id":"E'), "truncated"),
    ((200, {}, b'{"messages":[{"type":"FATAL","text":"Error in search"}]}\n'), "the search failed"),
])
def test_html_truncated_or_failed_search_fails_the_poll_and_keeps_the_cursor(splunk, open_pipeline, fault, says):
    splunk.vendor.rows = [notable(1, 5)]
    pipeline = open_pipeline()
    splunk.fail(EXPORT, fault)
    [failed] = poll_once(pipeline, [source(splunk)])
    assert says in failed.error
    with pytest.raises(BadResponse):
        splunk.fail(EXPORT, fault)
        source(splunk).poll(None)
    assert poll_once(pipeline, [source(splunk)])[0].processed == 1


def test_a_notable_seen_again_after_an_update_opens_no_second_case(splunk, open_pipeline):
    splunk.vendor.rows = [notable(1, 10), notable(2, 9)]
    pipeline = open_pipeline()
    poll_once(pipeline, [source(splunk)])
    # An analyst edits the notable's status in ES: the export re-emits it with a later _time.
    splunk.vendor.rows.append({**notable(1, 10), "_time": iso(recent(1)), "status": "2"})
    [again] = poll_once(pipeline, [source(splunk)])
    assert again.fetched == 1 and again.duplicates == 1
    assert case_count(pipeline) == 2
