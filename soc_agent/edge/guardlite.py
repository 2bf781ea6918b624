"""The guard policy, compiled once for the edge's hot path.

``compile_policy`` runs the real :func:`soc_agent.guard.decide` (in the CLI
process, before the sensor starts) on a ``block_ip`` proposal with the edge's
context: that settles every check that does not depend on the address or on
the moment (capability grants, kill switch, the contain_soft tier's bars,
policy rules, run mode). What does depend on them is kept as data and
checked per decision by :class:`EdgeGuard`, in microseconds and without
pydantic or CEL: never-block ranges (the same rules as
``guard._never_block_reason``), allowlisted addresses, the block-rate limit
and the TTL cap. ``tests/soc_agent/edge/test_edge_guard.py`` checks that the
two agree over a cross product of addresses, block counts and TTLs.

Policy rules whose CEL refers to ``target`` cannot be settled ahead of time;
``compile_policy`` lists them in ``target_rules`` and the edge then refuses to
act autonomously (every block needs the server), rather than guess.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
from collections import deque
from pathlib import Path
from typing import Any

from soc_agent.wording import a_or_an

EDGE_RULE = "brute_force_threshold"
"""The detector rule id the edge's threshold stands for (scopes allowlist entries)."""
EDGE_CLASS = "brute_force"
"""The incident class of the edge's threshold blocks, for earned autonomy."""
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_PROBE = "203.0.113.254"
ALLOW, NEEDS_APPROVAL, DENY = "allow", "needs_approval", "deny"


def edge_policy(policy):
    """The policy as the edge applies it to its threshold blocks (class ``EDGE_CLASS``).

    Those blocks are local decision authority (DESIGN.md): a supervised install (no autonomy file) still lets
    them run; an autonomy file decides the class as it says.
    """
    if policy.autonomy is not None:
        return policy
    return policy.model_copy(update={"autonomy": {EDGE_CLASS: "autonomous"}})


def compile_policy(policy_path: Path, allowlist_path: Path | None = None, *, confidence: float = 0.9,
                   independent_evidence: int = 1, mode: str | None = None) -> dict[str, Any]:
    """The edge's view of ``policy.yml`` (+ ``allowlists.yml``): settled outcome and per-address data."""
    # deferred: the edge sensor imports this module for EdgeGuard; the guard, pydantic, CEL and yaml stay out of
    # its memory (compiling runs in the CLI process)
    from soc_agent.config_file import read_yaml
    from soc_agent.guard import GuardContext, decide
    from soc_agent.policy import load_policy
    from soc_agent.types import (
        Entity,
        EntityKind,
        Outcome,
        ProposedAction,
        RunMode,
        Tier,
        Verdict,
    )

    policy = load_policy(policy_path)
    run_mode = RunMode(mode) if mode else policy.mode
    policy = edge_policy(policy)
    # With no never-block ranges at all, the probe's decision is the address-independent part.
    neutral = policy.model_copy(update={"block": policy.block.model_copy(
        update={"never_block_private": False, "own_ranges": []})})
    action = ProposedAction(name="block_ip", tier=Tier.CONTAIN_SOFT, capability="firewall.block",
                            target=Entity(kind=EntityKind.IP, value=_PROBE, role="src"),
                            params={"ttl_seconds": policy.block.default_ttl_s})
    ctx = GuardContext(verdict=Verdict.TRUE_POSITIVE, confidence=confidence, independent_evidence=independent_evidence,
                       mode=run_mode, incident_class=EDGE_CLASS)
    base = decide(action, ctx, neutral)
    allowlist = []
    if allowlist_path is not None and allowlist_path.exists():
        doc = read_yaml(allowlist_path)
        entries = doc.data or []
        if not isinstance(entries, list):
            raise doc.error.at(doc.file, 1, "expected a list of entries")
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict) or "value" not in entry:
                raise doc.fail((index,), "an allowlist entry needs a kind and a value")
            if entry.get("kind") == "ip" and (not entry.get("rules") or EDGE_RULE in entry["rules"]):
                allowlist.append([str(entry["value"]), str(entry.get("reason", "allowlisted"))])
    return {
        "base_outcome": str(base.outcome), "base_reasons": base.reason_lines, "mode": str(run_mode),
        # The reason the edge quotes when the settled outcome is a deny or needs a person (EdgeGuard.judge).
        "deny_reason": next((str(r) for r in base.reasons_for(Outcome.DENY)), "deny"),
        "approval_reason": next((str(r) for r in base.reasons_for(Outcome.NEEDS_APPROVAL)),
                                "policy rules need the server"),
        "confidence": confidence, "independent_evidence": independent_evidence,
        "own_ranges": list(policy.block.own_ranges), "allow_blocking": list(policy.block.allow_blocking),
        "never_block_private": policy.block.never_block_private,
        "default_ttl_s": policy.block.default_ttl_s, "max_ttl_s": policy.block.max_ttl_s,
        "max_blocks": policy.block.max_blocks, "rate_window_s": policy.block.rate_window_s,
        "target_rules": [r.name for r in policy.rules if "target" in r.when],
        "allowlist": allowlist, "policy_path": str(policy_path),
    }


def write_compiled(compiled: dict[str, Any], path: Path) -> None:
    """Write the compiled policy atomically (the sensor may be reading the previous one)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(compiled, indent=1))
    tmp.replace(path)


class EdgeGuard:
    """Per-decision checks on the compiled policy; the verdicts are the guard's own words."""

    def __init__(self, compiled: dict[str, Any]) -> None:
        self.compiled = compiled
        self.base_outcome = compiled["base_outcome"]
        if compiled.get("target_rules"):
            self.base_outcome = NEEDS_APPROVAL
        self.shadow = compiled["mode"] == "shadow"
        self._own = [ipaddress.ip_network(c, strict=False) for c in compiled["own_ranges"]]
        self._allow_blocking = [ipaddress.ip_network(c, strict=False) for c in compiled["allow_blocking"]]
        self._private = compiled["never_block_private"]
        self.default_ttl, self.max_ttl = compiled["default_ttl_s"], compiled["max_ttl_s"]
        self.max_blocks, self.rate_window = compiled["max_blocks"], compiled["rate_window_s"]
        self._allow_exact: dict[str, str] = {}
        self._allow_nets: list[tuple[Any, str]] = []
        for value, reason in compiled.get("allowlist", []):
            self.allow(value, reason)
        self._never: dict[str, str | None] = {}
        self.block_times: deque[float] = deque()
        """When recent blocks were made (the rate limit's window)."""

    # ---- allowlist (local file, and entries pulled from the server) ---------------------------

    def allow(self, value: str, reason: str) -> None:
        """Add an allowlist entry: an address or a CIDR."""
        if "/" in value:
            self._allow_nets.append((ipaddress.ip_network(value, strict=False), reason))
        else:
            self._allow_exact[_canon(value) or value] = reason

    def unallow(self, value: str) -> None:
        """Remove an allowlist entry added earlier."""
        if "/" in value:
            net = ipaddress.ip_network(value, strict=False)
            self._allow_nets = [(n, r) for n, r in self._allow_nets if n != net]
        else:
            self._allow_exact.pop(_canon(value) or value, None)

    def allowlisted(self, ip: str) -> str | None:
        """The allowlist reason vouching for ``ip``, or None."""
        hit = self._allow_exact.get(ip)
        if hit is not None or not self._allow_nets:
            return hit
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for net, reason in self._allow_nets:
            if addr.version == net.version and addr in net:
                return reason
        return None

    # ---- the checks ---------------------------------------------------------------------------

    def never_block_reason(self, value: str) -> str | None:
        """``guard._never_block_reason`` on the compiled ranges, memoised per address."""
        cached = self._never.get(value, False)
        if cached is not False:
            return cached
        reason = self._never_block(value)
        if len(self._never) > 65536:
            self._never.clear()
        self._never[value] = reason
        return reason

    def _never_block(self, value: str) -> str | None:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return f"{value!r} is not an IP address"
        for net in self._own:
            if address.version == net.version and address in net:
                return f"{value} is in our own range {net}"
        for net in self._allow_blocking:
            if address.version == net.version and address in net:
                return None
        if self._private and address in _CGNAT:
            return f"{value} is a carrier-grade NAT (shared) address"
        if self._private:
            for label, hit in (
                ("private", address.is_private), ("loopback", address.is_loopback),
                ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                ("reserved", address.is_reserved), ("unspecified", address.is_unspecified),
            ):
                if hit:
                    return f"{value} is {a_or_an(label)} address"
        return None

    def recent_blocks(self, now: float) -> int:
        """Blocks made within the rate window ending at ``now``."""
        times = self.block_times
        while times and now - times[0] > self.rate_window:
            times.popleft()
        return len(times)

    def judge(self, ip: str, ttl: int, now: float) -> tuple[str, int, str]:
        """(outcome, effective TTL, reason) for blocking ``ip`` for ``ttl`` seconds at ``now``.

        Strictest wins, as in the guard: deny (settled policy, never-block), then
        needs_approval (allowlisted, rate limit); ``allow`` means block now (shadow
        mode is the caller's concern: ``self.shadow``).
        """
        if self.base_outcome == DENY:
            return DENY, 0, self.compiled["deny_reason"]
        reason = self.never_block_reason(ip)
        if reason:
            return DENY, 0, f"never block: {reason}"
        if self.base_outcome == NEEDS_APPROVAL:
            return NEEDS_APPROVAL, 0, self.compiled["approval_reason"]
        allowed = self.allowlisted(ip)
        if allowed:
            return NEEDS_APPROVAL, 0, f"target is allowlisted ({allowed})"
        recent = self.recent_blocks(now)
        if recent >= self.max_blocks:
            return NEEDS_APPROVAL, 0, (f"block rate limit: {recent} blocks in {self.rate_window}s "
                                       f"(max {self.max_blocks})")
        if ttl <= 0:
            return ALLOW, self.default_ttl, "no valid TTL given: defaulted"
        if ttl > self.max_ttl:
            return ALLOW, self.max_ttl, f"TTL {ttl}s capped to {self.max_ttl}s"
        return ALLOW, ttl, "allowed"

    def record_block(self, now: float) -> None:
        """Count a block made at ``now`` towards the rate limit."""
        self.block_times.append(now)


def _canon(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def load_compiled(path: Path) -> dict[str, Any]:
    """Read a compiled policy written by :func:`write_compiled`."""
    return json.loads(Path(path).read_text())


def main(argv: list[str] | None = None) -> int:
    """``python -m soc_agent.edge.guardlite POLICY OUT [--allowlist FILE] [--mode M]``."""
    ap = argparse.ArgumentParser(description="compile the guard policy for the edge sensor")
    ap.add_argument("policy", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--allowlist", type=Path, default=None)
    ap.add_argument("--mode", default=None)
    args = ap.parse_args(argv)
    write_compiled(compile_policy(args.policy, args.allowlist, mode=args.mode), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
