"""The decision point: one tool call in, one graded decision out, in microseconds.

``PDP.decide(request)``, in order (each step can only make the decision
stricter: allow < require_approval < deny < remove_permissions < isolate_agent):

1. an isolated session or agent gets ``isolate_agent`` until a person lifts it;
2. built-in floors the policy cannot loosen: the tool needs a permission the
   agent was never granted, or one removed from this session -> ``deny``;
3. the policy's ordered rules: the first whose condition holds decides;
4. the policy's weighted signals: the fired ones are summed (capped at 1)
   into the risk score; its level maps to a decision through the policy's
   enforcement table;
5. a ``require_approval`` looks for an approval of this exact call: granted
   and unexpired -> ``allow`` (used up); expired -> ``deny``; otherwise one
   is opened (or the pending one named again).

Then the session's memory is updated (what was read and contacted, only when
the call runs; injection flags always) and the decision, with its redacted
input, is handed to the audit.

Conditions (CEL) read these variables, built once per call by ``_facts``:

* ``agent``: ``id``, ``tenant``, ``role``, ``permissions`` (granted minus removed)
* ``tool``: ``name``, ``server``, ``kind`` (from the policy's tool table), ``requires``, ``args``
* ``resource``: ``classification``, ``rank`` (0 public .. 3 restricted, -1 none), ``path``,
  ``source``, ``untrusted_source``, ``entitled`` (the role may read this classification)
* ``destination``: ``host``, ``url``, ``new`` (neither this session nor the organisation
  used it before), ``intel`` (on the product's watchlist)
* ``session``: ``id``, ``injection_flags`` (the client's and the product's detector's over
  the string arguments), ``injected`` (flags now), ``untrusted`` (untrusted content entered
  earlier), ``max_rank`` / ``max_classification`` (highest read so far), ``destinations``,
  ``kinds`` (preceding calls' tool kinds), ``calls``, ``approvals``
* ``call``: ``command`` (a shell tool's command line, whatever its argument is called),
  ``destructive_sql``, ``missing_permissions``, ``delegate_extra_permissions``
  (what a delegate holds that the caller does not), ``delegate_known`` (the policy lists it)
* ``confidence`` (-1.0 when the agent gives none)
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cel
from pydantic import ValidationError

from soc_agent.llm.injection import scan_text
from soc_agent.pdp.approvals import ApprovalBook, ApprovalError, call_hash
from soc_agent.pdp.celfast import CelError, Unsupported, compile_fast
from soc_agent.pdp.intel import WatchlistIntel
from soc_agent.pdp.models import (
    CLASSIFICATIONS,
    DECISIONS,
    Contribution,
    DecideRequest,
    Decision,
    Obligations,
    Risk,
)
from soc_agent.pdp.policy import TOOL_KINDS, Policy, Rule, Signal, load_policy
from soc_agent.pdp.session import Isolation, SessionMemory

__all__ = ["PDP", "RequestError"]

_STRICT = {name: rank for rank, name in enumerate(DECISIONS)}
_RANK = {name: rank for rank, name in enumerate(CLASSIFICATIONS)}
# DROP / TRUNCATE anywhere, or a DELETE / UPDATE with no WHERE clause after it.
_DESTRUCTIVE_SQL = re.compile(
    r"\b(drop\s+(table|database|schema|index|view)|truncate)\b|\bdelete\s+from\s+[^\s;]+\s*(;|$)"
    r"|\bupdate\s+[^\s;]+\s+set\b(?![^;]*\bwhere\b)", re.IGNORECASE)
_MAX_SCAN_STRINGS = 64
_COMMAND_KEYS = ("command", "cmd", "commandline", "command_line", "script", "shell")
"""Argument names a shell tool's command line goes by (``call.command``)."""


class RequestError(ValueError):
    """A request that does not fit the wire contract (the HTTP API answers 422 with this text)."""


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        if len(out) < _MAX_SCAN_STRINGS:
            out.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _strings(item, out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _strings(item, out)


def _strictest(a: str, b: str) -> str:
    return a if _STRICT[a] >= _STRICT[b] else b


class _Compiled:
    """The policy with every condition compiled once and rules/signals indexed by tool kind."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        programs: dict[str, Any] = {}

        def program(source: str | None) -> Any:
            if source is None:
                return None
            if source not in programs:
                programs[source] = cel.compile(source)
            return programs[source]

        def fast(source: str | None) -> Any:
            if source is None:
                return None
            try:
                return compile_fast(source)
            except Unsupported:
                return None

        def by_kind(items: list[Any]) -> dict[str, tuple[tuple[Any, Any, Any], ...]]:
            compiled = [(item, fast(item.when), program(item.when)) for item in items]
            return {kind: tuple(c for c in compiled if not c[0].kinds or kind in c[0].kinds) for kind in TOOL_KINDS}

        self.rules: dict[str, tuple[tuple[Rule, Any, Any], ...]] = by_kind(policy.rules)
        self.signals: dict[str, tuple[tuple[Signal, Any, Any], ...]] = by_kind(policy.signals)
        self.fallbacks = sorted({i.when for i in [*policy.rules, *policy.signals]
                                 if i.when is not None and fast(i.when) is None})
        """Conditions outside the fast subset (evaluated by the CEL binding, with its per-call context cost)."""
        self.contribution = {s.name: Contribution(signal=s.name, weight=s.weight, value=s.weight, why=s.why)
                             for s in policy.signals}
        """One immutable contribution per signal, shared by every decision it fires in."""
        self.entitled = {cls: frozenset(roles) for cls, roles in policy.entitlements.items()}
        self.known = frozenset(policy.known_destinations)
        self.untrusted_sources = frozenset(policy.untrusted_sources)
        self.agents = {agent: frozenset(perms) for agent, perms in policy.agents.items()}
        self.tool_cache: dict[tuple[str, str], tuple[str, tuple[str, ...]]] = {}
        self.redact_keys = tuple(k.lower() for k in policy.redact.keys)
        self.redact_patterns = tuple(re.compile(p) for p in policy.redact.patterns)

    def tool(self, name: str, server: str, hint: str | None) -> tuple[str, tuple[str, ...]]:
        """(kind, required permissions) of a tool; the client's hint only when the policy has no entry."""
        key = (server, name)
        found = self.tool_cache.get(key)
        if found is None:
            spec = self.policy.tool(name, server)
            found = (spec.kind, tuple(spec.requires)) if spec else ("other", ())
            if len(self.tool_cache) < 10_000:
                self.tool_cache[key] = found
        if found[0] == "other" and hint in TOOL_KINDS:
            return hint, found[1]
        return found


class PDP:
    """The decision point: a compiled policy, session memory, approvals and (optionally) the audit.

    Thread-safe: decisions are serialised by one lock (a decision is tens of
    microseconds; the HTTP server runs them on one thread anyway).
    """

    def __init__(self, policy: Policy, *, store: Any = None, audit: Any = None,
                 sessions: SessionMemory | None = None, clock: Callable[[], float] | None = None,
                 intel: Callable[[str, str], bool] | None = None) -> None:
        """``store``: a ``soc_agent.store.Store`` (approvals persisted, watchlist looked up);
        ``audit``: a ``soc_agent.pdp.audit.DecisionAudit`` (every decision recorded);
        ``clock``: seconds since the epoch (default ``time.time``); ``intel(tenant, host)``: a
        threat-intel lookup (default: the store's watchlist when a store is given)."""
        self._compiled = _Compiled(policy)
        limits = policy.session
        self.sessions = sessions or SessionMemory(limits.max_sessions, limits.ttl_s, limits.max_calls,
                                                  limits.max_destinations, limits.max_known_hosts)
        self.store = store
        self.audit = audit
        self.clock = clock or time.time
        self.approvals = ApprovalBook(store.engine if store is not None else None)
        if intel is None and store is not None:
            intel = WatchlistIntel(store.engine, self.clock)
        self.intel = intel
        self._scan_cache: dict[str, tuple[str, ...]] = {}
        self._lock = threading.RLock()
        self._id_prefix = uuid.uuid4().hex[:20]
        self._seq = 0

    @property
    def policy(self) -> Policy:
        """The policy in force."""
        return self._compiled.policy

    @classmethod
    def from_file(cls, path: str | Path, workdir: str | Path | None = None, **kwargs: Any) -> PDP:
        """A decision point for the policy file; with ``workdir`` its store, approvals and audit live there."""
        policy = load_policy(path)
        if workdir is None:
            return cls(policy, **kwargs)
        # deferred: import cycle (soc_agent.pdp.audit imports this module); a memory-only engine needs no store
        from soc_agent.pdp.audit import open_workdir, restore_isolations

        store, audit = open_workdir(Path(workdir))
        engine = cls(policy, store=store, audit=audit, **kwargs)
        restore_isolations(engine)
        return engine

    def close(self) -> None:
        """Write what the audit still holds and sign its head."""
        if self.audit is not None:
            self.audit.close()

    # ---- deciding ------------------------------------------------------------------------

    def decide(self, request: dict | DecideRequest) -> Decision:
        """Decide one tool call; ``RequestError`` when it does not fit the wire contract."""
        req = self.parse(request)
        with self._lock:
            return self._decide(req, self.clock())

    @staticmethod
    def parse(request: dict | DecideRequest) -> DecideRequest:
        """The request validated against the wire contract."""
        if isinstance(request, DecideRequest):
            return request
        try:
            return DecideRequest.model_validate(request)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}"
                                 for e in exc.errors()[:5])
            raise RequestError(f"bad request: {problems}") from None

    def _decide(self, req: DecideRequest, now: float, decision_id: str | None = None,
                logged: dict[str, Any] | None = None) -> Decision:
        """The decision at ``now``. ``decision_id`` and ``logged`` (facts recorded from outside
        sources: the detector's flags, the intel hit, the call hash) are given by replay only."""
        comp = self._compiled
        policy = comp.policy
        if decision_id is None:
            # A random prefix per engine and a counter: unique, and cheaper than a uuid per call.
            self._seq += 1
            decision_id = f"{self._id_prefix}{self._seq:012x}"
        agent, tool, session = req.agent, req.tool, req.session
        sid = session.id
        if self.audit is not None and self.audit.error is not None:
            return self._fail_closed(decision_id, req, "the audit cannot be written: nothing runs unrecorded")

        isolated = self.sessions.isolation(sid, agent.id)
        state = self.sessions.get(sid, now)
        kind, requires = comp.tool(tool.name, tool.server, tool.kind)

        if logged is not None:
            detected = list(logged.get("detected", ()))
            intel_hit = bool(logged.get("intel", False))
            digest = logged.get("call_hash") or call_hash(agent.id, tool.server, tool.name, tool.args)
        else:
            texts: list[str] = []
            _strings(tool.args, texts)
            detected = self._scan(texts)
            host = req.destination.host
            intel_hit = bool(host and self.intel is not None and self.intel(agent.tenant, host))
            digest = None

        if isolated is not None:
            # Whatever the isolated agent touches is cut off with it (lifted together: same event).
            self.sessions.isolate(sid, agent.id, isolated)
            decision = self._isolated(decision_id, isolated)
            self._after(req, state, kind, decision, digest, detected, intel_hit, now)
            return decision

        facts = self._facts(req, state, kind, requires, detected, intel_hit)
        ctx: list[Any] = []
        reasons: list[str] = []
        outcome = "allow"
        removes: list[str] = []

        missing = facts["call"]["missing_permissions"]
        if missing:
            removed = [p for p in missing if p in state.removed]
            if removed:
                reasons.append(f"deny: permission {', '.join(removed)} was removed from this session")
            never = [p for p in missing if p not in state.removed]
            if never:
                reasons.append(f"deny: {tool.name} needs {', '.join(never)}, which the agent was not granted")
            outcome = "deny"

        for rule, fast, program in comp.rules[kind]:
            if program is not None and not _holds(fast, program, facts, ctx):
                continue
            outcome = _strictest(outcome, rule.decision)
            reasons.append(f"{rule.decision}: rule {rule.name}: {rule.reason}" if rule.reason
                           else f"{rule.decision}: rule {rule.name}")
            if rule.decision == "remove_permissions":
                removes.extend(rule.remove_permissions)
            break

        contributions: list[Contribution] = []
        total = 0.0
        signal_removes: list[str] = []
        for signal, fast, program in comp.signals[kind]:
            if _holds(fast, program, facts, ctx):
                total += signal.weight
                contributions.append(comp.contribution[signal.name])
                signal_removes.extend(signal.removes)
        score = round(total, 6)
        if score > 1.0:
            contributions.append(Contribution(signal="cap", weight=0.0, value=round(1.0 - score, 6),
                                              why="the score is capped at 1"))
            score = 1.0
        level = policy.levels.of(score)
        by_risk = getattr(policy.enforcement, level)
        if by_risk == "remove_permissions" and not signal_removes:
            by_risk = policy.enforcement.high_without_permissions
        if by_risk != "allow":
            reasons.append(f"{by_risk}: risk {score:.2f} is {level}")
            if by_risk == "remove_permissions":
                removes.extend(signal_removes)
        outcome = _strictest(outcome, by_risk)

        approval_id = None
        ttl_s = None
        used_approval = False
        if outcome == "require_approval":
            digest = digest or call_hash(agent.id, tool.server, tool.name, tool.args)
            outcome, approval_id, ttl_s = self._approval(req, digest, decision_id, now, reasons)
            used_approval = outcome == "allow"  # a person's approval of this exact call let it through
        elif outcome == "remove_permissions":
            ttl_s = policy.remove_ttl_s or policy.session.ttl_s
        elif outcome == "isolate_agent":
            self.sessions.isolate(sid, agent.id, Isolation(reasons[-1] if reasons else "isolated", now, decision_id))

        if outcome == "allow" and not reasons:
            reasons.append("allow: no rule matched and the risk is low")
        removes = list(dict.fromkeys(removes)) if outcome == "remove_permissions" else []
        log = ["decision"]
        if outcome == "allow" and score > 0:
            log.append("monitor")
        # Validated construction: cheaper than model_construct in pydantic 2, and checked.
        decision = Decision(decision_id=decision_id, decision=outcome,
                            risk=Risk(score=score, level=level, contributions=contributions), reasons=reasons,
                            obligations=Obligations(remove_permissions=removes, ttl_s=ttl_s, log=log,
                                                    redact=self._redacted_keys(tool.args)),
                            approval_id=approval_id)
        self._after(req, state, kind, decision, digest, detected, intel_hit, now, used_approval)
        return decision

    def _approval(self, req: DecideRequest, digest: str, decision_id: str, now: float,
                  reasons: list[str]) -> tuple[str, str | None, int | None]:
        """(decision, approval id, ttl) for a call that needs a person."""
        book = self.approvals
        ttl = self.policy.approval_ttl_s
        found = book.for_call(digest)
        if found is not None:
            if found.expired(now):
                book.expire(found)
                reasons.append(f"deny: approval {found.id} for this exact call expired")
                return "deny", None, None
            if found.status == "approved":
                book.use(found, now, decision_id)
                reasons.append(f"allow: approved by {found.decided_by} (approval {found.id}, now used up)")
                return "allow", None, None
            reasons.append(f"require_approval: waiting for approval {found.id}")
            return "require_approval", found.id, max(1, int(found.expires_at - now))
        def row() -> dict[str, Any]:
            # Built only when a store keeps the approval (the web page and CLI show it).
            return {"agent_id": req.agent.id, "tenant": req.agent.tenant, "session_id": req.session.id,
                    "tool": f"{req.tool.server}/{req.tool.name}" if req.tool.server else req.tool.name,
                    "call": self._json(self.redact(req.model_dump(mode="json", exclude_none=True))),
                    "reasons": self._json(reasons)}
        book.open(decision_id, digest, now, ttl, row)
        return "require_approval", decision_id, ttl

    def _scan(self, texts: list[str]) -> list[str]:
        """The product's injection detector over the call's strings (results of short strings cached:
        agents repeat the same URLs, queries and paths, and the detector's regexes cost microseconds)."""
        if not texts:
            return []
        cache = self._scan_cache
        found: set[str] = set()
        for text in texts:
            hit = cache.get(text)
            if hit is None:
                hit = tuple(scan_text(text))
                if len(text) <= 2048:
                    if len(cache) >= 8192:
                        cache.clear()
                    cache[text] = hit
            found.update(hit)
        return sorted(found) if found else []

    def _after(self, req: DecideRequest, state: Any, kind: str, decision: Decision, digest: str | None,
               detected: list[str], intel_hit: bool, now: float, used_approval: bool = False) -> None:
        """Update the session's memory and record the decision (``used_approval``: a person's approval
        turned this call's require_approval into its allow; the session counts those)."""
        sessions = self.sessions
        if req.session.injection_flags or detected:
            state.untrusted = True
        outcome = decision.decision
        if outcome == "allow":
            rank = _RANK.get(req.resource.classification or "", -1)
            state.max_rank = max(state.max_rank, rank)
            if kind == "retrieval" and req.resource.source in self._compiled.untrusted_sources:
                state.untrusted = True
            host = req.destination.host
            if host:
                sessions.add_destination(state, host)
                sessions.learn_host(req.agent.tenant, host)
            if used_approval:
                state.approvals += 1
        elif outcome == "remove_permissions":
            state.removed = state.removed | frozenset(decision.obligations.remove_permissions)
        state.calls.append((req.tool.name, kind, outcome))
        if self.audit is not None:
            digest = digest or call_hash(req.agent.id, req.tool.server, req.tool.name, req.tool.args)
            self.audit.record("pdp.decision", {
                "ts": now, "request": self.redact(req.model_dump(mode="json", exclude_none=True)),
                "decision": decision.to_dict(), "call_hash": digest, "detected": detected, "intel": intel_hit})

    def _facts(self, req: DecideRequest, state: Any, kind: str, requires: tuple[str, ...],
               detected: list[str], intel_hit: bool) -> dict[str, Any]:
        comp = self._compiled
        agent, tool, resource, dest = req.agent, req.tool, req.resource, req.destination
        granted = set(agent.permissions) - state.removed
        classification = resource.classification or ""
        rank = _RANK.get(classification, -1)
        host = dest.host
        new_host = bool(host) and host not in state.destinations and host not in comp.known \
            and not self.sessions.known_host(agent.tenant, host)
        flags = sorted(set(req.session.injection_flags) | set(detected))
        entitled_roles = comp.entitled.get(classification)
        destructive = False
        if kind in ("db_write", "db_read", "other"):
            texts: list[str] = []
            _strings(tool.args, texts)
            destructive = any(_DESTRUCTIVE_SQL.search(t) for t in texts)
        extra: list[str] = []
        known = None
        if req.delegate is not None:
            known = comp.agents.get(req.delegate.id)
            delegate_perms = known if known is not None else frozenset(req.delegate.permissions)
            extra = sorted(delegate_perms - set(agent.permissions))
        command = ""
        for key in _COMMAND_KEYS:
            value = tool.args.get(key)
            if isinstance(value, str):
                command = value
                break
        return {
            "agent": {"id": agent.id, "tenant": agent.tenant, "role": agent.role, "permissions": sorted(granted)},
            "tool": {"name": tool.name, "server": tool.server, "kind": kind, "requires": list(requires),
                     "args": tool.args},
            "resource": {"classification": classification, "rank": rank, "path": resource.path,
                         "source": resource.source,
                         "untrusted_source": resource.source in comp.untrusted_sources,
                         "entitled": entitled_roles is None or agent.role in entitled_roles},
            "destination": {"host": host, "url": dest.url, "new": new_host, "intel": intel_hit},
            "session": {"id": req.session.id, "injection_flags": flags, "injected": bool(flags),
                        "untrusted": state.untrusted, "max_rank": state.max_rank,
                        "max_classification": CLASSIFICATIONS[state.max_rank] if state.max_rank >= 0 else "",
                        "destinations": list(state.destinations), "kinds": [c[1] for c in state.calls],
                        "calls": len(state.calls), "approvals": state.approvals},
            "call": {"destructive_sql": destructive, "command": command,
                     "missing_permissions": [p for p in requires if p not in granted],
                     "delegate_extra_permissions": extra, "delegate_known": known is not None},
            "confidence": float(req.confidence) if req.confidence is not None else -1.0,
        }

    def _isolated(self, decision_id: str, why: Isolation) -> Decision:
        return Decision(decision_id=decision_id, decision="isolate_agent",
                        risk=Risk(score=1.0, level="critical", contributions=[
                            Contribution(signal="isolated", weight=1.0, value=1.0,
                                         why="the session or agent is isolated until a person lifts it")]),
                        reasons=[f"isolate_agent: isolated since decision {why.decision_id}: {why.reason}"],
                        obligations=Obligations(log=["decision"]))

    def _fail_closed(self, decision_id: str, req: DecideRequest, why: str) -> Decision:
        return Decision(decision_id=decision_id, decision="deny",
                        risk=Risk(score=1.0, level="critical", contributions=[
                            Contribution(signal="fail_closed", weight=1.0, value=1.0, why=why)]),
                        reasons=[f"deny: {why}"], obligations=Obligations(log=["decision"]))

    # ---- people ----------------------------------------------------------------------------

    def approve(self, approval_id: str, who: str, *, approved: bool = True) -> dict[str, Any]:
        """A person approves (or rejects) the call behind ``approval_id``; audited with who and when."""
        with self._lock:
            now = self.clock()
            found = self.approvals.decide(approval_id, who, approved, now)
            event = {"ts": now, "action": "approve" if approved else "reject", "approval_id": found.id,
                     "call_hash": found.call_hash, "who": who}
            if self.audit is not None:
                self.audit.record("pdp.approval", event)
            return event

    def approval_status(self, approval_id: str) -> str:
        """``pending``, ``approved``, ``rejected``, ``used``, ``expired`` or ``unknown``; read from the store
        while pending, so an approval given in another process shows."""
        with self._lock:
            return self.approvals.status(approval_id, self.clock())

    def reject(self, approval_id: str, who: str) -> dict[str, Any]:
        """A person refuses the call behind ``approval_id``."""
        return self.approve(approval_id, who, approved=False)

    def lift(self, agent_or_session: str, who: str) -> bool:
        """A person lifts the isolation of an agent or session; audited. False when nothing was isolated."""
        if not who:
            raise ApprovalError("lifting an isolation names who lifted it")
        with self._lock:
            now = self.clock()
            lifted = self.sessions.lift(agent_or_session)
            if lifted and self.audit is not None:
                self.audit.record("pdp.lift", {"ts": now, "key": agent_or_session, "who": who})
            return lifted

    # ---- redaction -------------------------------------------------------------------------

    def redact(self, value: Any) -> Any:
        """``value`` with the policy's secret keys and patterns replaced by ``[redacted]``."""
        comp = self._compiled
        if isinstance(value, dict):
            return {k: "[redacted]" if any(s in str(k).lower() for s in comp.redact_keys) else self.redact(v)
                    for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        if isinstance(value, str):
            for pattern in comp.redact_patterns:
                value = pattern.sub("[redacted]", value)
        return value

    def _redacted_keys(self, args: dict[str, Any]) -> list[str]:
        keys = self._compiled.redact_keys
        return [k for k in args if any(s in k.lower() for s in keys)]

    @staticmethod
    def _json(value: Any) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def _holds(fast: Any, program: Any, facts: dict[str, Any], ctx: list[Any]) -> bool:
    """Whether a condition holds; one that cannot be evaluated counts as holding (fail closed)."""
    if fast is not None:
        try:
            return fast(facts) is True
        except CelError:
            return True
    if not ctx:
        # The binding's context costs tens of microseconds: built once per call, only when needed.
        ctx.append(cel.Context(facts))
    try:
        return program.execute(ctx[0]) is True
    except Exception:  # noqa: BLE001 - the binding raises its own error types
        return True
