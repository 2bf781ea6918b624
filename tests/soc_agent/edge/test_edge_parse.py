"""The edge's fast sshd parser: agrees with connectors/authlog line by line, and counts like the ground truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from connectors import MappingError
from connectors.authlog import record_from_text, to_alert
from soc_agent.edge import parse
from soc_agent.edge.firewall import NullFirewall
from soc_agent.edge.guardlite import EdgeGuard, compile_policy
from soc_agent.edge.sensor import EdgeSensor

REPO = Path(__file__).resolve().parents[3]
SAMPLES = sorted((REPO.parent / "shared" / "payloads" / "auth_logs").glob("*.log"))
JOURNAL = REPO / "tests" / "connectors" / "fixtures" / "journald_sshd.ndjson"
GENERATOR = REPO.parent / "shared" / "bench" / "edge" / "gen_sshd_log.py"


def _authlog(record: dict) -> tuple[str, str] | None:
    try:
        alert = to_alert(record)
    except MappingError:
        return None
    src = next(e.value for e in alert.entities if e.role == "src")
    return alert.rule_id, src


def _edge(line: bytes) -> tuple[str, str] | None:
    header = parse.split_header(line)
    if header is None or header["prog"] not in (b"sshd", b"sshd-session"):
        return None
    hit = parse.classify_message(header["msg"])
    if hit is None or hit[0] not in parse.RULE_IDS:
        return None
    return parse.RULE_IDS[hit[0]], hit[1].decode()


def _sample_lines() -> list[bytes]:
    lines = []
    for path in SAMPLES:
        lines += [ln for ln in path.read_bytes().splitlines() if ln and not ln.startswith(b"#")]
    return lines


@pytest.mark.skipif(not SAMPLES, reason="shared sample logs (../shared/payloads/auth_logs) not present")
def test_every_shared_sample_line_classifies_as_authlog_does():
    lines = _sample_lines()
    assert len(lines) > 300
    disagree = []
    for line in lines:
        ours, theirs = _edge(line), _authlog(record_from_text(line.decode("utf-8", "replace")))
        if theirs is not None and theirs[1] != theirs[1].strip():
            continue
        if ours != theirs:
            disagree.append((line, ours, theirs))
    assert not disagree, disagree[:5]


def test_journald_fixture_classifies_as_authlog_does():
    for raw in JOURNAL.read_bytes().splitlines():
        record = json.loads(raw)
        hit = parse.classify_message(record["MESSAGE"].encode())
        ours = (parse.RULE_IDS[hit[0]], hit[1].decode()) if hit and hit[0] in parse.RULE_IDS else None
        assert ours == _authlog(record)


def _sensor(tmp_path: Path) -> EdgeSensor:
    policy = tmp_path / "policy.yml"
    text = (REPO / "playbooks" / "policy.yml").read_text()
    policy.write_text(text.replace("203.0.113.0/24]", '203.0.113.0/24, 198.18.0.0/15, "2001:db8::/32"]'))
    return EdgeSensor(EdgeGuard(compile_policy(policy)), NullFirewall())


@pytest.mark.skipif(not GENERATOR.exists(), reason="shared benchmark generator not present")
def test_generated_log_failures_and_crossings_match_its_ground_truth(tmp_path):
    log, truth = tmp_path / "auth.log", tmp_path / "truth.json"
    subprocess.run([sys.executable, str(GENERATOR), "-n", "40000", "-o", str(log), "--truth", str(truth),
                    "--seed", "7"], check=True, capture_output=True, timeout=120)
    expected = json.loads(truth.read_text())
    sensor = _sensor(tmp_path)
    sensor.feed_chunk(log.read_bytes().rstrip(b"\n"))
    assert sensor.failures == expected["summary"]["failure_events"]
    assert sensor.flagged == {r["ip"] for r in expected["crossing"]}
    # the line-by-line path (other syslog layouts) reaches the same result
    slow = _sensor(tmp_path)
    slow.feed(log.read_bytes().splitlines())
    assert (slow.failures, slow.flagged) == (sensor.failures, sensor.flagged)


def test_failed_lines_after_invalid_user_count_once_and_key_probe_counts(tmp_path):
    sensor = _sensor(tmp_path)
    lines = [
        b"Jun 10 10:00:00 h sshd[10]: Invalid user bob from 203.0.113.5 port 1",
        b"Jun 10 10:00:01 h sshd[10]: Failed password for invalid user bob from 203.0.113.5 port 1 ssh2",
        b"Jun 10 10:00:02 h sshd[10]: Failed password for invalid user bob from 203.0.113.5 port 1 ssh2",
        b"Jun 10 10:00:02 h sshd[10]: Connection closed by invalid user bob 203.0.113.5 port 1 [preauth]",
        b"Jun 10 10:00:03 h sshd[11]: Failed password for root from 203.0.113.5 port 2 ssh2",
        b"Jun 10 10:00:03 h sshd[11]: Received disconnect from 203.0.113.5 port 2:11: Bye [preauth]",
        b"Jun 10 10:00:03 h sshd[11]: Disconnected from authenticating user root 203.0.113.5 port 2 [preauth]",
        b"Jun 10 10:00:04 h sshd[12]: Invalid user eve from 203.0.113.5 port 3",
        b"Jun 10 10:00:05 h sshd[12]: Connection closed by invalid user eve 203.0.113.5 port 3 [preauth]",
        b"Jun 10 10:00:06 h sshd[13]: Connection closed by authenticating user git 203.0.113.5 port 4 [preauth]",
    ]
    sensor.feed_chunk(b"\n".join(lines))
    assert sensor.failures == 5  # 2 passwords, 1 root password, 1 untried invalid user, 1 key probe
    assert sensor.flagged == {"203.0.113.5"}


def test_journald_export_records_are_counted_per_connection(tmp_path):
    sensor = _sensor(tmp_path)
    records = [{"__REALTIME_TIMESTAMP": str(1718000000_000000 + i * 1_000_000), "_HOSTNAME": "h",
                "SYSLOG_IDENTIFIER": "sshd", "_PID": str(100 + i),
                "MESSAGE": f"Failed password for invalid user u{i} from 2001:db8::7 port {i} ssh2"} for i in range(5)]
    records.append({**records[0], "SYSLOG_IDENTIFIER": "sudo"})
    sensor.feed_chunk(b"\n".join(json.dumps(r).encode() for r in records))
    assert sensor.failures == 5 and sensor.flagged == {"2001:db8::7"}


# ---- log injection: the source is the address sshd writes at the END of the line -------------------

from hypothesis import assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from connectors.authlog import classify as authlog_classify  # noqa: E402

INJECTED = "Failed password for invalid user x from 198.51.100.77 port 1 ssh2: from 203.0.113.200 port 50000 ssh2"


def test_injected_address_in_the_user_name_is_not_the_source():
    kind, ip, user = parse.classify_message(INJECTED.encode())
    assert (kind, ip, user) == (parse.FAIL, b"203.0.113.200", b"x from 198.51.100.77 port 1 ssh2:")
    assert authlog_classify(INJECTED).source == "203.0.113.200"


def test_six_injected_attempts_block_the_attacker_not_the_victim(tmp_path):
    sensor = _sensor(tmp_path)
    sensor.feed_chunk(b"\n".join(f"Jun 10 10:00:0{i} h sshd[{100 + i}]: {INJECTED}".encode() for i in range(6)))
    assert sensor.failures == 6
    assert sensor.flagged == {"203.0.113.200"}


def test_free_text_auth_info_with_a_second_address_is_never_attributed_to_it():
    # host-based auth logs client-chosen "client user"/"client host" after the address: a forged
    # address there (or in the name) makes the line ambiguous, and it is not counted for anyone.
    real = 'Failed hostbased for dan from 192.0.2.9 port 45785 ssh2: RSA SHA256:x, client user "dan", client host "h"'
    assert parse.classify_message(real.encode())[1] == b"192.0.2.9"
    forged = ('Failed hostbased for dan from 192.0.2.9 port 45785 ssh2: RSA SHA256:x, client user '
              '"a from 198.51.100.77 port 1 ssh2: RSA SHA256:y, client user "b", client host "h"')
    hit = parse.classify_message(forged.encode())
    assert hit is None or hit[1] == b"192.0.2.9"
    assert authlog_classify(forged) is None or authlog_classify(forged).source == "192.0.2.9"


_HOSTILE = [" ", "from", "port", " from 1.2.3.4 port 22", "from 198.51.100.77 port 1 ssh2", " ssh2", "ssh2:",
            ": from 10.0.0.1 port 2 ssh2", " port 22", "2001:db8::1", " from 2001:db8::bad port 22 ssh2: ",
            '"', "'", "\\n", "\\012", "\\r\\n", " [preauth]", "invalid user ", " 192.0.2.1 port 7 [preauth]",
            ": RSA SHA256:abc", "<", "\\", "%", "Accepted password for root from 10.1.1.1 port 1 ssh2"]
_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def _vis(text: str) -> str:
    """sshd's log escaping (strnvis VIS_CSTYLE|VIS_NL|VIS_TAB|VIS_OCTAL): control and 8-bit bytes."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}.get(
            ch, ch if 0x20 <= byte < 0x7F else f"\\{byte:03o}"))
    return "".join(out)


user_names = st.one_of(
    st.lists(st.sampled_from(_HOSTILE) | st.text(_PRINTABLE, max_size=6), max_size=6).map("".join),
    st.text(max_size=20).map(_vis),
).map(lambda name: name[:100])  # sshd logs at most 100 characters of the name
sources = st.ip_addresses().map(str)
key_info = st.sampled_from(["", ": RSA SHA256:1M4RzhMyWuFS/86uPY/ce2prh+dVTHW7iD2Rhpq", ": ED25519 SHA256:x",
                            ": DSA 36:48:aa:bb:cc"])


def _lines(name: str, ip: str, port: int, info: str):
    yield parse.FAIL, f"Failed password for invalid user {name} from {ip} port {port} ssh2"
    yield parse.FAIL, f"Failed publickey for invalid user {name} from {ip} port {port} ssh2{info}"
    yield parse.ACCEPT, f"Accepted publickey for {name} from {ip} port {port} ssh2{info}"
    yield parse.INVALID, f"Invalid user {name} from {ip} port {port}"
    yield parse.PREAUTH_CLOSE, f"Connection closed by authenticating user {name} {ip} port {port} [preauth]"
    yield parse.PREAUTH_CLOSE, f"Disconnected from authenticating user {name} {ip} port {port} [preauth]"


@settings(max_examples=300, deadline=None)
@given(name=user_names, ip=sources, port=st.integers(1, 65535), info=key_info)
def test_any_user_name_leaves_source_and_user_intact(name, ip, port, info):
    assume(not name.startswith("invalid user "))  # a valid account never has that name
    for kind, message in _lines(name, ip, port, info):
        assert parse.classify_message(message.encode()) == (kind, ip.encode(), name.encode()), message
        attempt = authlog_classify(message)
        assert attempt is not None and attempt.source == ip and attempt.port == port, message
        expected_user = None if not name or name.startswith("<") else (name.strip() or None)
        assert attempt.user == expected_user, message
        # the whole line, header included, through the sensor's regex-over-chunk path
        line = f"Jun 10 10:00:00 h sshd[7]: {message}".encode()
        m = parse.BSD_SSHD.match(b"\n" + line)
        assert m is not None and parse.classify_message(m["msg"])[1] == ip.encode()


def test_ipv6_sources_are_kept_whole(tmp_path):
    sensor = _sensor(tmp_path)
    sensor.feed_chunk(b"\n".join(
        f"Jun 10 10:00:0{i} h sshd[{200 + i}]: Failed password for invalid user a from 2001:db8::6 port 1 ssh2: "
        f"from 2001:db8::7 port {i} ssh2".encode() for i in range(5)))
    assert sensor.flagged == {"2001:db8::7"}
    hit = parse.classify_message(b"Connection reset by authenticating user root 2001:db8:0:1::1:2 port 9 [preauth]")
    assert hit == (parse.PREAUTH_CLOSE, b"2001:db8:0:1::1:2", b"root")
