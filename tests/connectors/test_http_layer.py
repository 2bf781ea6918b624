"""The HTTP layer against a real local server and httpx.MockTransport: retries, errors, auth, paging."""

from __future__ import annotations

import json
import threading
import time
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import tenacity

from connectors import http
from connectors.errors import AuthError, BadResponse, ConnectorError, NotFound, RateLimited, Unavailable
from connectors.http import AuthConfig, HttpConfig, make_client, retry_after_seconds
from connectors.secrets import Secret

TOKEN = "tok-SUPER-SECRET-123"


@pytest.fixture(autouse=True)
def waits(monkeypatch) -> list[float]:
    """Retries sleep into this list instead of the clock."""
    recorded: list[float] = []
    monkeypatch.setattr(http, "sleep", recorded.append)
    monkeypatch.setattr(http, "backoff", tenacity.wait_none())
    return recorded


class _Server:
    """A scripted HTTP server: per path, a queue of (status, headers, body, delay_s)."""

    def __init__(self) -> None:
        self.script: dict[str, list[tuple[int, dict, bytes, float]]] = {}
        self.requests: list[tuple[str, str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.requests.append((self.command, self.path, dict(self.headers)))
                queue = server.script.get(self.path.split("?")[0]) or [(404, {}, b'{"error":"none"}', 0.0)]
                status, headers, body, delay = queue.pop(0) if len(queue) > 1 else queue[0]
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                headers = {"Content-Type": "application/json", **headers}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout test)
                    pass

            do_GET = do_POST = do_DELETE = do_PATCH = _serve

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def on(self, path: str, *responses: tuple) -> None:
        self.script[path] = [(r[0], r[1] if len(r) > 1 else {}, r[2] if len(r) > 2 else b"{}",
                              r[3] if len(r) > 3 else 0.0) for r in responses]

    def hits(self, path: str) -> int:
        return sum(1 for _, p, _ in self.requests if p.split("?")[0] == path)


@pytest.fixture
def server():
    srv = _Server()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _client(url: str, **overrides) -> http.ConnectorClient:
    auth = AuthConfig(type="bearer", secret=Secret(TOKEN, "T"))
    return make_client(HttpConfig(connector="acme", base_url=url, auth=auth, **overrides))


# ---- against the real local server --------------------------------------------


def test_link_header_pagination_follows_next_until_the_last_page(server):
    link = f'<{server.url}/api/v1/users2?after=2>; rel="next"'
    server.on("/api/v1/users", (200, {"Link": link}, b'[{"id":1},{"id":2}]'))
    server.on("/api/v1/users2", (200, {"Link": f'<{server.url}/api/v1/users2?after=2>; rel="self"'}, b'[{"id":3}]'))
    with _client(server.url) as client:
        items = list(http.paginate_link(client, "/api/v1/users", params={"limit": 2}))
    assert [i["id"] for i in items] == [1, 2, 3]
    assert server.requests[0][2]["Authorization"] == f"Bearer {TOKEN}"


def test_503_is_retried_then_succeeds(server, waits):
    server.on("/x", (503, {}, b"{}"), (200, {}, b'{"ok": true}'))
    with _client(server.url) as client:
        assert client.call("GET", "/x") == {"ok": True}
    assert server.hits("/x") == 2
    assert waits == [0]


def test_429_retry_after_seconds_is_honoured(server, waits):
    server.on("/x", (429, {"Retry-After": "7"}, b"{}"), (200, {}, b"{}"))
    with _client(server.url) as client:
        client.call("GET", "/x")
    assert waits == [7.0]


def test_429_retry_after_http_date_is_honoured(server, waits):
    when = datetime.now(timezone.utc) + timedelta(seconds=20)
    server.on("/x", (429, {"Retry-After": format_datetime(when, usegmt=True)}, b"{}"), (200, {}, b"{}"))
    with _client(server.url) as client:
        client.call("GET", "/x")
    assert len(waits) == 1 and 15 <= waits[0] <= 20


def test_retry_after_is_capped(server, waits):
    server.on("/x", (429, {"Retry-After": "3600"}, b"{}"), (200, {}, b"{}"))
    with _client(server.url, max_retry_after_s=12) as client:
        client.call("GET", "/x")
    assert waits == [12]


def test_429_storm_ends_in_rate_limited_after_the_attempts(server):
    server.on("/x", (429, {"Retry-After": "1"}, b"{}"))
    with _client(server.url, max_attempts=3) as client, pytest.raises(RateLimited) as err:
        client.call("GET", "/x")
    assert server.hits("/x") == 3
    assert err.value.retry_after == 1.0 and "acme" in str(err.value)


def test_5xx_that_persists_is_unavailable(server):
    server.on("/x", (502, {}, b"bad gateway"))
    with _client(server.url, max_attempts=2) as client, pytest.raises(Unavailable) as err:
        client.call("GET", "/x")
    assert server.hits("/x") == 2 and err.value.status == 502


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_not_retried_and_name_connector_and_permission(server, status):
    server.on("/x", (status, {}, b'{"errorSummary": "Invalid token"}'))
    with _client(server.url) as client, pytest.raises(AuthError) as err:
        client.call("GET", "/x", permission="okta.users.read")
    assert server.hits("/x") == 1
    message = str(err.value)
    assert message.startswith("acme:") and "okta.users.read" in message and str(status) in message


def test_other_4xx_is_not_retried(server):
    server.on("/x", (400, {}, b'{"error":"bad"}'))
    with _client(server.url) as client, pytest.raises(ConnectorError) as err:
        client.call("POST", "/x", json={})
    assert server.hits("/x") == 1 and err.value.status == 400
    assert not isinstance(err.value, (AuthError, Unavailable, RateLimited))


def test_404_is_not_found(server):
    with _client(server.url) as client, pytest.raises(NotFound):
        client.call("GET", "/missing")


def test_html_error_page_with_status_200_is_a_bad_response(server):
    server.on("/x", (200, {"Content-Type": "text/html"}, b"<html><body>Sign in</body></html>"))
    with _client(server.url) as client, pytest.raises(BadResponse) as err:
        client.call("GET", "/x")
    assert "HTML" in str(err.value)


def test_truncated_json_is_a_bad_response(server):
    server.on("/x", (200, {}, b'{"users": [{"id": 1}, {"id"'))
    with _client(server.url) as client, pytest.raises(BadResponse) as err:
        client.call("GET", "/x")
    assert "truncated" in str(err.value)


def test_timeout_is_retried_then_unavailable(server):
    server.on("/slow", (200, {}, b"{}", 1.0))
    with _client(server.url, timeout_s=0.2, max_attempts=2) as client, pytest.raises(Unavailable) as err:
        client.call("GET", "/slow")
    assert "timed out" in str(err.value)
    assert server.hits("/slow") == 2


def test_connection_refused_is_unavailable():
    with _client("http://127.0.0.1:9", max_attempts=2) as client, pytest.raises(Unavailable):
        client.call("GET", "/x")


# ---- MockTransport: auth, shapes, paging, secrecy ---------------------------------


def _mock(handler, **auth) -> http.ConnectorClient:
    config = HttpConfig(connector="acme", base_url="https://api.example", auth=AuthConfig(**auth))
    return make_client(config, httpx.MockTransport(handler))


@pytest.mark.parametrize("auth, header, expected", [
    ({"type": "bearer", "secret": Secret("abc")}, "Authorization", "Bearer abc"),
    ({"type": "header", "prefix": "SSWS", "secret": Secret("abc")}, "Authorization", "SSWS abc"),
    ({"type": "header", "header": "X-Api-Key", "secret": Secret("abc")}, "X-Api-Key", "abc"),
    ({"type": "basic", "username": "u", "secret": Secret("p")}, "Authorization", "Basic dTpw"),
])
def test_auth_kinds_set_the_right_header(auth, header, expected):
    seen = []
    client = _mock(lambda r: (seen.append(r.headers.get(header)), httpx.Response(200, json={}))[1], **auth)
    client.call("GET", "/x")
    assert seen == [expected]


def _oauth_handler(log: list, token_status: int = 200, api_401_first: bool = False):
    state = {"tokens": 0, "api": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            state["tokens"] += 1
            log.append(("token", dict(httpx.QueryParams(request.content.decode()))))
            if token_status != 200:
                return httpx.Response(token_status, json={"error": "invalid_client"})
            return httpx.Response(200, json={"access_token": f"at-{state['tokens']}", "expires_in": 1799})
        state["api"] += 1
        log.append(("api", request.headers.get("Authorization")))
        if api_401_first and state["api"] == 2:
            return httpx.Response(401, json={})
        return httpx.Response(200, json={"resources": []})
    return handler


def test_oauth2_client_credentials_token_is_fetched_once_and_cached():
    log: list = []
    client = _mock(_oauth_handler(log), type="oauth2", token_url="https://api.example/oauth2/token",
                   client_id="cid", secret=Secret("csecret"), scope="s1")
    client.call("GET", "/a")
    client.call("GET", "/b")
    assert [entry[0] for entry in log] == ["token", "api", "api"]
    assert log[0][1] == {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "csecret",
                         "scope": "s1"}
    assert log[1][1] == log[2][1] == "Bearer at-1"


def test_oauth2_refreshes_once_when_the_cached_token_is_rejected():
    log: list = []
    client = _mock(_oauth_handler(log, api_401_first=True), type="oauth2",
                   token_url="https://api.example/oauth2/token", client_id="cid", secret=Secret("s"))
    client.call("GET", "/a")
    client.call("GET", "/b")
    assert [e[0] for e in log] == ["token", "api", "api", "token", "api"]
    assert log[-1][1] == "Bearer at-2"


def test_oauth2_rejected_client_credentials_is_an_auth_error():
    client = _mock(_oauth_handler([], token_status=401), type="oauth2",
                   token_url="https://api.example/oauth2/token", client_id="cid", secret=Secret("s"))
    with pytest.raises(AuthError) as err:
        client.call("GET", "/a", permission="Hosts: Read")
    assert "client credentials" in str(err.value)


def test_wrong_json_shape_is_a_bad_response():
    client = _mock(lambda r: httpx.Response(200, json=[1, 2]))
    with pytest.raises(BadResponse) as err:
        client.call("GET", "/x")
    assert "expected a JSON dict" in str(err.value)


def test_odata_pagination_follows_next_link():
    def handler(request: httpx.Request) -> httpx.Response:
        if "skiptoken" in str(request.url):
            return httpx.Response(200, json={"value": [{"n": 2}]})
        return httpx.Response(200, json={"value": [{"n": 1}],
                                         "@odata.nextLink": "https://api.example/v1.0/x?$skiptoken=abc"})
    assert [i["n"] for i in http.paginate_odata(_mock(handler), "/v1.0/x")] == [1, 2]


def test_taxii_pagination_follows_more_and_next():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.params.get("next"), request.headers["Accept"]))
        if request.url.params.get("next") == "p2":
            return httpx.Response(200, json={"more": False, "objects": [{"id": "b"}]},
                                  headers={"Content-Type": "application/taxii+json;version=2.1"})
        return httpx.Response(200, json={"more": True, "next": "p2", "objects": [{"id": "a"}]},
                              headers={"Content-Type": "application/taxii+json;version=2.1"})
    assert [o["id"] for o in http.paginate_taxii(_mock(handler), "/c/objects/")] == ["a", "b"]
    assert seen[0] == (None, "application/taxii+json;version=2.1") and seen[1][0] == "p2"


def test_page_limit_pagination_stops_at_a_short_page():
    pages = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        pages.append(body["page"])
        count = 2 if body["page"] < 3 else 1
        return httpx.Response(200, json={"response": {"Attribute": [{"p": body["page"]}] * count}})
    items = list(http.paginate_pages(_mock(handler), "/attributes/restSearch", {"value": "x"}, limit=2,
                                     extract=lambda b: b["response"]["Attribute"]))
    assert pages == [1, 2, 3] and len(items) == 5


def test_retry_after_parsing_covers_vendor_headers():
    now = 1_700_000_000.0
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "5"}), now) == 5
    assert retry_after_seconds(httpx.Response(429, headers={"X-Rate-Limit-Reset": str(int(now) + 30)}), now) == 30
    assert retry_after_seconds(httpx.Response(429, headers={"X-RateLimit-RetryAfter": str(int(now) + 9)}), now) == 9
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "soon"}), now) is None
    assert retry_after_seconds(httpx.Response(429), now) is None


def test_tokens_never_appear_in_errors_or_client_reprs():
    def handler(request: httpx.Request) -> httpx.Response:
        # A hostile server echoes the credential back in its error body and headers.
        return httpx.Response(401, json={"error": request.headers["Authorization"]},
                              headers={"WWW-Authenticate": request.headers["Authorization"]})
    config = HttpConfig(connector="acme", base_url="https://api.example",
                        auth=AuthConfig(type="bearer", secret=Secret(TOKEN, "ACME_TOKEN")))
    client = make_client(config, httpx.MockTransport(handler))
    with pytest.raises(AuthError) as err:
        client.call("GET", f"/x?api_key={TOKEN}")
    for text in (str(err.value), repr(err.value), repr(client), repr(config), str(config.auth),
                 repr(config.auth.secret), str(config.auth.secret)):
        assert TOKEN not in text
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_nothing_outside_the_http_layer_catches_httpx_exceptions():
    from pathlib import Path
    root = Path(http.__file__).parent
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "http.py" and "except httpx" in p.read_text()]
    assert offenders == []
