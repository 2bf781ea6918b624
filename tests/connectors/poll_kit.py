"""Shared pieces of the poller tests: a real vendor-shaped HTTP server on loopback and a pipeline harness.

Each ``test_<vendor>_poll.py`` supplies a small simulator of its vendor's API
(``route(request) -> (status, headers, body)``) over alerts it authors; the
server runs it in a thread on 127.0.0.1 and can be told to answer the next
requests to a path with scripted faults (429, 401, HTML, truncated JSON).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from sqlmodel import select

from connectors.http import AuthConfig, HttpConfig, make_client
from connectors.secrets import Secret


@dataclass
class Req:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    def arg(self, name: str, default: str | None = None) -> str | None:
        return (self.query.get(name) or [default])[0]


Reply = tuple[int, dict[str, str], bytes]


@dataclass
class VendorServer:
    """A threaded HTTP server answering with ``route`` unless a fault is scripted for the path."""

    route: Callable[[Req], Reply]
    requests: list[Req] = field(default_factory=list)
    faults: dict[str, list[Reply]] = field(default_factory=dict)

    def start(self) -> "VendorServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                req = Req(self.command, parts.path, parse_qs(parts.query), dict(self.headers), body)
                server.requests.append(req)
                queue = server.faults.get(parts.path)
                status, headers, payload = queue.pop(0) if queue else server.route(req)
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _serve

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to ``path`` with ``replies`` before the simulator takes over."""
        self.faults.setdefault(path, []).extend(replies)

    def hits(self, path: str) -> list[Req]:
        return [r for r in self.requests if r.path == path]


def ok(body: Any) -> Reply:
    return 200, {}, json.dumps(body).encode()


RATE_LIMITED: Reply = (429, {"Retry-After": "7"}, b'{"error": "slow down"}')
UNAUTHORIZED: Reply = (401, {}, b'{"error": "invalid credentials"}')
HTML_200: Reply = (200, {"Content-Type": "text/html"}, b"<html><body>Sign in to continue</body></html>")
TRUNCATED: Reply = (200, {}, b'{"hits": {"hits": [{"_id": "a", "_source": {"kibana.ale')


def recent(minutes_ago: float) -> datetime:
    """A time inside the pipeline's accepted window (it dead-letters alerts older than its horizon)."""
    return datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=minutes_ago)


def iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def client(connector: str, url: str, auth: AuthConfig | None = None):
    """A ConnectorClient through the one HTTP layer, bearer auth unless told otherwise."""
    return make_client(HttpConfig(connector=connector, base_url=url, max_attempts=4,
                                  auth=auth or AuthConfig(type="bearer", secret=Secret("tok-poll", "T"))))


def case_count(pipeline) -> int:
    from soc_agent.store import CaseRow

    pipeline.store.commit()
    with pipeline.store.reader() as session:
        return len(session.exec(select(CaseRow)).all())


def audit_kinds(pipeline) -> list[str]:
    from soc_agent.audit import records

    return [r.kind for r in records(pipeline.store.engine)]


def dead_letters(pipeline) -> list[str]:
    from soc_agent.store import DeadLetterRow

    pipeline.store.commit()
    with pipeline.store.reader() as session:
        return [row.reason for row in session.exec(select(DeadLetterRow))]


def saved_cursor(pipeline, name: str) -> Any:
    from connectors.cursors import SourceCursorRow

    with pipeline.store.reader() as session:
        return session.get(SourceCursorRow, name)


# ---- fixtures (imported by the test modules that use them) -------------------------------

import pytest  # noqa: E402
import tenacity  # noqa: E402

from connectors import http as _http  # noqa: E402


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """Retries sleep into this list instead of the clock."""
    recorded: list[float] = []
    monkeypatch.setattr(_http, "sleep", recorded.append)
    monkeypatch.setattr(_http, "backoff", tenacity.wait_none())
    return recorded


@pytest.fixture
def open_pipeline(settings):
    """Open a pipeline on the test's workdir; all are closed after the test (a restart is close + open)."""
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
