"""``soc-agent pdp mcp-proxy -- UPSTREAM_COMMAND...``: the decision point between an MCP client and server.

::

    MCP client ──stdio──> mcp-proxy ──stdio──> upstream MCP server (a subprocess)
                              │
                              └── every tools/call: ToolGate -> PDP (in process, or --pdp-url)

The proxy works at the JSON-RPC message level with the ``mcp`` SDK's own stdio
transports (``stdio_server`` towards the client, ``stdio_client`` spawning the
upstream), so everything it does not decide passes through unchanged in both
directions: ``initialize``, ``tools/list``, resources, prompts, notifications,
and the server's own requests (sampling, elicitation) with their answers.

Each ``tools/call`` is decided on its tool name *and* arguments before it is
forwarded (``guarded_tool.ToolGate``: approvals waited for with a deadline,
removed permissions kept for the session, isolation final, no decision ->
deny). A refused call is answered by the proxy itself with a tool result
``isError: true`` carrying the reasons; the upstream never sees it. Results of
allowed calls are scanned by the product's injection detector on the way back,
so the next call carries the flags. One proxy process is one agent session.
Decisions are logged to stderr, one line each; stdout is the MCP wire.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer

from soc_agent.pdp import cli as pdp_cli
from soc_agent.pdp.cli import pdp_app
from soc_agent.terminal import safe_text

__all__ = ["McpProxy", "main", "mcp_proxy"]

_RESULT_TEXT_LIMIT = 200_000


class McpProxy:
    """Relays MCP messages between a client and an upstream server; decides every ``tools/call``."""

    def __init__(self, gate: Any, *, log: Any = None, on_upstream_exit: Any = None) -> None:
        """``on_upstream_exit``: called when the upstream closes its side first (the stdio command
        exits the process then: a thread blocked reading the client's stdin cannot be cancelled)."""
        self.gate = gate
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.on_upstream_exit = on_upstream_exit
        self._calls: dict[Any, str] = {}  # request id -> tool name, for allowed calls in flight

    async def run(self, upstream: Any, client_streams: Any = None) -> None:
        """Serve until the client or the upstream closes. ``upstream``: ``StdioServerParameters``.

        ``client_streams``: a (read, write) stream pair to serve instead of this process's stdio.
        """
        # deferred: the mcp SDK (~1 s with anyio) loads when the proxy runs, not with `soc-agent --help`
        import anyio
        from mcp.client.stdio import stdio_client
        from mcp.server.stdio import stdio_server

        async def serve(c_read: Any, c_write: Any) -> None:
            upstream_gone = False
            try:
                async with stdio_client(upstream) as (u_read, u_write), anyio.create_task_group() as tg:
                    async def client_side() -> None:
                        await self._from_client(c_read, c_write, u_write, tg)
                        tg.cancel_scope.cancel()

                    async def upstream_side() -> None:
                        nonlocal upstream_gone
                        await self._from_upstream(u_read, c_write)
                        upstream_gone = True
                        tg.cancel_scope.cancel()

                    tg.start_soon(client_side)
                    tg.start_soon(upstream_side)
            finally:
                # The client's transport writes until its stream is closed.
                await c_write.aclose()
            if upstream_gone:
                self.log("mcp-proxy: the upstream MCP server closed the connection")
                if self.on_upstream_exit is not None:
                    self.on_upstream_exit()

        if client_streams is not None:
            await serve(*client_streams)
            return
        async with stdio_server() as (c_read, c_write):
            await serve(c_read, c_write)

    async def _from_client(self, c_read: Any, c_write: Any, u_write: Any, tg: Any) -> None:
        # deferred: the mcp SDK (~1 s with anyio) loads when the proxy runs, not with `soc-agent --help`
        from mcp.shared.message import SessionMessage
        from mcp_types import JSONRPCRequest

        async for item in c_read:
            if isinstance(item, Exception):
                self.log(f"mcp-proxy: unreadable message from the client dropped: {safe_text(str(item))[:200]}")
                continue
            message = item.message
            if isinstance(message, JSONRPCRequest) and message.method == "tools/call":
                tg.start_soon(self._call, message, c_write, u_write)
                continue
            await u_write.send(SessionMessage(message))

    async def _call(self, request: Any, c_write: Any, u_write: Any) -> None:
        """Decide one ``tools/call``; forward it, or answer it with an error result."""
        # deferred: the mcp SDK (~1 s with anyio) loads when the proxy runs, not with `soc-agent --help`
        import anyio
        from mcp.shared.message import SessionMessage

        from soc_agent.pdp.guarded_tool import AgentIsolated, ToolCallDenied

        params = request.params or {}
        name = params.get("name")
        args = params.get("arguments") or {}
        if not isinstance(name, str) or not name or not isinstance(args, dict):
            await self._refuse(c_write, request.id, "tools/call needs a tool name and an arguments object")
            return
        try:
            decision = await anyio.to_thread.run_sync(self.gate.check, name, args, abandon_on_cancel=True)
        except (ToolCallDenied, AgentIsolated) as exc:
            self.log(f"mcp-proxy: {exc.decision.get('decision', 'deny')} {safe_text(name)} "
                     f"({exc.decision.get('decision_id', '-')})")
            await self._refuse(c_write, request.id, str(exc))
            return
        self.log(f"mcp-proxy: allow {safe_text(name)} ({decision.get('decision_id', '-')})")
        self._calls[request.id] = name
        await u_write.send(SessionMessage(request))

    async def _refuse(self, c_write: Any, request_id: Any, text: str) -> None:
        # deferred: the mcp SDK (~1 s with anyio) loads when the proxy runs, not with `soc-agent --help`
        from mcp.shared.message import SessionMessage
        from mcp_types import JSONRPCResponse

        result = {"content": [{"type": "text", "text": text}], "isError": True}
        await c_write.send(SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=request_id, result=result)))

    async def _from_upstream(self, u_read: Any, c_write: Any) -> None:
        # deferred: the mcp SDK (~1 s with anyio) loads when the proxy runs, not with `soc-agent --help`
        from mcp.shared.message import SessionMessage
        from mcp_types import JSONRPCError, JSONRPCResponse

        async for item in u_read:
            if isinstance(item, Exception):
                self.log(f"mcp-proxy: unreadable message from the upstream dropped: {safe_text(str(item))[:200]}")
                continue
            message = item.message
            if isinstance(message, (JSONRPCResponse, JSONRPCError)) and message.id in self._calls:
                tool = self._calls.pop(message.id)
                if isinstance(message, JSONRPCResponse):
                    self.gate.observe(tool, _result_text(message.result))
            await c_write.send(SessionMessage(message))


def _result_text(result: dict[str, Any]) -> str:
    """The text an agent would read from a tool result (text blocks and structured content)."""
    parts = [block.get("text", "") for block in result.get("content") or () if isinstance(block, dict)]
    if result.get("structuredContent") is not None:
        parts.append(json.dumps(result["structuredContent"], default=str))
    return "\n".join(p for p in parts if isinstance(p, str))[:_RESULT_TEXT_LIMIT]


def _fail(message: str) -> NoReturn:
    pdp_cli._fail(message)


@pdp_app.command("mcp-proxy", context_settings={"ignore_unknown_options": True})
def mcp_proxy(
    upstream: list[str] = typer.Argument(..., metavar="-- UPSTREAM_COMMAND...",
                                         help="the MCP server to start and guard (after --)"),
    policy: Optional[Path] = typer.Option(None, "--policy", help="policy file (default: playbooks/pdp-policy.yml)"),
    workdir: Optional[Path] = typer.Option(None, "--workdir",
                                           help="store, approvals and audit (a person approves with "
                                                "`soc-agent pdp approve --workdir`)"),
    pdp_url: Optional[str] = typer.Option(None, "--pdp-url", help="ask `soc-agent pdp serve` at this URL instead"),
    token: Optional[str] = typer.Option(None, "--token", envvar="SOC_AGENT_PDP_TOKEN",
                                        help="bearer token for --pdp-url"),
    agent_id: str = typer.Option("mcp-agent", "--agent-id", help="the agent this proxy speaks for"),
    role: str = typer.Option("", "--role"),
    tenant: str = typer.Option("", "--tenant"),
    permissions: str = typer.Option("", "--permissions", help="granted permissions, comma-separated"),
    server: str = typer.Option("", "--server", help="the upstream's name, as the policy's tool globs see it"),
    approval_timeout: float = typer.Option(60.0, "--approval-timeout", help="seconds to wait for a person"),
    timeout: float = typer.Option(2.0, "--timeout", help="seconds for each request to --pdp-url"),
) -> None:
    """Guard an MCP server: every tools/call is decided (name and arguments) before it reaches it."""
    # deferred: guarded_tool loads httpx and langchain-core (~1.5 s): only when the proxy runs, not with `--help`
    from soc_agent.pdp.guarded_tool import AgentSession, HttpPDP, LocalPDP, ToolGate

    if not upstream:
        _fail("mcp-proxy needs the upstream MCP server command after --")
    if pdp_url and (policy or workdir):
        _fail("--pdp-url asks a running decision point: --policy and --workdir belong to that server")
    if approval_timeout <= 0 or timeout <= 0:
        _fail("--approval-timeout and --timeout must be positive")
    if pdp_url:
        if not pdp_url.startswith(("http://", "https://")):
            _fail(f"--pdp-url must be an http(s) URL, not {pdp_url!r}")
        client: Any = HttpPDP(pdp_url, timeout=timeout, token=token)
        engine = None
    else:
        # The serve command's engine: the policy, and with a workdir the store, audit and isolations.
        engine = pdp_cli._engine(policy, workdir)
        client = LocalPDP(engine)
    session = AgentSession(agent_id=agent_id, role=role, tenant=tenant, session_id=f"mcp-{uuid.uuid4().hex}",
                           permissions={p.strip() for p in permissions.split(",") if p.strip()})
    gate = ToolGate(session, client, server=server, approval_timeout_s=approval_timeout)
    try:
        main(upstream, gate)
    finally:
        if engine is not None:
            engine.close()


def main(upstream: list[str], gate: Any) -> None:
    """Run the proxy on this process's stdio until the client or the upstream goes away."""
    # deferred: the mcp SDK (~1 s with anyio) loads when the proxy runs, not with `soc-agent --help`
    import anyio
    from mcp.client.stdio import StdioServerParameters

    # The upstream gets the environment the proxy was started with (an MCP client configures the server's
    # variables on the proxy's command line), less the proxy's own settings such as its PDP token.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOC_AGENT_")}
    params = StdioServerParameters(command=upstream[0], args=list(upstream[1:]), env=env)
    def upstream_exit() -> None:
        sys.stderr.flush()
        os._exit(1)  # nothing left to serve; see McpProxy.on_upstream_exit

    try:
        anyio.run(McpProxy(gate, on_upstream_exit=upstream_exit).run, params)
    except OSError as exc:
        _fail(f"cannot start the upstream MCP server {upstream[0]!r}: {exc}")
