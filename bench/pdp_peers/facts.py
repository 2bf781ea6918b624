"""The flat context both peers evaluate: the facts our engine derives, computed here outside the timing."""

from __future__ import annotations

from typing import Any

RANK = {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}


class PeerSession:
    """The session memory the peers cannot keep, kept here so their rules see the same facts."""

    def __init__(self, known_hosts: set[str]) -> None:
        self.max_rank: dict[str, int] = {}
        self.untrusted: dict[str, bool] = {}
        self.seen: dict[str, set[str]] = {}
        self.known = set(known_hosts)

    def flat_context(self, policy: Any, request: dict[str, Any]) -> dict[str, Any]:
        """The request flattened, with every fact a shipped rule reads (conjunctions precomputed)."""
        agent, tool = request["agent"], request["tool"]
        resource = request.get("resource") or {}
        dest = request.get("destination") or {}
        sid = request["session"]["id"]
        spec = policy.tool(tool["name"], tool.get("server", ""))
        kind = spec.kind if spec else (tool.get("kind") or "other")
        rank = RANK.get(resource.get("classification") or "", -1)
        entitled_roles = policy.entitlements.get(resource.get("classification") or "")
        entitled = entitled_roles is None or agent.get("role") in entitled_roles
        host = dest.get("host", "")
        injected = bool(request["session"].get("injection_flags"))
        max_rank = self.max_rank.get(sid, -1)
        untrusted = self.untrusted.get(sid, False) or injected
        new = bool(host) and host not in self.known and host not in self.seen.get(sid, set())
        args = tool.get("args") or {}
        command = str(args.get("command", ""))
        missing = [p for p in (spec.requires if spec else []) if p not in agent.get("permissions", [])]
        ctx = {
            "tool_name": tool["name"], "tool_kind": kind, "role": agent.get("role", ""),
            "classification": resource.get("classification") or "", "rank": rank, "entitled": entitled,
            "dest_host": host, "dest_url": dest.get("url", ""), "dest_new": new, "injected": injected,
            "untrusted": untrusted, "max_rank": max_rank, "path": resource.get("path", ""), "command": command,
            "missing_permission": bool(missing),
            # Conjunctions AGT cannot write (one condition per rule): precomputed, one field per shipped rule.
            "restricted_unentitled": kind in ("retrieval", "file_read", "db_read") and rank == 3 and not entitled,
            "confidential_unentitled": kind in ("retrieval", "file_read", "db_read") and rank == 2 and not entitled,
            "shell_after_injection": kind in ("shell", "code_exec") and (injected or untrusted),
            "restricted_then_new_host": kind == "http" and max_rank == 3 and new,
            "confidential_then_new_host": kind == "http" and max_rank >= 2 and new,
            "injected_outbound_sensitive": kind == "http" and injected and max_rank >= 1,
            "plaintext_after_sensitive": kind == "http" and max_rank >= 1 and dest.get("url", "").startswith("http://"),
            "delegation_escalates": kind == "delegation" and bool(request.get("delegate")),
        }
        # The memory update our engine does after an allowed call (approximated: every call counts).
        if rank > max_rank:
            self.max_rank[sid] = rank
        if untrusted or resource.get("source") in ("web", "email", "external", "upload", "ticket"):
            self.untrusted[sid] = True
        if host:
            self.seen.setdefault(sid, set()).add(host)
        return ctx
