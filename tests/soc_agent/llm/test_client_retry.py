"""The LLM client retries through the connectors' one retry policy and waits what Retry-After asks."""

from __future__ import annotations

import json
import threading
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectors import http
from soc_agent.llm.client import MAX_RETRY_AFTER_S, ChatClient, LLMError
from soc_agent.llm.config import LLMSettings

_COMPLETION = {"id": "c1", "object": "chat.completion", "created": 0, "model": "local-model",
               "choices": [{"index": 0, "finish_reason": "stop",
                            "message": {"role": "assistant", "content": "hello"}}],
               "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}


class _Endpoint:
    """A chat endpoint on loopback that gives each request the next scripted (status, headers) answer."""

    def __init__(self, answers: list[tuple[int, dict[str, str]]]) -> None:
        self.answers = list(answers)
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.requests += 1
                status, headers = endpoint.answers.pop(0) if endpoint.answers else (200, {})
                body = json.dumps(_COMPLETION if status == 200 else {"error": "try later"}).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "_Endpoint":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The waits the retry policy asked for, made instant."""
    asked: list[float] = []
    monkeypatch.setattr(http, "sleep", asked.append)
    return asked


def _chat(url: str, retries: int = 2):
    client = ChatClient(LLMSettings(base_url=url, model="local-model", timeout_s=5, retries=retries))
    return client.chat([{"role": "user", "content": "hi"}], schema=None)


def test_a_429_is_retried_after_the_wait_its_retry_after_asks(waits):
    with _Endpoint([(429, {"Retry-After": "7"})]) as endpoint:
        result = _chat(endpoint.url)
    assert result.text == "hello" and result.prompt_tokens == 3
    assert endpoint.requests == 2
    assert waits == [7.0]


def test_an_http_date_retry_after_is_honoured(waits):
    when = datetime.now(timezone.utc) + timedelta(seconds=20)
    with _Endpoint([(503, {"Retry-After": format_datetime(when, usegmt=True)})]) as endpoint:
        assert _chat(endpoint.url).text == "hello"
    assert endpoint.requests == 2
    assert len(waits) == 1 and 17 <= waits[0] <= 20


def test_a_long_retry_after_is_capped(waits):
    with _Endpoint([(429, {"Retry-After": "3600"})]) as endpoint:
        assert _chat(endpoint.url).text == "hello"
    assert waits == [MAX_RETRY_AFTER_S]


def test_other_client_errors_are_not_retried(waits):
    with _Endpoint([(400, {})]) as endpoint:
        with pytest.raises(LLMError, match="endpoint answered HTTP 400"):
            _chat(endpoint.url)
    assert endpoint.requests == 1 and waits == []


def test_a_status_still_failing_after_the_retries_is_an_llm_error(waits):
    with _Endpoint([(500, {})] * 3) as endpoint:
        with pytest.raises(LLMError, match="endpoint answered HTTP 500"):
            _chat(endpoint.url, retries=2)
    assert endpoint.requests == 3 and len(waits) == 2


def test_an_unreachable_endpoint_is_retried_then_an_llm_error(waits):
    with _Endpoint([]) as endpoint:
        url = endpoint.url
    with pytest.raises(LLMError, match="endpoint unreachable: APIConnectionError"):
        _chat(url, retries=1)
    assert len(waits) == 1
