"""Session memory: what each agent session has done so far, bounded and expiring.

A decision sees the session's taint: the highest classification it read,
whether untrusted content entered its context (injection flags, a retrieval
from an untrusted source), the destinations it contacted, its preceding
calls, the permissions removed from it and whether it is isolated.

Bounds: at most ``max_sessions`` sessions (least recently used forgotten
first), each forgotten after ``ttl_s`` idle; per session at most
``max_calls`` preceding calls and ``max_destinations`` destinations. A
session is one small ``__slots__`` object, so 100,000 live sessions cost a
few tens of megabytes.

Isolation and removed permissions outlive LRU eviction where it matters:
isolated sessions and agents are kept apart (never evicted, only lifted by a
person), so flooding the memory with new sessions cannot free an isolated one.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass


class SessionState:
    """One session's memory (small on purpose: ``__slots__``, tuples, one bounded deque)."""

    __slots__ = ("approvals", "calls", "destinations", "last_seen", "max_rank", "removed", "untrusted")

    def __init__(self, max_calls: int) -> None:
        self.max_rank = -1
        """Rank of the highest classification read (-1: nothing classified yet)."""
        self.untrusted = False
        """Untrusted content entered the context (an injection flag, a retrieval from an untrusted source)."""
        self.destinations: tuple[str, ...] = ()
        """Hosts contacted, oldest first."""
        self.calls: deque[tuple[str, str, str]] = deque(maxlen=max_calls)
        """Preceding calls: (tool name, kind, decision)."""
        self.removed: frozenset[str] = frozenset()
        """Permissions removed for the rest of the session."""
        self.approvals = 0
        """Calls a person approved in this session."""
        self.last_seen = 0.0


@dataclass(frozen=True)
class Isolation:
    """Why and when a session or agent was cut off."""

    reason: str
    since: float
    decision_id: str


class SessionMemory:
    """Per-session state, the organisation's destination history, and isolations.

    Not thread-safe by itself: the engine serialises access (one lock per decision).
    """

    def __init__(self, max_sessions: int = 100_000, ttl_s: float = 3600.0, max_calls: int = 16,
                 max_destinations: int = 64, max_known_hosts: int = 100_000) -> None:
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self.max_calls = max_calls
        self.max_destinations = max_destinations
        self.max_known_hosts = max_known_hosts
        self._sessions: OrderedDict[str, SessionState] = OrderedDict()
        self._known_hosts: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.isolated_sessions: dict[str, Isolation] = {}
        self.isolated_agents: dict[str, Isolation] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str, now: float) -> SessionState:
        """The session's state (a fresh one when unknown or expired); marks it used at ``now``."""
        sessions = self._sessions
        state = sessions.get(session_id)
        if state is not None and now - state.last_seen > self.ttl_s:
            del sessions[session_id]
            state = None
        if state is None:
            state = SessionState(self.max_calls)
            sessions[session_id] = state
            if len(sessions) > self.max_sessions:
                self._evict(now)
        else:
            sessions.move_to_end(session_id)
        state.last_seen = now
        return state

    def peek(self, session_id: str) -> SessionState | None:
        """The session's state without touching it (None when unknown)."""
        return self._sessions.get(session_id)

    def _evict(self, now: float) -> None:
        sessions = self._sessions
        # The oldest-used first: expired ones, then the least recently used past the bound.
        while sessions:
            key, oldest = next(iter(sessions.items()))
            if len(sessions) > self.max_sessions or now - oldest.last_seen > self.ttl_s:
                del sessions[key]
            else:
                break

    def add_destination(self, state: SessionState, host: str) -> None:
        """Record ``host`` as contacted by the session (bounded: the oldest is forgotten)."""
        if host and host not in state.destinations:
            dests = state.destinations + (host,)
            state.destinations = dests[-self.max_destinations:]

    def known_host(self, tenant: str, host: str) -> bool:
        """Whether the organisation (``tenant``) has used ``host`` before."""
        return (tenant, host) in self._known_hosts

    def learn_host(self, tenant: str, host: str) -> None:
        """Remember that ``tenant`` used ``host`` (bounded LRU)."""
        key = (tenant, host)
        known = self._known_hosts
        if key in known:
            known.move_to_end(key)
            return
        known[key] = None
        if len(known) > self.max_known_hosts:
            known.popitem(last=False)

    def isolation(self, session_id: str, agent_id: str) -> Isolation | None:
        """The isolation that cuts this call off, if any (the session's or the agent's)."""
        return self.isolated_sessions.get(session_id) or self.isolated_agents.get(agent_id)

    def isolate(self, session_id: str, agent_id: str, why: Isolation) -> None:
        """Cut off the session and its agent until a person lifts it."""
        self.isolated_sessions[session_id] = why
        self.isolated_agents[agent_id] = why

    def lift(self, key: str) -> bool:
        """Lift the isolation of a session or agent id; True when there was one."""
        events = {iso.decision_id for iso in (self.isolated_sessions.get(key), self.isolated_agents.get(key)) if iso}
        if not events:
            return False
        # One isolation cut off both the session and its agent: lifting either lifts that event.
        for table in (self.isolated_sessions, self.isolated_agents):
            for k in [k for k, iso in table.items() if k == key or iso.decision_id in events]:
                del table[k]
        return True
