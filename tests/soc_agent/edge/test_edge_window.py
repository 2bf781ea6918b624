"""Sliding windows, bounded state and the file follower's rotation handling."""

from __future__ import annotations

import os
import threading

from soc_agent.edge.parse import FAIL, INVALID, AttemptCounter
from soc_agent.edge.tail import FileFollower
from soc_agent.edge.window import SourceWindows


def test_five_failures_within_sixty_seconds_inclusive_cross():
    w = SourceWindows(5, 60)
    assert [w.add(b"a", t) for t in (0, 10, 20, 30, 60)] == [False, False, False, False, True]
    w = SourceWindows(5, 60)
    assert not any(w.add(b"b", t) for t in (0, 16, 32, 48, 64, 80))  # 64 s span every time


def test_out_of_order_counts_are_placed_in_time():
    w = SourceWindows(5, 60)
    for t in (100, 110, 120, 130):
        w.add(b"a", t)
    assert w.add(b"a", 105)  # an Invalid user counted when its connection closed


def test_idle_sources_are_evicted_past_the_cap():
    w = SourceWindows(5, 60, max_sources=1000)
    for i in range(5000):
        w.add(str(i).encode(), float(i))
    assert len(w) == 1000 and w.evicted == 4000


def test_connection_state_is_bounded_and_a_pending_invalid_user_is_not_lost():
    counter, out = AttemptCounter(max_connections=10), []
    for i in range(50):
        counter.feed(str(i).encode(), INVALID, b"203.0.113.1", float(i), out)
    assert len(counter) == 10 and len(out) == 40
    counter.feed(b"x", FAIL, b"203.0.113.2", 1.0, out)
    assert out[-1] == (b"203.0.113.2", 1.0)


def test_follower_survives_rotation_and_truncation(tmp_path):
    path = tmp_path / "auth.log"
    path.write_bytes(b"old 1\n")
    f = FileFollower(str(path))
    with open(path, "ab") as fh:
        fh.write(b"a\nb\npart")
    assert b"\n".join(f.read_available()) == b"a\nb"
    with open(path, "ab") as fh:
        fh.write(b"ial\n")
    os.rename(path, tmp_path / "auth.log.1")
    path.write_bytes(b"new 1\n")
    assert b"\n".join(f.read_available()).split(b"\n") == [b"partial", b"new 1"]
    assert f.rotations == 1
    path.write_bytes(b"t\n")  # truncated in place (copytruncate) and rewritten
    assert f.read_available() == [b"t"] and f.truncations == 1


def test_follower_wakes_on_append_without_polling(tmp_path):
    path = tmp_path / "auth.log"
    path.write_bytes(b"")
    f = FileFollower(str(path))
    stop, got = threading.Event(), []

    def run():
        for batch in f.follow(stop, idle_s=5):
            got.extend(batch)
            stop.set()

    thread = threading.Thread(target=run)
    thread.start()
    with open(path, "ab") as fh:
        fh.write(b"hello\n")
    thread.join(3)
    assert got == [b"hello"]


def test_the_set_of_sources_that_crossed_is_bounded_oldest_evicted_first():
    from soc_agent.edge.window import RecentSet

    flagged = RecentSet(max_size=100)
    for i in range(10_000):
        flagged.add(f"198.51.{i // 256}.{i % 256}")
        assert len(flagged) <= 100
    assert flagged.evicted == 9_900
    assert next(iter(flagged)) == "198.51.38.172" and "198.51.38.171" not in flagged  # the newest 100 remain
    flagged.add("198.51.38.172")  # re-adding refreshes: it is now the newest, evicted last
    flagged.add("203.0.113.1")
    assert "198.51.38.172" in flagged and "198.51.38.173" not in flagged and len(flagged) == 100
    assert RecentSet(5) == set() and {"a"} == _filled(RecentSet(5), "a")


def _filled(s, *items):
    for item in items:
        s.add(item)
    return s


def test_the_sensor_keeps_at_most_max_flagged_sources():
    from soc_agent.edge.firewall import NullFirewall
    from soc_agent.edge.sensor import EdgeSensor

    class DenyAll:  # the guard's verdict does not matter here: every crossing is remembered
        shadow = False

        def judge(self, ip, ttl, ts):
            return "deny", 0, "test"

    sensor = EdgeSensor(DenyAll(), NullFirewall(), max_flagged=50)
    for i in range(1000):
        sensor.crossed(f"203.0.{i // 256}.{i % 256}", float(i))
    assert len(sensor.flagged) == 50 and sensor.summary()["flagged_evicted"] == 950
