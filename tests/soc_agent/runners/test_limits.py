"""Bodies are bounded before they are read: a declared length over the limit, a chunked body past it, a
trickle. Raw sockets against the real app under uvicorn: the answer must come without the body."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest
from sqlmodel import select

from soc_agent.runners.tables import WebhookEventRow
from soc_agent.runners.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER

HEC_TOKEN = "hec-limits-test"
ANALYST = "tok-analyst-1"


@pytest.fixture
def server(start_server, monkeypatch):
    # A long body deadline: a 413 that arrives within the socket timeout did not wait for the body.
    monkeypatch.setenv("SOC_AGENT_BODY_TIMEOUT_S", "120")
    monkeypatch.setenv("SOC_AGENT_HEC_TOKEN", HEC_TOKEN)
    return start_server()


@pytest.fixture
def slow_server(start_server, monkeypatch):
    monkeypatch.setenv("SOC_AGENT_BODY_TIMEOUT_S", "1")
    monkeypatch.setenv("SOC_AGENT_HEC_TOKEN", HEC_TOKEN)
    return start_server()


def _connect(running) -> socket.socket:
    url = urlsplit(running.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=20)
    return sock


def _status(sock: socket.socket) -> int:
    """The status code of the response on ``sock`` (reads until the status line is in)."""
    data = b""
    while b"\r\n" not in data:
        piece = sock.recv(4096)
        if not piece:
            break
        data += piece
    return int(data.split(b" ", 2)[1])


def _head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


ENDPOINTS = {
    "login": ("/ui/login", {"Content-Type": "application/x-www-form-urlencoded"}),
    "alerts": ("/api/alerts", {"Authorization": f"Bearer {ANALYST}"}),
    "approve": ("/api/approvals/1/approve", {"Authorization": f"Bearer {ANALYST}"}),
    "edge": ("/edge/v1/events", {}),
    "webhook": ("/webhooks/jira", {TIMESTAMP_HEADER: "1", SIGNATURE_HEADER: "sha256=00"}),
    "hec": ("/services/collector/event", {"Authorization": f"Splunk {HEC_TOKEN}"}),
}


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_a_declared_length_over_the_limit_is_413_before_any_body_is_sent(server, name):
    path, headers = ENDPOINTS[name]
    with _connect(server) as sock:
        sock.sendall(_head(path, headers | {"Content-Length": str(2 * 1024**3)}))  # 2 GB declared, none sent
        assert _status(sock) == 413


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_a_chunked_body_over_the_limit_is_413(server, name):
    path, headers = ENDPOINTS[name]
    piece = b"a" * 64 * 1024
    with _connect(server) as sock:
        sock.sendall(_head(path, headers | {"Transfer-Encoding": "chunked"}))
        try:
            for _ in range(40):  # 2.5 MiB: over every endpoint's limit, never terminated
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        except OSError:
            pass  # the server answered and closed while we were still sending
        assert _status(sock) == 413


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_a_body_that_never_arrives_is_408(slow_server, name):
    path, headers = ENDPOINTS[name]
    with _connect(slow_server) as sock:
        sock.sendall(_head(path, headers | {"Content-Length": "100"}) + b"token=")  # 6 of 100 bytes, then nothing
        assert _status(sock) == 408


def test_a_trickled_chunked_body_is_408(slow_server):
    with _connect(slow_server) as sock:
        sock.sendall(_head("/ui/login", {"Transfer-Encoding": "chunked"}))
        status = None
        for _ in range(40):  # a byte every 0.1 s: never over the limit, never finished
            try:
                sock.sendall(b"1\r\na\r\n")
            except OSError:
                break
            sock.settimeout(0.1)
            try:
                status = _status(sock)
                break
            except TimeoutError:
                continue
        if status is None:
            sock.settimeout(20)
            status = _status(sock)
        assert status == 408


def test_a_small_login_form_is_still_read(server):
    with server.client() as c:
        response = c.post("/ui/login", content=b"token=nope", headers={"Content-Type":
                                                                       "application/x-www-form-urlencoded"})
    assert response.status_code == 401


def test_a_23_digit_approval_id_is_404(server):
    with server.client("analyst") as c:
        assert c.get("/api/approvals/12345678901234567890123").status_code == 404
        assert c.post("/api/approvals/12345678901234567890123/approve", json={}).status_code == 404
        assert c.post("/api/approvals/12345678901234567890123/reject", json={}).status_code == 404
        assert c.post("/api/approvals/12345678901234567890123/edit",
                      json={"params": {"ttl_seconds": 60}}).status_code == 404


def _webhook_rejected(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("soc_agent_webhook_rejected_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_bad_signature_webhooks_store_nothing_and_are_counted(server):
    with server.client() as c:
        before = _webhook_rejected(c.get("/metrics").text)
        for n in range(50):
            ts = str(int(time.time()))
            response = c.post("/webhooks/jira", content=b'{"n": %d}' % n,
                              headers={TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: "sha256=" + "0" * 64})
            assert response.status_code == 401
        assert c.post("/webhooks/nosuchprovider", content=b"{}").status_code == 404
        text = c.get("/metrics").text
    assert _webhook_rejected(text) - before == 51
    assert 'soc_agent_webhook_rejected_total{provider="jira",status="401"} 50' in text
    assert 'soc_agent_webhook_rejected_total{provider="unknown",status="404"} 1' in text
    with server.state.lock:
        server.state.pipeline.store.commit()
    with server.state.pipeline.store.reader() as session:
        assert session.exec(select(WebhookEventRow)).all() == []
