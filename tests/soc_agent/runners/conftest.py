"""Runner fixtures: a tokens file, seeded paused runs, and a real uvicorn server on loopback."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from soc_agent.config import Settings
from soc_agent.runners.auth import hash_token
from tests.conftest import make_alert
from tests.soc_agent.test_graph import CROWN_JEWEL_MALWARE

TOKENS = {"viewer": ("vic.viewer", "tok-viewer-1"), "analyst": ("bo.analyst", "tok-analyst-1"),
          "analyst2": ("cy.analyst", "tok-analyst-2"), "lead": ("ana.lead", "tok-lead-1"),
          "lead2": ("di.lead", "tok-lead-2")}
ROLES = {"viewer": "viewer", "analyst": "analyst", "analyst2": "analyst", "lead": "lead", "lead2": "lead"}
WEBHOOK_SECRET = "whsec-test-0123456789"

EXEC_TRAVEL = make_alert("impossible_travel", [("user", "ceo.hart", "actor"), ("ip", "203.0.113.201", "src")],
                         alert_id="travel-1", vpn=False)
"""An executive's impossible travel: revoke_sessions needs an analyst (executive identity)."""


def write_tokens(path: Path) -> Path:
    """A tokens file holding only hashes."""
    lines = ["tokens:"]
    for key, (name, token) in TOKENS.items():
        lines += [f"  - name: {name}", f"    role: {ROLES[key]}", f"    sha256: {hash_token(token)}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(settings: Settings, *lines: bytes) -> list:
    """Triage lines in a pipeline of their own (closed after), as another process would."""
    from soc_agent.pipeline import Pipeline

    pipeline = Pipeline(settings)
    try:
        return [r for line in lines for r in pipeline.process_line(line)]
    finally:
        pipeline.close()


@dataclass
class Running:
    """A server running in a thread; ``client(role)`` is an httpx client with that role's token."""

    url: str
    app: object
    server: object
    thread: threading.Thread

    def client(self, role: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {TOKENS[role][1]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    @property
    def state(self):
        return self.app.state.soc


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    return write_tokens(tmp_path / "tokens.yml")


@pytest.fixture
def start_server(settings: Settings, tokens_file: Path):
    """Start ``create_app(settings)`` under uvicorn on 127.0.0.1:<free port>; stopped after the test."""
    import uvicorn

    from soc_agent.runners.approvals import QueuePolicy
    from soc_agent.runners.auth import TokenStore
    from soc_agent.runners.server import create_app
    from soc_agent.runners.webhooks import WebhookConfig

    started: list[Running] = []

    def start(queue_policy: QueuePolicy | None = None, webhook_config: WebhookConfig | None = None,
              sink=None) -> Running:
        app = create_app(settings, tokens=TokenStore.from_file(tokens_file), queue_policy=queue_policy,
                         webhook_config=webhook_config or WebhookConfig(
                             secrets={p: WEBHOOK_SECRET for p in ("jira", "servicenow", "thehive")}),
                         sink=sink, sweep_s=3600)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        running = Running(f"http://127.0.0.1:{port}", app, server, thread)
        started.append(running)
        return running

    yield start
    for running in started:
        running.server.should_exit = True
        running.thread.join(timeout=30)


@pytest.fixture
def kit(settings: Settings):
    """Helpers for the runner tests (conftest modules are not imported by tests directly)."""
    from types import SimpleNamespace

    return SimpleNamespace(seed=lambda *lines: seed(settings, *lines), tokens=TOKENS, secret=WEBHOOK_SECRET,
                           crown_jewel=CROWN_JEWEL_MALWARE, exec_travel=EXEC_TRAVEL, free_port=free_port,
                           write_tokens=write_tokens)


__all__ = ["CROWN_JEWEL_MALWARE", "EXEC_TRAVEL", "TOKENS", "WEBHOOK_SECRET", "free_port", "seed", "write_tokens"]
