"""Session memory: bounded, expiring, and isolation that flooding cannot evict."""

from __future__ import annotations

import tracemalloc

from soc_agent.pdp.session import Isolation, SessionMemory


def test_the_least_recently_used_session_is_forgotten_past_the_bound():
    memory = SessionMemory(max_sessions=3, ttl_s=1000)
    for sid in ("a", "b", "c"):
        memory.get(sid, 0.0).max_rank = 2
    memory.get("a", 1.0)  # a is used again: b is now the oldest
    memory.get("d", 2.0)
    assert len(memory) == 3
    assert memory.peek("b") is None
    assert memory.peek("a").max_rank == 2


def test_an_idle_session_expires():
    memory = SessionMemory(ttl_s=60)
    memory.get("s", 0.0).untrusted = True
    assert memory.get("s", 59.0).untrusted is True
    assert memory.get("s", 120.0).untrusted is False


def test_memory_per_session_is_bounded():
    memory = SessionMemory(max_calls=4, max_destinations=3)
    state = memory.get("s", 0.0)
    for i in range(10):
        state.calls.append((f"t{i}", "http", "allow"))
        memory.add_destination(state, f"h{i}.example")
    assert len(state.calls) == 4 and state.calls[-1][0] == "t9"
    assert state.destinations == ("h7.example", "h8.example", "h9.example")


def test_the_organisations_destination_history_is_bounded_and_per_tenant():
    memory = SessionMemory(max_known_hosts=2)
    memory.learn_host("acme", "a.example")
    assert memory.known_host("acme", "a.example") and not memory.known_host("other", "a.example")
    memory.learn_host("acme", "b.example")
    memory.learn_host("acme", "c.example")
    assert not memory.known_host("acme", "a.example")


def test_isolation_survives_flooding_the_memory_with_sessions():
    memory = SessionMemory(max_sessions=2)
    memory.get("s1", 0.0)
    memory.isolate("s1", "agent-1", Isolation("why", 0.0, "d1"))
    for i in range(100):
        memory.get(f"flood-{i}", float(i))
    assert memory.peek("s1") is None
    assert memory.isolation("s1", "someone-else") is not None
    assert memory.isolation("other-session", "agent-1") is not None


def test_lifting_the_agent_lifts_the_isolation_of_its_session_too():
    memory = SessionMemory()
    memory.isolate("s1", "agent-1", Isolation("why", 0.0, "d1"))
    memory.isolate("s2", "agent-2", Isolation("why", 0.0, "d2"))
    assert memory.lift("agent-1")
    assert memory.isolation("s1", "x") is None
    assert memory.isolation("s2", "x") is not None


def test_a_hundred_thousand_live_sessions_stay_small():
    tracemalloc.start()
    memory = SessionMemory(max_sessions=100_000)
    before = tracemalloc.get_traced_memory()[0]
    for i in range(100_000):
        state = memory.get(f"session-{i:06d}", float(i))
        state.max_rank = 2
        memory.add_destination(state, "api.example")
        state.calls.append(("http_post", "http", "allow"))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(memory) == 100_000
    # About 1 KiB per session (state, deque, key, LRU entry); well under 200 MB for the whole memory.
    assert used / 100_000 < 2048, used
