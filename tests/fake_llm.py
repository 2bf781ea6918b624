"""A local OpenAI-compatible server that can be told to misbehave.

Shared by the LLM reasoner tests (``tests/soc_agent/llm``, fixture
``fake_model``) and the fleet fault tier (``tests/faults``), whose worker
processes reach it over loopback. ``FakeModel.mode`` picks the behaviour of
every following answer; ``served`` counts what was actually answered, so a
test can prove a fault was injected rather than assume it.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FakeModel", "running_fake_model"]


class FakeModel:
    """What the fake endpoint answers; tests set ``mode`` (and ``verdict``) per case."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.verdict = "true_positive"
        self.confidence = 0.9
        self.action: str | None = None
        self.narrative = "Intel and rule evidence agree this is malicious."
        self.requests: list[dict] = []
        self.failures_left = 0
        self.retry_after = "0"
        """``Retry-After`` sent with a 429."""
        self.slow_s = 3.0
        """How long a ``slow`` answer takes (past the client's timeout, it is a timeout)."""
        self.served: Counter = Counter()

    def answer(self, request: dict) -> tuple[int, dict[str, str], bytes]:
        self.requests.append(request)
        if self.failures_left > 0:
            self.failures_left -= 1
            self.served["failure"] += 1
            return 500, {}, b'{"error": "overloaded"}'
        schema = ((request.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
        props = schema.get("properties", {})
        ids = [i for i in props.get("evidence_ids", {}).get("items", {}).get("enum", []) if i != "none"]
        menu = [a for a in props.get("action", {}).get("enum", []) if a != "none"]
        body = {"verdict": self.verdict, "confidence": self.confidence, "narrative": self.narrative,
                "evidence_ids": ids[:2], "action": self.action or (menu[0] if menu else "none"),
                "open_questions": ["Was this host patched?"]}
        mode = self.mode
        self.served[mode] += 1
        if mode == "slow":
            time.sleep(self.slow_s)
        if mode == "429":
            return 429, {"Retry-After": self.retry_after}, b'{"error": "rate limited"}'
        if mode == "500":
            return 500, {}, b'{"error": "boom"}'
        if mode == "html":
            return 200, {"Content-Type": "text/html"}, b"<html>proxy error</html>"
        content = json.dumps(body)
        if mode == "malformed":
            content = "Sure! Here is my analysis: verdict is probably bad {not json"
        elif mode == "truncated":
            content = content[: len(content) // 2]
        elif mode == "schema_violation":
            content = json.dumps({**body, "verdict": "definitely_evil", "confidence": 7})
        elif mode == "bogus_evidence":
            content = json.dumps({**body, "evidence_ids": ["intel:ip:6.6.6.6"]})
        elif mode == "off_menu":
            content = json.dumps({**body, "action": "reimage_host"})
        elif mode == "follows_injection":
            content = json.dumps({**body, "verdict": "benign_positive", "confidence": 0.97,
                                  "narrative": "This email is safe and was approved by the CISO.",
                                  "action": "close_case" if "close_case" in menu else body["action"]})
        reply = {"id": "cmpl-1", "object": "chat.completion", "created": int(time.time()), "model": "fake-model",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                              "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}
        return 200, {"Content-Type": "application/json"}, json.dumps(reply).encode()


@contextmanager
def running_fake_model(model: FakeModel | None = None) -> Iterator[tuple[FakeModel, str]]:
    """Serve ``model`` (a new one by default) on 127.0.0.1; yields it and its ``/v1`` base URL."""
    model = model or FakeModel()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            request = json.loads(self.rfile.read(length) or b"{}")
            status, headers, body = model.answer(request)
            try:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out first (mode "slow"): that is the point

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield model, f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
