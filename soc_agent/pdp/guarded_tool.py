"""Guard any LangChain / LangGraph tool with the decision point: the PDP decides before the tool runs.

::

    session = AgentSession(agent_id="research-bot", role="analyst", permissions={"net:outbound"})
    tools = guard_tools([read_document, http_post], session, LocalPDP(PDP.from_file("pdp-policy.yml")))
    graph = StateGraph(...).add_node("tools", ToolNode(tools))

What each decision does to the call:

* ``allow``: the tool runs; its output is scanned by the product's injection
  detector and any flags go with the session's next call (the decision point
  then also remembers that untrusted content entered the context).
* ``deny``: ``ToolCallDenied`` (a ``ToolException``): the agent sees a tool
  error message with the reasons; nothing ran.
* ``require_approval``: waits for a person, polling the approval, until the
  approval's own expiry or ``approval_timeout_s``, whichever is sooner; then
  asks again (an approved identical call is allowed once). Rejected, expired
  or timed out: denied.
* ``remove_permissions``: the permissions are dropped from the session for
  good (later requests no longer claim them) and this call is denied.
* ``isolate_agent``: ``AgentIsolated`` is raised. It is not a ``ToolException``,
  so a ``ToolNode`` with its default error handling lets it end the graph run;
  and every later call of the session is refused here without running,
  whatever the graph does with the error.

The decision point is either in process (``LocalPDP``) or ``soc-agent pdp
serve`` over HTTP (``HttpPDP``, bounded timeout). Any failure to get a
well-formed decision is a ``deny``: the guard fails closed. An optional
``on_decision`` hook (e.g. ``enforce.Enforcer.apply``) carries isolation and
removed permissions out beyond the agent's process.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from langchain_core.tools import BaseTool, StructuredTool, ToolException

from soc_agent.llm.injection import scan_text
from soc_agent.pdp.models import DECISIONS

__all__ = ["AgentIsolated", "AgentSession", "HttpPDP", "LocalPDP", "PDPClient", "PDPUnavailable",
           "ToolCallDenied", "ToolGate", "default_describe", "guard_tool", "guard_tools"]

_MAX_SCAN = 200_000


class ToolCallDenied(ToolException):
    """The decision point refused this call; the message (the agent sees it) carries the reasons."""

    def __init__(self, tool: str, decision: Mapping[str, Any], why: str | None = None) -> None:
        self.decision = dict(decision)
        reasons = "; ".join(str(r) for r in decision.get("reasons") or ()) or "no reason given"
        super().__init__(f"tool call {tool!r} was not allowed by policy "
                         f"(decision {decision.get('decision_id', '-')}): {f'{why}; {reasons}' if why else reasons}")


class AgentIsolated(RuntimeError):
    """The agent or session is cut off until a person lifts it: the workflow must end."""

    def __init__(self, tool: str, decision: Mapping[str, Any]) -> None:
        self.decision = dict(decision)
        reasons = "; ".join(str(r) for r in decision.get("reasons") or ()) or "isolated"
        super().__init__(f"agent isolated at tool call {tool!r} (decision {decision.get('decision_id', '-')}): "
                         f"{reasons}")


class PDPUnavailable(RuntimeError):
    """No well-formed decision could be had (transport error, timeout, bad response)."""


class PDPClient(Protocol):
    """How an enforcement point talks to the decision point."""

    def decide(self, request: dict[str, Any]) -> dict[str, Any]:
        """The wire response for one request; raises ``PDPUnavailable`` when there is none."""
        ...

    def approval_status(self, approval_id: str) -> str:
        """``pending``; ``approved``; ``closed`` (rejected, used or expired); or ``unknown`` (cannot tell:
        the guard then asks about the identical call again, which names the pending approval or decides)."""
        ...


class LocalPDP:
    """The decision point in this process (a ``soc_agent.pdp.PDP``)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def decide(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.engine.decide(request).to_dict()
        except Exception as exc:
            raise PDPUnavailable(f"decision point error: {exc}") from exc

    def approval_status(self, approval_id: str) -> str:
        # The book holds pending and granted approvals; rejected, used and expired ones are dropped.
        found = self.engine.approvals.get(approval_id)
        if found is None:
            return "closed"
        if found.expired(self.engine.clock()):
            return "expired"
        if found.status == "pending" and self.engine.store is not None:
            return "unknown"  # a person may decide from another process (the CLI): the store knows
        return found.status


class HttpPDP:
    """``soc-agent pdp serve`` over HTTP: ``POST /v1/decide``; approvals via ``GET /v1/approvals``.

    ``timeout``: seconds for each request (connect, read, write, pool); a PDP slower
    than that is unavailable, and the guard denies. ``token``: sent as a bearer token
    (a viewer token lets the guard see the approval queue; without one it learns an
    approval's fate by asking about the identical call again).
    """

    def __init__(self, base_url: str, *, timeout: float = 2.0, token: str | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(timeout), headers=headers,
                                    transport=transport)

    def decide(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.post("/v1/decide", json=request)
        except httpx.HTTPError as exc:
            raise PDPUnavailable(f"decision point unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise PDPUnavailable(f"decision point answered HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as exc:
            raise PDPUnavailable("decision point answered with something that is not JSON") from exc

    def approval_status(self, approval_id: str) -> str:
        try:
            response = self._client.get("/v1/approvals")
            pending = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return "unknown"
        if not isinstance(pending, list):
            return "unknown"
        # No longer pending: approved, rejected or expired; asking again tells which.
        return "pending" if any(isinstance(a, dict) and a.get("id") == approval_id for a in pending) else "unknown"

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


@dataclass
class AgentSession:
    """One agent's session as its enforcement point keeps it: identity, what it still holds, its taint."""

    agent_id: str
    role: str = ""
    permissions: set[str] = field(default_factory=set)
    """Granted permissions; removed ones are taken out here for the rest of the session."""
    tenant: str = ""
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    injection_flags: set[str] = field(default_factory=set)
    """What the product's detector found in tool outputs since the last call: sent with the next call
    (the call those outputs may have steered), then cleared; the decision point remembers that
    untrusted content entered the session."""
    flag_history: list[str] = field(default_factory=list)
    """Every flag the detector raised in this session, in order."""
    removed: set[str] = field(default_factory=set)
    isolated: dict[str, Any] | None = None
    """The decision that isolated the session, once one has."""
    decisions: list[dict[str, Any]] = field(default_factory=list)
    """Every decision this session got, in order (bounded by the session's length)."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


Describe = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]
"""(tool name, arguments) -> extra request parts: ``resource``, ``destination``, ``delegate``, ``tool_kind``."""


def default_describe(tool: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """Request parts read off common argument names: ``url`` -> destination, ``path`` -> resource.

    A deployment that knows more (a data catalogue's classification, a delegate's
    permissions) passes its own ``describe``.
    """
    out: dict[str, Any] = {}
    url = args.get("url")
    if isinstance(url, str) and url:
        out["destination"] = {"url": url[:4096], "host": (urlsplit(url).hostname or "")[:255]}
    path = args.get("path")
    if isinstance(path, str) and path:
        out["resource"] = {"path": path[:4096]}
    return out


class ToolGate:
    """Asks the decision point about one call and applies the answer to the session.

    Shared by the LangChain wrapper and usable on its own by any other runtime.
    """

    def __init__(self, session: AgentSession, pdp: PDPClient, *, server: str = "",
                 describe: Describe = default_describe, approval_timeout_s: float = 60.0,
                 poll_interval_s: float = 0.25, on_decision: Callable[[str, dict[str, Any]], Any] | None = None,
                 scan_outputs: bool = True) -> None:
        self.session = session
        self.pdp = pdp
        self.server = server
        self.describe = describe
        self.approval_timeout_s = approval_timeout_s
        self.poll_interval_s = poll_interval_s
        self.on_decision = on_decision
        self.scan_outputs = scan_outputs

    def request(self, tool: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """The wire request for this call, as the session stands now."""
        s = self.session
        extra = dict(self.describe(tool, args) or {})
        request: dict[str, Any] = {
            "agent": {"id": s.agent_id, "tenant": s.tenant, "role": s.role, "permissions": sorted(s.permissions)},
            "tool": {"name": tool, "server": self.server, "args": dict(args)},
            "session": {"id": s.session_id, "injection_flags": sorted(s.injection_flags)},
        }
        kind = extra.pop("tool_kind", None)
        if kind:
            request["tool"]["kind"] = kind
        for part in ("resource", "destination", "delegate", "confidence"):
            if extra.get(part) is not None:
                request[part] = extra[part]
        return request

    def check(self, tool: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Return the ``allow`` decision, or raise ``ToolCallDenied`` / ``AgentIsolated``."""
        s = self.session
        if s.isolated is not None:
            raise AgentIsolated(tool, s.isolated)
        with s._lock:
            request = self.request(tool, args)
            s.injection_flags.clear()
        decision = self._ask(request)
        if decision["decision"] == "require_approval":
            decision = self._await_approval(tool, request, decision)
        return self._apply(tool, decision)

    def observe(self, tool: str, output: Any) -> None:
        """Scan what the tool returned; flags travel with the session's next call."""
        if not self.scan_outputs:
            return
        text = output if isinstance(output, str) else str(getattr(output, "content", output))
        flags = scan_text(text[:_MAX_SCAN])
        if flags:
            named = [f"{tool}_output:{flag}" for flag in flags]
            with self.session._lock:
                self.session.injection_flags.update(named)
                self.session.flag_history.extend(named)

    # ---- internals --------------------------------------------------------------------------

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            decision = self.pdp.decide(request)
            if not isinstance(decision, dict) or decision.get("decision") not in DECISIONS:
                raise PDPUnavailable("decision point answered without a known decision")
        except PDPUnavailable as exc:
            # Fail closed: no decision is a deny.
            decision = {"decision_id": "", "decision": "deny", "reasons": [f"deny: {exc}"],
                        "risk": {"score": 1.0, "level": "critical", "contributions": []},
                        "obligations": {"remove_permissions": [], "ttl_s": None}}
        self.session.decisions.append(decision)
        return decision

    def _await_approval(self, tool: str, request: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
        approval_id = decision.get("approval_id")
        if not approval_id:
            raise ToolCallDenied(tool, decision, "approval required, but the decision names no approval")
        ttl = (decision.get("obligations") or {}).get("ttl_s")
        wait = min(self.approval_timeout_s, float(ttl)) if isinstance(ttl, (int, float)) and ttl > 0 \
            else self.approval_timeout_s
        deadline = time.monotonic() + wait
        while True:
            status = self.pdp.approval_status(approval_id)
            if status in ("closed", "rejected", "expired", "used"):
                raise ToolCallDenied(tool, decision, f"approval {approval_id} was not granted ({status})")
            if status != "pending":
                # Approved, or the client cannot tell: the identical call is allowed once when approved,
                # names the same approval while it is pending, and opens another when it was refused.
                again = self._ask(request)
                if again["decision"] != "require_approval":
                    return again
                if again.get("approval_id") != approval_id:
                    raise ToolCallDenied(tool, again, f"approval {approval_id} was not granted")
            if time.monotonic() >= deadline:
                raise ToolCallDenied(tool, decision, f"no approval within {wait:g} s (approval {approval_id})")
            # Asking again is a decision in the audit: do it at most once a second.
            pause = self.poll_interval_s if status == "pending" else max(self.poll_interval_s, 1.0)
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))

    def _apply(self, tool: str, decision: dict[str, Any]) -> dict[str, Any]:
        s = self.session
        outcome = decision["decision"]
        if outcome in ("remove_permissions", "isolate_agent") and self.on_decision is not None:
            self.on_decision(s.agent_id, decision)
        if outcome == "allow":
            return decision
        if outcome == "remove_permissions":
            dropped = set((decision.get("obligations") or {}).get("remove_permissions") or ())
            with s._lock:
                s.permissions -= dropped
                s.removed |= dropped
            raise ToolCallDenied(tool, decision, "permissions removed for the rest of the session: "
                                 f"{', '.join(sorted(dropped)) or 'none named'}")
        if outcome == "isolate_agent":
            s.isolated = decision
            raise AgentIsolated(tool, decision)
        raise ToolCallDenied(tool, decision)


def _error_message(error: ToolException) -> str:
    return str(error)


def guard_tool(tool: BaseTool, gate: ToolGate) -> BaseTool:
    """A tool with the same name, description and arguments that asks ``gate`` before ``tool`` runs."""

    def run(**kwargs: Any) -> Any:
        gate.check(tool.name, kwargs)
        output = tool.invoke(kwargs)
        gate.observe(tool.name, output)
        return output

    async def arun(**kwargs: Any) -> Any:
        # The check may wait for a person: keep it off the event loop.
        await asyncio.to_thread(gate.check, tool.name, kwargs)
        output = await tool.ainvoke(kwargs)
        gate.observe(tool.name, output)
        return output

    return StructuredTool.from_function(func=run, coroutine=arun, name=tool.name, description=tool.description,
                                        args_schema=tool.args_schema, infer_schema=False,
                                        return_direct=tool.return_direct, handle_tool_error=_error_message)


def guard_tools(tools: Iterable[BaseTool], session: AgentSession, pdp: PDPClient, **gate_options: Any
                ) -> list[BaseTool]:
    """``guard_tool`` for each tool, all sharing one ``ToolGate`` (and so one session)."""
    gate = ToolGate(session, pdp, **gate_options)
    return [guard_tool(tool, gate) for tool in tools]
