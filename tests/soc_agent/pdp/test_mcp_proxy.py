"""``soc-agent pdp mcp-proxy`` between a real MCP client session and a real MCP server process, over stdio.

The client is the ``mcp`` SDK's ``stdio_client`` + ``ClientSession``, which starts the proxy
as a subprocess (``python -m soc_agent.cli pdp mcp-proxy ... -- python fixture``); the proxy
starts the fixture server (``fixtures/mcp_tools_server.py``) as its own subprocess. The fixture
writes a marker file for each call that reaches a tool, so "upstream never ran it" is checked
on disk, not inferred from the answer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

REPO = Path(__file__).resolve().parents[3]
FIXTURE = Path(__file__).parent / "fixtures" / "mcp_tools_server.py"
PERMS = "fs:read,exec:shell,net:outbound"


def _params(markers: Path, *extra: str, permissions: str = PERMS) -> StdioServerParameters:
    env = {"PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "MCP_MARKER_DIR": str(markers)}
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "soc_agent.cli", "pdp", "mcp-proxy", "--agent-id", "mcp-agent-1", "--role", "assistant",
              "--permissions", permissions, "--approval-timeout", "0.5", *extra, "--", sys.executable, str(FIXTURE)],
        env=env, cwd=str(REPO))


def _text(result) -> str:
    return "\n".join(block.text for block in result.content if getattr(block, "text", None) is not None)


def _ran(markers: Path) -> list[tuple[str, dict]]:
    return sorted((p.name.rsplit("-", 1)[0], json.loads(p.read_text())) for p in markers.glob("*.json"))


async def _session(markers: Path, steps, **kwargs):
    async with stdio_client(_params(markers, **kwargs)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        return await steps(session)


def run(markers: Path, steps, **kwargs):
    return anyio.run(lambda: _session(markers, steps, **kwargs))


def test_initialize_and_tools_list_pass_through(tmp_path: Path):
    async def steps(session):
        return sorted(t.name for t in (await session.list_tools()).tools)

    assert run(tmp_path, steps) == ["http_get", "read_file", "run_shell"]
    assert _ran(tmp_path) == []


def test_an_allowed_call_returns_the_upstream_result(tmp_path: Path):
    async def steps(session):
        return await session.call_tool("read_file", {"path": "/srv/readme.txt"})

    result = run(tmp_path, steps)
    assert not result.is_error and _text(result) == "contents of /srv/readme.txt"
    assert _ran(tmp_path) == [("read_file", {"path": "/srv/readme.txt"})]


def test_arguments_decide_same_tool_safe_and_hostile(tmp_path: Path):
    """Same tool, different arguments, different decisions; the refused call never reaches the server."""

    async def steps(session):
        return (await session.call_tool("read_file", {"path": "/srv/readme.txt"}),
                await session.call_tool("read_file", {"path": "/home/dev/.ssh/id_ed25519"}),
                await session.call_tool("http_get", {"url": "https://api.github.com/zen"}),
                await session.call_tool("http_get", {"url": "https://203.0.113.50/payload"}))

    safe, secret, known, bare_ip = run(tmp_path, steps)
    assert not safe.is_error and not known.is_error
    assert secret.is_error and "credential file" in _text(secret)
    assert bare_ip.is_error and "bare IP" in _text(bare_ip), "require_approval, nobody approved: denied"
    assert _ran(tmp_path) == [("http_get", {"url": "https://api.github.com/zen"}),
                              ("read_file", {"path": "/srv/readme.txt"})]


def test_a_tool_the_agent_holds_no_permission_for_is_refused(tmp_path: Path):
    async def steps(session):
        return await session.call_tool("run_shell", {"cmd": "id"})

    result = run(tmp_path, steps, permissions="fs:read")
    assert result.is_error and "exec:shell" in _text(result)
    assert _ran(tmp_path) == []


def test_injected_tool_output_then_shell_isolates_the_session(tmp_path: Path):
    """The proxy scans results on the way back: the next call carries the detector's flags."""

    async def steps(session):
        notes = await session.call_tool("read_file", {"path": "/srv/notes.txt"})
        shell = await session.call_tool("run_shell", {"cmd": "sh cleanup.sh"})
        after = await session.call_tool("read_file", {"path": "/srv/readme.txt"})
        return notes, shell, after

    notes, shell, after = run(tmp_path, steps)
    assert not notes.is_error and "Ignore all previous instructions" in _text(notes)
    assert shell.is_error and "isolated" in _text(shell)
    assert after.is_error and "isolated" in _text(after), "nothing runs after isolation"
    assert _ran(tmp_path) == [("read_file", {"path": "/srv/notes.txt"})]


def test_a_policy_that_does_not_load_is_one_line_and_exit_2(tmp_path: Path):
    bad = tmp_path / "bad.yml"
    bad.write_text("rules:\n  - name: x\n    when: 'this is not CEL ((('\n    decision: deny\n")
    done = subprocess.run([sys.executable, "-m", "soc_agent.cli", "pdp", "mcp-proxy", "--policy", str(bad), "--",
                           sys.executable, str(FIXTURE)], check=False, capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), "MCP_MARKER_DIR": str(tmp_path)},
                          stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 2 and f"{bad}:3" in done.stderr and done.stdout == ""
    assert _ran(tmp_path) == []
