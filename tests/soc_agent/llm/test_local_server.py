"""The local model server's command line (no model needed)."""

from __future__ import annotations

from pathlib import Path

from soc_agent.llm import local_server


def test_a_thread_limit_bounds_prompt_processing_too(monkeypatch):
    monkeypatch.setattr(local_server, "model_path", lambda: Path("/models/gemma.gguf"))
    command = local_server.server_command(8080, threads=1)
    assert command[command.index("--n_threads") + 1] == "1"
    assert command[command.index("--n_threads_batch") + 1] == "1", "the server's own default is every core"
    assert command[command.index("--port") + 1] == "8080" and "127.0.0.1" in command
