"""The shipped policy in Cedar, through ``cedarpy`` with pre-parsed handles.

Cedar has AND, so each shipped rule is one ``forbid`` over the context (the same
precomputed facts as AGT gets, plus the raw fields where Cedar can test them itself);
one ``permit`` allows the rest. Regex rules have no Cedar form (Cedar has ``like`` with
``*`` only): they are written with ``like`` where a glob fits and as a precomputed
boolean otherwise. No score, no graded outcome, no session memory: permit or forbid.
"""

from __future__ import annotations

import re
from typing import Any

AVAILABLE = True
try:
    import cedarpy
except ImportError:  # pragma: no cover - the peer is optional
    AVAILABLE = False

_PIPE = re.compile(r"(curl|wget)[^|]*[|][ ]*(ba|z)?sh")
_RMRF = re.compile(r"rm[ ]+-[a-zA-Z]*r[a-zA-Z]*[ ]+/")
_DESTRUCTIVE = re.compile(r"(?i)\b(drop|truncate)\b")

SHIPPED = [
    "context.missing_permission",
    'context.restricted_unentitled',
    'context.confidential_unentitled',
    'context.shell_after_injection',
    'context.restricted_then_new_host',
    'context.confidential_then_new_host',
    'context.tool_kind == "http" && context.injected && context.max_rank >= 1',
    'context.tool_kind == "http" && context.max_rank >= 1 && context.dest_url like "http://*"',
    "context.destructive_sql",
    "context.delegation_escalates",
    "context.pipe_to_shell",
    "context.recursive_delete",
    'context.path like "*/.ssh/*" || context.path like "*.env" || context.path like "*.pem"',
    'context.path like "/etc/*" || context.path like "/usr/*" || context.path like "/boot/*"',
    "context.ip_literal && context.dest_new",
    '["evil.example", "c2.example"].contains(context.dest_host)',
    'context.untrusted && context.rank >= 2 && context.tool_kind == "db_write"',
    'context.tool_kind == "db_write" && context.rank == 3',
    'context.tool_kind == "delegation" && context.injected',
    'context.tool_name == "never-a-tool"',
    'context.tool_name == "never-a-tool-2"',
    'context.tool_name == "never-a-tool-3"',
]


def build(extra: int = 0) -> Any:
    """(PolicySet, Entities) for the shipped rules plus ``extra`` generated ones."""
    parts = ["permit(principal, action, resource);"]
    for i in range(extra):
        cond = [f'context.tool_name == "tool_{i}"', f'context.dest_host == "blocked-{i}.example"',
                f'context.path like "/secret/{i}/*"'][i % 3]
        parts.append(f"@id(\"generated-{i}\")\nforbid(principal, action, resource) when {{ {cond} }};")
    for j, cond in enumerate(SHIPPED):
        parts.append(f"@id(\"shipped-{j}\")\nforbid(principal, action, resource) when {{ {cond} }};")
    return cedarpy.PolicySet.from_str("\n".join(parts)), cedarpy.Entities.from_json_str("[]")


def cedar_context(ctx: dict[str, Any]) -> dict[str, Any]:
    """Cedar's context: the flat facts plus the regex rules precomputed (Cedar has no regex)."""
    out = dict(ctx)
    out["pipe_to_shell"] = bool(_PIPE.search(ctx["command"]))
    out["recursive_delete"] = bool(_RMRF.search(ctx["command"]))
    out["destructive_sql"] = bool(_DESTRUCTIVE.search(ctx["command"]))
    out["ip_literal"] = bool(re.fullmatch(r"[0-9.]+", ctx["dest_host"]))
    return out


def request(ctx: dict[str, Any]) -> dict[str, Any]:
    """One Cedar request for an agent's tool call."""
    return {"principal": 'Agent::"a"', "action": f'Action::"{ctx["tool_kind"]}"', "resource": 'Tool::"t"',
            "context": ctx}


def decide(handles: Any, req: dict[str, Any]) -> str:
    """Cedar's decision for one request (``allow`` or ``deny``)."""
    policies, entities = handles
    return "allow" if cedarpy.is_authorized(req, policies, entities).allowed else "deny"
