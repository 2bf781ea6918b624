"""The threshold detector: counting raw events per group, once per crossing, once per attempt."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from connectors import parse_record
from soc_agent.config import REPO_ROOT
from soc_agent.detect import ThresholdDetector

ATTACKER = "198.51.100.77"


def _sshd(pid: int, message: str, second: int) -> bytes:
    # Syslog stamps carry no year; a recent time keeps the mapping's year inference out of the way.
    stamp = (datetime.now(timezone.utc) - timedelta(minutes=5) + timedelta(seconds=second)).strftime("%b %d %H:%M:%S")
    return f"{stamp} web01 sshd[{pid}]: {message}".encode()


def _failed(pid: int, second: int, user: str = "root") -> bytes:
    return _sshd(pid, f"Failed password for {user} from {ATTACKER} port {40000 + pid} ssh2", second)


def _preauth_close(pid: int, second: int, user: str = "root") -> bytes:
    return _sshd(pid, f"Connection closed by authenticating user {user} {ATTACKER} port {40000 + pid} [preauth]",
                 second)


def _detector() -> ThresholdDetector:
    return ThresholdDetector.from_file(REPO_ROOT / "playbooks" / "detectors.yml")


def _fired(lines: list[bytes]) -> list[tuple[int, int]]:
    """(line index, count) of every brute-force crossing."""
    detector = _detector()
    out = []
    for index, line in enumerate(lines):
        for alert in detector.observe(parse_record(line)):
            if alert.rule_id == "brute_force_threshold":
                out.append((index, alert.attributes["count"]))
    return out


def test_a_preauth_close_after_failures_is_the_same_attempt_not_another():
    # Two connections, two failed passwords each, each ending with sshd's [preauth] close:
    # four attempts, six lines. Counting lines would cross the 5-in-60s threshold.
    lines = [_failed(101, 0), _failed(101, 2), _preauth_close(101, 3),
             _failed(102, 5), _failed(102, 7), _preauth_close(102, 8)]
    assert _fired(lines) == []
    # A fifth real attempt crosses it, with five counted events.
    assert _fired([*lines, _failed(103, 10)]) == [(6, 5)]


def test_a_preauth_close_on_its_own_is_an_attempt():
    # Key probes: each connection offers a key, fails, and only the close line is logged.
    lines = [_preauth_close(200 + i, 2 * i) for i in range(5)]
    assert _fired(lines) == [(4, 5)]


def test_a_reused_pid_is_a_new_connection_after_its_close():
    lines = [_failed(300, 0), _preauth_close(300, 1),    # attempt 1 (close is its epilogue)
             _preauth_close(300, 2),                    # pid 300 again, a new connection: attempt 2
             _failed(301, 3), _failed(301, 4), _failed(301, 5)]  # attempts 3-5
    assert _fired(lines) == [(5, 5)]


def test_events_without_a_connection_are_counted_as_before():
    detector = _detector()
    base = parse_record(_failed(400, 0))
    anonymous = base.model_copy(update={"attributes": {k: v for k, v in base.attributes.items()
                                                       if k not in ("connection", "closes_connection")}})
    fired = [a for i in range(5)
             for a in detector.observe(anonymous.model_copy(update={"id": f"e{i}",
                                                                    "timestamp": base.timestamp + timedelta(seconds=i)}))]
    assert len(fired) == 1 and fired[0].attributes["count"] == 5


def _invalid(pid: int, second: int, user: str = "oracle") -> bytes:
    return _sshd(pid, f"Invalid user {user} from {ATTACKER} port {40000 + pid}", second)


def _failed_invalid(pid: int, second: int, user: str = "oracle") -> bytes:
    return _sshd(pid, f"Failed password for invalid user {user} from {ATTACKER} port {40000 + pid} ssh2", second)


def test_an_invalid_user_probe_is_an_attempt_and_its_password_line_is_not_a_second():
    # Three probes with no password (3 attempts) and one connection with two passwords (2 attempts).
    probes = [_invalid(500 + i, i) for i in range(3)]
    with_passwords = [_invalid(510, 4), _failed_invalid(510, 5), _failed_invalid(510, 6)]
    assert _fired(probes + with_passwords[:2]) == []  # 4 attempts in 5 lines
    assert _fired(probes + with_passwords) == [(5, 5)]  # the second password is the fifth attempt
